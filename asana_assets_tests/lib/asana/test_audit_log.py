"""Reading the audit log from the simulator: every page, from the cursor on, without duplicates;
a workspace without it is noted, not failed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from asana_assets.lib.asana.audit_log import quarantined, read_audit_log
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.schema import to_arrow
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FAST = SimulatorConfig(requests_per_minute=1_000_000)


def read(base_url, workspaces, cursors, current=None):
    async def run():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=1_000_000) as client:
            return await read_audit_log(client, workspaces, cursors, current, NOW)

    return asyncio.run(run())


def enterprise_world(members: int):
    """``members`` users invited one minute apart, then one admin grant at a set time."""
    world = World(now=NOW)
    world.enterprise = True
    acme = world.add_workspace("Acme", ["acme.example"])
    users = [world.add_user(f"User {i}", f"user{i}@acme.example") for i in range(members)]
    for i, user in enumerate(users):
        world.add_workspace_membership(user, acme, at=NOW - timedelta(days=1) + timedelta(minutes=i))
    world.default_user = users[0].gid
    world.service_accounts.add(users[0].gid)  # only a service account may read the audit log
    return world, acme, users


def test_every_page_is_read_and_the_cursor_is_the_last_event():
    world, acme, _users = enterprise_world(150)  # two pages of 100
    with Simulator(world, FAST) as sim:
        first = read(sim.base_url, [acme.gid], {})
    assert first.table.num_rows == 150 and first.added == 150
    assert first.cursors == {acme.gid: (NOW - timedelta(days=1) + timedelta(minutes=149)).isoformat()}
    assert first.unavailable == {} and first.quarantine == []


def test_a_later_read_adds_only_the_new_events_once():
    world, acme, users = enterprise_world(3)
    with Simulator(world, FAST) as sim:
        first = read(sim.base_url, [acme.gid], {})
        granted_at = NOW + timedelta(hours=2)
        world.set_workspace_admin(users[2], acme, actor=users[0], at=granted_at)
        second = read(sim.base_url, [acme.gid], first.cursors, first.table)
    # The last invitation is read again (start_at is inclusive) but kept once.
    assert second.table.num_rows == 4 and second.added == 1
    assert second.table["gid"].to_pylist() == [e["gid"] for e in world.audit_log]
    grant = second.table.to_pylist()[-1]
    assert (grant["event_type"], grant["actor_gid"], grant["subject_user_gid"], grant["created_at"],
            grant["new_value"]) == ("user_workspace_admin_role_changed", users[0].gid, users[2].gid, granted_at,
                                    "admin")
    assert second.cursors == {acme.gid: granted_at.isoformat()}


def test_a_workspace_without_the_audit_log_is_noted_and_the_others_are_read():
    world, acme, _users = enterprise_world(2)
    with world.lock:
        labs = world.add_workspace("Labs", ["labs.example"])
    with Simulator(world, FAST) as sim:
        world.enterprise = False  # the plan lapsed: both workspaces now answer 402
        lapsed = read(sim.base_url, [acme.gid, labs.gid], {acme.gid: "2026-05-01T00:00:00+00:00"})
    assert set(lapsed.unavailable) == {acme.gid, labs.gid}
    assert all("402" in why for why in lapsed.unavailable.values())
    assert lapsed.table.num_rows == 0
    assert lapsed.cursors == {acme.gid: "2026-05-01T00:00:00+00:00"}  # kept for when it comes back


def test_a_refused_event_joins_the_quarantine_once_even_without_a_gid():
    """Matched by its record: read again, a gid-less event replaces its row; others are kept."""
    crawl_row = {"table": "tasks", "gid": "1", "error": "name: bad", "raw": "{}", "observed_at": NOW}
    event = {"table": "audit_log_events", "gid": None, "error": "gid: Field required", "raw": '{"x":1}',
             "observed_at": NOW}
    first = quarantined(to_arrow("quarantine", [crawl_row]), [event])
    again = quarantined(first, [{**event, "observed_at": NOW + timedelta(days=1)}])
    assert [(r["table"], r["observed_at"]) for r in again.to_pylist()] == [
        ("tasks", NOW), ("audit_log_events", NOW + timedelta(days=1))]
    assert quarantined(None, [event]).num_rows == 1  # no quarantine table yet
