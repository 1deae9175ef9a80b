"""Postgres views for the questions analysts ask most, over the warehouse's tables.

Created with each publication of the compliance tables (dropped and re-created, so a view
follows its tables' columns), each with a comment saying what it answers and one per column.
What a view says of compliance it reads from the monitors' own ``monitor_results`` rows: a
view never re-implements a rule, so it cannot disagree with the monitors.
"""

from __future__ import annotations

from dataclasses import dataclass

import adbc_driver_postgresql.dbapi as adbc

from asana_assets.lib.compliance.monitors import JUDGED
from asana_assets.lib.schema import TABLES, describe
from asana_assets.lib.storage.sql import ident, libpq_url

LIVE = "_deleted_at IS NULL"
# The latest evaluation: the latest as_of, then the greatest run id (the evidence packs' order),
# so that every view reads the same run.
LATEST_RUN = "SELECT run_id, evaluated_at FROM {s}.monitor_results ORDER BY evaluated_at DESC, run_id DESC LIMIT 1"
# The statuses of a judged resource that did not pass: each keeps a monitor from PASS.
NOT_PASSED = tuple(status for status in JUDGED if status != "ok")


@dataclass(frozen=True)
class View:
    comment: str
    tables: tuple[str, ...]  # created only when all of them exist
    query: str  # ``{s}`` is the quoted schema
    columns: dict[str, str]  # every column the query gives, with its description


def described(table: str, *names: str) -> dict[str, str]:
    """Columns a view passes through unchanged, with their table's descriptions."""
    return {name: describe(TABLES[table], name) for name in names}


def literal(text: str) -> str:
    """A quoted SQL string (COMMENT ON takes no bind parameters)."""
    return "'" + text.replace("'", "''") + "'"


VIEWS: dict[str, View] = {
    "open_findings": View(
        f"Every resource the latest evaluation judged and did not pass (status {', '.join(NOT_PASSED)}), "
        "with the ticket or person it names and a link. An unknown is a resource the data cannot decide: "
        "it is open until fixed and re-run, never passed.",
        ("monitor_results", "tickets", "users", "collections"),
        f"""
        WITH latest AS ({LATEST_RUN})
        SELECT r.status, r.monitor_id, r.severity, array_to_string(r.control_refs, ', ') AS controls,
               r.resource_type, r.resource_gid, t.name AS ticket_name, c.name AS project_name,
               u.name AS user_name, u.email AS user_email, r.reason, r.resource_url, r.evaluated_at, r.run_id
        FROM {{s}}.monitor_results r JOIN latest USING (run_id)
        -- a ticket_in_category row (ticket_sla) names its ticket before the '/': <ticket gid>/<category>
        LEFT JOIN {{s}}.tickets t ON t.{LIVE} AND t.gid = CASE
            WHEN r.resource_type = 'ticket' THEN r.resource_gid
            WHEN r.resource_type = 'ticket_in_category' THEN split_part(r.resource_gid, '/', 1) END
        LEFT JOIN {{s}}.collections c ON c.gid = t.primary_project_gid AND c.{LIVE}
        -- a user_in_workspace row names its user first, an access_review_item row last:
        -- <campaign>/<team|project>/<gid>/<user gid>
        LEFT JOIN {{s}}.users u ON u.{LIVE} AND u.gid = CASE
            WHEN r.resource_type = 'user' THEN r.resource_gid
            WHEN r.resource_type = 'user_in_workspace' THEN split_part(r.resource_gid, '/', 1)
            WHEN r.resource_type = 'access_review_item' THEN substring(r.resource_gid FROM '[^/]+$') END
        WHERE r.status IN ({", ".join(map(literal, NOT_PASSED))})
        """,
        {
            "status": "alarm (a violation), error (the monitor could not judge it) or unknown (the data cannot "
            "decide it)",
            **described("monitor_results", "monitor_id", "severity"),
            "controls": "Controls the monitor evidences, comma-separated",
            **described("monitor_results", "resource_type", "resource_gid"),
            "ticket_name": "Name of the ticket the row names (ticket rows, and ticket_in_category rows of ticket_sla)",
            "project_name": "Primary project of that ticket",
            "user_name": "Name of the person the row names (user, user_in_workspace and access_review_item rows)",
            "user_email": "Email of that person",
            **described("monitor_results", "reason", "resource_url", "evaluated_at", "run_id"),
        },
    ),
    "change_tickets": View(
        "Change tickets with what the latest evaluation's changes_approved and approval_segregation monitors "
        "judged of each, read from monitor_results (never re-derived here), and the latest approval decision "
        "for reference. approved_before_start is the changes_approved status alone: true when ok, false when "
        "alarm, null otherwise (unknown: the data cannot decide; skip: the rule does not apply, e.g. not "
        "started; no row: not judged by the latest evaluation). The latest_* columns claim nothing: the "
        "latest decision can be an approval the monitor found withdrawn before implementation started.",
        ("tickets", "approvals", "monitor_results", "users", "collections"),
        f"""
        WITH latest AS ({LATEST_RUN}),
        decided AS (
            -- NULLS LAST: a decision of unknown time is not taken for the latest
            SELECT DISTINCT ON (ticket_gid) ticket_gid, decision, source, decided_at, approver_gid
            FROM {{s}}.approvals WHERE {LIVE} ORDER BY ticket_gid, decided_at DESC NULLS LAST, approval_id DESC)
        SELECT t.gid AS ticket_gid, t.name AS ticket_name, c.name AS project_name, t.status, t.url,
               CASE a.status WHEN 'ok' THEN true WHEN 'alarm' THEN false END AS approved_before_start,
               a.status AS changes_approved_status, a.reason AS changes_approved_reason,
               g.status AS approval_segregation_status, g.reason AS approval_segregation_reason,
               l.evaluated_at, l.run_id,
               d.decision AS latest_decision, d.source AS latest_decision_source, d.decided_at AS latest_decided_at,
               d.approver_gid AS latest_approver_gid, u.name AS latest_approver_name,
               u.email AS latest_approver_email
        FROM {{s}}.tickets t
        LEFT JOIN latest l ON true
        LEFT JOIN {{s}}.monitor_results a ON a.run_id = l.run_id AND a.monitor_id = 'changes_approved'
            AND a.resource_type = 'ticket' AND a.resource_gid = t.gid
        LEFT JOIN {{s}}.monitor_results g ON g.run_id = l.run_id AND g.monitor_id = 'approval_segregation'
            AND g.resource_type = 'ticket' AND g.resource_gid = t.gid
        LEFT JOIN {{s}}.collections c ON c.gid = t.primary_project_gid AND c.{LIVE}
        LEFT JOIN decided d ON d.ticket_gid = t.gid
        LEFT JOIN {{s}}.users u ON u.gid = d.approver_gid AND u.{LIVE}
        WHERE t.is_change AND t.{LIVE}
        """,
        {
            "ticket_gid": "Change ticket",
            "ticket_name": "Its title",
            "project_name": "Its primary project",
            "status": describe(TABLES["tickets"], "status"),
            "url": describe(TABLES["tickets"], "url"),
            "approved_before_start": "The changes_approved status alone: true when ok, false when alarm, null "
            "otherwise (unknown, skip, or no row in the latest evaluation)",
            "changes_approved_status": "Status of the ticket's changes_approved row in the latest evaluation; null "
            "when it has none",
            "changes_approved_reason": "Reason of that row",
            "approval_segregation_status": "Status of the ticket's approval_segregation row in the latest "
            "evaluation; null when it has none",
            "approval_segregation_reason": "Reason of that row",
            "evaluated_at": "The latest evaluation's as_of; null before any evaluation",
            "run_id": "The latest evaluation's run",
            "latest_decision": "The ticket's latest approval decision (approvals table), whether or not it counts",
            "latest_decision_source": describe(TABLES["approvals"], "source"),
            "latest_decided_at": "When that decision was made",
            "latest_approver_gid": "Who made it",
            "latest_approver_name": "Their name",
            "latest_approver_email": "Their email",
        },
    ),
    "access_review": View(
        "Who can reach what in the latest access snapshot: each user's workspace, team and project "
        "access with names, whether the user is still active and a guest, and the team a project is "
        "reached through.",
        ("user_access", "users", "workspaces", "teams", "projects"),
        f"""
        WITH latest AS (SELECT max(snapshot_at) AS snapshot_at FROM {{s}}.user_access)
        SELECT a.snapshot_at, a.user_gid, u.name AS user_name, u.email AS user_email, a.user_is_active,
               a.user_is_guest AS is_guest, a.resource_type, a.resource_gid,
               coalesce(w.name, tm.name, p.name) AS resource_name, a.role, a.via_team_gid, vt.name AS via_team_name
        FROM {{s}}.user_access a JOIN latest USING (snapshot_at)
        LEFT JOIN {{s}}.users u ON u.gid = a.user_gid AND u.{LIVE}
        LEFT JOIN {{s}}.workspaces w ON a.resource_type = 'workspace' AND w.gid = a.resource_gid AND w.{LIVE}
        LEFT JOIN {{s}}.teams tm ON a.resource_type = 'team' AND tm.gid = a.resource_gid AND tm.{LIVE}
        LEFT JOIN {{s}}.projects p ON a.resource_type = 'project' AND p.gid = a.resource_gid AND p.{LIVE}
        LEFT JOIN {{s}}.teams vt ON vt.gid = a.via_team_gid AND vt.{LIVE}
        """,
        {
            **described("user_access", "snapshot_at", "user_gid"),
            "user_name": "The user's name",
            "user_email": "The user's email",
            **described("user_access", "user_is_active"),
            "is_guest": describe(TABLES["user_access"], "user_is_guest"),
            **described("user_access", "resource_type", "resource_gid"),
            "resource_name": "Name of the workspace, team or project",
            **described("user_access", "role", "via_team_gid"),
            "via_team_name": "Name of that team",
        },
    ),
    "ticket_stays": View(
        "Every stay of a ticket in a section of a project (ticket_section_history), with the names of the "
        "ticket, project, section and who moved it there, and its hours: how long tickets sit in review is "
        "WHERE stage = 'IN_REVIEW'. A stay still open has no left_at and no duration.",
        ("ticket_section_history", "tickets", "projects", "sections", "users"),
        f"""
        SELECT h.interval_id, h.ticket_gid, t.name AS ticket_name, h.project_gid, p.name AS project_name,
               h.section_gid, sec.name AS section_name, h.stage, h.state, h.entered_at, h.left_at,
               h.entered_by_gid, u.name AS entered_by_name, h.duration_seconds,
               h.duration_seconds / 3600 AS duration_hours
        FROM {{s}}.ticket_section_history h
        LEFT JOIN {{s}}.tickets t ON t.gid = h.ticket_gid AND t.{LIVE}
        LEFT JOIN {{s}}.projects p ON p.gid = h.project_gid AND p.{LIVE}
        LEFT JOIN {{s}}.sections sec ON sec.gid = h.section_gid AND sec.{LIVE}
        LEFT JOIN {{s}}.users u ON u.gid = h.entered_by_gid AND u.{LIVE}
        WHERE h.{LIVE}
        """,
        {
            **described("ticket_section_history", "interval_id", "ticket_gid"),
            "ticket_name": "The ticket's title",
            **described("ticket_section_history", "project_gid"),
            "project_name": "The project's name",
            **described("ticket_section_history", "section_gid"),
            "section_name": "The section's name",
            **described("ticket_section_history", "stage", "state", "entered_at", "left_at", "entered_by_gid"),
            "entered_by_name": "Name of who moved it there",
            **described("ticket_section_history", "duration_seconds"),
            "duration_hours": "duration_seconds / 3600; null while still there",
        },
    ),
}


def view_statements(schema: str, existing: set[str]) -> list[str]:
    """The statements (re)creating each view whose tables all exist in ``schema``, with its comments."""
    s = ident(schema)
    statements = []
    for name, view in VIEWS.items():
        if not set(view.tables) <= existing:
            continue
        qualified = f"{s}.{ident(name)}"
        statements += [
            f"DROP VIEW IF EXISTS {qualified}",
            f"CREATE VIEW {qualified} AS {view.query.format(s=s)}",
            f"COMMENT ON VIEW {qualified} IS {literal(view.comment)}",
            *(
                f"COMMENT ON COLUMN {qualified}.{ident(column)} IS {literal(text)}"
                for column, text in view.columns.items()
            ),
        ]
    return statements


def refresh_views(url: str, schema: str) -> list[str]:
    """(Re)create the views whose tables exist, in one transaction; returns their names."""
    with adbc.connect(libpq_url(url)) as connection, connection.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", parameters=(schema,))
        existing = {name for (name,) in cur.fetchall()}
        for statement in view_statements(schema, existing):
            cur.execute(statement)
        connection.commit()
    return [name for name, view in VIEWS.items() if set(view.tables) <= existing]
