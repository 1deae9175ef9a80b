"""Raw Asana tables: one crawl of the workspace materializes every selected table."""

from datetime import timedelta
from typing import Literal

import dagster as dg
from pydantic import Field

from asana_assets.defs.partitions import CONNECTIONS
from asana_assets.defs.resources import AsanaResource, WarehouseResource
from asana_assets.defs.tables import column_schema, table_key, table_metadata
from asana_assets.lib.asana.incremental import record_full_sync
from asana_assets.lib.schema import RAW_TABLES

RAW_GROUP = "asana_raw"
# The daily full sync keeps every table younger than a day even when nothing changes; a table
# older than this means the connection is failing.
# The policy judges an asset across its partitions (any connection's sync makes it fresh);
# raw/checks.connections_fresh judges each connection against the same limit.
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
    "quarantine": "Records the API returned that failed validation, and records whose references do not resolve "
                  "(those stay in their tables too): each with the reason, never dropped.",
}


class SyncConfig(dg.Config):
    """full: crawl everything (and take fresh events tokens); incremental: apply only the
    changes the projects' events feeds report (falls back to full without a previous sync)."""

    mode: Literal["full", "incremental"] = "full"
    projects: list[str] = Field(
        default_factory=list, description="incremental: poll only these projects (default: all)"
    )


@dg.multi_asset(
    name="asana_raw_sync",
    specs=[
        dg.AssetSpec(
            table_key(table),
            description=DESCRIPTIONS[table],
            group_name=RAW_GROUP,
            kinds={"asana", "parquet"},
            skippable=True,
            metadata={"dagster/column_schema": column_schema(schema)},
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
            asset_key=table_key(table),
            metadata=table_metadata(
                table,
                data,
                warehouse.postgres_schema,
                **warehouse.publish(table, data),
                quarantined=result.quarantined(table),
                sync_mode=mode,
                sync_requests=int(stats.get("requests", 0)),
                sync_seconds=round(result.duration_s, 3),
            ),
        )
