"""The analysts' views answer their questions: on a hand-built organisation after a sync into
Postgres through the Dagster job (time in review among them), and on hand-built tables loaded
straight into Postgres, where change_tickets must say of each change exactly what the monitors'
rows say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import adbc_driver_postgresql.dbapi as adbc

from asana_assets.lib.schema import to_arrow
from asana_assets.lib.storage.postgres import PostgresWarehouse, ident, libpq_url
from asana_assets.lib.storage.views import refresh_views
from asana_assets.simulator import World
from asana_assets_tests.support import POSTGRES_URL
from asana_assets_tests.support.pipeline import run_pipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def query(sql: str) -> list[dict]:
    with adbc.connect(libpq_url(POSTGRES_URL)) as connection, connection.cursor() as cur:
        cur.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def column_comments(schema: str) -> dict[tuple[str, str], str | None]:
    """(view, column) -> its comment, for every column every view of ``schema`` returns, as Postgres lists them."""
    rows = query(f"""
        SELECT c.table_name, c.column_name, col_description(to_regclass(format('%I.%I', c.table_schema, c.table_name)),
               c.ordinal_position) AS comment
        FROM information_schema.columns c JOIN information_schema.views v USING (table_schema, table_name)
        WHERE c.table_schema = '{schema}' ORDER BY c.table_name, c.ordinal_position""")
    return {(r["table_name"], r["column_name"]): r["comment"] for r in rows}


def test_findings_change_tickets_and_access_review_name_people_and_tickets(schema, tmp_path):
    w = World(now=T0 - timedelta(days=10))
    ws = w.add_workspace("Acme", ["acme.example"])
    admin, alice, bob, carol = (w.add_user(n, f"{n.lower()}@acme.example") for n in ("Admin", "Alice", "Bob", "Carol"))
    for user in (admin, alice, bob, carol):
        w.add_workspace_membership(user, ws, is_admin=user is admin)
    w.default_user = admin.gid
    change = w.add_project(ws, "Change Management", owner=admin)
    todo, doing, review = (w.add_section(change, name) for name in ("To Do", "In Progress", "In Review"))
    approved = w.create_task("Rotate keys", actor=alice, project=change, section=todo, assignee=bob, at=T0)
    subtask = w.create_task("Approve rotation", actor=alice, parent=approved, resource_subtype="approval",
                            assignee=carol, at=T0 + timedelta(hours=1))
    w.set_approval_status(subtask, "approved", actor=carol, at=T0 + timedelta(hours=2))
    w.move_task_to_section(approved, doing, actor=bob, at=T0 + timedelta(hours=3))
    unapproved = w.create_task("Open the firewall", actor=alice, project=change, section=todo, assignee=bob, at=T0)
    w.move_task_to_section(unapproved, doing, actor=bob, at=T0 + timedelta(hours=4))
    w.move_task_to_section(unapproved, review, actor=carol, at=T0 + timedelta(hours=5))
    w.move_task_to_section(unapproved, doing, actor=bob, at=T0 + timedelta(hours=7, minutes=30))

    assert run_pipeline(w, tmp_path, T0 + timedelta(days=20), postgres=(POSTGRES_URL, schema)).success
    s = ident(schema)

    changes = {r["ticket_name"]: r for r in query(f"SELECT * FROM {s}.change_tickets")}
    assert set(changes) == {"Rotate keys", "Open the firewall"}
    # Carol approved "Rotate keys" (T0+2h) before Bob started it (T0+3h): the monitor says ok.
    rotate = changes["Rotate keys"]
    assert (rotate["latest_decision"], rotate["latest_approver_name"], rotate["latest_approver_email"]) == (
        "approved", "Carol", "carol@acme.example")
    assert (rotate["changes_approved_status"], rotate["approved_before_start"]) == ("ok", True)
    assert rotate["project_name"] == "Change Management"
    # "Open the firewall" started (T0+4h) with no approval at all: an alarm.
    firewall = changes["Open the firewall"]
    assert firewall["latest_decision"] is None
    assert (firewall["changes_approved_status"], firewall["approved_before_start"]) == ("alarm", False)

    findings = query(f"SELECT * FROM {s}.open_findings WHERE monitor_id = 'changes_approved'")
    assert [(f["status"], f["ticket_name"], f["project_name"]) for f in findings] == [
        ("alarm", "Open the firewall", "Change Management")]

    review = query(f"SELECT * FROM {s}.access_review WHERE resource_type = 'workspace' ORDER BY user_name")
    assert [(r["user_name"], r["user_email"], r["resource_name"], r["role"]) for r in review] == [
        ("Admin", "admin@acme.example", "Acme", "admin"), ("Alice", "alice@acme.example", "Acme", "member"),
        ("Bob", "bob@acme.example", "Acme", "member"), ("Carol", "carol@acme.example", "Acme", "member")]
    comments = query(f"SELECT obj_description(to_regclass('{s}.change_tickets'), 'pg_class') AS c")
    assert "approval" in comments[0]["c"]

    # Time in review, one query: Carol moved "Open the firewall" into In Review at T0+5h and Bob took
    # it back at T0+7h30, 2.5 hours; no other ticket entered review.
    in_review = query(f"SELECT ticket_name, project_name, section_name, entered_by_name, entered_at, left_at,"
                      f" duration_hours FROM {s}.ticket_stays WHERE stage = 'IN_REVIEW'")
    assert in_review == [{"ticket_name": "Open the firewall", "project_name": "Change Management",
                          "section_name": "In Review", "entered_by_name": "Carol",
                          "entered_at": datetime(2026, 3, 2, 14, 0, tzinfo=UTC),
                          "left_at": datetime(2026, 3, 2, 16, 30, tzinfo=UTC), "duration_hours": 2.5}]
    assert [column for (view, column), comment in column_comments(schema).items()
            if view == "ticket_stays" and not comment] == []


# Two evaluations: the older has the greater run id, so only its as_of can make the other latest.
OLDER, LATEST = ("run-b", datetime(2026, 3, 1, 9, 0, tzinfo=UTC)), ("run-a", datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
FEB = datetime(2026, 2, 20, 9, 0, tzinfo=UTC)


def ticket(gid: str, name: str, status: str, is_change: bool = True) -> dict:
    return {"gid": gid, "workspace_gid": "w1", "name": name, "status": status, "primary_project_gid": "p1",
            "url": f"https://app.asana.com/0/p1/{gid}", "is_change": is_change}


def result(run: tuple, monitor_id: str, gid: str, status: str, reason: str, resource_type: str = "ticket") -> dict:
    run_id, evaluated_at = run
    return {"run_id": run_id, "evaluated_at": evaluated_at, "monitor_id": monitor_id, "resource_type": resource_type,
            "resource_gid": gid, "status": status, "reason": reason, "severity": "ERROR",
            "control_refs": ["SOC2:CC8.1"], "resource_url": f"https://app.asana.com/0/0/{gid}"}


def approval(approval_id: str, ticket_gid: str, source: str, decision: str, decided_at, approver_gid) -> dict:
    return {"approval_id": approval_id, "ticket_gid": ticket_gid, "source": source, "decision": decision,
            "decided_at": decided_at, "approver_gid": approver_gid,
            "approval_task_gid": f"s{ticket_gid}" if source == "subtask" else None,
            "section_gid": "approved-section" if source == "section" else None}


def test_change_tickets_say_what_the_monitors_judged_and_open_findings_show_unknowns(schema):
    tables = {
        "users": [{"gid": "u1", "name": "Ann", "email": "ann@acme.example"},
                  {"gid": "u2", "name": "Ben", "email": "ben@acme.example"},
                  {"gid": "u3", "name": "Cy", "email": "cy@acme.example"}],
        "collections": [{"gid": "p1", "name": "Change Management", "is_change_project": True}],
        "tickets": [
            ticket("101", "Deploy v2", "IN_PROGRESS"),
            ticket("102", "Rotate keys", "CLOSED"),
            ticket("103", "Migrate DB", "IN_PROGRESS"),
            ticket("104", "Open the firewall", "IN_PROGRESS"),
            ticket("105", "Update docs", "OPEN", is_change=False),
            ticket("106", "Add index", "OPEN"),
            ticket("107", "Patch kernel", "OPEN"),
            ticket("108", "Resize cluster", "IN_PROGRESS"),
        ],
        "approvals": [
            approval("a102", "102", "subtask", "approved", FEB, "u2"),
            approval("a103", "103", "subtask", "approved", FEB + timedelta(days=1), None),
            # Entered the APPROVED section, then moved back to To Do before it started: withdrawn,
            # though the approvals table holds only the approval.
            approval("a104", "104", "section", "approved", FEB + timedelta(days=2), "u2"),
            approval("a108-1", "108", "subtask", "approved", FEB + timedelta(days=4), "u2"),
            approval("a108-2", "108", "subtask", "pending", FEB + timedelta(days=4, hours=1), "u1"),
        ],
        "monitor_results": [
            # The older run judged 101 and 104 ok: the views must not read it.
            result(OLDER, "changes_approved", "101", "ok", "approved (older run)."),
            result(OLDER, "changes_approved", "104", "ok", "approved (older run)."),
            result(LATEST, "changes_approved", "101", "alarm", "started at 2026-02-20 10:00 UTC without an approval."),
            result(LATEST, "approval_segregation", "101", "skip", "no approval to judge."),
            result(LATEST, "changes_approved", "102", "ok", "approved by Ben before implementation start."),
            result(LATEST, "approval_segregation", "102", "ok", "the approver Ben is independent."),
            result(LATEST, "workflow_consistent", "102", "error", "its sections could not be read."),
            result(LATEST, "changes_approved", "103", "unknown", "approved by someone nobody can identify."),
            result(LATEST, "approval_segregation", "103", "unknown", "the approver cannot be identified."),
            result(LATEST, "changes_approved", "104", "alarm", "started at 2026-02-23 09:00 UTC without an approval."),
            result(LATEST, "approval_segregation", "104", "skip", "no approval to judge."),
            result(LATEST, "changes_approved", "105", "skip", "not a change ticket."),
            # 106 was created after the latest run: no row of its own.
            result(LATEST, "changes_approved", "107", "skip", "implementation has not started."),
            result(LATEST, "approval_segregation", "107", "skip", "no approval to judge."),
            result(LATEST, "tickets_assigned", "107", "info", "unassigned, within the grace."),
            result(LATEST, "changes_approved", "108", "alarm", "the approval was withdrawn before the start."),
            result(LATEST, "approval_segregation", "108", "skip", "no approval to judge."),
            result(LATEST, "offboarding_access_removed", "u3", "alarm", "deactivated but keeps access.", "user"),
            # ticket_sla judges a ticket per category: gid <ticket gid>/<category>, the category's own "/" kept.
            result(LATEST, "ticket_sla", "107/Incidents/P1", "alarm", "open past its deadline.", "ticket_in_category"),
            result(LATEST, "ticket_sla", "106/Incidents/P1", "ok", "completed within its deadline.",
                   "ticket_in_category"),
            # An access review item: <campaign>/<team|project>/<gid>/<user gid>, the member last.
            result(LATEST, "access_review_completed", "review-2026-03-01/team/t1/u3", "alarm",
                   "revoke decided, still holds it.", "access_review_item"),
        ],
        "user_access": [], "workspaces": [], "teams": [], "projects": [],
    }
    with PostgresWarehouse(POSTGRES_URL, schema) as warehouse:
        warehouse.commit((name, to_arrow(name, rows)) for name, rows in tables.items())
    assert refresh_views(POSTGRES_URL, schema) == ["open_findings", "change_tickets", "access_review"]
    s = ident(schema)

    rows = {r.pop("ticket_gid"): r for r in query(f"SELECT * FROM {s}.change_tickets")}
    assert sorted(rows) == ["101", "102", "103", "104", "106", "107", "108"]  # 105 is no change
    for gid, row in rows.items():  # every change ticket is read against the latest evaluation
        assert (row.pop("run_id"), row.pop("evaluated_at"), row.pop("project_name"), row.pop("url")) == (
            "run-a", datetime(2026, 3, 2, 9, 0, tzinfo=UTC), "Change Management", f"https://app.asana.com/0/p1/{gid}")
    columns = ("ticket_name", "status", "approved_before_start", "changes_approved_status", "changes_approved_reason",
               "approval_segregation_status", "approval_segregation_reason", "latest_decision",
               "latest_decision_source", "latest_decided_at", "latest_approver_gid", "latest_approver_name",
               "latest_approver_email")
    assert {gid: tuple(row[c] for c in columns) for gid, row in rows.items()} == {
        # No approval: the monitor alarms, so false (the older run's ok is not read).
        "101": ("Deploy v2", "IN_PROGRESS", False,
                "alarm", "started at 2026-02-20 10:00 UTC without an approval.", "skip", "no approval to judge.",
                None, None, None, None, None, None),
        "102": ("Rotate keys", "CLOSED", True,
                "ok", "approved by Ben before implementation start.", "ok", "the approver Ben is independent.",
                "approved", "subtask", datetime(2026, 2, 20, 9, 0, tzinfo=UTC), "u2", "Ben", "ben@acme.example"),
        # The data cannot decide: null, neither passed nor failed.
        "103": ("Migrate DB", "IN_PROGRESS", None,
                "unknown", "approved by someone nobody can identify.", "unknown", "the approver cannot be identified.",
                "approved", "subtask", datetime(2026, 2, 21, 9, 0, tzinfo=UTC), None, None, None),
        # Withdrawn: false, though the latest decision in approvals is an approval.
        "104": ("Open the firewall", "IN_PROGRESS", False,
                "alarm", "started at 2026-02-23 09:00 UTC without an approval.", "skip", "no approval to judge.",
                "approved", "section", datetime(2026, 2, 22, 9, 0, tzinfo=UTC), "u2", "Ben", "ben@acme.example"),
        # Not judged by the latest run: null.
        "106": ("Add index", "OPEN", None, None, None, None, None, None, None, None, None, None, None),
        # The rule does not apply yet: null.
        "107": ("Patch kernel", "OPEN", None,
                "skip", "implementation has not started.", "skip", "no approval to judge.",
                None, None, None, None, None, None),
        # Withdrawn by a later pending decision of the same subtask, which is the latest decision.
        "108": ("Resize cluster", "IN_PROGRESS", False,
                "alarm", "the approval was withdrawn before the start.", "skip", "no approval to judge.",
                "pending", "subtask", datetime(2026, 2, 24, 10, 0, tzinfo=UTC), "u1", "Ann", "ann@acme.example"),
    }
    alarms = query(f"SELECT ticket_gid FROM {s}.change_tickets WHERE NOT approved_before_start ORDER BY 1")
    assert [r["ticket_gid"] for r in alarms] == ["101", "104", "108"]  # exactly the latest run's alarms

    findings = query(f"SELECT * FROM {s}.open_findings")
    assert {(f["status"], f["monitor_id"], f["resource_gid"], f["ticket_name"], f["user_name"], f["run_id"])
            for f in findings} == {
        ("alarm", "changes_approved", "101", "Deploy v2", None, "run-a"),
        ("error", "workflow_consistent", "102", "Rotate keys", None, "run-a"),
        ("unknown", "changes_approved", "103", "Migrate DB", None, "run-a"),
        ("unknown", "approval_segregation", "103", "Migrate DB", None, "run-a"),
        ("alarm", "changes_approved", "104", "Open the firewall", None, "run-a"),
        ("alarm", "changes_approved", "108", "Resize cluster", None, "run-a"),
        ("alarm", "offboarding_access_removed", "u3", None, "Cy", "run-a"),
        ("alarm", "ticket_sla", "107/Incidents/P1", "Patch kernel", None, "run-a"),
        ("alarm", "access_review_completed", "review-2026-03-01/team/t1/u3", None, "Cy", "run-a"),
    } and len(findings) == 9
    # The ticket_sla row names its ticket and the ticket's project, as a ticket row does.
    [sla] = [(f["resource_type"], f["ticket_name"], f["project_name"]) for f in findings if f["monitor_id"] == "ticket_sla"]
    assert sla == ("ticket_in_category", "Patch kernel", "Change Management")

    comments = column_comments(schema)
    assert {view for view, _ in comments} == {"open_findings", "change_tickets", "access_review"}
    assert [column for column, comment in comments.items() if not comment] == []  # every column the views return
    views = {r["table_name"]: r["c"] for r in query(
        f"SELECT table_name, obj_description(to_regclass(format('%I.%I', table_schema, table_name)), 'pg_class') AS c"
        f" FROM information_schema.views WHERE table_schema = '{schema}'")}
    assert all(views.values()) and "true when ok, false when alarm, null otherwise" in views["change_tickets"]


def test_access_review_reads_the_latest_snapshot_with_guests_and_team_paths(schema):
    def access(at, user, resource_type, resource, role, guest, active=True, via=None) -> dict:
        return {"snapshot_at": at, "run_id": f"run-{at:%d}", "user_gid": user, "user_is_active": active,
                "user_is_guest": guest, "resource_type": resource_type, "resource_gid": resource, "role": role,
                "via_team_gid": via}

    tables = {
        "users": [{"gid": "u1", "name": "Ann", "email": "ann@acme.example"},
                  {"gid": "u2", "name": "Ben", "email": "ben@outside.example"},
                  {"gid": "u3", "name": "Cy", "email": "cy@acme.example"}],
        "workspaces": [{"gid": "w1", "name": "Acme"}],
        "teams": [{"gid": "t1", "workspace_gid": "w1", "name": "Platform"}],
        "projects": [{"gid": "p1", "workspace_gid": "w1", "name": "Payroll"}],
        "user_access": [
            # The older snapshot: Cy was a member of the workspace then; the view must not show it.
            access(FEB, "u3", "workspace", "w1", "member", False),
            access(LATEST[1], "u1", "workspace", "w1", "member", False),
            access(LATEST[1], "u1", "project", "p1", "owner", False),  # directly: no team
            access(LATEST[1], "u2", "workspace", "w1", "guest", True),
            access(LATEST[1], "u2", "team", "t1", "member", True),
            access(LATEST[1], "u2", "project", "p1", "editor", True, via="t1"),  # through team t1
            # No membership of w1 any more: inactive, and whether a guest is unknown.
            access(LATEST[1], "u3", "project", "p1", "viewer", None, active=False),
        ],
    }
    with PostgresWarehouse(POSTGRES_URL, schema) as warehouse:
        warehouse.commit((name, to_arrow(name, rows)) for name, rows in tables.items())
    assert refresh_views(POSTGRES_URL, schema) == ["access_review"]
    s = ident(schema)

    rows = query(f"SELECT * FROM {s}.access_review ORDER BY user_gid, resource_type, resource_gid")
    assert list(rows[0]) == ["snapshot_at", "user_gid", "user_name", "user_email", "user_is_active", "is_guest",
                             "resource_type", "resource_gid", "resource_name", "role", "via_team_gid", "via_team_name"]
    assert {r["snapshot_at"] for r in rows} == {datetime(2026, 3, 2, 9, 0, tzinfo=UTC)}
    columns = ("user_name", "resource_type", "resource_name", "role", "user_is_active", "is_guest", "via_team_gid",
               "via_team_name")
    assert [tuple(r[c] for c in columns) for r in rows] == [
        ("Ann", "project", "Payroll", "owner", True, False, None, None),
        ("Ann", "workspace", "Acme", "member", True, False, None, None),
        ("Ben", "project", "Payroll", "editor", True, True, "t1", "Platform"),
        ("Ben", "team", "Platform", "member", True, True, None, None),
        ("Ben", "workspace", "Acme", "guest", True, True, None, None),
        ("Cy", "project", "Payroll", "viewer", False, None, None, None),
    ]
    comments = column_comments(schema)
    assert [column for column, comment in comments.items() if not comment] == []
    assert comments["access_review", "via_team_name"] == "Name of that team"
    assert comments["access_review", "is_guest"].startswith("The user's membership of the resource's workspace")
    assert comments["access_review", "via_team_gid"].startswith("Project rows: the team the project is shared with")
