"""Findings as Asana tasks (opt-in, off by default): after the run's publication, each alarm
of this run becomes a task in the remediation project, and each cleared alarm's task is
completed with a comment. Never for the demo: its world is not the user's Asana."""

import dagster as dg

from asana_assets.defs.compliance.assets import GROUP, evaluation, read_tables
from asana_assets.defs.partitions import CONNECTIONS, partition_key
from asana_assets.defs.publish import run_warehouse
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.defs.resources.compliance import ComplianceResource
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.defs.tables import table_key
from asana_assets.lib.compliance import evidence
from asana_assets.lib.compliance.remediation import remediate

KEY = dg.AssetKey(["asana", "remediation_tasks"])


@dg.multi_asset(
    name="remediation_tasks",
    specs=[dg.AssetSpec(
        KEY, group_name=GROUP, deps=[table_key("monitor_results")], kinds={"asana"}, skippable=True,
        description="Opt-in (remediation_enabled): one task per alarm in the remediation project, updated while "
                    "the alarm lasts and completed with a comment when it clears. Materializes nothing when "
                    "disabled or when the source is the demo.",
    )],
    partitions_def=CONNECTIONS,
)
def remediation_tasks(context: dg.AssetExecutionContext, compliance: ComplianceResource, asana: AsanaResource,
                      warehouse: WarehouseResource):
    """File this run's findings as tasks; the open tasks' gids are kept in the sync state."""
    if not compliance.remediation_enabled:
        context.log.info("Findings as tasks: disabled (remediation_enabled is false); nothing written to Asana")
        return
    connection = partition_key(context)
    if asana.provenance(connection)["source"]["demo"]:
        context.log.warning("Findings as tasks refused: the source is the demo simulator, not your Asana")
        return
    if not compliance.remediation_project_gid:
        raise dg.Failure(description="remediation_enabled is set but remediation_project_gid is not: "
                                     "set the project the findings' tasks go to", allow_retries=False)
    asana, warehouse = asana.for_connection(connection), run_warehouse(context, warehouse)
    run_id, as_of = evaluation(context, compliance)
    results = read_tables(warehouse, "monitor_results")["monitor_results"]
    results = results[results["run_id"] == run_id]
    report = warehouse.root / "evidence" / evidence.pack_name(run_id, as_of) / evidence.REPORT
    store = warehouse.state_store()
    known = store.load().remediation
    outcome = asana.run(lambda client: remediate(
        client, compliance.remediation_project_gid, compliance.remediation_assignee_gid, results, known, run_id, as_of,
        str(report)))
    state = store.load()  # saved directly: the run's tables were committed before this step
    state.remediation = outcome.tasks
    store.save(state)
    context.log.info(f"Findings as tasks: {len(outcome.opened)} opened, {len(outcome.updated)} updated, "
                     f"{len(outcome.closed)} completed, {len(outcome.tasks)} open")
    yield dg.MaterializeResult(asset_key=KEY, metadata={
        "opened": len(outcome.opened), "updated": len(outcome.updated), "completed": len(outcome.closed),
        "open_tasks": dg.MetadataValue.json(outcome.tasks), "reconciled_from_markers": outcome.reconciled,
        "remediation_project_gid": compliance.remediation_project_gid,
    })
