"""End-to-end crawls of the simulator: the tables equal its ground truth, under faults too."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from asana_assets.lib.asana import crawl as crawl_module
from asana_assets.lib.asana.client import AsanaClient, AuthenticationError
from asana_assets.lib.asana.crawl import _Chunks, crawl
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world
from asana_assets_tests.support.truth import assert_matches_truth

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUOTA = 1_000_000  # tests raise the per-minute quota out of the way; pacing has its own tests


def fast(**faults) -> SimulatorConfig:
    return SimulatorConfig(requests_per_minute=QUOTA, **faults)


def sync(base_url: str, token: str = DEMO_TOKEN, **client_options):
    async def run():
        options = {"requests_per_minute": QUOTA, **client_options}
        async with AsanaClient(base_url, token, **options) as client:
            return await crawl(client)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=3, tasks=400, now=NOW)


def test_full_sync_equals_ground_truth(world):
    with Simulator(world, fast()) as sim:
        result = sync(sim.base_url)
    assert result.tables["quarantine"].num_rows == 0
    assert_matches_truth(result.tables, world.ground_truth())
    # Subtasks and their stories are reached, not only top-level tasks.
    tasks = result.tables["tasks"].to_pylist()
    subtasks = {t["gid"] for t in tasks if t["parent_gid"]}
    assert subtasks and subtasks <= {s["task_gid"] for s in result.tables["stories"].to_pylist()} | {
        t["gid"] for t in tasks if not t["num_subtasks"]
    }


def test_tables_read_in_many_chunks_equal_ground_truth(world, monkeypatch):
    """Stories and task rows converted to Arrow every 7 rows: the same tables as in one piece."""
    monkeypatch.setattr(crawl_module, "CHUNK_ROWS", 7)
    with Simulator(world, fast()) as sim:
        result = sync(sim.base_url)
    assert result.tables["stories"].num_rows > 7
    assert_matches_truth(result.tables, world.ground_truth())


def membership(task: str, project: str, section: str) -> dict:
    return {"task_gid": task, "project_gid": project, "section_gid": section, "position": 0}


def test_a_key_read_twice_keeps_its_last_row_in_the_place_of_its_first(monkeypatch):
    # Chunks of two rows, so the key's two readings are in different chunks.
    monkeypatch.setattr(crawl_module, "CHUNK_ROWS", 2)
    chunks = _Chunks("task_memberships")
    for row in [membership("1", "10", "100"), membership("2", "10", "100"), membership("1", "10", "101"),
                membership("3", "20", "200")]:
        chunks.add(row)
    rows = chunks.table(("task_gid", "project_gid"), set()).to_pylist()
    assert rows == [membership("1", "10", "101"), membership("2", "10", "100"), membership("3", "20", "200")]


def test_rows_read_once_keep_their_order(monkeypatch):
    monkeypatch.setattr(crawl_module, "CHUNK_ROWS", 2)
    chunks = _Chunks("task_memberships")
    read = [membership("2", "10", "100"), membership("1", "10", "100"), membership("1", "20", "200")]
    for row in read:
        chunks.add(row)
    assert chunks.table(("task_gid", "project_gid"), set()).to_pylist() == read


def test_rows_of_an_object_gone_during_the_crawl_are_dropped(monkeypatch):
    """Either owner column naming a gone object drops the row; a row naming none stays."""
    monkeypatch.setattr(crawl_module, "CHUNK_ROWS", 2)
    chunks = _Chunks("task_memberships")
    for row in [membership("1", "10", "100"), membership("2", "20", "200"), membership("3", "30", "300")]:
        chunks.add(row)
    rows = chunks.table(("task_gid", "project_gid"), {"1", "20"}).to_pylist()
    assert rows == [membership("3", "30", "300")]


def test_requests_stay_at_the_minimum(world):
    """No task is listed twice, leaves never cost a subtask request."""
    with Simulator(world, fast()) as sim:
        result = sync(sim.base_url)
        by_route = sim.stats.by_route
    truth = world.ground_truth()
    parents = {t["parent"]["gid"] for t in truth["tasks"] if t["parent"]}
    assert by_route["/api/1.0/tasks/{task_gid}/subtasks"] == len(parents)
    assert by_route["/api/1.0/tasks/{task_gid}/stories"] >= len(truth["tasks"])
    assert result.client_stats["requests"] == sum(by_route.values())


@pytest.mark.slow
def test_faults_lose_and_duplicate_nothing():
    """429s, 5% 500s and dropped connections: the tables still equal the truth.

    A smaller world and 1% of 429s: every 429 pauses the whole client for Retry-After (a whole
    second). The faults are a seeded sequence, so the crawl meets the same few each time.
    """
    world = generate_world(seed=4, tasks=150, now=NOW)
    config = fast(rate_limit_storm_rate=0.01, error_rate=0.05, drop_rate=0.02, fault_seed=11)
    with Simulator(world, config) as sim:
        result = sync(sim.base_url, backoff_base=0.01, backoff_max=0.2, max_retries=12)
        stats = sim.stats
    assert stats.by_status[429] > 0 and stats.by_status[500] > 0 and stats.dropped > 0
    # A dropped keep-alive connection may be retried inside the transport, so the client's
    # own counters see 429s and 500s but not every drop; the server counted them.
    assert result.client_stats["rate_limited"] > 0 and result.client_stats["retries"] > 0
    assert result.tables["quarantine"].num_rows == 0
    assert_matches_truth(result.tables, world.ground_truth())


def test_malformed_records_are_quarantined_and_nothing_else_is_dropped(world):
    config = fast(malformed_rate=0.03, fault_seed=5)
    with Simulator(world, config) as sim:
        result = sync(sim.base_url)
        malformed = sim.malformed_gids()
    assert malformed
    quarantine = result.tables["quarantine"].to_pylist()
    assert {q["gid"] for q in quarantine} == malformed
    assert all(q["error"] and q["raw"] and q["table"] in {"tasks", "stories"} for q in quarantine)
    assert_matches_truth(result.tables, world.ground_truth(), excluded=malformed)


def test_a_completed_task_without_its_completion_time_is_quarantined_with_the_reason():
    """Asana sets completed_at on every completed task: one without it cannot be placed in a
    history, so it goes to the quarantine, named, and every other record still syncs."""
    world = generate_world(seed=3, tasks=60, now=NOW)
    broken = next(o for o in world.objects.values() if o.resource_type == "task" and o.completed)
    broken.completed_at = None
    with Simulator(world, fast()) as sim:
        result = sync(sim.base_url)
    [row] = [q for q in result.tables["quarantine"].to_pylist() if q["table"] == "tasks"]
    assert row["gid"] == broken.gid
    assert "completed is true but completed_at is null" in row["error"]
    assert broken.gid not in result.tables["tasks"]["gid"].to_pylist()
    assert_matches_truth(result.tables, world.ground_truth(), excluded={broken.gid})


def test_a_wrong_token_says_to_reconnect(world):
    with Simulator(world, fast()) as sim, pytest.raises(AuthenticationError) as caught:
        sync(sim.base_url, token="not-a-token")
    assert "reconnect" in str(caught.value)
    assert "not-a-token" not in str(caught.value) + repr(caught.value)
