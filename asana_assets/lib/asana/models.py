"""Typed records at the API boundary.

Each model validates one Asana record as the client receives it and flattens it into a
row of its table (see ``tables.py``). A record that fails validation never reaches a table:
the sync sends it to the quarantine with the validation error.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

Gid = str


def _text_only(value: Any) -> Any:
    """Dates arrive as ISO-8601 text; a number or other type is a malformed record, not epoch time."""
    if value is not None and not isinstance(value, str):
        raise ValueError("expected an ISO-8601 string")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_text_only)]
Day = Annotated[date, BeforeValidator(_text_only)]


class Record(BaseModel):
    """Base of every API record: unknown fields are ignored, known ones are checked."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    gid: Gid = Field(pattern=r"^\d+$")

    def row(self) -> dict[str, Any]:
        raise NotImplementedError


class Ref(BaseModel):
    """A compact reference to another object; only its gid is kept."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    gid: Gid = Field(pattern=r"^\d+$")
    resource_type: str | None = None
    name: str | None = None


def gid_of(ref: Ref | None) -> str | None:
    return ref.gid if ref is not None else None


class Photo(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    image_128x128: str | None = None


class User(Record):
    name: str | None = None
    email: str | None = None
    photo: Photo | None = None

    def row(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "name": self.name,
            "email": self.email,
            "photo_url": self.photo.image_128x128 if self.photo else None,
        }


class Workspace(Record):
    name: str | None = None
    is_organization: StrictBool | None = None
    email_domains: list[str] = []

    def row(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "name": self.name,
            "is_organization": self.is_organization,
            "email_domains": list(self.email_domains),
        }


class WorkspaceMembership(Record):
    user: User
    workspace: Ref
    is_active: StrictBool | None = None
    is_admin: StrictBool | None = None
    is_guest: StrictBool | None = None
    is_view_only: StrictBool | None = None
    created_at: Timestamp | None = None

    def row(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "workspace_gid": self.workspace.gid,
            "user_gid": self.user.gid,
            "is_active": self.is_active,
            "is_admin": self.is_admin,
            "is_guest": self.is_guest,
            "is_view_only": self.is_view_only,
            "created_at": self.created_at,
        }


class Team(Record):
    name: str | None = None
    description: str | None = None
    organization: Ref | None = None
    visibility: str | None = None
    permalink_url: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "workspace_gid": gid_of(self.organization),
            "name": self.name,
            "description": self.description,
            "visibility": self.visibility,
            "permalink_url": self.permalink_url,
        }


class TeamMembership(Record):
    user: Ref
    team: Ref
    is_admin: StrictBool | None = None
    is_guest: StrictBool | None = None
    is_limited_access: StrictBool | None = None

    def row(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "team_gid": self.team.gid,
            "user_gid": self.user.gid,
            "is_admin": self.is_admin,
            "is_guest": self.is_guest,
            "is_limited_access": self.is_limited_access,
        }


class Project(Record):
    name: str | None = None
    notes: str | None = None
    archived: StrictBool | None = None
    color: str | None = None
    created_at: Timestamp | None = None
    modified_at: Timestamp | None = None
    owner: Ref | None = None
    team: Ref | None = None
    workspace: Ref | None = None
    privacy_setting: str | None = None
    default_access_level: str | None = None
    completed: StrictBool | None = None
    completed_at: Timestamp | None = None
    due_on: Day | None = None
    start_on: Day | None = None
    permalink_url: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "workspace_gid": gid_of(self.workspace),
            "team_gid": gid_of(self.team),
            "owner_gid": gid_of(self.owner),
            "name": self.name,
            "notes": self.notes,
            "archived": self.archived,
            "color": self.color,
            "privacy_setting": self.privacy_setting,
            "default_access_level": self.default_access_level,
            "completed": self.completed,
            "completed_at": self.completed_at,
            "due_on": self.due_on,
            "start_on": self.start_on,
            "created_at": self.created_at,
            "modified_at": self.modified_at,
            "permalink_url": self.permalink_url,
        }


class ProjectMembership(Record):
    parent: Ref
    member: Ref
    access_level: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "project_gid": self.parent.gid,
            "member_gid": self.member.gid,
            "member_type": self.member.resource_type,
            "access_level": self.access_level,
        }


class Section(Record):
    name: str | None = None
    created_at: Timestamp | None = None
    project: Ref | None = None


class Tag(Record):
    name: str | None = None
    color: str | None = None
    notes: str | None = None
    created_at: Timestamp | None = None
    workspace: Ref | None = None
    permalink_url: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "workspace_gid": gid_of(self.workspace),
            "name": self.name,
            "color": self.color,
            "notes": self.notes,
            "created_at": self.created_at,
            "permalink_url": self.permalink_url,
        }


class TaskMembership(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    project: Ref
    section: Ref | None = None


class Task(Record):
    name: str | None = None
    notes: str | None = None
    resource_subtype: str | None = None
    approval_status: Literal["pending", "approved", "rejected", "changes_requested"] | None = None
    assignee: Ref | None = None
    created_by: Ref | None = None
    completed: StrictBool | None = None
    completed_at: Timestamp | None = None
    completed_by: Ref | None = None
    created_at: Timestamp
    modified_at: Timestamp
    due_on: Day | None = None
    due_at: Timestamp | None = None
    start_on: Day | None = None
    parent: Ref | None = None
    workspace: Ref | None = None
    memberships: list[TaskMembership] = []
    tags: list[Ref] = []
    permalink_url: str | None = None
    num_subtasks: int | None = None

    def row(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "workspace_gid": gid_of(self.workspace),
            "parent_gid": gid_of(self.parent),
            "resource_subtype": self.resource_subtype,
            "approval_status": self.approval_status,
            "name": self.name,
            "notes": self.notes,
            "assignee_gid": gid_of(self.assignee),
            "created_by_gid": gid_of(self.created_by),
            "completed": self.completed,
            "completed_at": self.completed_at,
            "completed_by_gid": gid_of(self.completed_by),
            "created_at": self.created_at,
            "modified_at": self.modified_at,
            "due_on": self.due_on,
            "due_at": self.due_at,
            "start_on": self.start_on,
            "permalink_url": self.permalink_url,
            "num_subtasks": self.num_subtasks,
        }

    def membership_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "task_gid": self.gid,
                "project_gid": m.project.gid,
                "section_gid": gid_of(m.section),
                "position": i,
            }
            for i, m in enumerate(self.memberships)
        ]

    def tag_rows(self) -> list[dict[str, Any]]:
        return [{"task_gid": self.gid, "tag_gid": t.gid} for t in self.tags]


class StoryDates(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    start_on: Day | None = None
    due_on: Day | None = None
    due_at: Timestamp | None = None


class Story(Record):
    created_at: Timestamp
    created_by: Ref | None = None
    type: Literal["comment", "system"]
    resource_subtype: str
    text: str | None = None
    source: str | None = None
    target: Ref | None = None
    old_section: Ref | None = None
    new_section: Ref | None = None
    assignee: Ref | None = None
    old_approval_status: str | None = None
    new_approval_status: str | None = None
    old_name: str | None = None
    new_name: str | None = None
    old_dates: StoryDates | None = None
    new_dates: StoryDates | None = None
    project: Ref | None = None

    def row(self) -> dict[str, Any]:
        old, new = self.old_dates or StoryDates(), self.new_dates or StoryDates()
        return {
            "gid": self.gid,
            "task_gid": gid_of(self.target),
            "created_at": self.created_at,
            "created_by_gid": gid_of(self.created_by),
            "type": self.type,
            "resource_subtype": self.resource_subtype,
            "text": self.text,
            "source": self.source,
            "old_section_gid": gid_of(self.old_section),
            "new_section_gid": gid_of(self.new_section),
            "assignee_gid": gid_of(self.assignee),
            "old_approval_status": self.old_approval_status,
            "new_approval_status": self.new_approval_status,
            "old_name": self.old_name,
            "new_name": self.new_name,
            "old_due_on": old.due_on,
            "new_due_on": new.due_on,
            "old_due_at": old.due_at,
            "new_due_at": new.due_at,
            "old_start_on": old.start_on,
            "new_start_on": new.start_on,
            "project_gid": gid_of(self.project),
        }
