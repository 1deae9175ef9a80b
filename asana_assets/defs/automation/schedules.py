"""The hourly schedule that starts each connection's daily full sync at that connection's hour."""

from datetime import UTC

import dagster as dg

from asana_assets.defs.automation.jobs import full_sync
from asana_assets.defs.partitions import serving
from asana_assets.defs.resources import AsanaResource


@dg.schedule(
    name="asana_full_sync_at_connection_hour", job=full_sync, cron_schedule="0 * * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour on the hour (UTC), starts the daily full sync of each active connection whose "
                "full-sync hour it is (ASANA_FULL_SYNC_HOUR, or `asana-connections schedule`).",
)
def full_sync_at_connection_hour(context: dg.ScheduleEvaluationContext, asana: AsanaResource):
    when = context.scheduled_execution_time.astimezone(UTC)
    due = [c for c in serving(asana.connections(), context.instance) if c.full_sync_hour == when.hour]
    if not due:
        return dg.SkipReason(f"No connection has its full sync at {when:%H}:00 UTC.")
    return [dg.RunRequest(run_key=f"full-{c.key}-{when:%Y%m%dT%H}", partition_key=c.key) for c in due]
