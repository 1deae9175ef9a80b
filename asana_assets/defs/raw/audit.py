"""The audit log (Enterprise+) as a raw table, read incrementally after the workspaces."""

from datetime import UTC, datetime

import dagster as dg

from asana_assets.defs.partitions import CONNECTIONS
from asana_assets.defs.publish import commit_if_last, run_warehouse, stage
from asana_assets.defs.raw.assets import FRESHNESS, RAW_GROUP
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.defs.tables import column_schema, table_key, table_metadata
from asana_assets.lib.asana.audit_log import TABLE, quarantined, read_audit_log
from asana_assets.lib.schema import AUDIT_TABLES, REGISTRY


@dg.asset(
    key=table_key(TABLE),
    description=REGISTRY[TABLE].description,
    group_name=RAW_GROUP,
    kinds={"asana", "parquet"},
    deps=[table_key("workspaces")],
    metadata={"dagster/column_schema": column_schema(AUDIT_TABLES[TABLE])},
    partitions_def=CONNECTIONS,
    freshness_policy=FRESHNESS,
)
def audit_log_events(context: dg.AssetExecutionContext, asana: AsanaResource,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Add the events since each workspace's offset; the offsets are committed with the table."""
    asana, warehouse = asana.for_connection(context.partition_key), run_warehouse(context, warehouse)
    workspaces = warehouse.read("workspaces")["gid"].to_pylist()
    current = warehouse.read(TABLE) if warehouse.exists(TABLE) else None
    state = warehouse.run_state()
    read = asana.run(lambda client: read_audit_log(client, workspaces, state.audit_log, state.audit_log_offsets,
                                                   current, datetime.now(UTC)))
    for refused in read.quarantine:
        context.log.warning(f"Audit log event {refused['gid']} refused: {refused['error']}")
    if read.quarantine:  # into the quarantine the raw sync wrote in this run (it keeps them in later ones)
        quarantine = quarantined(warehouse.read("quarantine") if warehouse.exists("quarantine") else None,
                                 read.quarantine)
        warehouse.stage("quarantine", quarantine)
        context.log_event(dg.AssetObservation(
            asset_key=table_key("quarantine"), partition=context.partition_key,
            metadata={"quarantined": quarantine.num_rows, "audit_log_events_refused": len(read.quarantine)},
        ))
    if fresh := sorted(set(read.unavailable) - set(state.audit_log_unavailable)):
        # Noted once, when a workspace is first found without it (it is asked again each sync,
        # so a plan that gains it is read from then on).
        context.log.warning(
            "Audit log not available for " + "; ".join(f"workspace {gid} ({read.unavailable[gid]})" for gid in fresh)
            + ": membership changes there are dated by snapshots only")
    state.audit_log, state.audit_log_offsets, state.audit_log_unavailable = read.starts, read.offsets, read.unavailable
    warehouse.stage_state(state)
    metadata = stage(warehouse, TABLE, read.table) | commit_if_last(context, warehouse)
    return dg.MaterializeResult(metadata=table_metadata(
        TABLE, read.table, warehouse.postgres_schema, **metadata,
        audit_log_unavailable=dg.MetadataValue.json(read.unavailable),
        events_added=read.added, events_refused=len(read.quarantine),
    ))
