"""Reading the audit log from the simulator: every page, resumed by the offset the spec says to
keep (a state saved before offsets resumes from its created_at), without duplicates; only the
documented fields name whom an event is about; a workspace without it is noted, not failed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from asana_assets.lib.asana.audit_log import quarantined, read_audit_log
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.schema import to_arrow
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FAST = SimulatorConfig(requests_per_minute=1_000_000)


def read(base_url, workspaces, starts, offsets=None, current=None, queries=None):
    """One read; ``queries`` (a list), when given, receives each request's query, in order."""
    async def run():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=1_000_000) as client:
            if queries is not None:
                get = client.get

                async def recorded(path, params=None):
                    queries.append({k: str(v) for k, v in (params or {}).items()})
                    return await get(path, params)

                client.get = recorded
            return await read_audit_log(client, workspaces, starts, offsets or {}, current, NOW)

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


def test_every_page_is_read_and_the_offset_is_kept():
    world, acme, _users = enterprise_world(150)  # two pages of 100
    with Simulator(world, FAST) as sim:
        first = read(sim.base_url, [acme.gid], {})
    assert first.table.num_rows == 150 and first.added == 150
    assert list(first.offsets) == [acme.gid] and first.starts == {}  # opened from the first event
    assert first.unavailable == {} and first.quarantine == []


def test_a_later_read_resumes_by_the_offset_and_adds_only_the_new_events():
    world, acme, users = enterprise_world(3)
    with Simulator(world, FAST) as sim:
        first = read(sim.base_url, [acme.gid], {})
        granted_at = NOW + timedelta(hours=2)
        world.set_workspace_admin(users[2], acme, actor=users[0], at=granted_at)
        queries, later = [], []
        second = read(sim.base_url, [acme.gid], first.starts, first.offsets, first.table, queries)
        third = read(sim.base_url, [acme.gid], second.starts, second.offsets, second.table, later)  # nothing new
    # Resumed by the kept offset alone: the grant, then the end of current data (an empty page).
    assert [set(q) for q in queries] == [{"limit", "offset"}, {"limit", "offset"}]
    assert queries[0]["offset"] == first.offsets[acme.gid]
    assert second.table.num_rows == 4 and second.added == 1
    assert second.table["gid"].to_pylist() == [e["gid"] for e in world.audit_log]
    grant = second.table.to_pylist()[-1]
    assert (grant["event_type"], grant["actor_gid"], grant["subject_user_gid"], grant["created_at"],
            grant["old_value"], grant["new_value"]) == (
        "user_workspace_admin_role_changed", users[0].gid, users[2].gid, granted_at, "member", "admin")
    # Edge: nothing new since: one request, an empty page, the same place in the stream.
    assert third.added == 0 and len(later) == 1 and third.table.num_rows == 4


def test_a_state_saved_before_offsets_resumes_from_its_last_event_then_by_offset():
    world, acme, users = enterprise_world(3)
    last_read = (NOW - timedelta(days=1) + timedelta(minutes=1)).isoformat()  # the second invitation
    with Simulator(world, FAST) as sim:
        opened, queries = [], []
        legacy = read(sim.base_url, [acme.gid], {acme.gid: last_read}, queries=opened)
        world.set_workspace_admin(users[1], acme, actor=users[0], at=NOW + timedelta(hours=1))
        resumed = read(sim.base_url, [acme.gid], legacy.starts, legacy.offsets, legacy.table, queries)
    assert [q.get("start_at") for q in opened] == [last_read, last_read]
    # start_at is inclusive: the second invitation is read again, the first is not.
    assert legacy.table["gid"].to_pylist() == [e["gid"] for e in world.audit_log[1:3]]
    # Later reads send the kept offset with the filter the stream was opened with.
    assert legacy.starts == {acme.gid: last_read} and acme.gid in legacy.offsets
    assert queries[0] == {"limit": "100", "start_at": last_read, "offset": legacy.offsets[acme.gid]}
    assert resumed.added == 1 and resumed.table.num_rows == 3


def test_a_refused_offset_resumes_from_the_newest_event_kept():
    world, acme, users = enterprise_world(3)
    with Simulator(world, FAST) as sim:
        first = read(sim.base_url, [acme.gid], {})
        world.set_workspace_admin(users[2], acme, actor=users[0], at=NOW + timedelta(hours=2))
        queries = []
        again = read(sim.base_url, [acme.gid], {}, {acme.gid: "not-an-offset"}, first.table, queries)
    newest = (NOW - timedelta(days=1) + timedelta(minutes=2)).isoformat()  # the third invitation
    assert queries[0]["offset"] == "not-an-offset" and queries[1] == {"limit": "100", "start_at": newest}
    # The newest kept event is read again and kept once; the grant is added.
    assert again.added == 1 and again.table["gid"].to_pylist() == [e["gid"] for e in world.audit_log]
    assert again.starts == {acme.gid: newest} and again.offsets[acme.gid] != "not-an-offset"


def test_only_documented_fields_name_whom_an_event_is_about():
    """A user or role event is about its resource; a team or project membership event names the
    team or project only: no subject, even where details carry an undocumented user."""
    world, acme, users = enterprise_world(2)
    with world.lock:
        team = world.add_team(acme, "Web")
    world.add_team_membership(team, users[1], actor=users[0], at=NOW)
    world.deactivate_user(users[1], acme, actor=users[0], at=NOW + timedelta(minutes=1))
    invented = {**world.audit_log[-2], "gid": "9990003", "details": {"user": {"gid": users[1].gid}}}
    world.audit_log.append(invented)
    with Simulator(world, FAST) as sim:
        rows = {row["gid"]: row for row in read(sim.base_url, [acme.gid], {}).table.to_pylist()}
    added, deprovisioned = (rows[e["gid"]] for e in world.audit_log[2:4])
    assert (added["event_type"], added["resource_type"], added["resource_gid"], added["subject_user_gid"]) == (
        "team_member_added", "team", team.gid, None)
    assert (deprovisioned["event_type"], deprovisioned["subject_user_gid"]) == ("user_deprovisioned", users[1].gid)
    assert rows["9990003"]["subject_user_gid"] is None


def test_a_workspace_without_the_audit_log_is_noted_and_the_others_are_read():
    world, acme, _users = enterprise_world(2)
    with world.lock:
        labs = world.add_workspace("Labs", ["labs.example"])
    with Simulator(world, FAST) as sim:
        world.enterprise = False  # the plan lapsed: both workspaces now answer 402
        lapsed = read(sim.base_url, [acme.gid, labs.gid], {acme.gid: "2026-05-01T00:00:00+00:00"},
                      {acme.gid: "kept-offset"})
    assert set(lapsed.unavailable) == {acme.gid, labs.gid}
    assert all("402" in why for why in lapsed.unavailable.values())
    assert lapsed.table.num_rows == 0
    # Kept for when it comes back.
    assert lapsed.starts == {acme.gid: "2026-05-01T00:00:00+00:00"} and lapsed.offsets == {acme.gid: "kept-offset"}


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
