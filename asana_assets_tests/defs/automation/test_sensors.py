"""The sensor and the incremental job: a change at the source is noticed, applied to Parquet and
Postgres alike, and checked by the monitors."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from asana_assets.defs.automation.sensors import asana_connections_sensor, asana_events_sensor
from asana_assets.defs.partitions import DEFAULT, register
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.schema import RAW_TABLES
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import Simulator, generate_world
from asana_assets_tests.support import POSTGRES_URL as URL
from asana_assets_tests.support.pipeline import SIMULATOR, alarms, resources, results_of, run_pipeline
from asana_assets_tests.support.postgres import PostgresTables
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
    with PostgresTables(URL, schema) as postgres:
        assert_matches_truth({t: postgres.read(t) for t in RAW_TABLES}, world.ground_truth())
        assert postgres.document("incremental_sync")["tokens"]  # kept in Postgres, beside the tables
        monitored = postgres.read("monitor_results").to_pandas()
    assert not (tmp_path / "state").exists()
    assert set(monitored["run_id"]) == set(results_of(run, tmp_path)["run_id"]) | {first_run}
    results = results_of(run, tmp_path)
    assert alarms(results, "membership_changes")  # the admin granted between the syncs
    with Simulator(world, SIMULATOR) as sim:
        assert tick(sim.base_url, tmp_path, schema).skip_reason  # the run advanced the tokens


FAKE_TOKEN = "2/1209000000000000/leaked:f4ke-t0ken-5e9a"


def test_an_unexpected_poll_failure_is_told_by_cause_and_fix_never_by_its_text(tmp_path, monkeypatch, caplog, capfd):
    """Whatever one connection's poll raises, the tick says what went wrong and what to do, and
    never repeats the error's own text, which may quote a token."""
    from asana_assets.defs.automation import sensors

    async def broken(client, state, projects=None, within=None, renewed=None):
        raise RuntimeError(f"request to /events failed with Authorization: Bearer {FAKE_TOKEN}")

    monkeypatch.setattr(sensors, "look_at_feeds", broken)
    configured = resources("http://127.0.0.1:9/api/1.0", tmp_path)
    state = SyncState()
    state.advance({"1": "sync-token"}, ["1"], datetime.now(UTC), full=True)
    configured["warehouse"].state_store().save(state)  # a connection synced before, due for a poll
    instance = dg.DagsterInstance.ephemeral()
    register(instance, [DEFAULT])
    with caplog.at_level(logging.WARNING), dg.build_sensor_context(instance=instance, resources=configured) as context:
        skipped = asana_events_sensor(context).skip_reason.skip_message
    assert skipped == (
        "default: could not poll: unexpected error (RuntimeError): retry; if it persists, contact support"
    )
    captured = capfd.readouterr()  # the sensor's log goes to Dagster's handler, on stderr
    assert "Connection default could not poll: unexpected error (RuntimeError): retry" in captured.err
    for text in (skipped, caplog.text, captured.out, captured.err):
        assert FAKE_TOKEN not in text and "f4ke-t0ken" not in text


def test_the_sensors_fail_with_the_missing_setting(monkeypatch, tmp_path):
    """Nothing points at Asana: the sensors say what to set. The demo asked for beside a configured
    warehouse refuses, and says why."""
    from asana_assets.defs.resources.asana import AsanaResource, DemoAsanaResource
    from asana_assets.lib.connections.troubleshooting import ConnectionProblem

    monkeypatch.chdir(tmp_path)
    for name in ("ASANA_CONNECTION_STORE", "ASANA_ACCESS_TOKEN", "ASANA_CONNECTION_ID", "ASANA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ASANA_POSTGRES_URL", URL)
    instance = dg.DagsterInstance.ephemeral()
    warehouse = resources("", tmp_path)["warehouse"]
    refusals = [
        (AsanaResource(), (
            "no Asana credentials are configured: set ASANA_ACCESS_TOKEN or ASANA_CONNECTION_ID (connect with "
            "`asana-connections connect`, then set ASANA_CONNECTION_ID to the connection's id); for the demo "
            "simulator, set ASANA_DEMO=1"
        )),
        (DemoAsanaResource(), (
            "ASANA_DEMO asks for the demo but ASANA_POSTGRES_URL is set: unset ASANA_POSTGRES_URL for the demo, or "
            "unset ASANA_DEMO and set ASANA_ACCESS_TOKEN or ASANA_CONNECTION_ID (the demo simulator never writes "
            "into a configured warehouse)"
        )),
    ]
    for asana, refusal in refusals:
        for sensor in (asana_connections_sensor, asana_events_sensor):
            with (dg.build_sensor_context(instance=instance, resources={"asana": asana, "warehouse": warehouse})
                  as context, pytest.raises(ConnectionProblem) as refused):
                sensor(context)
            assert str(refused.value) == refusal


def test_a_sync_leaves_connections_fresh_evaluated_after_its_raw_tables(tmp_path):
    """The UI shows a check as not evaluated when its latest result is older than its asset's
    latest materialization: each sync records the freshness after writing the raw tables."""
    world = generate_world(seed=31, tasks=80, now=NOW)
    with dg.DagsterInstance.ephemeral() as instance:
        assert run_pipeline(world, tmp_path, NOW, instance=instance).success
        check = dg.AssetCheckKey(dg.AssetKey(["asana", "workspaces"]), "connections_fresh")
        record = instance.get_latest_asset_check_evaluation_record(check)
        [workspaces] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["asana", "workspaces"])), limit=1).records
    assert record is not None and record.event.timestamp > workspaces.timestamp
    assert record.event.dagster_event.event_specific_data.passed  # synced just now
