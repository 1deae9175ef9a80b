"""The reconcile job end to end: what no event reported reaches the tables, the derived tables
and the monitors; without a previous sync it is a full sync."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from asana_assets.definitions import build_defs
from asana_assets.defs.automation.jobs import reconcile_sync
from asana_assets.defs.partitions import DEFAULT, register
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.lib.schema import RAW_TABLES
from asana_assets.simulator import Simulator, generate_world
from asana_assets_tests.support.pipeline import SIMULATOR, resources, run_pipeline
from asana_assets_tests.support.truth import assert_matches_truth
from asana_assets_tests.support.worlds import change_the_world

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def sync_mode(run) -> str:
    [tasks] = [m for m in run.get_asset_materialization_events() if m.asset_key.path[-1] == "tasks"]
    return tasks.materialization.metadata["sync_mode"].value


def test_the_reconcile_job_applies_what_no_event_reported(tmp_path):
    world = generate_world(seed=4, tasks=300, now=NOW)
    first = run_pipeline(world, tmp_path, NOW, mode="reconcile")
    assert first.success and sync_mode(first) == "full"  # nothing to reconcile yet
    with world.events_lost():
        deleted = change_the_world(world)

    instance = dg.DagsterInstance.ephemeral()
    register(instance, [DEFAULT])
    with Simulator(world, SIMULATOR) as sim:
        defs = build_defs(resources(sim.base_url, tmp_path, as_of=(NOW + timedelta(hours=1)).isoformat()))
        run = defs.resolve_job_def(reconcile_sync.name).execute_in_process(instance=instance, partition_key=DEFAULT)
    assert run.success
    assert sync_mode(run).startswith("reconcile: ")
    warehouse = WarehouseResource(directory=str(tmp_path)).warehouse()
    assert_matches_truth({t: warehouse.read(t) for t in RAW_TABLES}, world.ground_truth())
    tickets = warehouse.read("tickets").to_pandas()
    assert deleted not in set(tickets["gid"])  # gone from the derived tables too
    state = warehouse.state_store().load()
    assert set(state.tokens) == {p["gid"] for p in world.ground_truth()["projects"]}
