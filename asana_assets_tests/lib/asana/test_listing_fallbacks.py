"""Listings Asana refuses: a project's tasks too large to list whole are read section by section,
a large domain's projects team by team, and the tables equal the simulator's ground truth; a 402
or 403 on one project's listing is noted (in the result and the quarantine) and the crawl goes
on; a 401, or a refusal of the workspace's own listing, still stops it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest

from asana_assets.lib.asana import crawl as crawl_module
from asana_assets.lib.asana.client import (
    AsanaClient,
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    ResultTooLargeError,
)
from asana_assets.lib.asana.crawl import REFUSED, Refusal, crawl
from asana_assets.lib.asana.incremental import record_full_sync
from asana_assets.lib.asana.reconcile import reconcile_sync
from asana_assets.lib.asana.state import SyncState
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world
from asana_assets_tests.support.truth import assert_matches_truth

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUOTA = 1_000_000
LIMIT = 200  # results a listing may hold before Asana truncates it (the simulator's max_listing_results)
SECTION_TASKS = "/api/1.0/sections/{section_gid}/tasks"
TEAM_PROJECTS = "/api/1.0/teams/{team_gid}/projects"


def run(base_url: str, work, **options):
    async def go():
        async with AsanaClient(base_url, DEMO_TOKEN, **{"requests_per_minute": QUOTA, **options}) as client:
            return await work(client)

    return asyncio.run(go())


def sync(base_url: str, **options):
    return run(base_url, crawl, **options)


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=3, tasks=400, now=NOW)


@pytest.fixture(scope="module")
def grown():
    """A world with one project grown past LIMIT tasks (each of its sections under it) and one
    grown to exactly LIMIT; returns the world and those two projects."""
    world = generate_world(seed=3, tasks=400, now=NOW)
    truth = world.ground_truth()
    # Every other listing stays under the limit: the longest is a task's stories.
    assert max(len(world.objects[t["gid"]].stories) for t in truth["tasks"]) < LIMIT
    projects = [world.objects[p["gid"]] for p in truth["projects"]]
    over, exact = sorted(projects, key=lambda p: len(p.sections), reverse=True)[:2]
    for project, size in ((over, LIMIT + 30), (exact, LIMIT)):
        sections = list(project.sections)
        for i in range(size - len(world.project_tasks(project))):
            world.create_task(f"Grown {i}", project=project.gid, section=sections[i % len(sections)],
                              actor=world.default_user)
        assert len(world.project_tasks(project)) == size
    assert all(len(world.objects[s].tasks) <= LIMIT for s in over.sections)
    return world, over.gid, exact.gid


def refusal_rows(result) -> list[dict]:
    return [row for row in result.tables["quarantine"].to_pylist() if row["error"].startswith(REFUSED)]


# ---------------------------------------------------------------------- too large: in parts
def test_a_project_too_large_to_list_whole_is_read_by_section(grown):
    world, over, exact = grown
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA, max_listing_results=LIMIT)) as sim:
        result = sync(sim.base_url)
        by_route = dict(sim.stats.by_route)
    assert result.tables["quarantine"].num_rows == 0
    assert_matches_truth(result.tables, world.ground_truth())
    # Only the project past the limit was split; the one exactly at it was listed whole.
    assert result.split == {"tasks_by_section": [over]}
    assert by_route[SECTION_TASKS] == len(world.objects[over].sections)
    assert result.listings() == {"split": {"tasks_by_section": 1}, "refused": {}}
    # Their counts and last syncs are those of projects listed whole: the monitor can judge them.
    projects = {p["gid"]: p for p in result.tables["projects"].to_pylist()}
    assert (projects[over]["num_tasks"], projects[exact]["num_tasks"]) == (LIMIT + 30, LIMIT)
    assert projects[over]["synced_at"] is not None and projects[exact]["synced_at"] is not None


def test_the_reconcile_reads_a_project_too_large_by_section_too(grown):
    world, over, _exact = grown
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA, max_listing_results=LIMIT)) as sim:
        first = run(sim.base_url, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, first)
        reconciled = run(sim.base_url, lambda client: reconcile_sync(client, state, first.tables))
    assert reconciled.result.split == {"tasks_by_section": [over]}
    assert reconciled.result.tables["quarantine"].num_rows == 0
    assert_matches_truth(reconciled.result.tables, world.ground_truth())


def test_the_client_tells_a_truncated_listing_from_a_bad_request(grown):
    world, over, exact = grown
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA, max_listing_results=LIMIT)) as sim:
        with pytest.raises(ResultTooLargeError):
            run(sim.base_url, lambda client: client.list_all("/tasks", {"project": over}))
        # Once restarted (an offset may have expired), then refused for good: two full attempts.
        assert sim.stats.by_status[400] == 2
        assert len(run(sim.base_url, lambda client: client.list_all("/tasks", {"project": exact}))) == LIMIT
        with pytest.raises(BadRequestError) as bad:
            run(sim.base_url, lambda client: client.list_all("/tasks", {"project": "not-a-gid"}))
    assert not isinstance(bad.value, ResultTooLargeError)


def test_a_large_domain_is_listed_by_team(world):
    config = SimulatorConfig(requests_per_minute=QUOTA, large_domain_projects=0)
    with Simulator(world, config) as sim:
        result = sync(sim.base_url, max_retries=1, backoff_base=0.01)
        by_route = dict(sim.stats.by_route)
    assert result.tables["quarantine"].num_rows == 0
    assert_matches_truth(result.tables, world.ground_truth())
    assert result.split == {"projects_by_team": [world.workspaces[0]]}
    assert by_route[TEAM_PROJECTS] == len(world.objects[world.workspaces[0]].teams)


# ---------------------------------------------------------------------- refused: noted, not fatal
def test_a_402_on_one_projects_custom_field_settings_is_noted_and_the_crawl_goes_on(world):
    truth = world.ground_truth()
    project = max(truth["projects"], key=lambda p: sum(s["project"]["gid"] == p["gid"]
                                                      for s in truth["custom_field_settings"]))["gid"]
    path = f"/projects/{project}/custom_field_settings"
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA, refusals={path: 402})) as sim:
        result = sync(sim.base_url)
    assert result.refused == [Refusal("custom_field_settings", project, 402, path)]
    assert result.listings() == {
        "split": {}, "refused": {"custom_field_settings (HTTP 402)": {"projects": 1, "first": [project]}}}
    (row,) = refusal_rows(result)
    assert (row["table"], row["gid"]) == ("projects", project)
    assert orjson.loads(row["raw"]) == {"listing": "custom_field_settings", "path": path, "status": 402}
    assert result.tables["quarantine"].num_rows == 1
    # What the listing holds is missing, and nothing else is.
    settings = {s["gid"] for s in truth["custom_field_settings"] if s["project"]["gid"] != project}
    assert set(result.tables["custom_field_settings"]["gid"].to_pylist()) == settings
    assert_matches_truth(result.tables, truth)


def test_a_403_on_one_projects_tasks_leaves_it_unsynced_and_uncounted(world):
    truth = world.ground_truth()
    project = truth["projects"][0]["gid"]
    config = SimulatorConfig(requests_per_minute=QUOTA, refusals={f"/tasks?project={project}": 403})
    with Simulator(world, config) as sim:
        result = sync(sim.base_url)
    assert result.refused == [Refusal("tasks", project, 403, "/tasks")]
    row = next(p for p in result.tables["projects"].to_pylist() if p["gid"] == project)
    # tickets_synced reads a project never synced as an alarm, and its count as unknown.
    assert row["synced_at"] is None and row["num_tasks"] is None
    others = {p["gid"] for p in truth["projects"]} - {project}
    assert all(p["synced_at"] is not None for p in result.tables["projects"].to_pylist() if p["gid"] in others)


def test_a_refusal_stands_until_its_listing_is_read_again(world):
    """The reconcile re-lists every project's tasks, and a project's custom field settings only
    when something says they changed: a lifted refusal of the first is gone after it, of the
    second still stands (its rows are still missing)."""
    truth = world.ground_truth()
    fields = truth["custom_field_settings"][0]["project"]["gid"]
    tasks = next(p["gid"] for p in truth["projects"] if p["gid"] != fields)  # re-reading it re-reads only its own
    refusals = {f"/tasks?project={tasks}": 403, f"/projects/{fields}/custom_field_settings": 402}
    config = SimulatorConfig(requests_per_minute=QUOTA, refusals=refusals)
    with Simulator(world, config) as sim:
        first = run(sim.base_url, lambda client: crawl(client, track_events=True))
        assert {(r.table, r.status) for r in first.refused} == {("tasks", 403), ("custom_field_settings", 402)}
        state = SyncState()
        record_full_sync(state, first)
        again = run(sim.base_url, lambda client: reconcile_sync(client, state, first.tables))
        assert len(refusal_rows(again.result)) == 2  # still refused: each once, not twice
        sim.config.refusals = {}
        lifted = run(sim.base_url, lambda client: reconcile_sync(client, state, again.result.tables))
    (row,) = refusal_rows(lifted.result)
    assert orjson.loads(row["raw"])["listing"] == "custom_field_settings"
    assert set(lifted.result.tables["tasks"]["gid"].to_pylist()) == {task["gid"] for task in truth["tasks"]}


def test_a_refused_member_listing_still_stops_it(world):
    """Not refusable: access snapshots are history, and a project read without its members would
    record every one of them as revoked."""
    project = world.ground_truth()["project_memberships"][0]["parent"]["gid"]
    config = SimulatorConfig(requests_per_minute=QUOTA, refusals={f"/memberships?parent={project}": 403})
    with Simulator(world, config) as sim, pytest.raises(ForbiddenError):
        sync(sim.base_url)


def test_a_listing_refused_in_every_project_is_counted_and_named_in_part(world, monkeypatch):
    """A plan without a feature refuses it in every project: the run's metadata counts them and
    names the first few; the result and the quarantine name them all."""
    monkeypatch.setattr(crawl_module, "NAMED_REFUSALS", 2)
    projects = sorted(world.objects[world.workspaces[0]].projects)
    refusals = {f"/projects/{gid}/custom_field_settings": 402 for gid in projects}
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA, refusals=refusals)) as sim:
        result = sync(sim.base_url)
    assert result.listings()["refused"] == {
        "custom_field_settings (HTTP 402)": {"projects": len(projects), "first": projects[:2]}}
    assert sorted(r.project_gid for r in result.refused) == projects
    assert sorted(row["gid"] for row in refusal_rows(result)) == projects
    assert result.tables["custom_field_settings"].num_rows == 0


# ---------------------------------------------------------------------- still fatal
def test_a_401_mid_crawl_still_stops_it(world):
    project = world.objects[world.workspaces[0]].projects[-1]
    config = SimulatorConfig(requests_per_minute=QUOTA, refusals={f"/projects/{project}/custom_field_settings": 401})
    with Simulator(world, config) as sim, pytest.raises(AuthenticationError) as caught:
        sync(sim.base_url)
    assert "reconnect" in str(caught.value)


def test_a_403_on_the_workspaces_projects_still_stops_it(world):
    workspace = world.workspaces[0]
    config = SimulatorConfig(requests_per_minute=QUOTA, refusals={f"/projects?workspace={workspace}": 403})
    with Simulator(world, config) as sim, pytest.raises(ForbiddenError):
        sync(sim.base_url)
