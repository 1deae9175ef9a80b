"""Raw Asana tables: one crawl of the workspace materializes every selected table."""


from datetime import timedelta
from typing import Literal

import dagster as dg
import pyarrow.compute as pc
from pydantic import Field

from asana_assets.client import AsanaError
from asana_assets.connections import ConnectionProblem, troubleshoot
from asana_assets.incremental import record_full_sync
from asana_assets.metadata import column_schema, table_metadata
from asana_assets.partitions import CONNECTIONS, partition_key
from asana_assets.quality import quality_checks
from asana_assets.resources import AsanaResource, WarehouseResource
from asana_assets.tables import RAW_TABLES

RAW_GROUP = "asana_raw"
# The daily full sync keeps every table younger than a day even when nothing changes; a table
# older than this means the connection is failing.
# The policy judges an asset across its partitions (any connection's sync makes it fresh);
# automation.connections_fresh judges each connection against the same limit.
FRESHNESS_LIMIT = timedelta(hours=26)
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=FRESHNESS_LIMIT, warn_window=timedelta(hours=25))

DESCRIPTIONS = {
    "workspaces": "Workspaces and organizations the token can see.",
    "users": "Every user with a workspace membership, active or not.",
    "workspace_memberships": "Who belongs to each workspace, with admin, guest and active flags.",
    "teams": "Teams of each organization.",
    "team_memberships": "Members of each team, with team-admin and guest flags.",
    "projects": "Projects (archived ones included) with owner, team and privacy.",
    "project_memberships": "Direct project members and their access level.",
    "sections": "Sections of each project in board order; the source of workflow states.",
    "tasks": "Every task, subtasks included (parent_gid), with assignee, completion and approval status.",
    "task_memberships": "Which project and section each task sits in; position 0 is the primary project.",
    "stories": "The changelog of every task and subtask, with the structured old/new fields.",
    "tags": "Tags of each workspace.",
    "task_tags": "Tags on each task.",
    "quarantine": "Records the API returned that failed validation: kept with the error, never dropped.",
}


class SyncConfig(dg.Config):
    """full: crawl everything (and take fresh events tokens); incremental: apply only the
    changes the projects' events feeds report (falls back to full without a previous sync)."""

    mode: Literal["full", "incremental"] = "full"
    projects: list[str] = Field(
        default_factory=list, description="incremental: poll only these projects (default: all)"
    )


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["asana", table])


@dg.multi_asset(
    name="asana_raw_sync",
    specs=[
        dg.AssetSpec(
            raw_key(table),
            description=DESCRIPTIONS[table],
            group_name=RAW_GROUP,
            kinds={"asana", "parquet"},
            skippable=True,
            metadata={"dagster/column_schema": column_schema(schema), "dagster/table_name": f"asana.{table}"},
            freshness_policy=FRESHNESS,
        )
        for table, schema in RAW_TABLES.items()
    ],
    can_subset=True,
    partitions_def=CONNECTIONS,
)
def asana_raw_sync(
    context: dg.AssetExecutionContext, config: SyncConfig, asana: AsanaResource, warehouse: WarehouseResource
):
    """Crawl Asana (whole, or only what changed since the last sync) and write each selected table."""
    asana, warehouse = asana.for_connection(context.partition_key), warehouse.for_connection(context.partition_key)
    selected = {key.path[-1] for key in context.selected_asset_keys}
    store = warehouse.state_store()
    state = store.load()
    whole = selected == set(RAW_TABLES)
    if config.mode == "incremental" and whole and state.tokens and all(warehouse.parquet().exists(t) for t in RAW_TABLES):
        changes = asana.sync_incremental(state, {t: warehouse.read(t) for t in RAW_TABLES}, config.projects)
        result, mode = changes.result, (
            f"incremental: {changes.reread} task(s) re-read, {len(changes.deleted)} deleted, "
            f"{len(changes.relisted)} project(s) re-listed"
        )
    else:
        # A first sync, a subset, or the daily reconciliation: crawl everything selected.
        result, mode = asana.sync(selected, track_events=whole), "full"
        if whole:
            record_full_sync(state, result)
    stats = result.client_stats
    context.log.info(
        f"Synced connection {context.partition_key}, workspace(s) {', '.join(result.workspace_gids)} ({mode}) in {result.duration_s:.1f}s: "
        f"{stats.get('requests', 0)} requests, {stats.get('rate_limited', 0)} rate-limited, "
        f"{result.tables['quarantine'].num_rows} record(s) quarantined"
    )
    yield from _publish(selected, result, warehouse, mode)
    asana.record_sync()
    if whole:
        store.save(state)  # only once every table is written: a crashed run replays from the old tokens


def _publish(selected, result, warehouse: WarehouseResource, mode: str):
    stats = result.client_stats
    for table in sorted(selected):
        data = result.tables[table]
        yield dg.MaterializeResult(
            asset_key=raw_key(table),
            metadata=table_metadata(
                table,
                data,
                **warehouse.publish(table, data),
                quarantined=result.quarantined(table),
                sync_mode=mode,
                sync_requests=int(stats.get("requests", 0)),
                sync_seconds=round(result.duration_s, 3),
            ),
        )


@dg.asset_check(
    asset=raw_key("workspaces"), partitions_def=CONNECTIONS,
    description="The Asana connection works: its token is accepted.",
)
def connection_valid(context: dg.AssetCheckExecutionContext, asana: AsanaResource) -> dg.AssetCheckResult:
    """Shows a broken connection in the UI with its cause and its fix (reconnect, admin needed...)."""
    try:
        user = asana.for_connection(partition_key(context)).whoami()
    except (AsanaError, ConnectionProblem) as error:
        trouble = troubleshoot(error)
        return dg.AssetCheckResult(
            passed=False, description=f"{trouble.cause}: {trouble.fix}",
            metadata={"cause": trouble.cause, "fix": trouble.fix},
        )
    return dg.AssetCheckResult(passed=True, metadata={"acting_as": f"{user.get('name')} <{user.get('email')}>"})


@dg.asset_check(
    asset=raw_key("quarantine"), partitions_def=CONNECTIONS, description="No record was refused at the API boundary."
)
def quarantine_is_empty(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    refused = warehouse.for_connection(partition_key(context)).read("quarantine")
    counts = pc.value_counts(refused["table"]).to_pylist()
    return dg.AssetCheckResult(
        passed=refused.num_rows == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined": refused.num_rows,
            "by_table": {row["values"]: row["counts"] for row in counts},
        },
    )


raw_checks = [connection_valid, quarantine_is_empty, *quality_checks(RAW_TABLES, raw_key)]
