"""Compliance tables derived from the raw ones, and the monitors' results with their evidence pack."""

from collections.abc import Mapping
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.defs.partitions import CONNECTIONS, connection_partitions, partition_key
from asana_assets.defs.publish import commit_if_last, root_run_id, run_warehouse, stage
from asana_assets.defs.raw.checks import freshness
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.defs.resources.compliance import ComplianceResource
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.defs.tables import column_schema, table_key, table_metadata
from asana_assets.lib.compliance import access, evidence, monitors, review, sla, tickets
from asana_assets.lib.compliance.report import COUNTED, alarm_counts, run_coverage, verdicts
from asana_assets.lib.compliance.workflow import workflow_states as classify_sections
from asana_assets.lib.schema import DERIVED_TABLES, REGISTRY, require_columns
from asana_assets.lib.storage.memory import release_freed_memory
from asana_assets.lib.storage.warehouse import Warehouse

GROUP = "asana_compliance"
# monitor_results metadata: the evaluation its checks judge, and that evaluation's evidence
EVALUATED_RUN, EVIDENCE_PACK, EVIDENCE_REPORT = "evaluated_run", "evidence_pack", "evidence_report"


def read_tables(warehouse: Warehouse, *tables: str,
                columns: Mapping[str, list[str]] | None = None) -> dict[str, pd.DataFrame]:
    """A step's tables (only the ``columns`` given for a table), read once what the run's earlier
    steps freed is given back (they share its process under the in-process executor)."""
    release_freed_memory()
    return {t: warehouse.read(t, (columns or {}).get(t)).to_pandas() for t in tables}


def _arrow(table: str, frame: pd.DataFrame) -> pa.Table:
    schema = DERIVED_TABLES[table]
    return require_columns(table, pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False))


def _materialize(context, warehouse: Warehouse, table: str, frame: pd.DataFrame | pa.Table,
                 part: str | None = None, last: bool = True, **extra) -> dg.MaterializeResult:
    """Stage the table; when it is the step's ``last`` and the step is the run's last, commit
    the run's tables."""
    data = frame if isinstance(frame, pa.Table) else _arrow(table, frame)
    staged = stage(warehouse, table, data, part)
    published = commit_if_last(context, warehouse) if last else {}
    return dg.MaterializeResult(
        asset_key=table_key(table),
        metadata=table_metadata(table, data, warehouse.postgres_schema, **staged, **published, **extra),
    )


def evaluation(context, compliance: ComplianceResource) -> tuple[str, pd.Timestamp]:
    """The evaluation this run belongs to: (run id, as_of).

    A re-execution of a failed run continues its evaluation: it takes the original (root) run's
    id and creation time, so its snapshot and results replace that run's instead of adding a
    second copy. ``as_of`` is configurable, else that creation time (the same for every asset).
    """
    root = root_run_id(context)
    if compliance.as_of:
        as_of = pd.Timestamp(compliance.as_of)
        return root, as_of.tz_convert("UTC") if as_of.tzinfo else as_of.tz_localize("UTC")
    record = context.instance.get_run_record_by_id(root)
    return root, pd.Timestamp(record.create_timestamp).tz_convert("UTC")


def _definition(name: str, deps) -> dict:
    """What every derived table's asset (or spec in a multi-asset) declares."""
    return {
        "key": table_key(name), "group_name": GROUP, "deps": [table_key(d) for d in deps],
        "description": REGISTRY[name].description, "kinds": {"pandas", "parquet"},
        "metadata": {"dagster/column_schema": column_schema(DERIVED_TABLES[name])},
    }


def _asset(name: str, deps: list[str]):
    return dg.asset(**_definition(name, deps), partitions_def=CONNECTIONS)


def _spec(name: str, deps) -> dg.AssetSpec:
    return dg.AssetSpec(**_definition(name, deps))


@_asset("collections", ["projects", "workspaces", "teams"])
def collections(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                compliance: ComplianceResource) -> dg.MaterializeResult:
    warehouse = run_warehouse(context, warehouse)
    raw = read_tables(warehouse, "projects", "workspaces", "teams")
    return _materialize(context, warehouse, "collections", tickets.collections(
        raw, compliance.change_projects, compliance.change_project_pattern))


@_asset("workflow_states", ["sections"])
def workflow_states(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                    compliance: ComplianceResource) -> dg.MaterializeResult:
    warehouse = run_warehouse(context, warehouse)
    sections = read_tables(warehouse, "sections")["sections"]
    states = classify_sections(sections, compliance.section_overrides, compliance.project_section_overrides)
    return _materialize(context, warehouse, "workflow_states", states,
                    stages=dg.MetadataValue.json(states["stage"].value_counts().to_dict()))


@_asset("ticket_events", ["stories", "tasks", "workflow_states"])
def ticket_events(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    warehouse = run_warehouse(context, warehouse)
    t = read_tables(warehouse, "tasks", "workflow_states")
    t["stories"] = warehouse.read("stories", tickets.STORY_COLUMNS).to_pandas()
    events = tickets.ticket_events(t, t["workflow_states"])
    return _materialize(context, warehouse, "ticket_events", events,
                    event_types=dg.MetadataValue.json(events["event_type"].value_counts().to_dict()))


@_asset("tickets", ["tasks", "task_memberships", "task_tags", "tags", "custom_fields", "task_custom_fields",
                     "projects", "workflow_states", "collections", "ticket_events", "stories"])
def tickets_table(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  compliance: ComplianceResource) -> dg.MaterializeResult:
    warehouse = run_warehouse(context, warehouse)
    t = read_tables(warehouse, "tasks", "task_memberships", "task_tags", "tags", "custom_fields", "task_custom_fields",
                    "projects", "workflow_states", "collections", "ticket_events")
    t["stories"] = warehouse.read("stories", tickets.TYPE_STORY_COLUMNS).to_pandas()
    frame = tickets.tickets(t, t["workflow_states"], t["collections"], t["ticket_events"],
                            compliance.ticket_type_field, compliance.change_ticket_types,
                            compliance.change_type_pattern)
    return _materialize(context, warehouse, "tickets", frame,
                    statuses=dg.MetadataValue.json(frame["status"].value_counts().to_dict()),
                    change_tickets=int(frame["is_change"].sum()))


@_asset("user_access", ["workspace_memberships", "team_memberships", "project_memberships", "projects", "teams"])
def user_access(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                compliance: ComplianceResource) -> dg.MaterializeResult:
    warehouse = run_warehouse(context, warehouse)
    raw = read_tables(warehouse, "workspace_memberships", "team_memberships", "project_memberships", "projects", "teams")
    run_id, as_of = evaluation(context, compliance)
    snapshot = access.access_snapshot(raw, as_of, run_id)
    return _materialize(context, warehouse, "user_access", snapshot, part=evidence.pack_name(run_id, as_of))


@_asset("membership_changes", ["user_access", "audit_log_events"])
def membership_changes(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    warehouse = run_warehouse(context, warehouse)
    history = read_tables(warehouse, "user_access")["user_access"]
    # No audit table yet (never synced): every change is dated by its snapshots.
    changes = access.membership_changes(history, audit_log(warehouse))
    return _materialize(context, warehouse, "membership_changes", changes,
                    changes_from_audit_log=int(changes["evidence"].eq("audit log").sum()))


def audit_log(warehouse: Warehouse) -> pd.DataFrame | None:
    """The audit log table, None when no sync has read it yet."""
    return warehouse.read("audit_log_events").to_pandas() if warehouse.exists("audit_log_events") else None


HISTORY_INPUTS = ("tasks", "task_memberships", "ticket_events", "workflow_states")
PACK_TABLES = {"workspaces", "projects", "quarantine", "teams", "ticket_section_history"}  # the pack's own reads
REVIEW_INPUTS = ("tasks", "task_memberships", "projects")
MONITOR_INPUTS = (
    "tasks", "projects", "quarantine", "users", "workspace_memberships", "team_memberships", "project_memberships",
    "task_memberships", "teams", "workspaces", "tickets", "workflow_states", "ticket_events", "user_access",
    "membership_changes", "task_custom_fields", "custom_fields", "tags", "task_tags",
)
# The monitors read few of task_custom_fields' columns, and most of its memory is in the others
# (lists of gids and options, as a numpy array a row).
MONITOR_COLUMNS = {"task_custom_fields": monitors.CUSTOM_FIELD_COLUMNS}


def field_changes(warehouse: Warehouse) -> pd.DataFrame:
    """The custom field change stories ticket_sla reads for the priority's history: its columns,
    and only the rows that change a field (stories are the largest table)."""
    stories = warehouse.read("stories", sla.STORY_COLUMNS)
    return stories.filter(pc.is_valid(stories["custom_field_gid"])).to_pandas()


@dg.multi_asset(
    name="ticket_history_and_monitors",
    specs=[
        _spec("ticket_status_history", HISTORY_INPUTS),
        _spec("ticket_section_history", HISTORY_INPUTS),
        _spec("approvals", HISTORY_INPUTS),
        _spec("access_review_decisions", [*REVIEW_INPUTS, "approvals"]),
        _spec("monitor_results", [*MONITOR_INPUTS, "stories", "audit_log_events", "ticket_status_history", "approvals",
                                  "access_review_decisions"]),
    ],
    can_subset=True,
    partitions_def=CONNECTIONS,
)
def ticket_history_and_monitors(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                                compliance: ComplianceResource, asana: AsanaResource):
    """The status and section histories, the approvals, the access review decisions, and the
    monitors' results with their evidence pack: one step, so the section timeline they read is
    computed once per run. The monitors read the tables computed here, exactly as they are staged."""
    warehouse = run_warehouse(context, warehouse)
    selected = {key.path[-1] for key in context.selected_asset_keys}
    needed = {*HISTORY_INPUTS, *(MONITOR_INPUTS if "monitor_results" in selected else ()),
              *(REVIEW_INPUTS if "access_review_decisions" in selected else ())}
    t = read_tables(warehouse, *sorted(needed), columns=MONITOR_COLUMNS)
    if "monitor_results" in selected and warehouse.exists("stories"):  # never synced: ticket_sla says unknown
        t["stories"] = field_changes(warehouse)
    # In a list the monitors' step takes it from: nothing else holds it once they are done.
    shared = [monitors.history_inputs(t, t["workflow_states"], t["ticket_events"])]
    timeline, done = shared[0]
    last = max(selected, key=["ticket_status_history", "ticket_section_history", "approvals",
                              "access_review_decisions", "monitor_results"].index)
    for name, frame in (("ticket_status_history", tickets.status_history(t, timeline, done)),
                        ("ticket_section_history", tickets.section_history(timeline)),
                        ("approvals", tickets.approvals(t, t["ticket_events"], timeline))):
        data = _arrow(name, frame)
        t[name] = data.to_pandas()
        if name in selected:
            yield _materialize(context, warehouse, name, data, last=name == last)
    if "access_review_decisions" in selected:
        # Every campaign item of the review project (none when unset); the monitor reads the same.
        scope = review.review_scope(t["projects"], compliance.review_project)
        decided = review.decisions(t, t["approvals"], scope).decisions
        yield _materialize(context, warehouse, "access_review_decisions", decided,
                           last="access_review_decisions" == last,
                           decisions=dg.MetadataValue.json(decided["decision"].value_counts().to_dict()))
    if "monitor_results" in selected:
        del timeline, done, frame, data
        yield _monitor_results(context, warehouse, compliance, asana, t, shared)


def _monitor_results(context, warehouse: Warehouse, compliance: ComplianceResource, asana: AsanaResource,
                     t: dict[str, pd.DataFrame], shared: list) -> dg.MaterializeResult:
    """Evaluate every monitor for this run, append the results and write the evidence pack.

    Once the monitors are evaluated, the run's tables the pack does not read are let go (from
    ``t``, and the history inputs from ``shared``): the publication that follows loads every table
    the run wrote, and at a million tasks those frames are gigabytes.

    Each monitor's alarm count is a numeric metadata entry (``alarms/<monitor>``, left out for a
    monitor NOT EVALUATED) and its verdict a text one (``verdict/<monitor>``), so Dagster plots
    them across runs."""
    run_id, as_of = evaluation(context, compliance)
    root = warehouse.root
    if audited := (audit := audit_log(warehouse)) is not None:
        t["audit_log_events"] = audit
    del audit
    results, populations = monitors.evaluate(t, compliance.params(), run_id, as_of, shared.pop(),
                                             evidence.former_people(root, run_id, as_of),
                                             warehouse.run_state().audit_log_unavailable)
    for name in set(t) - PACK_TABLES:
        del t[name]
    release_freed_memory()  # before the publication reads back every table the run wrote
    # The runs already committed, counted (the trend): four columns read, not every result.
    earlier = warehouse.count_history("monitor_results", COUNTED).to_pandas()
    alarms = alarm_counts(results)
    judged = {monitor_id: verdict for monitor_id, (verdict, _) in verdicts(results).items()}
    # A monitor that judged nothing has no alarm count: its plot shows a gap, not 0.
    per_monitor = {
        **{f"alarms/{m}": n for m, n in alarms.items() if n is not None},
        **{f"verdict/{m}": judged[m] for m in monitors.MONITORS},
    }
    materialized = _materialize(
        context, warehouse, "monitor_results", results, part=evidence.pack_name(run_id, as_of),
        alarms=dg.MetadataValue.json({m: n for m, n in alarms.items() if n}), verdicts=dg.MetadataValue.json(judged),
        **per_monitor, **{EVALUATED_RUN: run_id},
    )
    if "published_version" in materialized.metadata:
        # Freshness judged after this run's raw tables were written, so the UI shows it evaluated.
        context.instance.report_runless_asset_event(
            freshness(context.instance, sorted(connection_partitions(context.instance)), datetime.now(UTC)))
    # Written once the run's tables are committed: a pack never describes tables nobody can read.
    connection = partition_key(context)
    workspaces = t["workspaces"]["gid"].tolist()
    # What the connection could see, from this sync's records (no request): the pack states it.
    coverage = run_coverage(workspaces, t["projects"], t["quarantine"], audited,
                            warehouse.run_state().audit_log_unavailable,
                            asana.for_connection(connection).declared_kind())
    teams = t["teams"][["gid", "workspace_gid", "name", "visibility", "permalink_url"]]
    pack = evidence.write_evidence_pack(
        root, run_id, as_of, workspaces, {**compliance.describe(), **asana.provenance(connection)}, results,
        {**populations, "teams": teams, "ticket_section_history": t["ticket_section_history"]},
        history=earlier, connection=connection, as_of_configured=compliance.as_of is not None, coverage=coverage,
    )
    return dg.MaterializeResult(asset_key=materialized.asset_key, metadata={
        **materialized.metadata, EVIDENCE_PACK: dg.MetadataValue.path(str(pack)),
        EVIDENCE_REPORT: dg.MetadataValue.path(str(pack / evidence.REPORT)),
    })


compliance_assets = [
    collections, workflow_states, ticket_events, tickets_table, user_access, membership_changes,
    ticket_history_and_monitors,
]
