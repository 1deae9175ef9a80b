"""The code location: every Dagster definition of the project, assembled from ``defs/``.

Importing it starts nothing and writes nothing: the resources read their settings at launch,
and the demo simulator, with ASANA_DEMO, starts only when a run or a sensor first needs it (see
demo.py). A deployment configured for production but missing its Asana credentials still loads,
on purpose: the UI and `dagster definitions validate` keep working while it is set up, and every
run or sensor that needs Asana fails with the setting to add.
"""

import dagster as dg

from asana_assets.defs.automation import jobs, schedules, sensors
from asana_assets.defs.compliance import assets as compliance_assets
from asana_assets.defs.compliance import checks as compliance_checks
from asana_assets.defs.compliance import remediation
from asana_assets.defs.raw import assets as raw_assets
from asana_assets.defs.raw import audit as raw_audit
from asana_assets.defs.raw import checks as raw_checks
from asana_assets.defs.resources.configured import configured_resources

ASSETS = [raw_assets.asana_raw_sync, raw_audit.audit_log_events, *compliance_assets.compliance_assets,
          remediation.remediation_tasks]
# The checks a run executes; connections_fresh judges every connection at once, from the sensor.
RUN_CHECKS = [*raw_checks.raw_checks, *compliance_checks.monitor_checks, *compliance_checks.quality_checks]


def build_defs(resources: dict | None = None, executor: dg.ExecutorDefinition = dg.in_process_executor
               ) -> dg.Definitions:
    """The code location's definitions; the tests build theirs here too, with their own resources
    (and executor), so there is no second list of assets."""
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=[*RUN_CHECKS, raw_checks.connections_fresh],
        jobs=[jobs.full_sync, jobs.incremental_sync, jobs.reconcile_sync, jobs.period_evidence],
        schedules=[schedules.full_sync_at_connection_hour, schedules.reconcile_at_connection_hour],
        sensors=[sensors.asana_connections_sensor, sensors.asana_events_sensor, sensors.asana_freshness_sensor],
        resources=configured_resources() if resources is None else resources,
        # The steps are light (one async crawl, pandas transforms, checks that read Parquet):
        # running them in the run's own process avoids a Python start-up per step. Scale-out
        # executors are a run-config change away.
        executor=executor,
    )


defs = build_defs()
