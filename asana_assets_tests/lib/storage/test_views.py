"""The analysts' views answer their questions on a hand-built organisation, after a sync into
Postgres through the Dagster job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import adbc_driver_postgresql.dbapi as adbc

from asana_assets.lib.storage.postgres import ident, libpq_url
from asana_assets.simulator import World
from asana_assets_tests.support import POSTGRES_URL
from asana_assets_tests.support.pipeline import run_pipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def query(sql: str) -> list[dict]:
    with adbc.connect(libpq_url(POSTGRES_URL)) as connection, connection.cursor() as cur:
        cur.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def test_findings_change_tickets_and_access_review_name_people_and_tickets(schema, tmp_path):
    w = World(now=T0 - timedelta(days=10))
    ws = w.add_workspace("Acme", ["acme.example"])
    admin, alice, bob, carol = (w.add_user(n, f"{n.lower()}@acme.example") for n in ("Admin", "Alice", "Bob", "Carol"))
    for user in (admin, alice, bob, carol):
        w.add_workspace_membership(user, ws, is_admin=user is admin)
    w.default_user = admin.gid
    change = w.add_project(ws, "Change Management", owner=admin)
    todo, doing = w.add_section(change, "To Do"), w.add_section(change, "In Progress")
    approved = w.create_task("Rotate keys", actor=alice, project=change, section=todo, assignee=bob, at=T0)
    subtask = w.create_task("Approve rotation", actor=alice, parent=approved, resource_subtype="approval",
                            assignee=carol, at=T0 + timedelta(hours=1))
    w.set_approval_status(subtask, "approved", actor=carol, at=T0 + timedelta(hours=2))
    w.move_task_to_section(approved, doing, actor=bob, at=T0 + timedelta(hours=3))
    unapproved = w.create_task("Open the firewall", actor=alice, project=change, section=todo, assignee=bob, at=T0)
    w.move_task_to_section(unapproved, doing, actor=bob, at=T0 + timedelta(hours=4))

    assert run_pipeline(w, tmp_path, T0 + timedelta(days=20), postgres=(POSTGRES_URL, schema)).success
    s = ident(schema)

    changes = {r["ticket_name"]: r for r in query(f"SELECT * FROM {s}.change_tickets")}
    assert set(changes) == {"Rotate keys", "Open the firewall"}
    rotate = changes["Rotate keys"]
    assert (rotate["latest_decision"], rotate["approver_name"], rotate["approver_email"]) == (
        "approved", "Carol", "carol@acme.example")
    assert rotate["implementation_started_at"] == T0 + timedelta(hours=3) and rotate["approved_before_start"]
    assert rotate["project_name"] == "Change Management"
    firewall = changes["Open the firewall"]
    assert firewall["latest_decision"] is None and firewall["implementation_started_at"] == T0 + timedelta(hours=4)

    findings = query(f"SELECT * FROM {s}.open_findings WHERE monitor_id = 'changes_approved'")
    assert [(f["ticket_name"], f["project_name"]) for f in findings] == [("Open the firewall", "Change Management")]

    review = query(f"SELECT * FROM {s}.access_review WHERE resource_type = 'workspace' ORDER BY user_name")
    assert [(r["user_name"], r["user_email"], r["resource_name"], r["role"]) for r in review] == [
        ("Admin", "admin@acme.example", "Acme", "admin"), ("Alice", "alice@acme.example", "Acme", "member"),
        ("Bob", "bob@acme.example", "Acme", "member"), ("Carol", "carol@acme.example", "Acme", "member")]
    comments = query(f"SELECT obj_description(to_regclass('{s}.change_tickets'), 'pg_class') AS c")
    assert "approval" in comments[0]["c"]
