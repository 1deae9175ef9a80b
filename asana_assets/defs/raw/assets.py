"""Raw Asana tables: one crawl of the workspace materializes every selected table."""

from datetime import UTC, datetime, timedelta
from typing import Literal

import dagster as dg
import pyarrow as pa
from pydantic import Field

from asana_assets.defs.partitions import CONNECTIONS
from asana_assets.defs.publish import commit_if_last, run_warehouse, stage
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.defs.tables import column_schema, table_key, table_metadata
from asana_assets.lib.asana.client import AsanaError, AuthenticationError, ForbiddenError
from asana_assets.lib.asana.crawl import crawl, with_others_refused
from asana_assets.lib.asana.incremental import incremental_sync, record_full_sync
from asana_assets.lib.asana.reconcile import reconcile_sync
from asana_assets.lib.connections.troubleshooting import ConnectionExpired, ConnectionProblem, Source, troubleshoot
from asana_assets.lib.preflight import check_postgres, check_reachable, check_workspace_gid, check_writable
from asana_assets.lib.schema import RAW_TABLES, REGISTRY
from asana_assets.lib.storage.gate import DEFAULT_MAX_SHARE, MassDeletionRefused, check_replacement
from asana_assets.lib.storage.text import nul_quarantine
from asana_assets.lib.storage.warehouse import Warehouse

RAW_GROUP = "asana_raw"
# The daily reconcile (the full sync on its weekday) keeps every table younger than a day even
# when nothing changes; a table older than this means the connection is failing.
# The policy judges an asset across its partitions (any connection's sync makes it fresh);
# raw/checks.connections_fresh judges each connection against the same limit.
FRESHNESS_LIMIT = timedelta(hours=26)
CONNECTION_VALID = dg.AssetCheckKey(table_key("workspaces"), "connection_valid")  # raw/checks.py's
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=FRESHNESS_LIMIT, warn_window=timedelta(hours=25))


class SyncConfig(dg.Config):
    """full: crawl everything (and take fresh events tokens); incremental: apply only the
    changes the projects' events feeds report; reconcile: list every project's members and tasks
    (its sections and fields when those show a change) and re-read only what changed, events
    pending included (both fall back to full without a previous sync)."""

    mode: Literal["full", "incremental", "reconcile"] = "full"
    projects: list[str] = Field(
        default_factory=list, description="incremental: poll only these projects (default: all)"
    )
    max_deletion_share: float = Field(
        default=DEFAULT_MAX_SHARE, gt=0, le=1,
        description="Refuse, before writing anything, a sync that would remove more than this share of a table's "
                    "rows (from 25 rows removed), or that sees no workspace where the warehouse has one",
    )
    allow_mass_deletion: bool = Field(
        default=False, description="Confirm a real mass deletion that the sanity gate would refuse",
    )


@dg.multi_asset(
    name="asana_raw_sync",
    specs=[
        dg.AssetSpec(
            table_key(table),
            description=REGISTRY[table].description,
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
    asana, warehouse = asana.for_connection(context.partition_key), run_warehouse(context, warehouse)
    source = None
    try:
        source = asana.source()
        _preflight(source, warehouse)
        yield from _sync(context, config, asana, warehouse)
    except (AsanaError, ConnectionProblem) as failure:
        if getattr(failure, "retryable", False):
            raise  # a passing outage: its own type says a retry of the run may succeed
        # The cause and the fix, as the troubleshooting table words them (never the raw text).
        trouble = troubleshoot(failure, source)
        if isinstance(failure, AuthenticationError | ForbiddenError | ConnectionExpired):
            # The connection check would be skipped with this step: the run records its verdict here.
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=CONNECTION_VALID.asset_key, check_name=CONNECTION_VALID.name, passed=False,
                description=str(trouble), metadata={"cause": trouble.cause, "fix": trouble.fix},
                partition=context.partition_key if context.has_partition_key else None,
            ))
        raise dg.Failure(description=str(trouble), allow_retries=False) from None


def _preflight(source: Source, warehouse: Warehouse) -> None:
    """Settings that would fail the run after a long crawl fail it now, each with its fix."""
    check_workspace_gid(source.workspace_gid)
    check_reachable(source)
    check_writable(warehouse.directory)
    if warehouse.postgres_url:
        check_postgres(warehouse.postgres_url)
    # The token needs no check of its own: the crawl's first request fails in seconds.


def _sync(context: dg.AssetExecutionContext, config: SyncConfig, asana: AsanaResource, warehouse: Warehouse):
    selected = {key.path[-1] for key in context.selected_asset_keys}
    store = warehouse.state_store()
    state = store.load()
    state.renew(warehouse.poll_store().load().tokens)  # the tokens the sensor's polls kept young
    whole = selected == set(RAW_TABLES)
    current = {t: warehouse.read(t) for t in selected if warehouse.exists(t)}
    # A table written before a column was added needs a full sync to fill it.
    same_columns = all(current[t].schema.names == RAW_TABLES[t].names for t in current)
    previous = whole and len(current) == len(RAW_TABLES) and same_columns
    workspace = asana.workspace_gid or None  # unset: every workspace the connection sees
    if config.mode == "incremental" and previous and state.tokens:
        changes = asana.run(lambda client: incremental_sync(client, state, dict(current), workspace, config.projects))
        result, mode = changes.result, (
            f"incremental: {changes.reread} task(s) re-read, {len(changes.deleted)} deleted, "
            f"{len(changes.hidden)} out of the connection's view, {len(changes.relisted)} project(s) re-listed"
        )
    elif config.mode == "reconcile" and previous:
        changes = asana.run(lambda client: reconcile_sync(client, state, dict(current), workspace))
        result, mode = changes.result, (
            f"reconcile: {changes.changed} task(s) changed, {len(changes.deleted)} deleted, "
            f"{len(changes.hidden)} out of the connection's view, {len(changes.relisted)} project(s) listed"
        )
    else:
        # A first sync, a subset, or the weekly full sync: crawl everything selected. A whole
        # crawl keeps each project's read in a checkpoint as it goes, and resumes one a killed or
        # failed run left.
        expected = state.last_full_sync_requests if whole else None
        checkpoint = warehouse.checkpoint(state.began_last_sync()) if whole else None
        result = asana.run(lambda client: crawl(client, workspace, selected, whole, expected, checkpoint))
        mode = "full"
        if whole:
            record_full_sync(state, result)
            if result.resumed:
                state.resumed(result.resumed, expected)
                mode = (f"full, resumed: {len(result.resumed)} project(s) read by an earlier run, whole or in "
                        f"{result.resumed_parts} part(s), from its checkpoint")
    if "quarantine" in current:  # the audit log's refusals stay until their own asset replaces them
        result.tables["quarantine"] = with_others_refused(current["quarantine"], result.tables["quarantine"])
    if not config.allow_mass_deletion:
        try:
            check_replacement(current, result.tables, config.max_deletion_share)
        except MassDeletionRefused as refused:
            raise dg.Failure(description=str(refused), allow_retries=False, metadata={
                r.table: f"{r.removed} of {r.before} rows ({r.share:.0%})" for r in refused.removals
            }) from None
    flagged = nul_quarantine(result.tables, datetime.now(UTC), RAW_TABLES["quarantine"])
    if flagged.num_rows:
        result.tables["quarantine"] = pa.concat_tables([result.tables["quarantine"], flagged])
    stats = result.client_stats
    context.log.info(
        f"Synced connection {context.partition_key}, workspace(s) {', '.join(result.workspace_gids)} ({mode}) in {result.duration_s:.1f}s: "
        f"{stats.get('requests', 0)} requests, {stats.get('rate_limited', 0)} rate-limited "
        f"({stats.get('cost_cuts', 0)} slowing the pace learned for Asana's cost limit), "
        f"{result.tables['quarantine'].num_rows} record(s) quarantined"
    )
    if whole:
        warehouse.stage_state(state)  # committed with the tables: a run that dies first replays from the old tokens
    yield from _materialize(context, selected, result, warehouse, mode)
    asana.record_sync()


def _materialize(context, selected, result, warehouse: Warehouse, mode: str):
    stats = result.client_stats
    staged = {table: stage(warehouse, table, result.tables[table]) for table in sorted(selected)}
    # The last table's metadata carries the publication (when this step is the run's last).
    staged[max(staged)] |= commit_if_last(context, warehouse)
    for table, metadata in staged.items():
        data = result.tables[table]
        yield dg.MaterializeResult(
            asset_key=table_key(table),
            metadata=table_metadata(
                table,
                data,
                warehouse.postgres_schema,
                **metadata,
                quarantined=result.quarantined(table),
                sync_mode=mode,
                sync_requests=int(stats.get("requests", 0)),
                sync_seconds=round(result.duration_s, 3),
                sync_listings=dg.MetadataValue.json(result.listings()),  # read in parts, and refused
            ),
        )
