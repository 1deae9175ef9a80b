"""Postgres views for the questions analysts ask most, over the warehouse's tables.

Created with each publication of the compliance tables (dropped and re-created, so a view
follows its tables' columns), each with a comment saying what it answers.
"""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as adbc

from asana_assets.lib.storage.postgres import ident, libpq_url

LIVE = "_deleted_at IS NULL"

VIEWS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "open_findings": (
        "Every alarm of the latest evaluation, with the ticket or person it names and a link.",
        ("monitor_results", "tickets", "users", "collections"),
        f"""
        WITH latest AS (SELECT run_id FROM {{s}}.monitor_results ORDER BY evaluated_at DESC LIMIT 1)
        SELECT r.monitor_id, r.severity, array_to_string(r.control_refs, ', ') AS controls, r.resource_type,
               r.resource_gid, t.name AS ticket_name, c.name AS project_name,
               u.name AS user_name, u.email AS user_email, r.reason, r.resource_url, r.evaluated_at, r.run_id
        FROM {{s}}.monitor_results r JOIN latest USING (run_id)
        LEFT JOIN {{s}}.tickets t ON r.resource_type = 'ticket' AND t.gid = r.resource_gid AND t.{LIVE}
        LEFT JOIN {{s}}.collections c ON c.gid = t.primary_project_gid AND c.{LIVE}
        LEFT JOIN {{s}}.users u ON u.{LIVE} AND u.gid = CASE
            WHEN r.resource_type = 'user' THEN r.resource_gid
            WHEN r.resource_type = 'user_in_workspace' THEN split_part(r.resource_gid, '/', 1) END
        WHERE r.status = 'alarm'
        """,
    ),
    "change_tickets": (
        "Change tickets with their latest approval decision, the approver, and when implementation "
        "started (first entry into an in-progress or closed state, completion included).",
        ("tickets", "approvals", "ticket_status_history", "users", "collections"),
        f"""
        WITH started AS (
            SELECT ticket_gid, min(entered_at) AS implementation_started_at FROM {{s}}.ticket_status_history
            WHERE state IN ('IN_PROGRESS', 'CLOSED') AND {LIVE} GROUP BY ticket_gid),
        decided AS (
            SELECT DISTINCT ON (ticket_gid) ticket_gid, decision, approver_gid, decided_at, source
            FROM {{s}}.approvals WHERE {LIVE} ORDER BY ticket_gid, decided_at DESC)
        SELECT t.gid AS ticket_gid, t.name AS ticket_name, c.name AS project_name, t.status, t.url,
               d.decision AS latest_decision, d.source AS decided_through, d.decided_at,
               d.approver_gid, u.name AS approver_name, u.email AS approver_email,
               s.implementation_started_at,
               d.decision = 'approved' AND d.decided_at <= s.implementation_started_at AS approved_before_start
        FROM {{s}}.tickets t
        LEFT JOIN {{s}}.collections c ON c.gid = t.primary_project_gid AND c.{LIVE}
        LEFT JOIN decided d ON d.ticket_gid = t.gid
        LEFT JOIN {{s}}.users u ON u.gid = d.approver_gid AND u.{LIVE}
        LEFT JOIN started s ON s.ticket_gid = t.gid
        WHERE t.is_change AND t.{LIVE}
        """,
    ),
    "access_review": (
        "Who can reach what in the latest access snapshot: each user's workspace, team and project "
        "access with names, and whether the user is still active.",
        ("user_access", "users", "workspaces", "teams", "projects"),
        f"""
        WITH latest AS (SELECT max(snapshot_at) AS snapshot_at FROM {{s}}.user_access)
        SELECT a.snapshot_at, a.user_gid, u.name AS user_name, u.email AS user_email, a.user_is_active,
               a.resource_type, a.resource_gid, coalesce(w.name, tm.name, p.name) AS resource_name, a.role
        FROM {{s}}.user_access a JOIN latest USING (snapshot_at)
        LEFT JOIN {{s}}.users u ON u.gid = a.user_gid AND u.{LIVE}
        LEFT JOIN {{s}}.workspaces w ON a.resource_type = 'workspace' AND w.gid = a.resource_gid AND w.{LIVE}
        LEFT JOIN {{s}}.teams tm ON a.resource_type = 'team' AND tm.gid = a.resource_gid AND tm.{LIVE}
        LEFT JOIN {{s}}.projects p ON a.resource_type = 'project' AND p.gid = a.resource_gid AND p.{LIVE}
        """,
    ),
}


def view_statements(schema: str, existing: set[str]) -> list[str]:
    """The statements (re)creating each view whose tables all exist in ``schema``."""
    s = ident(schema)
    statements = []
    for name, (comment, tables, query) in VIEWS.items():
        if not set(tables) <= existing:
            continue
        statements += [
            f"DROP VIEW IF EXISTS {s}.{ident(name)}",
            f"CREATE VIEW {s}.{ident(name)} AS {query.format(s=s)}",
            f"COMMENT ON VIEW {s}.{ident(name)} IS '{comment.replace(chr(39), chr(39) * 2)}'",
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
    return [name for name, (_, tables, _) in VIEWS.items() if set(tables) <= existing]
