"""Run the whole Dagster pipeline (sync, derived tables, monitors) against a simulated world."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_celery import celery_executor

from asana_assets.definitions import ASSETS, RUN_CHECKS, build_defs
from asana_assets.defs.automation.jobs import full_sync
from asana_assets.defs.partitions import DEFAULT, register
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.defs.resources.compliance import ComplianceResource
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World

QUOTA = 1_000_000
# One signing secret, so sync tokens taken through one simulator stay valid through the next.
SIMULATOR = SimulatorConfig(requests_per_minute=QUOTA, secret="tests")
CELERY_BROKER = os.environ.get("ASANA_TEST_CELERY_BROKER", "pyamqp://guest@127.0.0.1:5672//")


def run_pipeline(world: World, directory: Path, as_of: datetime, postgres: tuple[str, str] | None = None,
                 mode: str = "full", run_config: dict | None = None, instance: dg.DagsterInstance | None = None,
                 simulator: SimulatorConfig = SIMULATOR, **compliance) -> dg.ExecuteInProcessResult:
    """Materialize every asset and run every check of the default connection as of ``as_of``;
    returns the run's result.

    ``postgres`` (url, schema) also loads every table into Postgres; ``mode`` is the sync's,
    unless a ``run_config`` (e.g. a sensor's run request's) is given; ``simulator`` configures
    the simulator (e.g. faults).
    """
    with Simulator(world, simulator) as sim:
        return materialize(
            [*ASSETS, *RUN_CHECKS], instance=instance,
            resources=resources(sim.base_url, directory, postgres, as_of=as_of.isoformat(), **compliance),
            run_config=run_config or {"ops": {"asana_raw_sync": {"config": {"mode": mode}}}},
        )


def materialize(assets: list, instance: dg.DagsterInstance | None = None, partition: str = DEFAULT,
                **options) -> dg.ExecuteInProcessResult:
    """``dg.materialize`` of one connection's partition, registered on the instance first."""
    instance = instance or dg.DagsterInstance.ephemeral()
    register(instance, [partition])
    return dg.materialize(assets, instance=instance, partition_key=partition, **options)


def resources(base_url: str, directory: Path, postgres: tuple[str, str] | None = None, **compliance) -> dict:
    url, schema = postgres or (None, "asana")
    return {
        "asana": AsanaResource(access_token=DEMO_TOKEN, base_url=base_url, requests_per_minute=QUOTA),
        "warehouse": WarehouseResource(directory=str(directory), postgres_url=url, postgres_schema=schema),
        "compliance": ComplianceResource(**compliance),
    }


def results_of(run: dg.ExecuteInProcessResult, directory: Path) -> pd.DataFrame:
    """The run's monitor_results rows."""
    results = WarehouseResource(directory=str(directory)).warehouse().read("monitor_results").to_pandas()
    return results[results["run_id"] == run.run_id]


def alarms(results: pd.DataFrame, monitor_id: str) -> set[str]:
    mine = results[(results["monitor_id"] == monitor_id) & (results["status"] == "alarm")]
    return set(mine["resource_gid"])


def status(results: pd.DataFrame, monitor_id: str, gid: str) -> str:
    row = results[(results["monitor_id"] == monitor_id) & (results["resource_gid"] == gid)]
    assert len(row) == 1, f"{monitor_id} has {len(row)} rows for {gid}"
    return row["status"].iloc[0]


EXECUTORS = {
    "in_process": dg.in_process_executor,
    "multiprocess": dg.multiprocess_executor,
    # Each step is a Celery task on the RabbitMQ broker, run by whichever worker takes it.
    "celery": celery_executor.configured({"broker": CELERY_BROKER, "backend": "rpc://"}),
}


def full_sync_job() -> dg.JobDefinition:
    """The full-sync job wired to the simulator and warehouse named in the environment; a
    module-level function, so Dagster can rebuild the job in another process (to re-execute a
    failed run, or to run each step in its own process)."""
    postgres = (os.environ["TEST_POSTGRES_URL"], os.environ["TEST_POSTGRES_SCHEMA"])
    defs = build_defs(
        resources(os.environ["TEST_ASANA_BASE_URL"], Path(os.environ["TEST_WAREHOUSE_DIR"]), postgres),
        EXECUTORS[os.environ.get("TEST_EXECUTOR", "in_process")],
    )
    return defs.resolve_job_def(full_sync.name)
