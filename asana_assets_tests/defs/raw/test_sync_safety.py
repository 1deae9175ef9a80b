"""A sync never wipes or wedges the warehouse: hostile text is stored and flagged, and an answer
that would erase the warehouse is refused before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow.compute as pc

from asana_assets.lib.schema import RAW_TABLES
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import Simulator, World, generate_world
from asana_assets_tests.support import POSTGRES_URL as URL
from asana_assets_tests.support.pipeline import ASSETS, RUN_CHECKS, SIMULATOR, materialize, resources, run_pipeline
from asana_assets_tests.support.postgres import PostgresTables

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_a_task_named_with_a_nul_is_synced_into_both_stores_and_flagged(schema, tmp_path):
    world = generate_world(seed=11, tasks=120, now=NOW)
    task = next(t for t in world.ground_truth()["tasks"] if not t["parent"])["gid"]
    world.update_task(task, name="before\x00after", actor=world.default_user)
    run = run_pipeline(world, tmp_path, NOW, postgres=(URL, schema))
    assert run.success  # every later table and every monitor ran
    tasks = ParquetWarehouse(tmp_path).read("tasks")
    assert tasks.filter(pc.equal(tasks["gid"], task))["name"].to_pylist() == ["before\x00after"]
    with PostgresTables(URL, schema) as postgres:
        stored = postgres.read("tasks")
        tickets = postgres.read("tickets")
    assert stored.filter(pc.equal(stored["gid"], task))["name"].to_pylist() == ["before\\0after"]
    assert tickets.filter(pc.equal(tickets["gid"], task))["name"].to_pylist() == ["before\\0after"]
    # Flagged: the task, and the story the simulator recorded for the rename (its text and new
    # name hold the NUL too).
    renames = [s["gid"] for s in world.ground_truth()["stories"]
               if s["target"]["gid"] == task and "\x00" in (s.get("text") or "")]
    assert len(renames) == 1
    quarantine = ParquetWarehouse(tmp_path).read("quarantine").to_pylist()
    assert sorted((q["table"], q["gid"]) for q in quarantine) == [("stories", renames[0]), ("tasks", task)]
    assert all("NUL" in q["error"] for q in quarantine)
    assert (tmp_path / "evidence").exists()


def test_an_empty_answer_is_refused_with_the_numbers_and_nothing_changes(schema, tmp_path):
    world = generate_world(seed=12, tasks=150, now=NOW)
    assert run_pipeline(world, tmp_path, NOW, postgres=(URL, schema)).success
    parquet = ParquetWarehouse(tmp_path)
    before = {t: parquet.read(t) for t in RAW_TABLES}
    with PostgresTables(URL, schema) as postgres:
        before_pg = {t: postgres.read(t).num_rows for t in RAW_TABLES}

    # A server that answers 200 with no workspace at all (another account's token, a proxy).
    with Simulator(World(now=NOW + timedelta(hours=1)), SIMULATOR) as empty:
        refused = materialize([*ASSETS, *RUN_CHECKS], resources=resources(
            empty.base_url, tmp_path, (URL, schema), as_of=NOW.isoformat()), raise_on_error=False)
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description
    assert "no workspace although the warehouse holds one" in message
    # The numbers: every task and user would have gone (150-task world: counts from the first sync).
    assert f"tasks: {before['tasks'].num_rows} of {before['tasks'].num_rows} rows (100%)" in message
    assert "--allow-mass-deletion" in message
    for table in RAW_TABLES:
        assert parquet.read(table).equals(before[table]), table
    with PostgresTables(URL, schema) as postgres:
        assert {t: postgres.read(t).num_rows for t in RAW_TABLES} == before_pg


def test_a_confirmed_mass_deletion_goes_through(schema, tmp_path):
    world = generate_world(seed=12, tasks=150, now=NOW)
    assert run_pipeline(world, tmp_path, NOW).success
    with Simulator(World(now=NOW + timedelta(hours=1)), SIMULATOR) as empty:
        confirmed = materialize(
            [*ASSETS], resources=resources(empty.base_url, tmp_path, as_of=NOW.isoformat()),
            run_config={"ops": {"asana_raw_sync": {"config": {"allow_mass_deletion": True}}}},
            selection=[a for a in ASSETS[0].keys],
        )
    assert confirmed.success
    assert ParquetWarehouse(tmp_path).read("tasks").num_rows == 0
