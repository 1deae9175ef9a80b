"""Data-quality checks: every table's key is unique and every foreign gid resolves."""

import json
import operator
from collections.abc import Callable, Iterable
from functools import reduce
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from asana_assets.defs.partitions import CONNECTIONS, partition_key
from asana_assets.defs.publish import run_warehouse
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.lib.schema import FOREIGN_KEYS, HISTORY_TABLES, primary_key
from asana_assets.lib.storage.warehouse import Warehouse

SAMPLE = 10


def duplicate_keys(table: pa.Table, key: Iterable[str]) -> pa.Table:
    """Key values that occur more than once, with their count."""
    key = list(key)
    counts = table.group_by(key).aggregate([([], "count_all")])
    return counts.filter(pc.greater(counts["count_all"], 1))


def dangling(child: pa.Table, column: str, parent: pa.Table, parent_key: str) -> pa.Array:
    """Distinct non-null values of ``child[column]`` missing from ``parent[parent_key]``."""
    values = pc.unique(child[column].drop_null())
    return values.filter(pc.invert(pc.is_in(values, value_set=parent[parent_key])))


def _json(value) -> dg.MetadataValue:
    """JSON metadata; timestamps in a sample become ISO text instead of failing the check."""
    return dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))


def quality_checks(tables: Iterable[str], asset_key: Callable[[str], dg.AssetKey]) -> list[dg.AssetChecksDefinition]:
    """A unique-key check for every keyed table, and a foreign-key check where it has foreign keys."""
    checks = []
    for table in tables:
        if primary_key(table):
            checks.append(_unique_check(table, primary_key(table), asset_key))
        if table in FOREIGN_KEYS:
            checks.append(_foreign_check(table, asset_key))
    return checks


def _unique_check(table, key, asset_key):
    @dg.asset_check(
        asset=asset_key(table), name="unique_keys", partitions_def=CONNECTIONS,
        description=f"{', '.join(key)} is unique.",
    )
    def check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        warehouse = run_warehouse(context, warehouse)
        if table in HISTORY_TABLES:
            rows = latest_run_keys(context, warehouse, table, key, asset_key(table))
        else:
            rows = warehouse.read(table).select(list(key))
        duplicates = duplicate_keys(rows, key)
        return dg.AssetCheckResult(
            passed=duplicates.num_rows == 0,
            metadata={"key": ", ".join(key), "duplicated_keys": duplicates.num_rows,
                      "sample": _json(duplicates.slice(0, SAMPLE).to_pylist())},
        )

    return check


def latest_run_keys(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, table: str,
                    key: tuple[str, ...], asset: dg.AssetKey) -> pa.Table:
    """A history table's key columns, for the rows of the latest materialization's run (every
    part's rows that share its first key column, run_id or snapshot_at, with the part it wrote).
    Rows of two runs never share a key, and the earlier runs were judged by their own checks:
    the history is not re-read whole each run."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[partition_key(context)]), limit=1).records
    if not records:
        return warehouse.read(table).select(list(key))
    part = Path(records[0].asset_materialization.metadata["path"].value).stem
    written = pq.read_table(warehouse.part_path(table, part), columns=[key[0]])
    runs = pc.unique(written[key[0]]).to_pylist()
    matches = [pc.field(key[0]) == run for run in runs]
    return warehouse.read_history(table, columns=list(key), filters=reduce(operator.or_, matches, pc.scalar(False)))


def _foreign_check(table, asset_key):
    references = FOREIGN_KEYS[table]

    @dg.asset_check(
        asset=asset_key(table), name="foreign_keys", partitions_def=CONNECTIONS,
        additional_deps=[asset_key(parent) for _, parent in references if parent != table],
        description="Every " + ", ".join(f"{c} resolves in {p}" for c, p in references) + ".",
    )
    def check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        warehouse = run_warehouse(context, warehouse)
        child = warehouse.read(table)
        missing = {f"{column} -> {parent}": dangling(child, column, warehouse.read(parent), primary_key(parent)[0])
                   for column, parent in references}
        return dg.AssetCheckResult(
            passed=all(len(v) == 0 for v in missing.values()),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={name: _json({"dangling": len(v), "sample": v.slice(0, SAMPLE).to_pylist()})
                      for name, v in missing.items()},
        )

    return check


