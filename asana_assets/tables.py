"""The warehouse contract: one Arrow schema per table, the single source of column types.

Analysts query these names. gids are strings, timestamps are UTC, dates are dates. The
same schemas type the Parquet files, the Dagster column-schema metadata and (later) the
Postgres DDL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

GID = pa.string()
TS = pa.timestamp("us", tz="UTC")
DATE = pa.date32()
STR = pa.string()
BOOL = pa.bool_()


def _schema(*columns: tuple[str, pa.DataType, str]) -> pa.Schema:
    """A schema whose fields carry their description, so docs travel with the data."""
    return pa.schema(
        [pa.field(name, type_, metadata={"description": doc}) for name, type_, doc in columns]
    )


RAW_TABLES: dict[str, pa.Schema] = {
    "workspaces": _schema(
        ("gid", GID, "Workspace or organization gid"),
        ("name", STR, "Workspace name"),
        ("is_organization", BOOL, "True for an organization (email-domain workspace)"),
        ("email_domains", pa.list_(STR), "Email domains of the organization"),
    ),
    "users": _schema(
        ("gid", GID, "User gid"),
        ("name", STR, "Display name"),
        ("email", STR, "Email address"),
        ("photo_url", STR, "Avatar URL (128x128)"),
    ),
    "workspace_memberships": _schema(
        ("gid", GID, "Workspace membership gid"),
        ("workspace_gid", GID, "Workspace"),
        ("user_gid", GID, "Member"),
        ("is_active", BOOL, "False once the user is deprovisioned"),
        ("is_admin", BOOL, "Workspace admin"),
        ("is_guest", BOOL, "Guest (outside the organization's domains)"),
        ("is_view_only", BOOL, "View-only member"),
        ("created_at", TS, "When the membership was created"),
    ),
    "teams": _schema(
        ("gid", GID, "Team gid"),
        ("workspace_gid", GID, "Organization the team belongs to"),
        ("name", STR, "Team name"),
        ("description", STR, "Team description"),
        ("visibility", STR, "secret, request_to_join or public"),
        ("permalink_url", STR, "Link to the team in Asana"),
    ),
    "team_memberships": _schema(
        ("gid", GID, "Team membership gid"),
        ("team_gid", GID, "Team"),
        ("user_gid", GID, "Member"),
        ("is_admin", BOOL, "Team admin"),
        ("is_guest", BOOL, "Guest member"),
        ("is_limited_access", BOOL, "Limited-access member"),
    ),
    "projects": _schema(
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
    ),
    "project_memberships": _schema(
        ("gid", GID, "Project membership gid"),
        ("project_gid", GID, "Project"),
        ("member_gid", GID, "User or team gid"),
        ("member_type", STR, "user or team"),
        ("access_level", STR, "admin, editor, commenter or viewer"),
    ),
    "sections": _schema(
        ("gid", GID, "Section gid"),
        ("project_gid", GID, "Project"),
        ("name", STR, "Section name"),
        ("position", pa.int32(), "Order of the section in its project, from 0"),
        ("created_at", TS, "Creation time"),
    ),
    "tasks": _schema(
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
    ),
    "task_memberships": _schema(
        ("task_gid", GID, "Task"),
        ("project_gid", GID, "Project the task is in"),
        ("section_gid", GID, "Section of the task in that project"),
        ("position", pa.int32(), "Order among the task's memberships; 0 is the primary project"),
    ),
    "stories": _schema(
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
    ),
    "tags": _schema(
        ("gid", GID, "Tag gid"),
        ("workspace_gid", GID, "Workspace"),
        ("name", STR, "Tag name"),
        ("color", STR, "Tag color"),
        ("notes", STR, "Tag description"),
        ("created_at", TS, "Creation time"),
        ("permalink_url", STR, "Link to the tag in Asana"),
    ),
    "task_tags": _schema(
        ("task_gid", GID, "Task"),
        ("tag_gid", GID, "Tag on the task"),
    ),
    "quarantine": _schema(
        ("table", STR, "Table the record was meant for"),
        ("gid", GID, "gid of the record, when it had one"),
        ("error", STR, "Why the record was refused"),
        ("raw", STR, "The record as received, JSON"),
        ("observed_at", TS, "When the sync received it"),
    ),
}

# Every other table is keyed by its gid; the quarantine has no key (a refused record may lack one).
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "task_memberships": ("task_gid", "project_gid"),
    "task_tags": ("task_gid", "tag_gid"),
    "quarantine": (),
}


def primary_key(table: str) -> tuple[str, ...]:
    return PRIMARY_KEYS.get(table, ("gid",))


def to_arrow(table: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows to a typed Arrow table; columns missing from a row become null."""
    return pa.Table.from_pylist(list(rows), schema=RAW_TABLES[table])


def describe(schema: pa.Schema, name: str) -> str:
    meta = schema.field(name).metadata or {}
    return meta.get(b"description", b"").decode()
