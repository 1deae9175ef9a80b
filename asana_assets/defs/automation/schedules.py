"""The hourly schedules that start each connection's daily sync at that connection's hour: a
reconcile on six days, the full sync on FULL_SYNC_WEEKDAY."""

import calendar
from datetime import UTC, datetime

import dagster as dg

from asana_assets.defs.automation.jobs import full_sync, reconcile_sync
from asana_assets.defs.partitions import ConnectionSchedule, serving
from asana_assets.defs.resources.asana import AsanaResource

# The weekday (Monday is 0) of the full sync, which also catches what a reconcile cannot see
# without its events (an edit to a subtask, an edited comment, a move there and back).
FULL_SYNC_WEEKDAY = calendar.SUNDAY
DAY = calendar.day_name[FULL_SYNC_WEEKDAY]


def _due(context: dg.ScheduleEvaluationContext, asana: AsanaResource) -> tuple[datetime, list[ConnectionSchedule]]:
    """The tick's time, and the active connections whose sync hour it is."""
    when = context.scheduled_execution_time.astimezone(UTC)
    return when, [c for c in serving(asana.connections(), context.instance) if c.full_sync_hour == when.hour]


@dg.schedule(
    name="asana_full_sync_at_connection_hour", job=full_sync, cron_schedule="0 * * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Every hour on the hour (UTC), on {DAY}s, starts the weekly full sync of each active connection "
                "whose full-sync hour it is (ASANA_FULL_SYNC_HOUR, or `asana-connections schedule`).",
)
def full_sync_at_connection_hour(context: dg.ScheduleEvaluationContext, asana: AsanaResource):
    if context.scheduled_execution_time.astimezone(UTC).weekday() != FULL_SYNC_WEEKDAY:
        return dg.SkipReason(f"The full sync runs on {DAY}s; the reconcile runs on the other days.")
    when, due = _due(context, asana)
    if not due:
        return dg.SkipReason(f"No connection has its full sync at {when:%H}:00 UTC.")
    return [dg.RunRequest(run_key=f"full-{c.key}-{when:%Y%m%dT%H}", partition_key=c.key) for c in due]


@dg.schedule(
    name="asana_reconcile_at_connection_hour", job=reconcile_sync, cron_schedule="0 * * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Every hour on the hour (UTC), except on {DAY}s (the full sync's day), starts the daily reconcile "
                "of each active connection whose full-sync hour it is.",
)
def reconcile_at_connection_hour(context: dg.ScheduleEvaluationContext, asana: AsanaResource):
    if context.scheduled_execution_time.astimezone(UTC).weekday() == FULL_SYNC_WEEKDAY:
        return dg.SkipReason(f"On {DAY}s the full sync runs instead of the reconcile.")
    when, due = _due(context, asana)
    if not due:
        return dg.SkipReason(f"No connection has its reconcile at {when:%H}:00 UTC.")
    return [dg.RunRequest(run_key=f"reconcile-{c.key}-{when:%Y%m%dT%H}", partition_key=c.key) for c in due]
