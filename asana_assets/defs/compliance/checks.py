"""The monitors as asset checks on the tables they judge, and the derived tables' quality checks."""

import dagster as dg

from asana_assets.defs.compliance.assets import read_tables
from asana_assets.defs.partitions import CONNECTIONS
from asana_assets.defs.publish import root_run_id, run_warehouse
from asana_assets.defs.quality import quality_checks as build_quality_checks
from asana_assets.defs.resources import WarehouseResource
from asana_assets.defs.tables import table_key
from asana_assets.lib.compliance import monitors
from asana_assets.lib.schema import DERIVED_TABLES

FIRST_FAILURES = 20


def _monitor_check(monitor: monitors.Monitor) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=table_key(monitor.table), name=monitor.id, description=monitor.title,
        additional_deps=[table_key("monitor_results")], partitions_def=CONNECTIONS,
    )
    def check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        results = read_tables(run_warehouse(context, warehouse), "monitor_results")["monitor_results"]
        mine = results[results["monitor_id"] == monitor.id]
        # This run's evaluation; a check run on its own judges the latest one.
        this = root_run_id(context)
        run = this if (mine["run_id"] == this).any() else (
            mine.sort_values("evaluated_at")["run_id"].iloc[-1] if len(mine) else None)
        mine = mine[mine["run_id"] == run]
        failures = mine[mine["status"] == "alarm"]
        first = failures.head(FIRST_FAILURES)[["resource_type", "resource_gid", "reason", "resource_url"]]
        return dg.AssetCheckResult(
            passed=failures.empty and not mine.empty,
            severity=dg.AssetCheckSeverity[monitor.severity],
            description=monitor.title if not mine.empty else "No monitor results yet: materialize monitor_results.",
            metadata={
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
