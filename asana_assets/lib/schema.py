"""The warehouse contract: one record per table (``REGISTRY``), the single place for its facts.

A table's record holds its Arrow schema (the only source of column types and descriptions), its
key and references, its description, whether it is history, and how the crawl and the
incremental sync own it. The Parquet files, the Postgres DDL, the asset specs, the quality
checks and the data dictionary are all derived from it. Analysts query these names: gids are
strings, timestamps are UTC, dates are dates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

GID = pa.string()
TS = pa.timestamp("us", tz="UTC")
DATE = pa.date32()
STR = pa.string()
BOOL = pa.bool_()

RAW, AUDIT, DERIVED = "raw", "audit", "derived"
Layer = Literal["raw", "audit", "derived"]
# How the incremental sync brings a raw table up to date: re-listed whole ("workspace"), re-listed
# per project when the project may have changed ("project": rows keyed by project_gid), re-read
# per task ("task": rows keyed by the task's gid); None where the sync treats the table by name.
Resync = Literal["workspace", "project", "task"]


@dataclass(frozen=True)
class TableSpec:
    name: str
    layer: Layer  # raw: crawled from the API; audit: the audit log; derived: the compliance layer
    description: str  # the asset's, the data dictionary's and the Postgres table comment's
    schema: pa.Schema
    key: tuple[str, ...] = ("gid",)  # empty: no key (replaced whole)
    references: tuple[tuple[str, str], ...] = ()  # (column, parent table); the parent's key is its gid
    required: tuple[str, ...] = ()  # besides the key, never null in a derived row: what the row is about
    history: bool = False  # appended per run (one Parquet part each), never overwritten
    # Raw tables. The crawl step that reads it (see crawl.STEPS; None: read by every crawl):
    crawled_by: str | None = None
    owners: tuple[str, ...] = ("gid",)  # columns tying a row to a container: gone with it mid-crawl
    streamed: bool = False  # grows with tasks and stories: converted to Arrow in chunks as the crawl reads
    resync: Resync | None = None


def _schema(*columns: tuple[str, pa.DataType, str]) -> pa.Schema:
    """A schema whose fields carry their description, so docs travel with the data."""
    return pa.schema(
        [pa.field(name, type_, metadata={"description": doc}) for name, type_, doc in columns]
    )


def _table(name: str, layer: Layer, description: str, *columns: tuple[str, pa.DataType, str],
           **facts: Any) -> TableSpec:
    return TableSpec(name, layer, description, _schema(*columns), **facts)


REGISTRY: dict[str, TableSpec] = {spec.name: spec for spec in (
    _table(
        "workspaces", RAW,
        "Workspaces and organizations the token can see.",
        ("gid", GID, "Workspace or organization gid"),
        ("name", STR, "Workspace name"),
        ("is_organization", BOOL, "True for an organization (email-domain workspace)"),
        ("email_domains", pa.list_(STR), "Email domains of the organization"),
        resync="workspace",
    ),
    _table(
        "users", RAW,
        "Every user with a workspace membership, active or not.",
        ("gid", GID, "User gid"),
        ("name", STR, "Display name"),
        ("email", STR, "Email address"),
        ("photo_url", STR, "Avatar URL (128x128)"),
        crawled_by="memberships", resync="workspace",
    ),
    _table(
        "workspace_memberships", RAW,
        "Who belongs to each workspace, with admin, guest and active flags.",
        ("gid", GID, "Workspace membership gid"),
        ("workspace_gid", GID, "Workspace"),
        ("user_gid", GID, "Member"),
        ("is_active", BOOL, "False once the user is deprovisioned"),
        ("is_admin", BOOL, "Workspace admin"),
        ("is_guest", BOOL, "Guest (outside the organization's domains)"),
        ("is_view_only", BOOL, "View-only member"),
        ("created_at", TS, "When the membership was created"),
        references=(("user_gid", "users"), ("workspace_gid", "workspaces")),
        crawled_by="memberships",
        resync="workspace",
    ),
    _table(
        "teams", RAW,
        "Teams of each organization.",
        ("gid", GID, "Team gid"),
        ("workspace_gid", GID, "Organization the team belongs to"),
        ("name", STR, "Team name"),
        ("description", STR, "Team description"),
        ("visibility", STR, "secret, request_to_join or public"),
        ("permalink_url", STR, "Link to the team in Asana"),
        references=(("workspace_gid", "workspaces"),), crawled_by="teams", resync="workspace",
    ),
    _table(
        "team_memberships", RAW,
        "Members of each team, with team-admin and guest flags.",
        ("gid", GID, "Team membership gid"),
        ("team_gid", GID, "Team"),
        ("user_gid", GID, "Member"),
        ("is_admin", BOOL, "Team admin"),
        ("is_guest", BOOL, "Guest member"),
        ("is_limited_access", BOOL, "Limited-access member"),
        references=(("team_gid", "teams"), ("user_gid", "users")),
        crawled_by="team_memberships",
        owners=("team_gid",),
        resync="workspace",
    ),
    _table(
        "projects", RAW,
        "Projects (archived ones included) with owner, team and privacy.",
        ("gid", GID, "Project gid"),
        ("workspace_gid", GID, "Workspace"),
        ("team_gid", GID, "Team that owns the project"),
        ("owner_gid", GID, "Project owner"),
        ("name", STR, "Project name"),
        ("notes", STR, "Project description"),
        ("archived", BOOL, "Archived projects are kept and still in scope"),
        ("color", STR, "Project color"),
        ("privacy_setting", STR, "public_to_workspace, private_to_team or private"),
        ("default_access_level", STR, "admin, editor, commenter or viewer"),
        ("completed", BOOL, "Project marked complete"),
        ("completed_at", TS, "When the project was completed"),
        ("due_on", DATE, "Project due date"),
        ("start_on", DATE, "Project start date"),
        ("created_at", TS, "Creation time"),
        ("modified_at", TS, "Last modification time"),
        ("permalink_url", STR, "Link to the project in Asana"),
        ("synced_at", TS, "When this sync finished listing the project's tasks"),
        ("num_tasks", pa.int32(), "Tasks Asana counts in the project (task_counts)"),
        ("tasks_counted_at", TS, "When num_tasks was asked for; null num_tasks then means refused or malformed"),
        references=(("workspace_gid", "workspaces"), ("team_gid", "teams")),
        crawled_by="projects",
        resync="workspace",
    ),
    _table(
        "project_memberships", RAW,
        "Direct project members and their access level.",
        ("gid", GID, "Project membership gid"),
        ("project_gid", GID, "Project"),
        ("member_gid", GID, "User or team gid"),
        ("member_type", STR, "user or team"),
        ("access_level", STR, "admin, editor, commenter or viewer"),
        references=(("project_gid", "projects"),),
        crawled_by="project_memberships",
        owners=("project_gid",),
        resync="project",
    ),
    _table(
        "sections", RAW,
        "Sections of each project in board order; the source of workflow states.",
        ("gid", GID, "Section gid"),
        ("project_gid", GID, "Project"),
        ("name", STR, "Section name"),
        ("position", pa.int32(), "Order of the section in its project, from 0"),
        ("created_at", TS, "Creation time"),
        references=(("project_gid", "projects"),), crawled_by="sections", owners=("project_gid",), resync="project",
    ),
    _table(
        "tasks", RAW,
        "Every task, subtasks included (parent_gid), with assignee, completion and approval status.",
        ("gid", GID, "Task gid"),
        ("workspace_gid", GID, "Workspace"),
        ("parent_gid", GID, "Parent task for subtasks, else null"),
        ("resource_subtype", STR, "default_task, milestone, approval or custom"),
        ("approval_status", STR, "pending, approved, rejected or changes_requested (approvals)"),
        ("name", STR, "Task name"),
        ("notes", STR, "Task description"),
        ("assignee_gid", GID, "Current assignee"),
        ("created_by_gid", GID, "Creator"),
        ("completed", BOOL, "Completion flag"),
        ("completed_at", TS, "Completion time"),
        ("completed_by_gid", GID, "Who completed the task"),
        ("created_at", TS, "Creation time"),
        ("modified_at", TS, "Last modification time (ignores project and section moves)"),
        ("due_on", DATE, "Due date"),
        ("due_at", TS, "Due time"),
        ("start_on", DATE, "Start date"),
        ("permalink_url", STR, "Link to the task in Asana"),
        ("num_subtasks", pa.int32(), "Number of direct subtasks"),
        references=(("parent_gid", "tasks"), ("workspace_gid", "workspaces"), ("assignee_gid", "users")),
        crawled_by="tasks",
        owners=("gid", "parent_gid"),
        resync="task",
    ),
    _table(
        "task_memberships", RAW,
        "Which project and section each task sits in; position 0 is the primary project.",
        ("task_gid", GID, "Task"),
        ("project_gid", GID, "Project the task is in"),
        ("section_gid", GID, "Section of the task in that project"),
        ("position", pa.int32(), "Order among the task's memberships; 0 is the primary project"),
        key=("task_gid", "project_gid"),
        references=(("task_gid", "tasks"), ("project_gid", "projects"), ("section_gid", "sections")),
        crawled_by="tasks",
        owners=("task_gid", "project_gid"),
        streamed=True,
        resync="task",
    ),
    _table(
        "stories", RAW,
        "The changelog of every task and subtask, with the structured old/new fields.",
        ("gid", GID, "Story gid"),
        ("task_gid", GID, "Task the story belongs to"),
        ("created_at", TS, "When it happened"),
        ("created_by_gid", GID, "Actor; null for system-made changes"),
        ("type", STR, "comment or system"),
        ("resource_subtype", STR, "What happened (open set: assigned, section_changed, ...)"),
        ("text", STR, "Localized human text; never parsed"),
        ("source", STR, "web, email, mobile, api or unknown"),
        ("old_section_gid", GID, "Section left (section moves)"),
        ("new_section_gid", GID, "Section entered (section moves)"),
        ("assignee_gid", GID, "New assignee (assignment stories)"),
        ("old_approval_status", STR, "Approval status before"),
        ("new_approval_status", STR, "Approval status after"),
        ("old_name", STR, "Name before (renames)"),
        ("new_name", STR, "Name after (renames)"),
        ("old_due_on", DATE, "Due date before"),
        ("new_due_on", DATE, "Due date after"),
        ("old_due_at", TS, "Due time before"),
        ("new_due_at", TS, "Due time after"),
        ("old_start_on", DATE, "Start date before"),
        ("new_start_on", DATE, "Start date after"),
        ("project_gid", GID, "Project (added to / removed from project stories)"),
        ("custom_field_gid", GID, "Custom field changed (<type>_custom_field_changed stories)"),
        *(
            column
            for side, when in (("old", "before"), ("new", "after"))
            for column in (
                (f"{side}_text_value", STR, f"Text value {when}"),
                (f"{side}_number_value", pa.float64(), f"Number value {when}"),
                (f"{side}_enum_option_gid", GID, f"Enum option {when}"),
                (f"{side}_enum_option_name", STR, f"Name of the enum option {when}"),
                (f"{side}_multi_enum_option_gids", pa.list_(GID), f"Multi-enum options {when}"),
                (f"{side}_multi_enum_option_names", pa.list_(STR), f"Names of the multi-enum options {when}"),
                (f"{side}_date_value", DATE, f"Date value {when}"),
                (f"{side}_date_time_value", TS, f"Time of the date value {when}, when it has one"),
                (f"{side}_people_gids", pa.list_(GID), f"People {when}"),
            )
        ),
        references=(("task_gid", "tasks"),), crawled_by="stories", owners=("task_gid",), streamed=True,
    ),
    _table(
        "custom_fields", RAW,
        "Custom field definitions (type, enum options, precision) of the fields projects use.",
        ("gid", GID, "Custom field gid (a task's value of the field has the same gid)"),
        ("workspace_gid", GID, "Workspace of the projects that use the field"),
        ("name", STR, "Field name"),
        ("resource_subtype", STR, "text, number, enum, multi_enum, date, people or reference (a formula: number)"),
        ("description", STR, "Field description"),
        ("enum_option_gids", pa.list_(GID), "Options of an enum or multi_enum field, in order"),
        ("enum_option_names", pa.list_(STR), "Their names, in the same order"),
        ("precision", pa.int32(), "Decimal places of a number field"),
        ("format", STR, "Number format: currency, identifier, percentage, custom, duration or none"),
        ("enabled", BOOL, "Null: Asana gives enabled on a field's values only (task_custom_fields.enabled)"),
        ("is_formula_field", BOOL, "Computed by a formula"),
        references=(("workspace_gid", "workspaces"),), crawled_by="custom_field_settings",
    ),
    _table(
        "custom_field_settings", RAW,
        "Which project uses which custom field.",
        ("gid", GID, "Custom field setting gid"),
        ("project_gid", GID, "Project that uses the field"),
        ("custom_field_gid", GID, "The field"),
        ("is_important", BOOL, "Shown in the project's list view"),
        references=(("project_gid", "projects"), ("custom_field_gid", "custom_fields")),
        crawled_by="custom_field_settings",
        owners=("project_gid",),
        resync="project",
    ),
    _table(
        "task_followers", RAW,
        "Followers of each task: who sees it even where its projects are private.",
        ("task_gid", GID, "Task"),
        ("user_gid", GID, "Follower (collaborator): sees the task even where its projects are private"),
        key=("task_gid", "user_gid"),
        references=(("task_gid", "tasks"),),
        crawled_by="tasks",
        owners=("task_gid",),
        streamed=True,
        resync="task",
    ),
    _table(
        "task_custom_fields", RAW,
        "Each task's value of each of its custom fields, in typed columns, with Asana's display value.",
        ("task_gid", GID, "Task"),
        ("custom_field_gid", GID, "Field"),
        ("resource_subtype", STR, "Type of the field, which says which value column holds the value"),
        ("text_value", STR, "Value of a text field"),
        ("number_value", pa.float64(), "Value of a number field"),
        ("date_value", DATE, "Value of a date field"),
        ("date_time_value", TS, "Time of a date field that has one"),
        ("enum_option_gid", GID, "Option chosen in an enum field"),
        ("enum_option_name", STR, "Its name"),
        ("multi_enum_option_gids", pa.list_(GID), "Options chosen in a multi_enum field"),
        ("multi_enum_option_names", pa.list_(STR), "Their names"),
        ("people_gids", pa.list_(GID), "Users in a people field"),
        ("reference_gids", pa.list_(GID), "Objects (tasks, projects...) in a reference field"),
        ("display_value", STR, "The value as Asana displays it (a formula field's result); null when unset"),
        ("enabled", BOOL, "False for a disabled value: kept from a field no longer on the task's projects"),
        key=("task_gid", "custom_field_gid"),
        references=(("task_gid", "tasks"), ("custom_field_gid", "custom_fields")),
        crawled_by="tasks",
        owners=("task_gid",),
        streamed=True,
        resync="task",
    ),
    _table(
        "tags", RAW,
        "Tags of each workspace.",
        ("gid", GID, "Tag gid"),
        ("workspace_gid", GID, "Workspace"),
        ("name", STR, "Tag name"),
        ("color", STR, "Tag color"),
        ("notes", STR, "Tag description"),
        ("created_at", TS, "Creation time"),
        ("permalink_url", STR, "Link to the tag in Asana"),
        crawled_by="tags", resync="workspace",
    ),
    _table(
        "task_tags", RAW,
        "Tags on each task.",
        ("task_gid", GID, "Task"),
        ("tag_gid", GID, "Tag on the task"),
        key=("task_gid", "tag_gid"),
        references=(("task_gid", "tasks"), ("tag_gid", "tags")),
        crawled_by="tasks",
        owners=("task_gid",),
        streamed=True,
        resync="task",
    ),
    _table(
        "quarantine", RAW,
        "Records the API returned that failed validation (audit log events included), records whose "
        "references do not resolve (those stay in their tables too), and projects one of whose listings "
        "Asana refused (402 or 403; table projects, error 'listing refused: <table>: ...', raw the listing, "
        "path and status; that table lacks the project's rows): each with the reason, never dropped.",
        ("table", STR, "Table the record was meant for"),
        ("gid", GID, "gid of the record, when it had one"),
        ("error", STR, "Why the record was refused"),
        ("raw", STR, "The record as received, JSON"),
        ("observed_at", TS, "When the sync received it"),
        key=(),
    ),
    _table(
        "collections", DERIVED,
        "One row per project, with its place in the hierarchy workspace > team > project.",
        ("gid", GID, "Project gid"),
        ("name", STR, "Project name"),
        ("description", STR, "Project description"),
        ("workspace_gid", GID, "Workspace (top of the hierarchy)"),
        ("workspace_name", STR, "Workspace name"),
        ("team_gid", GID, "Team (middle of the hierarchy)"),
        ("team_name", STR, "Team name"),
        ("path", STR, "Workspace > Team > Project"),
        ("archived", BOOL, "Archived projects stay in scope"),
        ("privacy_setting", STR, "public_to_workspace, private_to_team or private"),
        ("default_access_level", STR, "admin, editor, commenter or viewer"),
        ("owner_gid", GID, "Project owner"),
        ("is_change_project", BOOL, "Whether its tickets are change tickets"),
        ("created_at", TS, "Creation time"),
        ("modified_at", TS, "Last modification time"),
        ("url", STR, "Link to the project in Asana"),
    ),
    _table(
        "workflow_states", DERIVED,
        "One row per section: its stage and canonical state, and the rule or override that decided.",
        ("section_gid", GID, "Section gid"),
        ("project_gid", GID, "Project"),
        ("name", STR, "Section name"),
        ("position", pa.int32(), "Order in the project, from 0"),
        ("stage", STR, "BACKLOG, TODO, IN_PROGRESS, IN_REVIEW, APPROVED, BLOCKED, DONE, or UNKNOWN where the name "
         "says no known stage"),
        ("state", STR, "OPEN, IN_PROGRESS, ON_HOLD, CLOSED, or UNKNOWN"),
        ("rule", STR, "What decided the stage: rule:<stage>:<words>, override:section, override:project, or unmapped"),
        key=("section_gid",), required=("stage", "state"),
    ),
    _table(
        "tickets", DERIVED,
        "One row per task (subtasks included) in a ticketing common model, with a canonical status.",
        ("gid", GID, "Task gid"),
        ("workspace_gid", GID, "Workspace"),
        ("name", STR, "Title"),
        ("description", STR, "Description (task notes)"),
        ("status", STR, "CLOSED when completed, else the state of its section in its primary project"),
        ("stage", STR, "Stage of that section"),
        ("primary_project_gid", GID, "First project of the task's memberships"),
        ("section_gid", GID, "Section in the primary project"),
        ("section_name", STR, "Name of that section"),
        ("collection_gids", pa.list_(GID), "Every project the ticket is in"),
        ("assignee_gid", GID, "Current assignee"),
        ("creator_gid", GID, "Creator"),
        ("due_on", DATE, "Due date"),
        ("due_at", TS, "Due time"),
        ("ticket_type", STR, "The task's value of the ticket-type custom field, else task, milestone, approval "
         "or a custom type"),
        ("parent_gid", GID, "Parent ticket"),
        ("created_at", TS, "Creation time"),
        ("updated_at", TS, "Last modification time"),
        ("completed", BOOL, "Completion flag"),
        ("completed_at", TS, "Completion time"),
        ("completed_by_gid", GID, "Who completed it"),
        ("url", STR, "Link to the task in Asana"),
        ("approval_status", STR, "Approval status (approval tasks)"),
        ("tags", pa.list_(STR), "Tag names"),
        ("is_change", BOOL, "Top-level, not an approval, and in a change project or typed as a change at any time up "
         "to its implementation start"),
        ("visibility", STR, "public when one of its projects (a subtask: its parent's) is public to the workspace, "
         "else private"),
        references=(("primary_project_gid", "collections"), ("section_gid", "workflow_states")),
        required=("status", "is_change"),
    ),
    _table(
        "ticket_events", DERIVED,
        "The changelog from stories' structured fields: assignments, moves, completions, approvals.",
        ("event_id", STR, "Story gid, or created:<ticket gid>"),
        ("ticket_gid", GID, "Ticket"),
        ("event_type", STR, "created, assigned, unassigned, section_changed, completed, reopened, "
         "approval_changed, due_changed, name_changed, notes_changed, added_to_project, removed_from_project"),
        ("occurred_at", TS, "When"),
        ("actor_gid", GID, "Who; null for system changes"),
        ("project_gid", GID, "Project of a section change or project move"),
        ("old_section_gid", GID, "Section left"),
        ("new_section_gid", GID, "Section entered"),
        ("old_state", STR, "State of the section left"),
        ("new_state", STR, "State of the section entered"),
        ("old_value", STR, "Previous value (assignee, approval status, name, due date)"),
        ("new_value", STR, "New value"),
        key=("event_id",), references=(("ticket_gid", "tickets"),), required=("ticket_gid", "event_type"),
    ),
    _table(
        "ticket_status_history", DERIVED,
        "One interval per ticket, project and state, from entry to exit.",
        ("interval_id", STR, "<ticket gid>/<project gid or none>/<entered_at in epoch microseconds>"),
        ("ticket_gid", GID, "Ticket"),
        ("project_gid", GID, "Project whose sections give the state"),
        ("state", STR, "OPEN, IN_PROGRESS, ON_HOLD, CLOSED, or UNKNOWN (a section of no known stage)"),
        ("entered_at", TS, "When the ticket entered the state"),
        ("left_at", TS, "When it left; null while current"),
        ("entered_by_gid", GID, "Who moved it there"),
        ("duration_seconds", pa.float64(), "left_at - entered_at; null while current"),
        key=("interval_id",), references=(("ticket_gid", "tickets"),), required=("ticket_gid", "state", "entered_at"),
    ),
    _table(
        "ticket_section_history", DERIVED,
        "One stay per ticket, project and section, from entry to exit, with the section's workflow stage: how "
        "long tickets sit in review is the IN_REVIEW stays. Read from the section timeline the monitors judge; "
        "several moves at one instant keep the last, removal from the project ends the stay, completion does not "
        "(see ticket_status_history).",
        ("interval_id", STR, "<ticket gid>/<project gid or none>/<entered_at in epoch microseconds>"),
        ("ticket_gid", GID, "Ticket"),
        ("project_gid", GID, "Project of the section; null for a section the sync does not have"),
        ("section_gid", GID, "Section the ticket sat in"),
        ("stage", STR, ("Workflow stage of the section (workflow_states): BACKLOG, TODO, IN_PROGRESS, IN_REVIEW, "
                        "APPROVED, BLOCKED, DONE, or UNKNOWN (a name of no known stage, or a section the sync "
                        "does not have)")),
        ("state", STR, "Canonical state of that stage: OPEN, IN_PROGRESS, ON_HOLD, CLOSED, or UNKNOWN"),
        ("entered_at", TS, ("When the ticket entered the section: the move, else when it was created in or added "
                            "to the project")),
        ("left_at", TS, "When it left: moved to another section or removed from the project; null while still there"),
        ("entered_by_gid", GID, ("Who moved it there (for the first stay: who created it there or added it to the "
                                 "project); null when no person is known")),
        ("duration_seconds", pa.float64(), ("left_at - entered_at; null while still there (its time so far: "
                                            "now() - entered_at)")),
        key=("interval_id",), references=(("ticket_gid", "tickets"),),
        required=("ticket_gid", "section_gid", "stage", "state", "entered_at"),
    ),
    _table(
        "approvals", DERIVED,
        "Every approval decision: approval subtasks' status changes (a return to pending withdraws) and moves "
        "into Approved sections.",
        ("approval_id", STR, "Story gid of the decision, or subtask gid when no story records it"),
        ("ticket_gid", GID, "Ticket approved"),
        ("source", STR, "subtask (an approval subtask's status) or section (entering an APPROVED section)"),
        ("approval_task_gid", GID, "The approval subtask"),
        ("section_gid", GID, "The APPROVED section entered"),
        ("decision", STR, "approved, rejected, changes_requested, or pending (an approval withdrawn)"),
        ("decided_at", TS, "When"),
        ("approver_gid", GID, "Who decided"),
        key=("approval_id",), references=(("ticket_gid", "tickets"),), required=("ticket_gid", "source", "decision"),
    ),
    _table(
        "user_access", DERIVED,
        "Who can reach what, one snapshot per run; history accumulates.",
        ("snapshot_at", TS, "When this snapshot was taken (the run's as_of)"),
        ("run_id", STR, "Run that took the snapshot"),
        ("user_gid", GID, "User"),
        ("user_is_active", BOOL, "The user has an active membership of the resource's workspace"),
        ("user_is_guest", BOOL, ("The user's membership of the resource's workspace is a guest's (of several, only "
                                 "if all are, as role ranks member over guest); null when the user has none there "
                                 "or its guest flag is unknown")),
        ("resource_type", STR, "workspace, team or project"),
        ("resource_gid", GID, "The workspace, team or project"),
        ("role", STR, ("admin, member, guest (workspace, team; unknown where the admin or guest flag that "
                       "would decide it is missing) or owner, admin, editor, commenter, viewer (project)")),
        ("via_team_gid", GID, ("Project rows: the team the project is shared with that gives the user this role; "
                               "null when the user holds it directly (a membership or ownership, which wins over a "
                               "team at equal role). Of several teams giving it, the lowest team gid (as a number); "
                               "the other paths are not listed")),
        key=("snapshot_at", "user_gid", "resource_type", "resource_gid"), required=("role",), history=True,
    ),
    _table(
        "membership_changes", DERIVED,
        "What changed between consecutive access snapshots, and every access change the audit log shows "
        "between them (also one undone before the next snapshot).",
        ("change_id", STR, "Stable id: sha256 of window_end|user_gid|resource_type|resource_gid|change_type, "
         "window_end as 2026-03-01T09:00:00.000000Z, user_gid empty when unknown, first 16 hex digits; a change "
         "only the audit log shows appends |<event gid>"),
        ("user_gid", GID, "User; null for an audit event whose member neither the event nor a single snapshot "
         "change names (unattributed: the review monitor reports it unknown)"),
        ("resource_type", STR, "workspace, team or project"),
        ("resource_gid", GID, "The workspace, team or project"),
        ("change_type", STR, "granted, revoked, role_changed, deactivated, reactivated (also: back in a workspace "
         "after a snapshot without a membership), admin_granted, admin_revoked or guest_added"),
        ("old_role", STR, "Role before; null when unknown (an event only the audit log shows, but an admin role's)"),
        ("new_role", STR, "Role after; null when unknown"),
        ("window_start", TS, "Previous snapshot: the change happened after this"),
        ("window_end", TS, "This snapshot: the change happened at or before this"),
        ("run_id", STR, "Run that observed it"),
        ("actor_gid", GID, "Who made the change, from the matching audit log event; null without one"),
        ("actor_name", STR, "The actor's name as the audit log gives it"),
        ("occurred_at", TS, "When the change happened, from the matching audit log event; null without one"),
        ("evidence", STR, "audit log (an audit event gives actor and time) or snapshots (only the window is known)"),
        key=("change_id",),
    ),
    _table(
        "access_review_decisions", DERIVED,
        "One row per access review campaign item (a member of a team or project to keep or revoke), read from "
        "the review project's tasks: the decision its approval subtask holds now, who made it and when.",
        ("campaign", STR, "Campaign id (asana-connections review start --campaign)"),
        ("resource_type", STR, "team or project"),
        ("resource_gid", GID, "The team or project reviewed"),
        ("user_gid", GID, "The member reviewed"),
        ("role", STR, "The member's role when the campaign started"),
        ("reviewer_gid", GID, "Who decided: the author of the approval story that set the decision; null when "
         "undecided or no story agrees with the status"),
        ("decision", STR, "approved (keep), rejected (revoke), undecided, or unknown (no approval subtask for the "
         "item, or several that disagree)"),
        ("decided_at", TS, "When the decision was made; null when undecided or unknown"),
        ("due_on", DATE, "The campaign's due day (UTC)"),
        ("task_gid", GID, "The item's approval subtask; null when none is synced"),
        ("parent_task_gid", GID, "The resource's review task"),
        key=("campaign", "resource_type", "resource_gid", "user_gid"), required=("decision", "due_on"),
    ),
    _table(
        "monitor_results", DERIVED,
        "Every monitor's result per evaluated resource, one part per run.",
        ("run_id", STR, "Run that evaluated"),
        ("evaluated_at", TS, "The run's as_of"),
        ("monitor_id", STR, "Monitor"),
        ("resource_type", STR, "ticket, ticket_in_category (gid ticket/category: ticket_sla), project, user, "
         "user_in_workspace (gid user/workspace), membership_change, the raw record an access alarm names "
         "(team_membership, project_membership, task), or setting (a compliance setting the monitor needs or cannot "
         "use as configured; gid: its name, or sla_categories/ and the category name)"),
        ("resource_gid", STR, "The resource evaluated"),
        ("status", STR, "ok, alarm, unknown (the data cannot decide), info (not yet due), skip or error"),
        ("reason", STR, "One sentence"),
        ("severity", STR, "ERROR or WARN"),
        ("control_refs", pa.list_(STR), "Controls the monitor evidences"),
        ("resource_url", STR, "Link to the resource in Asana"),
        key=("run_id", "monitor_id", "resource_type", "resource_gid"),
        required=("status", "reason", "severity"),
        history=True,
    ),
    _table(
        "audit_log_events", AUDIT,
        "The workspaces' audit log (Enterprise+): who granted, removed or changed access, and when. Read from "
        "where the last read ended (the log's offset); kept beyond Asana's 90 days. Empty where the plan has no "
        "audit log.",
        ("gid", GID, "Audit event gid"),
        ("workspace_gid", GID, "Workspace whose audit log holds the event"),
        ("created_at", TS, "When the event happened"),
        ("event_type", STR, "e.g. user_workspace_admin_role_changed, user_deprovisioned, team_member_added"),
        ("event_category", STR, "e.g. roles, user_access, access_control, deletion"),
        ("actor_type", STR, "user, asana, asana_support, anonymous or external_administrator"),
        ("actor_gid", GID, "The acting user; null for Asana itself"),
        ("actor_name", STR, "The actor's name"),
        ("actor_email", STR, "The actor's email"),
        ("resource_type", STR, "Type of the resource acted on (user, team, project, task...)"),
        ("resource_subtype", STR, "Subtype of the resource"),
        ("resource_gid", GID, "The resource acted on"),
        ("resource_name", STR, "The resource's name"),
        ("resource_email", STR, "The resource's email (a user)"),
        ("subject_user_gid", GID, "The user whose access changed, when the event names one: the resource of a user "
         "or role event; null for a team or project membership event, which names the team or project "
         "(membership_changes matches it to the snapshots)"),
        ("old_value", STR, "details.old_value"),
        ("new_value", STR, "details.new_value"),
        ("details", STR, "The whole details object, as JSON"),
        ("context", STR, "The whole context object, as JSON"),
    ),
)}


def _layer(layer: Layer) -> dict[str, pa.Schema]:
    return {name: spec.schema for name, spec in REGISTRY.items() if spec.layer == layer}


RAW_TABLES = _layer(RAW)
AUDIT_TABLES = _layer(AUDIT)  # Enterprise+ only: read from the audit log, kept beyond Asana's 90 days
DERIVED_TABLES = _layer(DERIVED)
TABLES: dict[str, pa.Schema] = {name: spec.schema for name, spec in REGISTRY.items()}
HISTORY_TABLES = frozenset(name for name, spec in REGISTRY.items() if spec.history)
FOREIGN_KEYS = {name: spec.references for name, spec in REGISTRY.items() if spec.references}


def primary_key(table: str) -> tuple[str, ...]:
    return REGISTRY[table].key


def to_arrow(table: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows to a typed Arrow table; columns missing from a row become null."""
    return pa.Table.from_pylist(list(rows), schema=TABLES[table])


def describe(schema: pa.Schema, name: str) -> str:
    meta = schema.field(name).metadata or {}
    return meta.get(b"description", b"").decode()


def require_columns(table: str, data: pa.Table) -> pa.Table:
    """``data`` when its key and required columns hold no null; else a ValueError naming them.
    A null there is a bug upstream, refused when the table is built rather than published as a
    row of nulls."""
    spec = REGISTRY[table]
    empty = {c: data[c].null_count for c in (*spec.key, *spec.required) if data[c].null_count}
    if empty:
        counts = ", ".join(f"{c} ({n} rows)" for c, n in empty.items())
        raise ValueError(f"{table}: null in required column(s) {counts} of {data.num_rows} rows")
    return data
