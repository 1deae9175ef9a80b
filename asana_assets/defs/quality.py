"""Data-quality checks: every table's key is unique and every foreign gid resolves."""

import json
import operator
from collections.abc import Callable, Iterable
from functools import cache, partial, reduce
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


def quality_checks(tables: Iterable[str], asset_key: Callable[[str], dg.AssetKey],
                   name: str) -> list[dg.AssetChecksDefinition]:
    """A unique-key check for every keyed table, and a foreign-key check where it has foreign keys,
    run in one step (``name``): each check its own result, a step each would cost more than the
    checks themselves."""
    judges: dict[dg.AssetCheckKey, Callable] = {}
    specs = []
    for table in tables:
        if key := primary_key(table):
            spec = dg.AssetCheckSpec("unique_keys", asset=asset_key(table), partitions_def=CONNECTIONS,
                                     description=f"{', '.join(key)} is unique.")
            specs.append(spec)
            judges[spec.key] = partial(_unique_keys, table, key, asset_key(table))
        if references := FOREIGN_KEYS.get(table):
            spec = dg.AssetCheckSpec(
                "foreign_keys", asset=asset_key(table), partitions_def=CONNECTIONS,
                additional_deps=[asset_key(parent) for _, parent in references if parent != table],
                description="Every " + ", ".join(f"{c} resolves in {p}" for c, p in references) + ".",
            )
            specs.append(spec)
            judges[spec.key] = partial(_foreign_keys, table, references, asset_key(table))

    @dg.multi_asset_check(name=name, specs=specs, can_subset=True)
    def checks(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        warehouse = run_warehouse(context, warehouse)
        keys = cache(lambda table: warehouse.read(table, columns=[primary_key(table)[0]]))  # a parent's, once
        for check in sorted(context.selected_asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
            yield judges[check](context, warehouse, keys)

    return [checks]


def _unique_keys(table: str, key: tuple[str, ...], asset: dg.AssetKey, context: dg.AssetCheckExecutionContext,
                 warehouse: Warehouse, _keys) -> dg.AssetCheckResult:
    if table in HISTORY_TABLES:
        rows = latest_run_keys(context, warehouse, table, key, asset)
    else:
        rows = warehouse.read(table, columns=list(key))
    duplicates = duplicate_keys(rows, key)
    return dg.AssetCheckResult(
        asset_key=asset, check_name="unique_keys", passed=duplicates.num_rows == 0,
        metadata={"key": ", ".join(key), "duplicated_keys": duplicates.num_rows,
                  "sample": _json(duplicates.slice(0, SAMPLE).to_pylist())},
    )


def _foreign_keys(table: str, references: tuple[tuple[str, str], ...], asset: dg.AssetKey, _context,
                  warehouse: Warehouse, keys: Callable[[str], pa.Table]) -> dg.AssetCheckResult:
    child = warehouse.read(table, columns=list(dict.fromkeys(column for column, _ in references)))
    missing = {f"{column} -> {parent}": dangling(child, column, keys(parent), primary_key(parent)[0])
               for column, parent in references}
    return dg.AssetCheckResult(
        asset_key=asset, check_name="foreign_keys",
        passed=all(len(v) == 0 for v in missing.values()),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={name: _json({"dangling": len(v), "sample": v.slice(0, SAMPLE).to_pylist()})
                  for name, v in missing.items()},
    )


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
