"""Checks of the raw tables: the connection works, nothing was quarantined, keys hold, and every
connection synced recently."""

from datetime import UTC, datetime

import dagster as dg
import pyarrow.compute as pc

from asana_assets.defs.partitions import CONNECTIONS, connection_partitions, partition_key
from asana_assets.defs.publish import run_warehouse
from asana_assets.defs.quality import quality_checks
from asana_assets.defs.raw.assets import CONNECTION_VALID, FRESHNESS_LIMIT
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.defs.tables import table_key
from asana_assets.lib.asana.account import FIX as COVERAGE_FIX
from asana_assets.lib.asana.account import UNKNOWN
from asana_assets.lib.asana.client import AsanaError
from asana_assets.lib.compliance.monitors import refused_listings
from asana_assets.lib.connections.coverage import coverage
from asana_assets.lib.connections.session import whoami
from asana_assets.lib.connections.troubleshooting import ConnectionProblem, troubleshoot
from asana_assets.lib.schema import RAW_TABLES

FRESHNESS_CHECK = dg.AssetCheckKey(table_key("workspaces"), "connections_fresh")
LISTED_REFUSALS = 5  # connection_coverage names this many refused listings, then counts the rest


@dg.asset_check(
    asset=CONNECTION_VALID.asset_key, name=CONNECTION_VALID.name, partitions_def=CONNECTIONS,
    description="The Asana connection works: its token is accepted.",
)
def connection_valid(context: dg.AssetCheckExecutionContext, asana: AsanaResource) -> dg.AssetCheckResult:
    """Shows a broken connection in the UI with its cause and its fix (reconnect, admin needed...).
    A run whose crawl is refused (401, 403) skips this check: the crawl records its verdict then."""
    connection = None
    try:
        connection = asana.for_connection(partition_key(context))
        user = connection.run(whoami)
    except (AsanaError, ConnectionProblem) as error:
        trouble = troubleshoot(error, connection.source() if connection else None)
        return dg.AssetCheckResult(
            passed=False, description=f"{trouble.cause}: {trouble.fix}",
            metadata={"cause": trouble.cause, "fix": trouble.fix},
        )
    return dg.AssetCheckResult(passed=True, metadata={"acting_as": f"{user.get('name')} <{user.get('email')}>"})


@dg.asset_check(
    asset=table_key("workspaces"), partitions_def=CONNECTIONS,
    additional_deps=[table_key("projects"), table_key("quarantine")],
    description="What the connection can see: a person's token misses the private projects it is not in, and "
                "a project's listing Asana refused (402, 403) is missing from the tables.",
)
def connection_coverage(context: dg.AssetCheckExecutionContext, asana: AsanaResource,
                        warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """WARN unless the audit log confirms a service account of an Enterprise organisation in every
    workspace: any other token reads only public projects and the private ones its user belongs
    to, and a token the API cannot place is never assumed to read everything."""
    key = partition_key(context)
    warehouse = run_warehouse(context, warehouse)
    workspaces = warehouse.read("workspaces")["gid"].to_pylist()
    projects = warehouse.read("projects").select(["privacy_setting"])
    private = int(pc.sum(pc.not_equal(projects["privacy_setting"], "public_to_workspace")).as_py() or 0)
    refused = refused_listings(warehouse.read("quarantine").select(["table", "gid", "error"]).to_pandas())
    unread = _unread(refused)
    listings = {"listings_refused": dg.MetadataValue.json(
        [{"project_gid": row.project_gid, "error": row.error} for row in refused.head(LISTED_REFUSALS).itertuples()])}
    try:
        connection = asana.for_connection(key)
        seen = connection.run(lambda client: coverage(client, workspaces, connection.declared_kind()))
    except (AsanaError, ConnectionProblem) as error:
        trouble = troubleshoot(error)
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"Coverage unknown: {trouble.cause}: {trouble.fix}{unread}",
                                   metadata=listings)
    who = "an account of unknown kind" if seen.kind == UNKNOWN else f"a {seen.kind}"
    description = (
        f"Connected as {seen.user}, {who} ({seen.basis}; plan: {seen.plan}); it reads {private} private project(s)"
        + ("; it sees every project." if seen.full else
           f", and it is not confirmed to read the others: private tickets elsewhere may be missed. Fix: {COVERAGE_FIX}.")
        + unread
    )
    return dg.AssetCheckResult(
        passed=seen.full and refused.empty, severity=dg.AssetCheckSeverity.WARN, description=description,
        metadata={"acting_as": seen.user, "user_kind": seen.kind, "user_kind_basis": seen.basis, "plan": seen.plan,
                  "audit_log_answers": dg.MetadataValue.json(seen.audit_log),
                  "private_projects_read": private, "admin_of_workspaces": list(seen.admin_of), **listings},
    )


def _unread(refused) -> str:
    """What the sync could not read although the token reaches the project: the refused listings."""
    if refused.empty:
        return ""
    shown = "; ".join(("project " + refused["project_gid"] + ": " + refused["error"]).head(LISTED_REFUSALS))
    more = f"; and {len(refused) - LISTED_REFUSALS} more" if len(refused) > LISTED_REFUSALS else ""
    return (f" Asana refused {len(refused)} listing(s) of {refused['project_gid'].nunique()} project(s) in the sync "
            f"({shown}{more}): what they hold is missing from the tables, and the monitors that read them say "
            "unknown for those projects. Fix: give the connection access to those projects (403) or the plan's "
            "feature (402), then sync again.")


@dg.asset_check(
    asset=table_key("quarantine"), partitions_def=CONNECTIONS,
    additional_deps=[table_key("audit_log_events")],  # after the audit log's refusals join it
    description="No record was refused at the API boundary, and every reference resolves.",
)
def quarantine_is_empty(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    refused = run_warehouse(context, warehouse).read("quarantine")
    counts = pc.value_counts(refused["table"]).to_pylist()
    return dg.AssetCheckResult(
        passed=refused.num_rows == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined": refused.num_rows,
            "by_table": {row["values"]: row["counts"] for row in counts},
        },
    )


def last_synced(instance: dg.DagsterInstance, key: str) -> datetime | None:
    """When connection ``key``'s raw tables were last written."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=table_key("workspaces"), asset_partitions=[key]), limit=1,
    ).records
    return datetime.fromtimestamp(records[0].timestamp, UTC) if records else None


def freshness(instance: dg.DagsterInstance, keys: list[str], now: datetime) -> dg.AssetCheckEvaluation:
    """Whether every connection synced within the freshness limit, naming those that did not.

    One evaluation for all connections rather than one per partition: Dagster's Postgres event
    log keeps a single run-less evaluation per check and partition, so per-partition results
    reported by a sensor could not be updated."""
    synced = {key: last_synced(instance, key) for key in keys}
    stale = sorted(key for key, at in synced.items() if at is None or now - at > FRESHNESS_LIMIT)
    limit = f"{FRESHNESS_LIMIT.total_seconds() / 3600:g} h"
    return dg.AssetCheckEvaluation(
        asset_key=FRESHNESS_CHECK.asset_key, check_name=FRESHNESS_CHECK.name, passed=not stale,
        description=(f"{len(stale)} of {len(keys)} connection(s) not synced within {limit}: {', '.join(stale)}"
                     if stale else f"All {len(keys)} connection(s) synced within {limit}."),
        metadata={
            "stale": dg.MetadataValue.json(stale),
            "last_synced": dg.MetadataValue.json({k: at.isoformat() if at else "never" for k, at in synced.items()}),
            "limit_hours": FRESHNESS_LIMIT.total_seconds() / 3600,
        },
    )


@dg.asset_check(
    asset=FRESHNESS_CHECK.asset_key, name=FRESHNESS_CHECK.name,
    description="Every connection synced within the freshness limit (judged by asana_freshness_sensor).",
)
def connections_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    judged = freshness(context.instance, sorted(connection_partitions(context.instance)), datetime.now(UTC))
    return dg.AssetCheckResult(passed=judged.passed, description=judged.description, metadata=judged.metadata)


# connections_fresh stands apart: a sensor judges it between runs, no run does.
raw_checks = [connection_valid, connection_coverage, quarantine_is_empty,
              *quality_checks(RAW_TABLES, table_key, "raw_table_quality")]
