"""The monitors as asset checks on the tables they judge, and the derived tables' quality checks."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from asana_assets.defs.compliance.assets import EVALUATED_RUN, EVIDENCE_PACK, EVIDENCE_REPORT
from asana_assets.defs.partitions import CONNECTIONS, partition_key
from asana_assets.defs.publish import run_warehouse
from asana_assets.defs.quality import quality_checks as build_quality_checks
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.defs.tables import table_key
from asana_assets.lib.compliance import monitors, tickets
from asana_assets.lib.compliance.report import EXCEPTION_COLUMNS, EXCEPTION_HEADERS, exception_cells, md_link, md_text
from asana_assets.lib.schema import DERIVED_TABLES

FIRST_FAILURES = 20


def evaluated_run(context: dg.AssetCheckExecutionContext) -> dict[str, str]:
    """The evaluation a check judges: the metadata (``evaluated_run``, ``evidence_pack``,
    ``evidence_report``) of the latest monitor_results materialization of this connection (this
    run's, when the check runs after it); empty before the first. Read from the materialization,
    not from the rows, so an evaluation that found nothing to judge is judged as such rather than
    mistaken for an older one."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=table_key("monitor_results"), asset_partitions=[partition_key(context)]),
        limit=1,
    ).records
    if not records:
        return {}
    metadata = records[0].asset_materialization.metadata
    return {key: metadata[key].value for key in (EVALUATED_RUN, EVIDENCE_PACK, EVIDENCE_REPORT) if key in metadata}


def failure_table(failures: pd.DataFrame, pack: str | None, monitor_id: str) -> str:
    """The first failures as the evidence report names them (resource, project, people, link,
    reason), read from the evaluation's evidence pack; the bare rows when the pack is gone."""
    named = Path(pack or "") / "monitors" / f"{monitor_id}.csv"
    if pack and named.exists():
        shown = ["status", *EXCEPTION_COLUMNS]
        rows = pa_csv.read_csv(named, convert_options=pa_csv.ConvertOptions(
            include_columns=shown, column_types=dict.fromkeys(shown, pa.string())))
        failures = rows.filter(pc.field("status") == "alarm").to_pandas().replace("", None)
    else:
        failures = failures.assign(name=failures["resource_type"] + " " + failures["resource_gid"],
                                   project=None, people=None)
    first = failures.head(FIRST_FAILURES)
    if first.empty:
        return "none"
    lines = ["| " + " | ".join(EXCEPTION_HEADERS) + " |", "|" + "---|" * len(EXCEPTION_HEADERS)]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in exception_cells(first, md_text, md_link)])


@dg.multi_asset_check(
    name="monitor_verdicts", can_subset=True,
    specs=[dg.AssetCheckSpec(m.id, asset=table_key(m.table), description=m.title,
                             additional_deps=[table_key("monitor_results")], partitions_def=CONNECTIONS)
           for m in monitors.MONITORS.values()],
)
def monitor_verdicts(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    """Each monitor's verdict on the evaluated run, as its check on the table it judges; one step
    reads the run's results once for them all."""
    evaluation = evaluated_run(context)
    run = evaluation.get(EVALUATED_RUN)
    chosen = [m for m in monitors.MONITORS.values() if dg.AssetCheckKey(table_key(m.table), m.id)
              in context.selected_asset_check_keys]
    # Only the chosen monitors' rows of the evaluated run: the other runs' parts are not read.
    wanted = (pc.field("run_id") == str(run)) & pc.field("monitor_id").isin([m.id for m in chosen])
    results = run_warehouse(context, warehouse).read_history("monitor_results", filters=wanted).to_pandas()
    for monitor in chosen:
        yield _verdict(monitor, results[results["monitor_id"] == monitor.id], run, evaluation)


def _verdict(monitor: monitors.Monitor, mine: pd.DataFrame, run: str | None,
             evaluation: dict[str, str]) -> dg.AssetCheckResult:
    if run is None:
        result, why = monitors.NOT_EVALUATED, "Not evaluated: no monitor results yet: materialize monitor_results."
    else:
        result, why = monitors.verdict(mine)
    failures = mine[mine["status"] == "alarm"]
    # A check result is only passed or failed: NOT EVALUATED is not passed, as a warning.
    severity = monitor.severity if result in (monitors.FAIL, monitors.ERROR) else "WARN"
    report = evaluation.get(EVIDENCE_REPORT)
    return dg.AssetCheckResult(
        asset_key=table_key(monitor.table), check_name=monitor.id,
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
            "first_failures": dg.MetadataValue.md(failure_table(failures, evaluation.get(EVIDENCE_PACK), monitor.id)),
            **({"evidence_report": dg.MetadataValue.path(report)} if report else {}),
        },
    )


@dg.asset_check(
    asset=table_key("workflow_states"), name="workflow_mapping", additional_deps=[table_key("collections")],
    partitions_def=CONNECTIONS,
    description="Every section of a change project maps to a known workflow stage",
)
def workflow_mapping(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """WARN, listing each section of a change project whose name says no known stage and the
    override that maps it: the changes that entered one are unknown until it is mapped."""
    warehouse = run_warehouse(context, warehouse)
    unmapped = tickets.unmapped_change_sections(
        warehouse.read("workflow_states").to_pandas(),
        warehouse.read("collections", ["gid", "name", "is_change_project"]).to_pandas())
    listed = unmapped.head(FIRST_FAILURES)
    table = "\n".join(["| project | section | section gid | override to add |", "|---|---|---|---|"] + [
        f"| {md_text(r.project)} | {md_text(r.section)} | {r.section_gid} | {md_text(r.override)} |"
        for r in listed.itertuples()])
    return dg.AssetCheckResult(
        passed=unmapped.empty, severity=dg.AssetCheckSeverity.WARN,
        description="Every section of the change projects maps to a stage." if unmapped.empty else (
            f"{len(unmapped)} section(s) of change projects say no known stage: the changes that entered them are "
            "unknown. Add each to project_section_overrides (or section_overrides) of the compliance settings with "
            "its stage (BACKLOG, TODO, APPROVED, IN_PROGRESS, IN_REVIEW, BLOCKED or DONE)."),
        metadata={"unmapped_sections": len(unmapped),
                  "first_unmapped": dg.MetadataValue.md(table if len(listed) else "none")},
    )


monitor_checks = [monitor_verdicts, workflow_mapping]
quality_checks = build_quality_checks(DERIVED_TABLES, table_key, "compliance_table_quality")
