"""Jobs, the schedule and the sensor that keep the warehouse in step with Asana.

The sensor polls each project's events feed (reading, not consuming, the pending events) and
asks for an incremental run when anything changed; the run applies exactly those changes and
only then advances the saved tokens. A daily full sync reconciles whatever an events feed can
miss (Asana delivers events at most once) and takes fresh tokens.
"""

import hashlib

import dagster as dg

from asana_assets.raw_assets import SyncConfig, asana_raw_sync
from asana_assets.resources import AsanaResource, WarehouseResource

ALL = dg.AssetSelection.all()
# dagster.yaml allows one run at a time per connection: two syncs of one workspace never
# interleave their writes or their saved events tokens.
CONNECTION = {"asana/connection": "default"}

full_sync = dg.define_asset_job(
    "asana_full_sync", selection=ALL, tags=CONNECTION,
    description="Crawl every Asana table, derive the compliance tables, run the monitors, write the evidence pack.",
)
incremental_sync = dg.define_asset_job(
    "asana_incremental_sync", selection=ALL, tags=CONNECTION,
    config=dg.RunConfig(ops={asana_raw_sync.node_def.name: SyncConfig(mode="incremental")}),
    description="Apply the changes the projects' events report, then re-derive and re-check everything.",
)

daily_full_sync = dg.ScheduleDefinition(
    name="asana_daily_full_sync", job=full_sync, cron_schedule="0 3 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily reconciliation: a full crawl catches what an events feed missed.",
)


@dg.sensor(job=incremental_sync, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def asana_events_sensor(context: dg.SensorEvaluationContext, asana: AsanaResource, warehouse: WarehouseResource):
    """Request an incremental run of the projects whose events feed has anything new."""
    state = warehouse.state_store().load()
    if not state.tokens:
        return dg.SkipReason("No sync yet: the first full sync (schedule or launch) takes the events tokens.")
    changed = asana.changed_projects(state)
    if not changed:
        return dg.SkipReason(f"No new events in {len(state.tokens)} project(s).")
    # The same pending changes give the same key, so a tick before the run ends adds no run.
    key = hashlib.sha256(repr(sorted(changed.items())).encode()).hexdigest()[:16]
    config = dg.RunConfig(ops={asana_raw_sync.node_def.name: SyncConfig(mode="incremental", projects=sorted(changed))})
    return dg.SensorResult(
        run_requests=[dg.RunRequest(
            run_key=f"events-{key}", run_config=config, tags={"asana/changed_projects": str(len(changed))},
        )],
        cursor=key,
    )
