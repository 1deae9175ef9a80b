"""One publication per run: every step stages what it writes in the run's staging area, and
the run's last step commits all of it at once (`Warehouse.commit`).

The last step is the one with no selected asset downstream of its own: in the sync jobs,
``monitor_results``; in a run of the raw tables alone, the crawl. Two selected assets that do
not depend on each other are both last: each commits what the run staged until then. A run
that fails before its commit makes nothing visible, and its re-execution continues in the same
staging area (the root run's).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import dagster as dg
import pyarrow as pa

from asana_assets.defs.partitions import partition_key
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.lib.storage.warehouse import Publication, Warehouse


def root_run_id(context) -> str:
    """The evaluation a run belongs to: a re-execution continues its original run's."""
    return context.run.root_run_id or context.run.run_id


def run_warehouse(context, warehouse: WarehouseResource) -> Warehouse:
    """The warehouse of the connection (partition) this step works on, staging for this run."""
    return warehouse.for_connection(partition_key(context)).warehouse(root_run_id(context))


def stage(warehouse: Warehouse, table: str, data: pa.Table, part: str | None = None) -> dict[str, Any]:
    """Stage a table (a history table: this run's ``part``); its metadata."""
    staged = warehouse.stage(table, data, part)
    metadata: dict[str, Any] = {"path": dg.MetadataValue.path(str(staged.path))}
    if staged.postgres_table:
        metadata["postgres_table"] = staged.postgres_table
    return metadata


# Steps that act on what the run committed (they write to Asana, not to the warehouse): the
# commit never waits for them.
AFTER_COMMIT = frozenset({dg.AssetKey(["asana", "remediation_tasks"])})


def is_last_step(context: dg.AssetExecutionContext) -> bool:
    """True for the run's last step: no asset selected in this run depends on this step's."""
    graph = context.job_def.asset_layer.asset_graph
    selected = context.run.asset_selection or graph.get_all_asset_keys()
    downstream = dg.AssetSelection.assets(*context.selected_asset_keys).downstream(include_self=False).resolve(graph)
    return not ((downstream - AFTER_COMMIT) & set(selected))


def commit_if_last(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dict[str, Any]:
    """Commit the run's staged tables when this is its last step; metadata about the publication."""
    if not is_last_step(context):
        return {}
    publication = warehouse.commit()
    context.log.info(f"Committed this run's tables: {publication.version}")
    return publication_metadata(publication)


def publication_metadata(publication: Publication) -> dict[str, Any]:
    metadata: dict[str, Any] = {"published_tables": dg.MetadataValue.json(publication.tables)}
    if postgres := publication.postgres:
        metadata["postgres_views"] = dg.MetadataValue.json(postgres.views)
        metadata["postgres_seconds"] = postgres.seconds  # the transaction, views included
        metadata["postgres_loads"] = dg.MetadataValue.json({
            s.table: {k: v for k, v in asdict(s).items() if k != "table"} for s in postgres.loads
        })
    metadata["published_version"] = dg.MetadataValue.path(str(publication.version))
    return metadata
