"""The sensors that keep every connection's warehouse in step with Asana.

Each connection is a partition (see defs/partitions.py), and every request below names one:

- ``asana_connections_sensor`` keeps the partitions equal to the configured and stored
  connections, and asks for a new connection's first full sync;
- ``asana_events_sensor`` polls each connection's project events feeds and asks for an
  incremental run of the projects that changed, by the polling rules (docs/operations.md, "The
  events sensor"; lib/asana/polls.py);
- ``asana_freshness_sensor`` records whether every connection's tables are younger than the
  freshness limit, naming each connection that stopped syncing.

The daily reconcile and the weekly full sync are the schedules' (schedules.py). A connection
that fails (revoked token, outage, rate limit) fails its own poll or run; dagster.yaml queues runs
per partition, so it never holds up another connection's.
"""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta

import dagster as dg

from asana_assets.defs.automation.jobs import full_sync, incremental_sync
from asana_assets.defs.partitions import ConnectionSchedule, connection_partitions, partition_requests, serving
from asana_assets.defs.raw.assets import SyncConfig, asana_raw_sync
from asana_assets.defs.raw.checks import freshness
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.lib.asana.polls import LOOK_CLIENT, PollPolicy, look_at_feeds
from asana_assets.lib.connections.session import SENSOR
from asana_assets.lib.connections.troubleshooting import describe

EVENTS_INTERVAL = 60  # seconds between two ticks of the events sensor
# Ticks drift by a few seconds: a connection polled every minute must not skip every other tick.
TICK_SLACK = timedelta(seconds=EVENTS_INTERVAL / 2)
POLL_BUDGET = 40.0  # seconds a tick waits for the polls (Dagster gives a sensor 60)
# The polls of a tick are sized to take this long at the sensor's share of the quota (one request
# a project), so they are answered within POLL_BUDGET; what is still unanswered then stays due.
POLL_SECONDS = 30.0


@dg.sensor(
    job=full_sync, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: one partition per connection (configured or stored); a new connection's first "
                "full sync starts at once, a removed connection's partition is dropped (its data stays).",
)
def asana_connections_sensor(context: dg.SensorEvaluationContext, asana: AsanaResource):
    """One partition per connection: add the new ones (and sync them at once), drop the deleted."""
    connections = asana.connections()
    existing = connection_partitions(context.instance)
    added = [c for c in connections if c.key not in existing]
    requests = partition_requests(existing, {c.key for c in connections})
    if not requests:
        return dg.SkipReason(f"{len(existing)} connection(s), none added or removed.")
    return dg.SensorResult(
        dynamic_partitions_requests=requests,
        run_requests=[dg.RunRequest(run_key=f"first-{c.key}", partition_key=c.key) for c in added if c.active],
    )


def poll_policy(asana: AsanaResource, connection: ConnectionSchedule) -> PollPolicy:
    """How a connection's projects are polled: its poll interval, and as many polls a tick as the
    sensor's share of the quota allows in POLL_SECONDS (75 at 1,500 requests a minute and 10%)."""
    per_tick = asana.requests_per_minute * asana.sensor_quota_share * POLL_SECONDS / 60
    return PollPolicy(every=connection.poll_minutes, budget=max(1, int(per_tick)), slack=TICK_SLACK.total_seconds() / 60)


def _now() -> datetime:
    """The tick's time (one place, so that a test can move the clock)."""
    return datetime.now(UTC)


def _look(asana: AsanaResource, warehouse: WarehouseResource, connection: ConnectionSchedule,
          now: datetime) -> dict[str, str] | str:
    """The changed projects among those of one connection due for a poll, or why there are none.
    The poll schedule is saved once the polls are done (a failed poll leaves its project due)."""
    try:
        warehouse = warehouse.for_connection(connection.key)
        state = warehouse.state_store().load()
        if not state.tokens:
            return "no sync yet (its first full sync takes the events tokens)"
        store = warehouse.poll_store()
        schedule, policy = store.load(), poll_policy(asana, connection)
        state.renew(schedule.tokens)
        tracked = set(state.tokens) - set(state.archived)
        due, waiting = schedule.due(tracked, policy, now.timestamp())
        if not due:
            return f"none of {len(tracked)} project(s) due for a poll ({len(state.archived)} archived, left to the reconcile)"
        renewed: dict[str, str] = {}
        looked = asana.for_connection(connection.key).run(
            lambda client: look_at_feeds(client, state, due, within=POLL_BUDGET * 0.9, renewed=renewed),
            pool=SENSOR, **LOOK_CLIENT)
        if not looked:
            return f"could not poll: no answer within {POLL_BUDGET:g} s"
        schedule.polled({gid: pending is not None for gid, pending in looked.items()}, policy, now.timestamp())
        schedule.renewed(renewed, now.isoformat())
        store.save(schedule)
    except Exception as failure:  # noqa: BLE001 - whatever breaks one connection must not stop the others' polls
        # Its cause and fix, never its raw text: an unexpected error's text may quote a token.
        return f"could not poll: {describe(failure)}"
    changed = {gid: pending for gid, pending in looked.items() if pending is not None}
    later = f"; {waiting} more due, polled next tick" if waiting else ""
    return changed or f"no new events in {len(looked)} project(s){later}"


@dg.sensor(
    job=incremental_sync, minimum_interval_seconds=EVENTS_INTERVAL, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute (each connection at most every poll_minutes): looks at the events feeds of the "
                "projects due (recently active ones at every tick, quiet ones less often, archived ones never; "
                "within the sensor's share of the connection's request quota) and starts an incremental sync of the "
                "projects that changed.",
)
def asana_events_sensor(context: dg.SensorEvaluationContext, asana: AsanaResource, warehouse: WarehouseResource):
    """Request an incremental run, per connection, of the projects whose events feed has anything new."""
    served = serving(asana.connections(), context.instance)
    # connection -> when its feeds were last polled (connections no longer served are dropped)
    polled = {k: v for k, v in _polled(context.cursor).items() if k in {c.key for c in served}}
    now = _now()
    due = [
        c for c in served
        if c.key not in polled
        or now - datetime.fromisoformat(polled[c.key]) >= timedelta(minutes=c.poll_minutes) - TICK_SLACK
    ]
    if not due:
        return dg.SkipReason("No connection is due for a poll.")
    # Connections are polled side by side, each look bounded (no retries, no waiting out a 429),
    # and the tick waits POLL_BUDGET at most: a connection not done by then is looked at again
    # next time, and the others' runs are requested now.
    pool = ThreadPoolExecutor(max_workers=min(8, len(due)))
    futures = {c.key: pool.submit(_look, asana, warehouse, c, now) for c in due}
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


@dg.sensor(
    minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 10 minutes: records connections_fresh, failing when a connection's tables are older "
                "than the freshness limit, and naming it.",
)
def asana_freshness_sensor(context: dg.SensorEvaluationContext):
    """Judge every connection's freshness, so a stalled connection shows even while others sync."""
    keys = sorted(connection_partitions(context.instance))
    if not keys:
        return dg.SkipReason("No connection yet.")
    return dg.SensorResult(asset_events=[freshness(context.instance, keys, datetime.now(UTC))])
