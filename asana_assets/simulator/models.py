"""The objects of a simulated Asana organisation.

References to other objects are stored as gids and resolved when a record is rendered, the way
the API returns nested compact objects. Child lists (a section's tasks, a task's stories) are
the indexes the server pages through, so no request scans the whole world.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(slots=True, eq=False)
class Workspace:
    resource_type: ClassVar[str] = "workspace"
    gid: str
    name: str
    email_domains: list[str]
    is_organization: bool = True
    plan: str = "enterprise"  # enterprise, business, premium or free: who may read the audit log
    memberships: list[str] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    custom_fields: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class User:
    resource_type: ClassVar[str] = "user"
    gid: str
    name: str
    email: str
    workspace_memberships: list[str] = field(default_factory=list)
    team_memberships: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class WorkspaceMembership:
    resource_type: ClassVar[str] = "workspace_membership"
    gid: str
    user: str
    workspace: str
    created_at: str
    user_task_list: str
    is_active: bool = True
    is_admin: bool = False
    is_guest: bool = False
    is_view_only: bool = False


@dataclass(slots=True, eq=False)
class Team:
    resource_type: ClassVar[str] = "team"
    gid: str
    name: str
    organization: str
    description: str = ""
    visibility: str = "request_to_join"
    memberships: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class TeamMembership:
    resource_type: ClassVar[str] = "team_membership"
    gid: str
    user: str
    team: str
    is_admin: bool = False
    is_guest: bool = False
    is_limited_access: bool = False


@dataclass(slots=True, eq=False)
class Project:
    resource_type: ClassVar[str] = "project"
    gid: str
    name: str
    workspace: str
    team: str | None
    owner: str | None
    created_at: str
    modified_at: str
    notes: str = ""
    archived: bool = False
    color: str | None = None
    privacy_setting: str = "public_to_workspace"
    default_access_level: str = "editor"
    default_view: str = "list"
    completed: bool = False
    completed_at: str | None = None
    completed_by: str | None = None
    due_on: str | None = None
    start_on: str | None = None
    followers: list[str] = field(default_factory=list)
    memberships: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    custom_field_settings: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class ProjectMembership:
    resource_type: ClassVar[str] = "project_membership"
    gid: str
    project: str
    user: str  # the member's gid: a user's, or a team's when member_type is team
    access_level: str = "editor"
    member_type: str = "user"


@dataclass(slots=True, eq=False)
class Section:
    resource_type: ClassVar[str] = "section"
    gid: str
    name: str
    project: str
    created_at: str
    tasks: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Tag:
    resource_type: ClassVar[str] = "tag"
    gid: str
    name: str
    workspace: str
    created_at: str
    color: str | None = None
    notes: str = ""
    tasks: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Task:
    resource_type: ClassVar[str] = "task"
    gid: str
    name: str
    workspace: str
    created_at: str
    created_by: str | None
    modified_at: str
    resource_subtype: str = "default_task"
    notes: str = ""
    approval_status: str | None = None  # only approval tasks carry one
    assignee: str | None = None
    assigned_by: str | None = None
    completed: bool = False
    completed_at: str | None = None
    completed_by: str | None = None
    due_on: str | None = None
    due_at: str | None = None
    start_on: str | None = None
    parent: str | None = None
    memberships: list[tuple[str, str]] = field(default_factory=list)  # (project, section)
    # Memberships without a project (the spec: "more types of memberships may be added"): each a
    # section or None, with the project whose readers see it (None: everyone).
    unplaced: list[tuple[str | None, str | None]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    followers: list[str] = field(default_factory=list)
    subtasks: list[str] = field(default_factory=list)
    stories: list[str] = field(default_factory=list)
    custom_fields: dict[str, CustomFieldValue] = field(default_factory=dict)  # field gid -> its value


@dataclass(slots=True, eq=False)
class Story:
    """A task's story. ``old``/``new`` hold the subtype's structured values (see schema.py)."""

    resource_type: ClassVar[str] = "story"
    gid: str
    target: str
    created_at: str
    created_by: str | None
    resource_subtype: str
    text: str
    old: Any = None
    new: Any = None
    custom_field: str | None = None  # the field a *_custom_field_changed story changed


@dataclass(slots=True, eq=False)
class CustomField:
    """A custom field definition. ``enum_options`` holds the options as the API renders them."""

    resource_type: ClassVar[str] = "custom_field"
    gid: str
    name: str
    workspace: str
    resource_subtype: str  # text, number, enum, multi_enum, date, people or reference (to tasks)
    description: str = ""
    precision: int | None = None  # number fields only
    enum_options: list[dict[str, Any]] = field(default_factory=list)
    created_by: str | None = None
    formula: tuple[str, ...] = ()  # a formula (number) field: the number fields whose sum it shows

    @property
    def representation_type(self) -> str:
        return "formula" if self.formula else self.resource_subtype


@dataclass(slots=True, eq=False)
class CustomFieldSetting:
    resource_type: ClassVar[str] = "custom_field_setting"
    gid: str
    project: str
    custom_field: str
    is_important: bool = False


@dataclass(slots=True, eq=False)
class CustomFieldValue:
    """A task's value of one field, kept as the API renders it: text (str), number (int or float),
    enum (the option dict), multi_enum (option dicts), date ({date, date_time?}), people (user gids),
    reference (task gids)."""

    resource_type: ClassVar[str] = "custom_field"
    definition: CustomField
    value: Any = None
    display: str | None = None  # display_value, as the world formatted it when the value was set
    enabled: bool = True  # false once the field is on none of the task's projects (a disabled value)


@dataclass(slots=True, eq=False)
class Event:
    """One entry of the events feed; resource and parent are snapshots taken when it happened."""

    resource_type: ClassVar[str] = "event"
    user: str | None
    resource: dict[str, str]
    action: str
    created_at: str
    parent: dict[str, str] | None = None
    change: dict[str, Any] | None = None
