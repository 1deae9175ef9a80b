"""Run the whole Dagster pipeline (sync, derived tables, monitors) against a simulated world."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from asana_assets.compliance_assets import compliance_assets, monitor_checks, quality_checks
from asana_assets.raw_assets import asana_raw_sync, raw_checks
from asana_assets.resources import AsanaResource, ComplianceResource, WarehouseResource
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World

QUOTA = 1_000_000
ASSETS = [asana_raw_sync, *compliance_assets]
CHECKS = [*raw_checks, *monitor_checks, *quality_checks]


def run_pipeline(world: World, directory: Path, as_of: datetime, postgres: tuple[str, str] | None = None,
                 **compliance) -> dg.ExecuteInProcessResult:
    """Materialize every asset and run every check as of ``as_of``; returns the run's result.

    ``postgres`` (url, schema) also loads every table into Postgres.
    """
    url, schema = postgres or (None, "asana")
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        return dg.materialize(
            [*ASSETS, *CHECKS],
            resources={
                "asana": AsanaResource(access_token=DEMO_TOKEN, base_url=sim.base_url, requests_per_minute=QUOTA),
                "warehouse": WarehouseResource(directory=str(directory), postgres_url=url, postgres_schema=schema),
                "compliance": ComplianceResource(as_of=as_of.isoformat(), **compliance),
            },
        )


def results_of(run: dg.ExecuteInProcessResult, directory: Path) -> pd.DataFrame:
    """The run's monitor_results rows."""
    results = WarehouseResource(directory=str(directory)).read("monitor_results").to_pandas()
    return results[results["run_id"] == run.run_id]


def alarms(results: pd.DataFrame, monitor_id: str) -> set[str]:
    mine = results[(results["monitor_id"] == monitor_id) & (results["status"] == "alarm")]
    return set(mine["resource_gid"])


def status(results: pd.DataFrame, monitor_id: str, gid: str) -> str:
    row = results[(results["monitor_id"] == monitor_id) & (results["resource_gid"] == gid)]
    assert len(row) == 1, f"{monitor_id} has {len(row)} rows for {gid}"
    return row["status"].iloc[0]
