"""Asana's own count of each project's tasks (``GET /projects/{gid}/task_counts``): a full crawl
stores it beside the rows, the incremental sync and the reconcile refresh it for the projects
whose tasks they changed (others keep theirs), a refusal leaves it null; and the tickets_synced
rule compares it with the warehouse's rows. Expected counts come from the simulator's records
or are written by hand, never from the sync under test."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.crawl import crawl
from asana_assets.lib.asana.incremental import incremental_sync, record_full_sync
from asana_assets.lib.asana.reconcile import reconcile_sync
from asana_assets.lib.asana.state import SyncState
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world
from asana_assets.simulator.server import ApiError, AsanaApi
from asana_assets_tests.lib.compliance.test_rules import AS_OF, Org, derive, results_of

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUOTA = 1_000_000
ROUTE = "/api/1.0/projects/{project_gid}/task_counts"


def run(base_url, work):
    async def go():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
            return await work(client)

    return asyncio.run(go())


def source_counts(world) -> Counter:
    """Tasks per project as the simulator's records place them (subtasks added to a project
    and completed tasks included, as Asana counts them)."""
    return Counter(m["project"]["gid"] for t in world.ground_truth()["tasks"] for m in t["memberships"])


def stored(tables) -> dict[str, tuple]:
    """project gid -> (num_tasks, tasks_counted_at) as the projects table holds them."""
    p = tables["projects"]
    return dict(zip(p["gid"].to_pylist(), zip(p["num_tasks"].to_pylist(), p["tasks_counted_at"].to_pylist())))


def held(tables) -> Counter:
    """Tasks per project in the warehouse's task_memberships."""
    return Counter(tables["task_memberships"]["project_gid"].to_pylist())


@pytest.fixture
def world():
    return generate_world(seed=5, tasks=300, now=NOW)


def test_a_full_crawl_stores_the_count_asana_reports_for_every_project(world):
    """Edge, in the first project: a completed task and a subtask added to the project count, as
    Asana counts them; a subtask left out of it does not (3 more, by hand)."""
    first = world.ground_truth()["projects"][0]["gid"]
    before, actor = source_counts(world)[first], world.default_user
    parent = world.create_task("Parent", project=first, actor=actor)
    world.complete_task(world.create_task("Completed", project=first, actor=actor), actor=actor)
    world.add_task_to_project(world.create_task("Subtask in the project", parent=parent, actor=actor), first,
                              actor=actor)
    world.create_task("Subtask left out", parent=parent, actor=actor)
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        result = run(sim.base_url, crawl)
        counted = sim.stats.by_route[ROUTE]
    truth = source_counts(world)
    projects = stored(result.tables)
    assert counted == len(projects) > 1  # one request a project
    assert projects[first][0] == before + 3
    assert {gid: count for gid, (count, _) in projects.items()} == {gid: truth[gid] for gid in projects}
    synced = dict(zip(*(result.tables["projects"][c].to_pylist() for c in ("gid", "synced_at"))))
    assert all(at is not None and at >= synced[gid] for gid, (_, at) in projects.items())  # after the listing
    assert held(result.tables) == Counter({gid: truth[gid] for gid in projects if truth[gid]})


def test_an_incremental_sync_refreshes_only_the_projects_whose_tasks_it_changed(world):
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        full = run(sim.base_url, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, full)
        before = stored(full.tables)
        gained, lost, quiet = sorted(gid for gid, (count, _) in before.items() if count)[:3]
        world.create_task("Added since the full sync", project=gained, actor=world.default_user)
        doomed = next(t["gid"] for t in world.ground_truth()["tasks"]
                      if [m["project"]["gid"] for m in t["memberships"]] == [lost] and not t["parent"] and not t["num_subtasks"])
        world.delete_task(doomed, actor=world.default_user)
        with world.events_lost():  # unseen by the incremental sync: its project keeps its count
            world.create_task("Added without an event", project=quiet, actor=world.default_user)
        sim.stats.reset()
        result = run(sim.base_url, lambda client: incremental_sync(client, state, full.tables)).result
        counted = sim.stats.by_route[ROUTE]
    after = stored(result.tables)
    assert counted == 2
    assert after[gained][0] == before[gained][0] + 1
    assert after[lost][0] == before[lost][0] - 1
    assert after[gained][1] > before[gained][1] and after[lost][1] > before[lost][1]
    assert {gid: after[gid] for gid in after if gid not in (gained, lost)} == {
        gid: before[gid] for gid in before if gid not in (gained, lost)}
    assert after[quiet][0] == held(result.tables)[quiet] == source_counts(world)[quiet] - 1  # both as of before


def test_the_reconcile_refreshes_the_count_of_a_project_whose_change_no_event_reported(world):
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        full = run(sim.base_url, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, full)
        before = stored(full.tables)
        quiet = sorted(before)[1]
        with world.events_lost():
            world.create_task("Added without an event", project=quiet, actor=world.default_user)
        sim.stats.reset()
        result = run(sim.base_url, lambda client: reconcile_sync(client, state, full.tables)).result
        counted = sim.stats.by_route[ROUTE]
    after = stored(result.tables)
    assert counted == 1
    assert after[quiet][0] == before[quiet][0] + 1 == held(result.tables)[quiet] == source_counts(world)[quiet]
    assert {gid: after[gid] for gid in after if gid != quiet} == {gid: before[gid] for gid in before if gid != quiet}


def test_a_refused_or_malformed_count_is_stored_as_null_and_the_crawl_goes_on(world, monkeypatch):
    """Edge: the endpoint has its own limits; a 403 (or 402) and an answer without a usable
    num_tasks leave the count null (the malformed one quarantined), and every other project is
    counted."""
    projects = [p["gid"] for p in world.ground_truth()["projects"]]
    refused, malformed = projects[:2]
    served = AsanaApi.task_counts

    def task_counts(api, call):
        gid = call.request.match_info["project_gid"]
        if gid == refused:
            raise ApiError(403, f"project: Forbidden: {gid} is not visible to this user")
        if gid == malformed:
            return {"data": {"num_tasks": "12"}}
        return served(api, call)

    monkeypatch.setattr(AsanaApi, "task_counts", task_counts)
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        result = run(sim.base_url, crawl)
    counts = stored(result.tables)
    assert counts[refused][0] is None and counts[refused][1] is not None
    assert counts[malformed][0] is None and counts[malformed][1] is not None
    truth = source_counts(world)
    assert {gid: counts[gid][0] for gid in projects[2:]} == {gid: truth[gid] for gid in projects[2:]}
    q = result.tables["quarantine"].to_pylist()
    assert [(r["table"], r["gid"], r["error"]) for r in q] == [
        ("projects", malformed, "task_counts: num_tasks: Input should be a valid integer")]


# -- the tickets_synced rule on hand-built tables ------------------------------------------
PROJECT = 'Project "Change Management": '
SYNCED = "last synced at 2026-03-12 08:00 UTC"  # the Org's project: an hour before AS_OF


def counted_org(num_tasks, counted_at=AS_OF - timedelta(hours=1)) -> Org:
    """The Org's project holding, as the warehouse sees it, an open task, a completed one and a
    subtask placed in the project (3), and a subtask outside it (not counted)."""
    org = Org()
    org.rows["projects"][0].update(num_tasks=num_tasks, tasks_counted_at=counted_at)
    org.task("open")
    org.task("done", completed_at=AS_OF - timedelta(days=1), completed_by="bob")
    org.task("placed", parent="open")
    org.task("loose", None, parent="open")
    return org


def project_result(org) -> tuple[str, str]:
    t, _ = derive(org.raw())
    return results_of(t, "tickets_synced")["p1"]


def test_tickets_synced_passes_when_asana_counts_what_the_warehouse_holds():
    assert project_result(counted_org(3)) == (
        "ok", PROJECT + SYNCED + "; Asana counts 3 tasks, the warehouse holds 3.")


def test_tickets_synced_alarms_on_a_task_lost_without_a_trace():
    assert project_result(counted_org(4)) == ("alarm", PROJECT + "Asana counts 4 tasks, the warehouse holds 3.")


def test_tickets_synced_alarms_on_a_project_the_warehouse_holds_nothing_of():
    org = Org()
    org.rows["projects"][0].update(num_tasks=1, tasks_counted_at=AS_OF)
    assert project_result(org) == ("alarm", PROJECT + "Asana counts 1 task, the warehouse holds 0.")


def test_tickets_synced_is_unknown_without_a_count():
    assert project_result(counted_org(None, None)) == (
        "unknown", PROJECT + SYNCED + ", but Asana's count of its tasks was never read.")
    assert project_result(counted_org(None)) == (
        "unknown", PROJECT + "Asana's count of its tasks was asked for at 2026-03-12 08:00 UTC and not read "
        "(refused or malformed).")


def test_a_stale_sync_alarms_before_the_count_is_read():
    org = counted_org(3)
    org.rows["projects"][0]["synced_at"] = AS_OF - timedelta(days=2)
    assert project_result(org) == (
        "alarm", PROJECT + "last synced at 2026-03-10 09:00 UTC, longer ago than allowed.")
