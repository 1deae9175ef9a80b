"""The sensor and the incremental job: a change at the source is noticed, applied to Parquet and
Postgres alike, and checked by the monitors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from asana_assets.defs.automation.sensors import asana_events_sensor
from asana_assets.defs.partitions import DEFAULT, register
from asana_assets.lib.schema import RAW_TABLES
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.lib.storage.postgres import PostgresWarehouse
from asana_assets.simulator import Simulator, generate_world
from asana_assets_tests.support import POSTGRES_URL as URL
from asana_assets_tests.support.pipeline import SIMULATOR, alarms, resources, results_of, run_pipeline
from asana_assets_tests.support.truth import assert_matches_truth
from asana_assets_tests.support.worlds import change_the_world

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def tick(base_url, directory, schema):
    instance = dg.DagsterInstance.ephemeral()
    register(instance, [DEFAULT])
    with dg.build_sensor_context(instance=instance, resources=resources(base_url, directory, (URL, schema))) as context:
        return asana_events_sensor(context)


def test_the_sensor_requests_an_incremental_run_that_applies_the_changes(tmp_path, schema):
    world = generate_world(seed=4, tasks=300, now=NOW)
    with Simulator(world, SIMULATOR) as sim:
        assert tick(sim.base_url, tmp_path, schema).skip_reason  # nothing synced yet
        first = run_pipeline(world, tmp_path, NOW, postgres=(URL, schema))
        assert first.success
        first_run = first.run_id
        assert tick(sim.base_url, tmp_path, schema).skip_reason  # nothing changed
        change_the_world(world)
        requested = tick(sim.base_url, tmp_path, schema)
        assert len(requested.run_requests) == 1
        assert tick(sim.base_url, tmp_path, schema).run_requests[0].run_key == requested.run_requests[0].run_key
    later = NOW + timedelta(hours=2)
    request = requested.run_requests[0]
    changed = request.run_config["ops"]["asana_raw_sync"]["config"]["projects"]
    assert changed and set(changed) <= {p["gid"] for p in world.ground_truth()["projects"]}
    assert request.partition_key == DEFAULT
    run = run_pipeline(world, tmp_path, later, postgres=(URL, schema), run_config=request.run_config)
    assert run.success
    [tasks] = [m for m in run.get_asset_materialization_events() if m.asset_key.path[-1] == "tasks"]
    assert tasks.materialization.metadata["sync_mode"].value.startswith("incremental")
    store = ParquetWarehouse(tmp_path)
    assert_matches_truth({t: store.read(t) for t in RAW_TABLES}, world.ground_truth())
    with PostgresWarehouse(URL, schema) as postgres:
        assert_matches_truth({t: postgres.read(t) for t in RAW_TABLES}, world.ground_truth())
        assert postgres.load_state("incremental_sync")["tokens"]  # kept in Postgres, beside the tables
        monitored = postgres.read("monitor_results").to_pandas()
    assert not (tmp_path / "state").exists()
    assert set(monitored["run_id"]) == set(results_of(run, tmp_path)["run_id"]) | {first_run}
    results = results_of(run, tmp_path)
    assert alarms(results, "membership_changes")  # the admin granted between the syncs
    with Simulator(world, SIMULATOR) as sim:
        assert tick(sim.base_url, tmp_path, schema).skip_reason  # the run advanced the tokens
