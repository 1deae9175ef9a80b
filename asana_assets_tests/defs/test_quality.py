"""The unique_keys check of a history table judges the rows of the latest materialization's run:
a duplicate there alarms, wherever its rows sit; duplicates confined to earlier runs (judged by
their own checks) do not."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from asana_assets.defs.compliance.checks import quality_checks
from asana_assets.defs.partitions import CONNECTIONS
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.defs.tables import table_key
from asana_assets.lib.schema import to_arrow
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets_tests.support.pipeline import materialize

EARLIER, LATEST = datetime(2026, 3, 1, 9, tzinfo=UTC), datetime(2026, 3, 2, 9, tzinfo=UTC)
# Per table: the run column (a key's first) and a row of one run about one resource.
ROWS = {
    "monitor_results": lambda run, gid: {"run_id": run.isoformat(), "monitor_id": "tickets_assigned",
                                         "resource_type": "ticket", "resource_gid": gid, "status": "ok"},
    "user_access": lambda run, gid: {"snapshot_at": run, "user_gid": "u1", "resource_type": "project",
                                     "resource_gid": gid, "role": "editor"},
}


def unique_keys(tmp_path, table: str, parts: dict[str, list[tuple[datetime, str]]], latest_part: str) -> bool:
    """Write the parts (name: rows as (run, resource gid)), record a materialization of the table
    whose part is ``latest_part``, and run the table's unique_keys check: whether it passed."""
    store = ParquetWarehouse(tmp_path)
    for name, rows in parts.items():
        store.write_part(table, name, to_arrow(table, [ROWS[table](run, gid) for run, gid in rows]))

    @dg.asset(key=table_key(table), partitions_def=CONNECTIONS)
    def history() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(
            str(store.published / table / f"{latest_part}.parquet"))})

    [checks] = quality_checks
    check = checks.subset_for(set(), {dg.AssetCheckKey(table_key(table), "unique_keys")})
    result = materialize([history, check], resources={"warehouse": WarehouseResource(directory=str(tmp_path))})
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation.passed


@pytest.mark.parametrize("table", sorted(ROWS))
def test_a_duplicate_in_the_latest_run_alarms(tmp_path, table):
    parts = {"earlier": [(EARLIER, "a")], "latest": [(LATEST, "a"), (LATEST, "b"), (LATEST, "b")]}
    assert not unique_keys(tmp_path, table, parts, "latest")


@pytest.mark.parametrize("table", sorted(ROWS))
def test_duplicates_confined_to_earlier_runs_do_not_alarm(tmp_path, table):
    # The earlier run's duplicate was its own check's to judge; the latest run's "a" is the same
    # resource in another run, not a duplicate.
    parts = {"earlier": [(EARLIER, "a"), (EARLIER, "a")], "latest": [(LATEST, "a"), (LATEST, "b")]}
    assert unique_keys(tmp_path, table, parts, "latest")


@pytest.mark.parametrize("table", sorted(ROWS))
def test_a_latest_run_row_in_another_part_counts(tmp_path, table):
    # The edge: each part is unique on its own, but a row of the latest run sits in another part.
    parts = {"earlier": [(EARLIER, "a"), (LATEST, "b")], "latest": [(LATEST, "a"), (LATEST, "b")]}
    assert not unique_keys(tmp_path, table, parts, "latest")
    parts = {"earlier": [(EARLIER, "a"), (EARLIER, "b")], "latest": [(LATEST, "a"), (LATEST, "b")]}
    assert unique_keys(tmp_path / "unique", table, parts, "latest")
