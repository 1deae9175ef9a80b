"""Jobs, the schedule and the sensors that keep every connection's warehouse in step with Asana.

Each connection is a partition (see partitions.py), and every request below names one:

- ``asana_connections_sensor`` keeps the partitions equal to the configured and stored
  connections, and asks for a new connection's first full sync;
- ``asana_events_sensor`` polls each connection's project events feeds (reading, not consuming,
  the pending events) and asks for an incremental run of the projects that changed; the run
  applies exactly those changes and only then advances the saved tokens;
- ``asana_daily_full_sync`` runs each connection's full reconciliation at its own UTC hour: a
  full crawl catches whatever an events feed can miss (Asana delivers events at most once);
- ``asana_freshness_sensor`` records whether every connection's tables are younger than the
  freshness limit, naming each connection that stopped syncing.

A connection that fails (revoked token, outage, rate limit) fails its own poll or run; dagster.yaml
queues runs per partition, so it never holds up another connection's.
"""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta

import dagster as dg

from asana_assets.client import AsanaError
from asana_assets.connections import ConnectionProblem, describe
from asana_assets.partitions import CONNECTIONS, Tenant, partition_requests
from asana_assets.raw_assets import FRESHNESS_LIMIT, SyncConfig, asana_raw_sync, raw_key
from asana_assets.resources import AsanaResource, WarehouseResource

EVENTS_INTERVAL = 60  # seconds between two ticks of the events sensor
# Ticks drift by a few seconds: a connection polled every minute must not skip every other tick.
TICK_SLACK = timedelta(seconds=EVENTS_INTERVAL / 2)
POLL_BUDGET = 40.0  # seconds a tick waits for the polls (Dagster gives a sensor 60)
FRESHNESS_CHECK = dg.AssetCheckKey(raw_key("workspaces"), "connections_fresh")
SYNC = dg.AssetSelection.all() - dg.AssetSelection.checks(FRESHNESS_CHECK)  # judged between runs, not by them

full_sync = dg.define_asset_job(
    "asana_full_sync", selection=SYNC, partitions_def=CONNECTIONS,
    description="Crawl every Asana table of a connection, derive the compliance tables, run the monitors, "
                "write the evidence pack.",
)
incremental_sync = dg.define_asset_job(
    "asana_incremental_sync", selection=SYNC, partitions_def=CONNECTIONS,
    config=dg.RunConfig(ops={asana_raw_sync.node_def.name: SyncConfig(mode="incremental")}),
    description="Apply the changes a connection's events feeds report, then re-derive and re-check everything.",
)


def _partitions(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.get_dynamic_partitions(CONNECTIONS.name))


def _serving(asana: AsanaResource, instance: dg.DagsterInstance) -> list[Tenant]:
    """The active connections that have a partition."""
    partitions = _partitions(instance)
    return [tenant for tenant in asana.tenants() if tenant.active and tenant.key in partitions]


@dg.sensor(job=full_sync, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def asana_connections_sensor(context: dg.SensorEvaluationContext, asana: AsanaResource):
    """One partition per connection: add the new ones (and sync them at once), drop the deleted."""
    tenants = asana.tenants()
    existing = _partitions(context.instance)
    added = [t for t in tenants if t.key not in existing]
    requests = partition_requests(existing, {t.key for t in tenants})
    if not requests:
        return dg.SkipReason(f"{len(existing)} connection(s), none added or removed.")
    return dg.SensorResult(
        dynamic_partitions_requests=requests,
        run_requests=[dg.RunRequest(run_key=f"first-{t.key}", partition_key=t.key) for t in added if t.active],
    )


@dg.schedule(
    name="asana_daily_full_sync", job=full_sync, cron_schedule="0 * * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly tick: each connection whose full-sync hour (UTC) this is gets its daily reconciliation.",
)
def daily_full_sync(context: dg.ScheduleEvaluationContext, asana: AsanaResource):
    when = context.scheduled_execution_time.astimezone(UTC)
    due = [t for t in _serving(asana, context.instance) if t.full_sync_hour == when.hour]
    if not due:
        return dg.SkipReason(f"No connection has its full sync at {when:%H}:00 UTC.")
    return [dg.RunRequest(run_key=f"full-{t.key}-{when:%Y%m%dT%H}", partition_key=t.key) for t in due]


def _look(asana: AsanaResource, warehouse: WarehouseResource, tenant: Tenant) -> dict[str, str] | str:
    """One connection's changed projects, or why it has none to offer."""
    try:
        state = warehouse.for_connection(tenant.key).state_store().load()
        if not state.tokens:
            return "no sync yet (its first full sync takes the events tokens)"
        changed = asana.for_connection(tenant.key).changed_projects(state)
    except (AsanaError, ConnectionProblem) as failure:
        return f"could not poll: {describe(failure)}"
    except Exception as failure:  # noqa: BLE001 - whatever breaks one connection must not stop the others' polls
        return f"could not poll: {type(failure).__name__}: {failure}"
    return changed or f"no new events in {len(state.tokens)} project(s)"


@dg.sensor(job=incremental_sync, minimum_interval_seconds=EVENTS_INTERVAL,
           default_status=dg.DefaultSensorStatus.RUNNING)
def asana_events_sensor(context: dg.SensorEvaluationContext, asana: AsanaResource, warehouse: WarehouseResource):
    """Request an incremental run, per connection, of the projects whose events feed has anything new."""
    serving = _serving(asana, context.instance)
    # connection -> when its feeds were last polled (connections no longer served are dropped)
    polled = {k: v for k, v in _polled(context.cursor).items() if k in {t.key for t in serving}}
    now = datetime.now(UTC)
    due = [
        t for t in serving
        if t.key not in polled
        or now - datetime.fromisoformat(polled[t.key]) >= timedelta(minutes=t.poll_minutes) - TICK_SLACK
    ]
    if not due:
        return dg.SkipReason("No connection is due for a poll.")
    # Connections are polled side by side, each look bounded (no retries, no waiting out a 429),
    # and the tick waits POLL_BUDGET at most: a connection not done by then is looked at again
    # next time, and the others' runs are requested now.
    pool = ThreadPoolExecutor(max_workers=min(8, len(due)))
    futures = {t.key: pool.submit(_look, asana, warehouse, t) for t in due}
    done, _ = wait(futures.values(), timeout=POLL_BUDGET)
    pool.shutdown(wait=False, cancel_futures=True)
    looks = {key: future.result() if future in done else f"could not poll: no answer within {POLL_BUDGET:g} s"
             for key, future in futures.items()}
    requests, quiet = [], []
    for key, look in looks.items():
        if isinstance(look, str):
            quiet.append(f"{key}: {look}")
            if look.startswith("could not poll"):
                context.log.warning(f"Connection {key} {look}")
            continue
        # The same pending changes give the same key, so a tick before the run ends adds no run.
        digest = hashlib.sha256(repr(sorted(look.items())).encode()).hexdigest()[:16]
        config = dg.RunConfig(ops={asana_raw_sync.node_def.name: SyncConfig(mode="incremental", projects=sorted(look))})
        requests.append(dg.RunRequest(
            run_key=f"events-{key}-{digest}", run_config=config, partition_key=key,
            tags={"asana/changed_projects": str(len(look))},
        ))
    cursor = json.dumps({**polled, **{key: now.isoformat() for key in looks}}, sort_keys=True)
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(quiet), cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


def _polled(cursor: str | None) -> dict[str, str]:
    """The cursor's poll times; a cursor from another version of the sensor counts as none."""
    try:
        polled = json.loads(cursor or "{}")
    except ValueError:
        return {}
    return polled if isinstance(polled, dict) else {}


def last_synced(instance: dg.DagsterInstance, key: str) -> datetime | None:
    """When connection ``key``'s raw tables were last written."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=raw_key("workspaces"), asset_partitions=[key]), limit=1,
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
    judged = freshness(context.instance, sorted(_partitions(context.instance)), datetime.now(UTC))
    return dg.AssetCheckResult(passed=judged.passed, description=judged.description, metadata=judged.metadata)


@dg.sensor(minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING)
def asana_freshness_sensor(context: dg.SensorEvaluationContext):
    """Judge every connection's freshness, so a stalled connection shows even while others sync."""
    keys = sorted(_partitions(context.instance))
    if not keys:
        return dg.SkipReason("No connection yet.")
    return dg.SensorResult(asset_events=[freshness(context.instance, keys, datetime.now(UTC))])
