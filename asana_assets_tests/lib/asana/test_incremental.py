"""Incremental sync from the events feed: after changes at the source the merged tables equal the
simulator's ground truth, the requests follow the changes rather than the workspace, and an
expired token is recovered by re-listing without loss."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.crawl import crawl
from asana_assets.lib.asana.incremental import incremental_sync, record_full_sync
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.storage.files import StateStore
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world
from asana_assets_tests.support.truth import assert_matches_truth
from asana_assets_tests.support.worlds import change_the_world

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUOTA = 1_000_000


def full(base_url):
    async def run():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
            return await crawl(client, track_events=True)

    return asyncio.run(run())


def incremental(base_url, state, tables):
    async def run():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
            return await incremental_sync(client, state, tables)

    return asyncio.run(run())


@pytest.fixture
def world():
    return generate_world(seed=8, tasks=600, now=NOW)


def test_an_incremental_sync_applies_every_change(world, tmp_path):
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = full(sim.base_url)
        state = SyncState()
        record_full_sync(state, first)
        StateStore(tmp_path / "state.json").save(state)
        deleted = change_the_world(world)
        sim.stats.reset()
        state = StateStore(tmp_path / "state.json").load()
        result = incremental(sim.base_url, state, first.tables)
        requests = sim.stats.total
    assert deleted in result.deleted
    assert_matches_truth(result.result.tables, world.ground_truth())
    full_requests = first.client_stats["requests"]
    print(f"full sync: {full_requests} requests; incremental after ~10 changes: {requests}")
    projects = len(world.ground_truth()["projects"])
    # One events poll per project, the workspace listings, and a few reads per change.
    assert requests < projects + 60 < full_requests


def test_an_expired_token_is_recovered_by_relisting(world):
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = full(sim.base_url)
        state = SyncState()
        record_full_sync(state, first)
        change_the_world(world)
        sim.expire_sync_tokens()
        result = incremental(sim.base_url, state, first.tables)
    assert result.relisted == {p["gid"] for p in world.ground_truth()["projects"]}
    assert_matches_truth(result.result.tables, world.ground_truth())


def test_a_token_past_its_life_is_not_trusted(world):
    state = SyncState()
    state.advance({"1": "token"}, ["1"], NOW, full=True)
    assert state.token("1", NOW + timedelta(hours=23)) == "token"
    assert state.token("1", NOW + timedelta(hours=25)) is None


def test_a_crashed_run_is_replayed_from_the_saved_tokens(world, tmp_path):
    """The state is saved only after a successful load: a run that dies keeps the old tokens,
    and the next run, reading the same changes again, ends with the same tables."""
    store = StateStore(tmp_path / "state.json")
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = full(sim.base_url)
        state = SyncState()
        record_full_sync(state, first)
        store.save(state)
        change_the_world(world)
        incremental(sim.base_url, store.load(), first.tables)  # dies before saving its state
        replayed = incremental(sim.base_url, store.load(), first.tables)
    assert_matches_truth(replayed.result.tables, world.ground_truth())


def test_a_run_for_the_changed_projects_polls_only_them(world):
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = full(sim.base_url)
        state = SyncState()
        record_full_sync(state, first)
        task = next(t for t in world.ground_truth()["tasks"] if t["memberships"] and not t["parent"])
        project = task["memberships"][0]["project"]["gid"]
        world.update_task(task["gid"], name="Changed in one project", actor=world.default_user)
        sim.stats.reset()

        async def run():
            async with AsanaClient(sim.base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
                return await incremental_sync(client, state, first.tables, projects=[project])

        result = asyncio.run(run())
        polls = sim.stats.by_route["/api/1.0/events"]
    assert polls == 1
    assert_matches_truth(result.result.tables, world.ground_truth())
    assert result.result.tables["projects"]["synced_at"].null_count == 0  # the others keep theirs
