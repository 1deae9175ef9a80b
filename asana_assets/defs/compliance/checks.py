"""The monitors as asset checks on the tables they judge, and the derived tables' quality checks."""

import dagster as dg

from asana_assets.defs.compliance.assets import EVALUATED_RUN, read_tables
from asana_assets.defs.partitions import CONNECTIONS, partition_key
from asana_assets.defs.publish import run_warehouse
from asana_assets.defs.quality import quality_checks as build_quality_checks
from asana_assets.defs.resources import WarehouseResource
from asana_assets.defs.tables import table_key
from asana_assets.lib.compliance import monitors
from asana_assets.lib.schema import DERIVED_TABLES

FIRST_FAILURES = 20


def evaluated_run(context: dg.AssetCheckExecutionContext) -> str | None:
    """The evaluation a check judges: the one the latest monitor_results materialization of this
    connection wrote (this run's, when the check runs after it). Read from the materialization,
    not from the rows, so an evaluation that found nothing to judge is judged as such rather than
    mistaken for an older one."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=table_key("monitor_results"), asset_partitions=[partition_key(context)]),
        limit=1,
    ).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get(EVALUATED_RUN)
    return value.value if value is not None else None


def _monitor_check(monitor: monitors.Monitor) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=table_key(monitor.table), name=monitor.id, description=monitor.title,
        additional_deps=[table_key("monitor_results")], partitions_def=CONNECTIONS,
    )
    def check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        run = evaluated_run(context)
        results = read_tables(run_warehouse(context, warehouse), "monitor_results")["monitor_results"]
        mine = results[(results["monitor_id"] == monitor.id) & (results["run_id"] == run)]
        if run is None:
            result, why = monitors.NOT_EVALUATED, "Not evaluated: no monitor results yet: materialize monitor_results."
        else:
            result, why = monitors.verdict(mine)
        failures = mine[mine["status"] == "alarm"]
        first = failures.head(FIRST_FAILURES)[["resource_type", "resource_gid", "reason", "resource_url"]]
        # A check result is only passed or failed: NOT EVALUATED is not passed, as a warning.
        severity = monitor.severity if result in (monitors.FAIL, monitors.ERROR) else "WARN"
        return dg.AssetCheckResult(
            passed=result == monitors.PASS,
            severity=dg.AssetCheckSeverity[severity],
            description=why if result == monitors.NOT_EVALUATED else f"{monitor.title}: {why}",
            metadata={
                "verdict": result,
                "evaluated_run": str(run),
                "population": int((mine["status"] != "skip").sum()),
                "failures": len(failures),
                "statuses": dg.MetadataValue.json(mine["status"].value_counts().to_dict()),
                "control_refs": ", ".join(monitor.control_refs),
                "first_failures": dg.MetadataValue.md(first.to_markdown(index=False) if len(first) else "none"),
            },
        )

    return check


monitor_checks = [_monitor_check(m) for m in monitors.MONITORS.values()]
quality_checks = build_quality_checks(DERIVED_TABLES, table_key)
