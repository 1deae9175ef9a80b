"""Typed records at the API boundary.

Each model validates one Asana record as the client receives it and flattens it into a
row of its table (see ``tables.py``). A record that fails validation never reaches a table:
the sync sends it to the quarantine with the validation error.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

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


class TaskCounts(BaseModel):
    """A project's TaskCountResponse (``GET /projects/{gid}/task_counts``), which has no gid.
    num_tasks was asked for, so its absence is a malformed record, not a zero."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    num_tasks: int = Field(strict=True, ge=0)


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
    """One of a task's memberships. The spec warns that more types may come, so an entry without
    a project is not an error: it is not a ``task_memberships`` row (see ``Task.unplaced``)."""

    model_config = ConfigDict(extra="allow", frozen=True)  # extras: what a new type carries, kept if quarantined

    project: Ref | None = None
    section: Ref | None = None


class EnumOption(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    gid: Gid = Field(pattern=r"^\d+$")
    name: str | None = None
    enabled: StrictBool | None = None


class DateValue(BaseModel):
    """A date custom field's value, in either of its documented forms: ``{date, date_time}`` (a
    task's value) or ``{start_on, due_at, due_on}`` (StoryResponseDates, a change story's
    old/new value). A day given twice must agree, and a start day (a range) has no column: both
    are refused rather than one reading picked."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    date: Day | None = None
    date_time: Timestamp | None = None
    due_on: Day | None = None
    due_at: Timestamp | None = None
    start_on: Day | None = None

    @model_validator(mode="after")
    def _one_reading(self) -> DateValue:
        if self.date is not None and self.due_on is not None and self.date != self.due_on:
            raise ValueError("date and due_on name different days")
        if self.date_time is not None and self.due_at is not None and self.date_time != self.due_at:
            raise ValueError("date_time and due_at name different times")
        if self.start_on is not None:
            raise ValueError("a start day (a date range) has no column")
        return self

    @property
    def day(self) -> date | None:
        return self.date if self.date is not None else self.due_on

    @property
    def time(self) -> datetime | None:
        return self.date_time if self.date_time is not None else self.due_at


class CustomField(Record):
    """A custom field definition, as a project's custom field settings embed it."""

    name: str | None = None
    resource_subtype: str | None = None
    type: str | None = None  # deprecated twin of resource_subtype
    description: str | None = None
    enum_options: list[EnumOption] = []
    precision: int | None = None
    format: str | None = None
    is_formula_field: StrictBool | None = None

    def row(self, workspace_gid: str | None = None) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "workspace_gid": workspace_gid,
            "name": self.name,
            "resource_subtype": self.resource_subtype or self.type,
            "description": self.description,
            "enum_option_gids": [o.gid for o in self.enum_options],
            "enum_option_names": [o.name for o in self.enum_options],
            "precision": self.precision,
            "format": self.format,
            "is_formula_field": self.is_formula_field,
        }


class CustomFieldSetting(Record):
    custom_field: CustomField
    project: Ref | None = None
    parent: Ref | None = None
    is_important: StrictBool | None = None

    def row(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "project_gid": gid_of(self.project or self.parent),
            "custom_field_gid": self.custom_field.gid,
            "is_important": self.is_important,
        }


class CustomFieldValue(Record):
    """A task's value of one field: the field's gid, its type, and the value of that type (the
    field's name is not stored with the value: the reconcile compares it with the field's)."""

    name: str | None = None
    resource_subtype: str | None = None
    type: str | None = None
    text_value: str | None = None
    number_value: float | None = None
    enum_value: EnumOption | None = None
    multi_enum_values: list[EnumOption] | None = None
    date_value: DateValue | None = None
    people_value: list[Ref] | None = None
    enabled: StrictBool | None = None  # false: a value kept from a field no longer on the task's projects
    reference_value: list[Ref] | None = None  # the objects a reference field points at (tasks, projects...)
    display_value: str | None = None  # a formula field's computed value too (read-only in Asana)

    def row(self) -> dict[str, Any]:
        multi, people, day = self.multi_enum_values or [], self.people_value or [], self.date_value or DateValue()
        return {
            "custom_field_gid": self.gid,
            "resource_subtype": self.resource_subtype or self.type,
            "text_value": self.text_value,
            "number_value": self.number_value,
            "date_value": day.day,
            "date_time_value": day.time,
            "enum_option_gid": gid_of(self.enum_value),
            "enum_option_name": self.enum_value.name if self.enum_value else None,
            "multi_enum_option_gids": [o.gid for o in multi],
            "multi_enum_option_names": [o.name for o in multi],
            "people_gids": [p.gid for p in people],
            "reference_gids": [r.gid for r in self.reference_value or []],
            "display_value": self.display_value,
            "enabled": self.enabled,
        }


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
    custom_fields: list[CustomFieldValue] = []
    followers: list[Ref] = []

    @model_validator(mode="after")
    def _completed_when(self) -> Task:
        # Asana sets completed_at on every completed task; without it the completion cannot be
        # placed in the ticket's history, and a history that reads it as open may hide a finding.
        if self.completed and self.completed_at is None:
            raise ValueError("completed is true but completed_at is null: when it was completed is unknown")
        return self

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
        """A row per membership in a project, numbered among those (0: the primary project)."""
        placed = [m for m in self.memberships if m.project is not None]
        return [
            {"task_gid": self.gid, "project_gid": m.project.gid, "section_gid": gid_of(m.section), "position": i}
            for i, m in enumerate(placed)
        ]

    @property
    def unplaced(self) -> list[TaskMembership]:
        """The memberships without a project: of a type the tables do not hold."""
        return [m for m in self.memberships if m.project is None]

    def tag_rows(self) -> list[dict[str, Any]]:
        return [{"task_gid": self.gid, "tag_gid": t.gid} for t in self.tags]

    def follower_rows(self) -> list[dict[str, Any]]:
        return [{"task_gid": self.gid, "user_gid": f.gid} for f in self.followers]

    def custom_field_rows(self) -> list[dict[str, Any]]:
        return [{"task_gid": self.gid, **value.row()} for value in self.custom_fields]


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
    custom_field: Ref | None = None
    old_text_value: str | None = None
    new_text_value: str | None = None
    old_number_value: float | None = None
    new_number_value: float | None = None
    old_enum_value: EnumOption | None = None
    new_enum_value: EnumOption | None = None
    old_multi_enum_values: list[EnumOption] | None = None
    new_multi_enum_values: list[EnumOption] | None = None
    old_date_value: DateValue | None = None
    new_date_value: DateValue | None = None
    old_people_value: list[Ref] | None = None
    new_people_value: list[Ref] | None = None

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
            "custom_field_gid": gid_of(self.custom_field),
            **self._field_values("old"),
            **self._field_values("new"),
        }

    def _field_values(self, side: str) -> dict[str, Any]:
        """A custom field change's value before (``old``) or after (``new``), as columns."""
        enum, multi = getattr(self, f"{side}_enum_value"), getattr(self, f"{side}_multi_enum_values")
        day, people = getattr(self, f"{side}_date_value"), getattr(self, f"{side}_people_value")
        return {
            f"{side}_text_value": getattr(self, f"{side}_text_value"),
            f"{side}_number_value": getattr(self, f"{side}_number_value"),
            f"{side}_enum_option_gid": gid_of(enum),
            f"{side}_enum_option_name": enum.name if enum else None,
            f"{side}_multi_enum_option_gids": None if multi is None else [o.gid for o in multi],
            f"{side}_multi_enum_option_names": None if multi is None else [o.name for o in multi],
            f"{side}_date_value": day.day if day else None,
            f"{side}_date_time_value": day.time if day else None,
            f"{side}_people_gids": None if people is None else [p.gid for p in people],
        }
