"""The in-memory Asana organisation and the mutations that change it.

Every task mutation appends the system story the real API writes (with its structured fields),
records the matching events and bumps ``modified_at`` by the API's rules: assigning, renaming,
completing, date and notes edits and new stories bump it; moving a task between projects or
sections does not. Tests and features call these methods between syncs; the HTTP server's write
endpoints call them too, so every path changes the world the same way.

Each change to a task's projects, sections, completion, assignee or approval status also appends
a snapshot of that state to the task's timeline: the ground truth its stories must replay to,
kept apart from the stories so that tests can check a consumer's reading of them.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from .clock import Clock, iso, parse_iso
from .models import (
    CustomField,
    CustomFieldSetting,
    CustomFieldValue,
    Event,
    Project,
    ProjectMembership,
    Section,
    Story,
    Tag,
    Task,
    Team,
    TeamMembership,
    User,
    Workspace,
    WorkspaceMembership,
)
from .schema import EVERYTHING, default_spec, plan, render

T = TypeVar("T")
Ref = str | Any  # a gid, or the object itself

TASK_SUBTYPES = ("default_task", "milestone", "approval")
APPROVAL_STATUSES = ("pending", "approved", "rejected", "changes_requested")
APPROVAL_SUBTYPES = {
    "approved": "marked_approved",
    "rejected": "marked_rejected",
    "changes_requested": "marked_changes_requested",
    "pending": "marked_incomplete",
}
_APPROVAL_TEXT = {
    "approved": "approved this task",
    "rejected": "rejected this task",
    "changes_requested": "requested changes to this task",
    "pending": "marked this task as pending approval",
}
_COLLECTIONS = {
    "workspace": "workspaces",
    "user": "users",
    "workspace_membership": "workspace_memberships",
    "team": "teams",
    "team_membership": "team_memberships",
    "project": "projects",
    "project_membership": "project_memberships",
    "section": "sections",
    "task": "tasks",
    "story": "stories",
    "tag": "tags",
    "custom_field": "custom_fields",
    "custom_field_setting": "custom_field_settings",
}
CUSTOM_FIELD_TYPES = ("text", "number", "enum", "multi_enum", "date", "people", "reference")
_LIST_VALUED = frozenset({"multi_enum", "people", "reference"})  # unset reads [] rather than null
# What update_task (and PUT /tasks/{gid}) may change.
UPDATABLE_TASK_FIELDS = frozenset(
    {"name", "notes", "assignee", "due_on", "due_at", "start_on", "completed", "approval_status"}
)
_GID_BASE = 1_209_000_000_000_000  # 16-digit gids, like the real API's
_AUDIT_CATEGORIES = {  # each audit event type the world records (Asana's documented names) -> its category
    "user_invited": "user_access",
    "user_deprovisioned": "user_access",
    "user_reprovisioned": "user_access",
    "user_workspace_admin_role_changed": "roles",
    "team_member_added": "access_control",
    "team_member_removed": "access_control",
    "project_member_added": "access_control",
    "project_member_removed": "access_control",
    "user_login_succeeded": "logins",
}


class UnknownObject(KeyError):
    """Raised when a gid names no live object of the expected type."""


class Objects(dict):
    """Live objects by gid, beside a trash of deleted ones.

    ``get``, ``in`` and iteration see live objects only, so a deleted object answers 404 and
    leaves every list; indexing also resolves a trashed one, because a record that names it
    (a story's old section) still renders it, and a trashed task can be restored.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trash: dict[str, Any] = {}

    def __missing__(self, gid: str) -> Any:
        return self.trash[gid]

    def discard(self, gid: str) -> None:
        """Move a live object to the trash."""
        self.trash[gid] = self.pop(gid)

    def restore(self, gid: str) -> Any:
        """Bring a trashed object back to life."""
        obj = self[gid] = self.trash.pop(gid)
        return obj


class World:
    """An Asana organisation: objects by gid, the indexes the API pages through, and mutations.

    ``lock`` guards every read and write, because the server renders on its own thread while
    tests mutate the world from theirs.
    """

    def __init__(self, now: datetime | None = None) -> None:
        self.clock = Clock(now)
        self.now = self.clock.now() if now is None else now
        self.objects = Objects()
        self.workspaces: list[str] = []
        self.users: list[str] = []
        self.deleted: dict[str, str] = {}  # trashed task gid -> deletion time, for audit checks
        self.events: dict[str, list[Event]] = defaultdict(list)  # subscribed resource -> feed
        self.record_events = True
        # Enterprise+ keeps an audit log (served by simulator/audit.py); other plans answer 402 for it.
        self.enterprise = False
        self.audit_log: list[dict[str, Any]] = []
        self.default_user: str | None = None  # whom the demo token acts for
        self.service_accounts: set[str] = set()  # users that are service accounts (see can_see_project)
        # Deliberate compliance violations: monitor id -> {resource gid: what was planted}.
        self.planted: dict[str, dict[str, str]] = {}
        self.lock = threading.RLock()
        self._next_gid = _GID_BASE
        self._by_email: dict[str, str] = {}
        self._assigned: dict[str, dict[str, None]] = defaultdict(dict)  # user -> tasks, ordered
        self._timelines: dict[str, list[dict[str, Any]]] = defaultdict(list)  # task -> state snapshots

    # ------------------------------------------------------------------ lookups
    def get(self, ref: Ref, kind: type[T]) -> T:
        """The live object of type ``kind`` named by ``ref``; raises UnknownObject otherwise."""
        gid = ref if isinstance(ref, str) else ref.gid
        obj = self.objects.get(gid)
        if not isinstance(obj, kind):
            raise UnknownObject(f"{kind.resource_type}: Unknown object: {gid}")
        return obj

    def user_by_email(self, email: str) -> User | None:
        gid = self._by_email.get(email.lower())
        return None if gid is None else self.objects[gid]

    def tasks_assigned_to(self, user: Ref, workspace: Ref) -> list[Task]:
        """Tasks assigned to ``user`` in ``workspace``, oldest assignment first."""
        ws = self.get(workspace, Workspace).gid
        tasks = (self.objects[gid] for gid in self._assigned.get(self.get(user, User).gid, ()))
        return [task for task in tasks if task.workspace == ws]

    def project_tasks(self, project: Ref) -> list[str]:
        """A project's task gids in board order: section by section, each in its stored order."""
        return [gid for section in self.get(project, Project).sections for gid in self.objects[section].tasks]

    def timeline(self, task: Ref) -> list[dict[str, Any]]:
        """A task's state after each change, oldest first, its creation included (deleted tasks too).

        Each snapshot: ``at`` (timestamp), ``actor`` (user gid or None), ``memberships``
        ({project gid: section gid}), ``completed``, ``assignee`` (gid or None), ``approval_status``.
        """
        gid = task if isinstance(task, str) else task.gid
        with self.lock:
            return [{**state, "memberships": dict(state["memberships"])} for state in self._timelines.get(gid, ())]

    def ground_truth(self) -> dict[str, list[dict[str, Any]]]:
        """Every live object as its full API record (opt-in fields included), by collection."""
        with self.lock:
            truth: dict[str, list[dict[str, Any]]] = {name: [] for name in _COLLECTIONS.values()}
            for obj in self.objects.values():
                rtype = obj.resource_type
                truth[_COLLECTIONS[rtype]].append(
                    render(obj, plan(rtype, default_spec(rtype, EVERYTHING[rtype])), self.objects)
                )
            return truth

    @contextmanager
    def events_lost(self) -> Iterator[None]:
        """Changes made inside reach no events feed, as when Asana loses their events (it
        delivers them at most once); a sync must find them by listing."""
        with self.lock:
            before, self.record_events = self.record_events, False
            try:
                yield
            finally:
                self.record_events = before

    # ------------------------------------------------------------------ organisation setup
    def add_workspace(self, name: str, email_domains: list[str], is_organization: bool = True) -> Workspace:
        with self.lock:
            workspace = self._add(Workspace(self._gid(), name, list(email_domains), is_organization))
            self.workspaces.append(workspace.gid)
            return workspace

    def add_user(self, name: str, email: str) -> User:
        with self.lock:
            user = self._add(User(self._gid(), name, email))
            self.users.append(user.gid)
            self._by_email[email.lower()] = user.gid
            return user

    def add_workspace_membership(
        self, user: Ref, workspace: Ref, *, is_admin: bool = False, is_guest: bool = False, at: datetime | None = None,
        actor: Ref | None = None,
    ) -> WorkspaceMembership:
        with self.lock:
            user, workspace = self.get(user, User), self.get(workspace, Workspace)
            membership = self._add(
                WorkspaceMembership(
                    self._gid(),
                    user.gid,
                    workspace.gid,
                    self._when(at),
                    self._gid(),
                    is_admin=is_admin,
                    is_guest=is_guest,
                )
            )
            workspace.memberships.append(membership.gid)
            user.workspace_memberships.append(membership.gid)
            self._audit("user_invited", workspace.gid, user.gid, actor=actor, at=membership.created_at)
            return membership

    def add_team(
        self, workspace: Ref, name: str, *, description: str = "", visibility: str = "request_to_join"
    ) -> Team:
        with self.lock:
            workspace = self.get(workspace, Workspace)
            team = self._add(Team(self._gid(), name, workspace.gid, description, visibility))
            workspace.teams.append(team.gid)
            return team

    def add_project(
        self,
        workspace: Ref,
        name: str,
        *,
        team: Ref | None = None,
        owner: Ref | None = None,
        at: datetime | None = None,
        **fields: Any,
    ) -> Project:
        """Create a project; ``fields`` sets any other Project attribute (notes, color, privacy...)."""
        with self.lock:
            workspace, when = self.get(workspace, Workspace), self._when(at)
            team_gid = None if team is None else self.get(team, Team).gid
            owner_gid = None if owner is None else self.get(owner, User).gid
            project = self._add(Project(self._gid(), name, workspace.gid, team_gid, owner_gid, when, when, **fields))
            if owner_gid:
                project.followers.append(owner_gid)
            workspace.projects.append(project.gid)
            if team_gid:
                self.objects[team_gid].projects.append(project.gid)
            return project

    def add_section(self, project: Ref, name: str, *, actor: Ref | None = None, at: datetime | None = None) -> Section:
        """Add a section at the end of a project; the project's feed hears ``added``."""
        with self.lock:
            project = self.get(project, Project)
            when, actor = self._stamp(at, actor)
            section = self._add(Section(self._gid(), name, project.gid, when))
            project.sections.append(section.gid)
            self._emit([project.gid], actor, when, section, "added", parent=project)
            return section

    def rename_section(self, section: Ref, name: str, *, actor: Ref | None = None, at: datetime | None = None) -> None:
        """Rename a section: a ``changed`` event with ``change.field`` name; tasks are untouched."""
        with self.lock:
            section = self.get(section, Section)
            when, actor = self._stamp(at, actor)
            if section.name == name:
                return
            section.name = name
            change = {"field": "name", "action": "changed"}
            self._emit([section.project], actor, when, section, "changed", change=change)

    def remove_section(self, section: Ref, *, actor: Ref | None = None, at: datetime | None = None) -> None:
        """Delete a section, as the API allows only for an empty one that is not the project's last.

        Stories that moved tasks through it keep naming it (it renders from the trash).
        """
        with self.lock:
            section = self.get(section, Section)
            project = self.objects[section.project]
            if section.tasks:
                raise ValueError(f"section {section.gid} is not empty")
            if len(project.sections) == 1:
                raise ValueError(f"section {section.gid} is the last section of project {project.gid}")
            when, actor = self._stamp(at, actor)
            project.sections.remove(section.gid)
            self.objects.discard(section.gid)
            self._emit([project.gid], actor, when, section, "deleted")

    def add_tag(self, workspace: Ref, name: str, *, color: str | None = None, at: datetime | None = None) -> Tag:
        with self.lock:
            workspace = self.get(workspace, Workspace)
            tag = self._add(Tag(self._gid(), name, workspace.gid, self._when(at), color))
            workspace.tags.append(tag.gid)
            return tag

    # ------------------------------------------------------------------ visibility
    def add_service_account(self, workspace: Ref, name: str, email: str) -> User:
        """A service account of ``workspace``: on an Enterprise organisation it sees everything."""
        with self.lock:
            user = self.add_user(name, email)
            self.add_workspace_membership(user, workspace, is_admin=True)
            self.service_accounts.add(user.gid)
            return user

    def sees_everything(self, user: str, workspace: str) -> bool:
        """A service account on an Enterprise organisation reads every project and team."""
        return user in self.service_accounts and self.objects[workspace].plan == "enterprise"

    def can_see_project(self, user: str, project: Ref) -> bool:
        """What a token acting for ``user`` can read: public projects, projects it is a member of
        (directly or through a team), private-to-team projects of its teams, and everything for a
        service account on an Enterprise organisation."""
        project = self.get(project, Project)
        if project.privacy_setting == "public_to_workspace" or self.sees_everything(user, project.workspace):
            return True
        teams = {self.objects[m].team for m in self.objects[user].team_memberships} if user in self.objects else set()
        if project.privacy_setting == "private_to_team" and project.team in teams:
            return True
        members = (self.objects[m] for m in project.memberships)
        return any(m.user == user or (m.member_type == "team" and m.user in teams) for m in members)

    def can_see_task(self, user: str, task: Ref) -> bool:
        """A task is read through any of its projects, or its parent's (level by level), or by its
        collaborators: assignee and followers (its creator among them), of it or of an ancestor."""
        node: Task | None = self.objects[task] if isinstance(task, str) else task
        if self.sees_everything(user, node.workspace):
            return True
        while node is not None:
            if user == node.assignee or user in node.followers:
                return True
            if any(project in self.objects and self.can_see_project(user, project) for project, _ in node.memberships):
                return True
            node = self.objects[node.parent] if node.parent else None
        return False

    def can_see(self, user: str, obj: Any) -> bool:
        """Whether a token acting for ``user`` may read ``obj`` by its gid: a project's sections,
        members and field settings as the project, a story as its task (and as the project it
        names, see ``story_project``), a team's memberships as the team; workspaces, users, tags
        and field definitions are seen by all."""
        if isinstance(obj, Task):
            return self.can_see_task(user, obj)
        if isinstance(obj, Story):
            project = self.story_project(obj)
            return self.can_see_task(user, self.objects[obj.target]) and (
                project is None or self.can_see_project(user, project)
            )
        if isinstance(obj, Project):
            return self.can_see_project(user, obj)
        if isinstance(obj, Section | ProjectMembership | CustomFieldSetting):
            return self.can_see_project(user, obj.project)
        if isinstance(obj, TeamMembership):
            return self.can_see_team(user, obj.team)
        if isinstance(obj, Team):
            return self.can_see_team(user, obj)
        return True

    def story_project(self, story: Story) -> str | None:
        """The project a story names: the one a task joined or left, or the one whose sections a
        move was between. Its text names the project (and sections) too, so a caller who may not
        read that project is not shown the story at all, rather than a story with a hole in it."""
        if story.resource_subtype in ("added_to_project", "removed_from_project"):
            return story.new
        if story.resource_subtype == "section_changed":
            return self.objects[story.new].project  # a removed section still names its project
        return None

    def can_see_event(self, user: str, event: Event) -> bool:
        """Whether an events feed shows ``event`` to ``user``: not when it is about a story the
        user may not read, nor when its parent is a project or section the user may not read
        (a task of a readable project moved within, added to or removed from a hidden one)."""
        refs = (event.resource, event.parent) if event.parent else (event.resource,)
        return all(
            ref["resource_type"] not in ("story", "project", "section")
            or self.can_see(user, self.objects[ref["gid"]])
            for ref in refs
        )

    def can_see_team(self, user: str, team: Ref) -> bool:
        """Secret teams are seen by their members only (and by an Enterprise service account)."""
        team = self.get(team, Team)
        if team.visibility != "secret" or self.sees_everything(user, team.organization):
            return True
        return any(self.objects[m].user == user for m in team.memberships)

    # ------------------------------------------------------------------ custom fields
    def add_custom_field(
        self,
        workspace: Ref,
        name: str,
        resource_subtype: str,
        *,
        enum_options: list[str] = (),
        precision: int | None = None,
        description: str = "",
        created_by: Ref | None = None,
        formula: tuple[Ref, ...] = (),
    ) -> CustomField:
        """Define a custom field; enum and multi_enum fields take their option names in order. A
        reference field holds tasks. A ``formula`` field is a read-only number: the sum of the
        task's values of those number fields, kept up to date by Asana (no story)."""
        if resource_subtype not in CUSTOM_FIELD_TYPES:
            raise ValueError(f"resource_subtype must be one of {CUSTOM_FIELD_TYPES}")
        with self.lock:
            inputs = tuple(self.get(f, CustomField) for f in formula)
            if inputs and (resource_subtype != "number" or any(f.resource_subtype != "number" for f in inputs)):
                raise ValueError("a formula field is a number field summing number fields")
            workspace = self.get(workspace, Workspace)
            options = [
                {"gid": self._gid(), "resource_type": "enum_option", "name": option, "enabled": True, "color": "none"}
                for option in enum_options
            ]
            if resource_subtype == "number" and precision is None:
                precision = 0
            field = self._add(
                CustomField(
                    self._gid(), name, workspace.gid, resource_subtype, description, precision, options,
                    self._user_gid(created_by), tuple(f.gid for f in inputs),
                )
            )
            workspace.custom_fields.append(field.gid)
            return field

    def add_custom_field_setting(self, project: Ref, field: Ref, *, is_important: bool = False) -> CustomFieldSetting:
        """Attach a field to a project: its tasks then carry the field (unset until a value is given)."""
        with self.lock:
            project, field = self.get(project, Project), self.get(field, CustomField)
            setting = self._add(CustomFieldSetting(self._gid(), project.gid, field.gid, is_important))
            project.custom_field_settings.append(setting.gid)
            for gid in self.project_tasks(project):
                self.objects[gid].custom_fields.setdefault(field.gid, self._field_value(field, None))
            return setting

    def set_custom_field(
        self, task: Ref, field: Ref, value: Any, *, actor: Ref | None = None, at: datetime | None = None
    ) -> None:
        """Set a task's value of a field, with the ``<type>_custom_field_changed`` story.

        ``value`` by type: text (str), number (int or float), enum (an option name), multi_enum
        (option names), date (``YYYY-MM-DD`` or an ISO-8601 moment), people (users), reference (tasks); None (or [])
        clears it. A formula field refuses: Asana computes it.
        """
        with self.lock:
            task, field = self.get(task, Task), self.get(field, CustomField)
            if field.formula:
                raise ValueError(f"{field.name}: a formula field's value is read-only")
            when, actor = self._stamp(at, actor)
            new = self._field_value(field, self._stored(field, value))
            old = task.custom_fields.get(field.gid)
            old_value = None if old is None else old.value
            if old_value == new.value or (old is None and new.value in (None, [])):
                task.custom_fields.setdefault(field.gid, new)
                return
            new.enabled = True if old is None else old.enabled
            task.custom_fields[field.gid] = new
            subtype = f"{field.resource_subtype}_custom_field_changed"
            text = f"changed {field.name} to {new.display}" if new.display else f"cleared {field.name}"
            if old_value is None and field.resource_subtype in _LIST_VALUED:
                old_value = []
            story = self._story(task, subtype, actor, when, text, old=old_value, new=new.value)
            story.custom_field = field.gid
            self._changed(task, "custom_fields", actor, when)
            self._compute_formulas(task, field)

    def _compute_formulas(self, task: Task, changed: CustomField) -> None:
        """Recompute the task's formula fields that read ``changed`` (unset inputs count 0; none
        set: unset), as Asana does, without a story."""
        for value in task.custom_fields.values():
            field = value.definition
            if changed.gid in field.formula:
                inputs = [task.custom_fields[g].value for g in field.formula if g in task.custom_fields]
                known = [number for number in inputs if number is not None]
                task.custom_fields[field.gid] = self._field_value(field, sum(known) if known else None)

    def _stored(self, field: CustomField, value: Any) -> Any:
        """A value given by name, as the API renders it (options as dicts, people as gids)."""
        kind = field.resource_subtype
        if value is None or value == []:
            return [] if kind in _LIST_VALUED else None
        if kind in ("enum", "multi_enum"):
            options = {option["name"]: option for option in field.enum_options}
            names = [value] if kind == "enum" else list(value)
            unknown = [name for name in names if name not in options]
            if unknown:
                raise ValueError(f"{field.name}: no enum option named {unknown[0]!r}")
            chosen = [dict(options[name]) for name in names]
            return chosen[0] if kind == "enum" else chosen
        if kind == "people":
            return [self.get(user, User).gid for user in value]
        if kind == "reference":
            return [self.get(item, Task).gid for item in value]
        if kind == "date":  # a day, or a moment (the value then has both): the spec's {date, date_time}
            text = str(value)
            if "T" not in text:
                return {"date": text}
            moment = iso(parse_iso(text))
            return {"date": moment[:10], "date_time": moment}
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{field.name}: expected a number")
            return value
        return str(value)

    def _field_value(self, field: CustomField, value: Any) -> CustomFieldValue:
        if value is None and field.resource_subtype in _LIST_VALUED:
            value = []
        return CustomFieldValue(field, value, self._display(field, value))

    def _display(self, field: CustomField, value: Any) -> str | None:
        """The value as Asana displays it: a string, or null when unset."""
        kind = field.resource_subtype
        if value is None or value == []:
            return None
        if kind == "number":
            return f"{value:.{field.precision or 0}f}"
        if kind == "enum":
            return value["name"]
        if kind == "multi_enum":
            return ", ".join(option["name"] for option in value)
        if kind == "date":
            return value["date"]
        if kind in ("people", "reference"):
            return ", ".join(self.objects[gid].name for gid in value)
        return value

    # ------------------------------------------------------------------ access mutations
    def deactivate_user(self, user: Ref, workspace: Ref | None = None, *, actor: Ref | None = None,
                        at: datetime | None = None) -> None:
        """Deprovision a user (is_active=false) in one workspace, or in all of them."""
        self._set_membership_flag(user, workspace, "is_active", False, actor, at, "user_deprovisioned")

    def reactivate_user(self, user: Ref, workspace: Ref | None = None, *, actor: Ref | None = None,
                        at: datetime | None = None) -> None:
        """Give a deprovisioned user their workspace membership back, in one workspace or all."""
        self._set_membership_flag(user, workspace, "is_active", True, actor, at, "user_reprovisioned")

    def log_in(self, user: Ref, workspace: Ref, *, at: datetime | None = None) -> None:
        """A user signs in: the audit log alone records it (``user_login_succeeded``), whether or not
        the user is still active, as a session Asana failed to end would."""
        with self.lock:
            user, workspace = self.get(user, User), self.get(workspace, Workspace)
            self._audit("user_login_succeeded", workspace.gid, user.gid, actor=user.gid, at=at)

    def set_workspace_admin(self, user: Ref, workspace: Ref, is_admin: bool = True, *, actor: Ref | None = None,
                            at: datetime | None = None) -> None:
        self._set_membership_flag(user, workspace, "is_admin", is_admin, actor, at,
                                  "user_workspace_admin_role_changed")

    def add_team_membership(
        self, team: Ref, user: Ref, *, is_admin: bool = False, is_guest: bool = False, is_limited_access: bool = False,
        actor: Ref | None = None, at: datetime | None = None,
    ) -> TeamMembership:
        with self.lock:
            team, user = self.get(team, Team), self.get(user, User)
            membership = self._add(
                TeamMembership(self._gid(), user.gid, team.gid, is_admin, is_guest, is_limited_access)
            )
            team.memberships.append(membership.gid)
            user.team_memberships.append(membership.gid)
            self._audit("team_member_added", team.organization, team.gid, actor=actor, at=at)
            return membership

    def remove_team_membership(self, membership: Ref, *, actor: Ref | None = None, at: datetime | None = None) -> None:
        with self.lock:
            membership = self.get(membership, TeamMembership)
            team = self.objects[membership.team]
            team.memberships.remove(membership.gid)
            self.objects[membership.user].team_memberships.remove(membership.gid)
            del self.objects[membership.gid]
            self._audit("team_member_removed", team.organization, team.gid, actor=actor, at=at)

    def add_project_membership(
        self,
        project: Ref,
        user: Ref,
        access_level: str = "editor",
        *,
        actor: Ref | None = None,
        at: datetime | None = None,
    ) -> ProjectMembership:
        with self.lock:
            project, user = self.get(project, Project), self.get(user, User)
            membership = self._add(ProjectMembership(self._gid(), project.gid, user.gid, access_level))
            project.memberships.append(membership.gid)
            when, actor = self._stamp(at, actor)
            self._emit([project.gid], actor, when, membership, "added", parent=project)
            self._audit("project_member_added", project.workspace, project.gid, actor=actor, at=when)
            return membership

    def add_project_team(
        self, project: Ref, team: Ref, access_level: str = "editor", *, actor: Ref | None = None,
        at: datetime | None = None,
    ) -> ProjectMembership:
        """Share a project with a team: every member of the team reaches the project through it."""
        with self.lock:
            project, team = self.get(project, Project), self.get(team, Team)
            membership = self._add(ProjectMembership(self._gid(), project.gid, team.gid, access_level, "team"))
            project.memberships.append(membership.gid)
            when, actor = self._stamp(at, actor)
            self._emit([project.gid], actor, when, membership, "added", parent=project)
            return membership

    def remove_project_membership(
        self, membership: Ref, *, actor: Ref | None = None, at: datetime | None = None
    ) -> None:
        with self.lock:
            membership = self.get(membership, ProjectMembership)
            project = self.objects[membership.project]
            project.memberships.remove(membership.gid)
            del self.objects[membership.gid]
            when, actor = self._stamp(at, actor)
            self._emit([project.gid], actor, when, membership, "removed", parent=project)
            self._audit("project_member_removed", project.workspace, project.gid, actor=actor, at=when)

    # ------------------------------------------------------------------ task mutations
    def create_task(
        self,
        name: str,
        *,
        actor: Ref | None = None,
        project: Ref | None = None,
        section: Ref | None = None,
        parent: Ref | None = None,
        workspace: Ref | None = None,
        assignee: Ref | None = None,
        notes: str = "",
        resource_subtype: str = "default_task",
        due_on: str | None = None,
        due_at: str | None = None,
        start_on: str | None = None,
        tags: tuple[Ref, ...] = (),
        at: datetime | None = None,
    ) -> Task:
        """Create a task in a project (optionally a given section), or as a subtask of ``parent``."""
        if resource_subtype not in TASK_SUBTYPES:
            raise ValueError(f"resource_subtype must be one of {TASK_SUBTYPES}")
        with self.lock:
            when, actor = self._stamp(at, actor)
            parent_task = None if parent is None else self.get(parent, Task)
            sect = None if section is None else self.get(section, Section)
            proj = None if project is None and sect is None else self.get(project or sect.project, Project)
            if sect and sect.project != proj.gid:
                raise ValueError(f"section {sect.gid} is not in project {proj.gid}")
            home = proj.workspace if proj else parent_task.workspace if parent_task else workspace
            if home is None:
                raise ValueError("a task needs a project, a section, a parent or a workspace")
            task = self._add(
                Task(
                    self._gid(),
                    name,
                    self.get(home, Workspace).gid,
                    when,
                    actor,
                    when,
                    resource_subtype,
                    notes,
                    approval_status="pending" if resource_subtype == "approval" else None,
                    due_on=due_on or (due_at[:10] if due_at else None),
                    due_at=due_at,
                    start_on=start_on,
                )
            )
            if actor:
                task.followers.append(actor)
            if parent_task:
                task.parent = parent_task.gid
                parent_task.subtasks.append(task.gid)
                self._emit(self._audience(task), actor, when, task, "added", parent=parent_task)
            if proj:
                self._place(task, proj, sect)
                self._emit(self._audience(task), actor, when, task, "added", parent=proj)
            for tag in tags:
                self._add_tag(task, self.get(tag, Tag))
            self._record(task, when, actor)
            if assignee is not None:
                self._assign(task, self._user_gid(assignee), actor, when)
            return task

    def update_task(self, task: Ref, *, actor: Ref | None = None, at: datetime | None = None, **changes: Any) -> Task:
        """Change name, notes, assignee, due_on/due_at/start_on, completed or approval_status."""
        unknown = set(changes) - UPDATABLE_TASK_FIELDS
        if unknown:
            raise TypeError(f"unsupported task fields: {sorted(unknown)}")
        with self.lock:
            task = self.get(task, Task)
            when, actor = self._stamp(at, actor)
            for field in ("name", "notes"):
                if field in changes and changes[field] != getattr(task, field):
                    self._set_text(task, field, changes[field], actor, when)
            if "assignee" in changes:
                self._assign(task, self._user_gid(changes["assignee"]), actor, when)
            if {"due_on", "due_at", "start_on"} & changes.keys():
                self._set_dates(task, changes, actor, when)
            if "approval_status" in changes:
                self.set_approval_status(task, changes["approval_status"], actor=actor, at=when)
            if "completed" in changes:
                (self.complete_task if changes["completed"] else self.reopen_task)(task, actor=actor, at=when)
            return task

    def move_task_to_section(
        self, task: Ref, section: Ref, *, actor: Ref | None = None, at: datetime | None = None
    ) -> None:
        """Move a task to the top of ``section``, adding it to that project if needed."""
        with self.lock:
            task, section = self.get(task, Task), self.get(section, Section)
            when, actor = self._stamp(at, actor)
            current = dict(task.memberships).get(section.project)
            if current is None:
                self.add_task_to_project(task, section.project, section=section, actor=actor, at=when)
                return
            if current == section.gid:
                return
            self.objects[current].tasks.remove(task.gid)
            section.tasks.insert(0, task.gid)
            task.memberships = [(p, section.gid if p == section.project else s) for p, s in task.memberships]
            self._record(task, when, actor)
            project_name = self.objects[section.project].name
            text = f'moved this task from "{self.objects[current].name}" to "{section.name}" in {project_name}'
            self._story(task, "section_changed", actor, when, text, old=current, new=section.gid, bump=False)
            self._emit(self._audience(task), actor, when, task, "added", parent=section)

    def add_task_to_project(
        self,
        task: Ref,
        project: Ref,
        *,
        section: Ref | None = None,
        actor: Ref | None = None,
        at: datetime | None = None,
    ) -> None:
        """Multi-home a task into another project (into ``section``, else the first section)."""
        with self.lock:
            task, project = self.get(task, Task), self.get(project, Project)
            when, actor = self._stamp(at, actor)
            if project.gid in dict(task.memberships):
                if section is not None:
                    self.move_task_to_section(task, section, actor=actor, at=when)
                return
            self._place(task, project, None if section is None else self.get(section, Section))
            self._record(task, when, actor)
            self._story(
                task, "added_to_project", actor, when, f"added this task to {project.name}", new=project.gid, bump=False
            )
            self._emit(self._audience(task), actor, when, task, "added", parent=project)

    def remove_task_from_project(
        self, task: Ref, project: Ref, *, actor: Ref | None = None, at: datetime | None = None
    ) -> None:
        with self.lock:
            task, project = self.get(task, Task), self.get(project, Project)
            when, actor = self._stamp(at, actor)
            section = dict(task.memberships).get(project.gid)
            if section is None:
                return
            audience = self._audience(task)  # the project losing the task still hears about it
            self.objects[section].tasks.remove(task.gid)
            task.memberships = [(p, s) for p, s in task.memberships if p != project.gid]
            self._enable_fields(task)
            self._record(task, when, actor)
            text = f"removed this task from {project.name}"
            self._story(task, "removed_from_project", actor, when, text, new=project.gid, bump=False)
            self._emit(audience, actor, when, task, "removed", parent=project)

    def add_unplaced_membership(self, task: Ref, section: Ref | None = None) -> None:
        """Give a task a membership without a project, as the spec allows ("more types of
        memberships may be added"): one naming only a ``section``, or one naming neither.
        Readers of the section's project see the first; everyone sees the second."""
        with self.lock:
            task = self.get(task, Task)
            found = None if section is None else self.get(section, Section)
            task.unplaced.append((None, None) if found is None else (found.gid, found.project))

    def complete_task(self, task: Ref, *, actor: Ref | None = None, at: datetime | None = None) -> None:
        """Mark complete; completing an approval task approves it, as the API does."""
        with self.lock:
            task = self.get(task, Task)
            if task.approval_status is not None:
                self.set_approval_status(task, "approved", actor=actor, at=at)
            elif not task.completed:
                self._set_completed(task, True, "marked_complete", "completed this task", *self._stamp(at, actor))

    def reopen_task(self, task: Ref, *, actor: Ref | None = None, at: datetime | None = None) -> None:
        """Mark incomplete; an approval task goes back to pending."""
        with self.lock:
            task = self.get(task, Task)
            if task.approval_status is not None:
                self.set_approval_status(task, "pending", actor=actor, at=at)
            elif task.completed:
                self._set_completed(
                    task, False, "marked_incomplete", "marked this task incomplete", *self._stamp(at, actor)
                )

    def set_approval_status(
        self, task: Ref, status: str, *, actor: Ref | None = None, at: datetime | None = None
    ) -> None:
        """Set an approval task's status; ``completed`` follows it (pending means incomplete)."""
        if status not in APPROVAL_STATUSES:
            raise ValueError(f"approval_status must be one of {APPROVAL_STATUSES}")
        with self.lock:
            task = self.get(task, Task)
            when, actor = self._stamp(at, actor)
            if task.approval_status is None:
                raise ValueError(f"task {task.gid} is not an approval task")
            old = task.approval_status
            if old == status:
                return
            task.approval_status = status
            self._set_completed(
                task, status != "pending", APPROVAL_SUBTYPES[status], _APPROVAL_TEXT[status], when, actor, old=old
            )
            self._changed(task, "approval_status", actor, when)

    def delete_task(self, task: Ref, *, actor: Ref | None = None, at: datetime | None = None) -> None:
        """Trash a task and its subtasks: 404 everywhere, gone from lists, a 'deleted' event."""
        with self.lock:
            when, actor = self._stamp(at, actor)
            task = self.get(task, Task)
            if task.parent:
                self.objects[task.parent].subtasks.remove(task.gid)
            self._trash(task, actor, when)

    def undelete_task(self, task: str, *, actor: Ref | None = None, at: datetime | None = None) -> Task:
        """Restore a trashed task with its subtasks and stories: an 'undeleted' event each. It goes
        back to the end of the sections it was in (its project's first one if that was removed)."""
        with self.lock:
            trashed = self.objects.trash.get(task)
            if not isinstance(trashed, Task) or task not in self.deleted:
                raise UnknownObject(f"task: Unknown object: {task}")
            if trashed.parent and trashed.parent not in self.objects:
                raise ValueError(f"restore task {trashed.parent}, the parent of {task}, first")
            when, actor = self._stamp(at, actor)
            if trashed.parent:
                self.objects[trashed.parent].subtasks.append(task)
            self._restore(trashed, actor, when)
            return trashed

    def edit_comment(self, story: Ref, text: str, *, actor: Ref | None = None, at: datetime | None = None) -> None:
        """Edit a comment's text: a ``changed`` story event, with no parent (as the API sends it)."""
        with self.lock:
            story = self.get(story, Story)
            if story.resource_subtype != "comment_added":
                raise ValueError(f"story {story.gid} is not a comment")
            when, actor = self._stamp(at, actor)
            story.text = text
            change = {"field": "text", "action": "changed"}
            self._emit(self._audience(self.objects[story.target]), actor, when, story, "changed", change=change)

    def add_comment(self, task: Ref, text: str, *, actor: Ref | None = None, at: datetime | None = None) -> Story:
        with self.lock:
            when, actor = self._stamp(at, actor)
            return self._story(self.get(task, Task), "comment_added", actor, when, text)

    # ------------------------------------------------------------------ internals
    def _gid(self) -> str:
        self._next_gid += 1
        return str(self._next_gid)

    def _add(self, obj: T) -> T:
        self.objects[obj.gid] = obj
        return obj

    def _when(self, at: datetime | str | None) -> str:
        if isinstance(at, str):  # already formatted by an enclosing mutation
            return at
        return iso(self.clock.now() if at is None else at)

    def _stamp(self, at: datetime | str | None, actor: Ref | None) -> tuple[str, str | None]:
        """A mutation's time and the gid of the user making it (None: a system change)."""
        return self._when(at), self._user_gid(actor)

    def _user_gid(self, ref: Ref | None) -> str | None:
        return None if ref is None else self.get(ref, User).gid

    def _audit(self, event_type: str, workspace: str, resource: str, *, actor: Ref | None, at: datetime | str | None,
               details: dict[str, Any] | None = None) -> None:
        """Append one event to an Enterprise world's audit log (other worlds keep none, and their
        clock does not tick for it); no ``actor`` is Asana itself. ``details`` holds only the
        spec's documented keys (old_value, new_value, group): a team or project membership event
        names the team or project as its resource and not the member, as Asana's does."""
        if not self.enterprise:
            return
        when, actor = self._stamp(at, actor)
        self.audit_log.append({
            "gid": self._gid(),
            "created_at": when,
            "event_type": event_type,
            "event_category": _AUDIT_CATEGORIES[event_type],
            "actor": self._audit_party(actor, "actor"),
            "resource": self._audit_party(resource, "resource"),
            "details": details or {},
            "context": {"context_type": "api" if actor else "asana"},
            "workspace": workspace,
        })

    def _audit_party(self, gid: str | None, kind: str) -> dict[str, Any]:
        """An actor or resource as the audit log names it (absent fields left out: the spec's are
        not nullable); no gid is Asana itself."""
        if gid is None:
            return {f"{kind}_type": "asana"}
        obj = self.objects[gid]
        named = {"gid": gid, "name": getattr(obj, "name", None), "email": getattr(obj, "email", None)}
        return {f"{kind}_type": obj.resource_type, **{k: v for k, v in named.items() if v is not None}}

    def _set_membership_flag(self, user: Ref, workspace: Ref | None, flag: str, value: bool,
                             actor: Ref | None = None, at: datetime | None = None, event: str = "") -> None:
        """Set a flag of the user's memberships; each change is an ``event`` of the audit log."""
        with self.lock:
            user = self.get(user, User)
            only = None if workspace is None else self.get(workspace, Workspace).gid
            for gid in user.workspace_memberships:
                membership = self.objects[gid]
                if only in (None, membership.workspace):
                    old = getattr(membership, flag)
                    setattr(membership, flag, value)
                    if old != value:
                        details = None if flag != "is_admin" else {
                            "old_value": _role(membership, old), "new_value": _role(membership, value),
                            "group": self._audit_party(membership.workspace, "resource"),
                        }
                        self._audit(event, membership.workspace, user.gid, actor=actor, at=at, details=details)

    def _place(self, task: Task, project: Project, section: Section | None) -> None:
        """Put a task at the end of a section (the project's first one by default)."""
        if section is not None and section.project != project.gid:
            raise ValueError(f"section {section.gid} is not in project {project.gid}")
        if section is None:
            section = (
                self.objects[project.sections[0]] if project.sections else self.add_section(project, "Untitled section")
            )
        section.tasks.append(task.gid)
        task.memberships.append((project.gid, section.gid))
        for setting in project.custom_field_settings:  # the project's fields join the task, unset
            field = self.objects[self.objects[setting].custom_field]
            task.custom_fields.setdefault(field.gid, self._field_value(field, None))
        self._enable_fields(task)

    def _enable_fields(self, task: Task) -> None:
        """A value whose field is on none of the task's projects stays, disabled, as Asana keeps
        it (only a task that has left a project can hold one)."""
        fields = {self.objects[setting].custom_field for project, _section in task.memberships
                  for setting in self.objects[project].custom_field_settings}
        for gid, value in task.custom_fields.items():
            value.enabled = gid in fields

    def _record(self, task: Task, when: str, actor: str | None) -> None:
        """Append the task's state as this mutation leaves it to its timeline."""
        self._timelines[task.gid].append(
            {
                "at": when,
                "actor": actor,
                "memberships": dict(task.memberships),
                "completed": task.completed,
                "assignee": task.assignee,
                "approval_status": task.approval_status,
            }
        )

    def _add_tag(self, task: Task, tag: Tag) -> None:
        if tag.gid not in task.tags:
            task.tags.append(tag.gid)
            tag.tasks.append(task.gid)

    def _assign(self, task: Task, assignee: str | None, actor: str | None, when: str) -> None:
        previous = task.assignee
        if assignee == previous:
            return
        if previous:
            del self._assigned[previous][task.gid]
        task.assignee, task.assigned_by = assignee, (actor if assignee else None)
        self._record(task, when, actor)
        if assignee:
            self._assigned[assignee][task.gid] = None
            if assignee not in task.followers:
                task.followers.append(assignee)
            self._story(
                task, "assigned", actor, when, f"assigned to {self.objects[assignee].name}", old=previous, new=assignee
            )
        else:
            self._story(task, "unassigned", actor, when, f"unassigned from {self.objects[previous].name}", old=previous)
        self._changed(
            task, "assignee", actor, when, new_value=self._snapshot(self.objects[assignee]) if assignee else None
        )

    def _set_text(self, task: Task, field: str, value: str, actor: str | None, when: str) -> None:
        old = getattr(task, field)
        setattr(task, field, value)
        if field == "name":
            self._story(task, "name_changed", actor, when, f'changed the name to "{value}"', old=old, new=value)
        else:
            self._story(task, "notes_changed", actor, when, "changed the description")
        self._changed(task, field, actor, when)

    def _set_dates(self, task: Task, changes: dict[str, Any], actor: str | None, when: str) -> None:
        old = _dates(task)
        if "due_at" in changes:  # a timed due date also reports its day; due_on and due_at exclude each other
            task.due_at = changes["due_at"]
            task.due_on = task.due_at[:10] if task.due_at else changes.get("due_on")
        elif "due_on" in changes:
            task.due_on, task.due_at = changes["due_on"], None
        if "start_on" in changes:
            task.start_on = changes["start_on"]
        new = _dates(task)
        if new == old:
            return
        text = f"changed the due date to {task.due_on}" if task.due_on else "removed the due date"
        self._story(task, "due_date_changed", actor, when, text, old=old, new=new)
        for field in ("due_on", "due_at", "start_on"):
            if (old or {}).get(field) != (new or {}).get(field):
                self._changed(task, field, actor, when)

    def _set_completed(
        self, task: Task, completed: bool, subtype: str, text: str, when: str, actor: str | None, old: str | None = None
    ) -> None:
        task.completed = completed
        task.completed_at, task.completed_by = (when, actor) if completed else (None, None)
        self._record(task, when, actor)
        new = task.approval_status if old is not None else None
        self._story(task, subtype, actor, when, text, old=old, new=new)
        self._changed(task, "completed", actor, when)

    def _story(
        self,
        task: Task,
        subtype: str,
        actor: str | None,
        when: str,
        text: str,
        old: Any = None,
        new: Any = None,
        bump: bool = True,
    ) -> Story:
        """Append a story; it bumps modified_at unless it records a move between containers."""
        story = self._add(Story(self._gid(), task.gid, when, actor, subtype, text, old, new))
        task.stories.append(story.gid)
        if bump and when > task.modified_at:
            task.modified_at = when
        self._emit(self._audience(task), actor, when, story, "added", parent=task)
        return story

    def _trash(self, task: Task, actor: str | None, when: str) -> None:
        """Trash a task and, below it, its subtasks (which stay listed under it, for a restore)."""
        for child in task.subtasks:
            self._trash(self.objects[child], actor, when)
        audience = self._audience(task)
        for _project, section in task.memberships:
            self.objects[section].tasks.remove(task.gid)
        for tag in task.tags:
            self.objects[tag].tasks.remove(task.gid)
        if task.assignee:
            del self._assigned[task.assignee][task.gid]
        for story in task.stories:
            self.objects.discard(story)
        self.objects.discard(task.gid)
        self.deleted[task.gid] = when
        self._emit(audience, actor, when, task, "deleted")

    def _restore(self, task: Task, actor: str | None, when: str) -> None:
        """Undo ``_trash`` for a task whose parent (if any) is live, then for its subtasks."""
        self.objects.restore(task.gid)
        for story in task.stories:
            self.objects.restore(story)
        del self.deleted[task.gid]
        places, task.memberships = task.memberships, []
        for project, section in places:
            if project in self.objects:
                self._place(task, self.objects[project], self.objects.get(section))
        for tag in task.tags:
            self.objects[tag].tasks.append(task.gid)
        if task.assignee:
            self._assigned[task.assignee][task.gid] = None
        self._emit(self._audience(task), actor, when, task, "undeleted")
        for child in task.subtasks:
            self._restore(self.objects[child], actor, when)

    # ------------------------------------------------------------------ events
    def _audience(self, task: Task) -> list[str]:
        """Who hears about a task's changes: the task, its ancestors and all their projects."""
        audience: dict[str, None] = {}
        node: Task | None = task
        while node is not None:
            audience[node.gid] = None
            audience.update((project, None) for project, _section in node.memberships)
            node = self.objects.get(node.parent) if node.parent else None
        return list(audience)

    def _changed(self, task: Task, field: str, actor: str | None, when: str, **new_value: Any) -> None:
        """A task-field event; ``new_value`` is given only for fields that hold a resource."""
        change = {"field": field, "action": "changed", **new_value}
        self._emit(self._audience(task), actor, when, task, "changed", change=change)

    def _emit(
        self,
        audience: list[str],
        actor: str | None,
        when: str,
        resource: Any,
        action: str,
        parent: Any = None,
        change: dict[str, Any] | None = None,
    ) -> None:
        if not self.record_events:
            return
        parent_snapshot = None if parent is None else self._snapshot(parent)
        event = Event(actor, self._snapshot(resource), action, when, parent_snapshot, change)
        for gid in audience:
            self.events[gid].append(event)

    @staticmethod
    def _snapshot(obj: Any) -> dict[str, str]:
        """The compact reference an event keeps of the object it is about."""
        snapshot = {"gid": obj.gid, "resource_type": obj.resource_type}
        for attr in ("name", "resource_subtype"):
            if hasattr(obj, attr):
                snapshot[attr] = getattr(obj, attr)
        return snapshot

    def task_counts(self, project: Ref) -> dict[str, int]:
        """A project's TaskCountResponse: every task placed in it (subtasks added to it too),
        completed or not; milestones are tasks, so they count in both families."""
        tasks = [self.objects[gid] for gid in self.project_tasks(project)]
        milestones = [task for task in tasks if task.resource_subtype == "milestone"]
        done, milestones_done = (sum(task.completed for task in group) for group in (tasks, milestones))
        return {
            "num_tasks": len(tasks),
            "num_incomplete_tasks": len(tasks) - done,
            "num_completed_tasks": done,
            "num_milestones": len(milestones),
            "num_incomplete_milestones": len(milestones) - milestones_done,
            "num_completed_milestones": milestones_done,
        }


def _role(membership: WorkspaceMembership, admin: bool) -> str:
    """A workspace role as the audit log's role change names it: the spec's role values (guest,
    member, admin, super_admin); this world's admins are ``admin``."""
    return "admin" if admin else "guest" if membership.is_guest else "member"


def _dates(task: Task) -> dict[str, str | None] | None:
    """A story's old/new dates; None when the task has no due date (the field is then omitted)."""
    if task.due_on is None:
        return None
    return {"start_on": task.start_on, "due_at": task.due_at, "due_on": task.due_on}
