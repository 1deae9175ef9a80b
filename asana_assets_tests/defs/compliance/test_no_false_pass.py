"""No false PASS, through the Dagster job on small hand-built organisations: empty workspaces
materialize everything and are NOT EVALUATED, a change that skips the approval through a Done
section fails CC8.1, withdrawn and negated approvals do not count, and tickets_synced alarms.

Expected statuses are written by hand per ticket (with the reason); the tickets_synced test
takes the malformed tasks from the simulator's own fault ground truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.lib.compliance.monitors import MONITORS
from asana_assets.lib.schema import DERIVED_TABLES
from asana_assets.simulator import SimulatorConfig, World
from asana_assets.simulator.limits import Faults
from asana_assets_tests.support.pipeline import SIMULATOR, alarms, results_of, run_pipeline, status

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=30)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


class Org:
    """A workspace with an admin, a requester (Alice), an implementer (Bob) and an approver (Carol)."""

    def __init__(self, organization: bool = True) -> None:
        w = self.world = World(now=T0 - timedelta(days=10))
        self.ws = w.add_workspace("Acme", ["acme.example"], is_organization=organization)
        self.admin, self.alice, self.bob, self.carol = (
            w.add_user(name, f"{name.lower()}@acme.example") for name in ("Admin", "Alice", "Bob", "Carol")
        )
        for user in (self.admin, self.alice, self.bob, self.carol):
            w.add_workspace_membership(user, self.ws, is_admin=user is self.admin)
        w.default_user = self.admin.gid

    def change_project(self, *sections: str):
        self.change = self.world.add_project(self.ws, "Change Management", owner=self.admin)
        return [self.world.add_section(self.change, name) for name in sections]

    def ticket(self, name: str, section, at: datetime = T0):
        return self.world.create_task(name, actor=self.alice, section=section, assignee=self.bob, at=at)

    def approval(self, ticket, *decisions: tuple[datetime, str]):
        task = self.world.create_task(
            f"Approve {ticket.name}", actor=self.alice, parent=ticket, resource_subtype="approval",
            assignee=self.carol, at=decisions[0][0] - timedelta(minutes=5),
        )
        for at, decision in decisions:
            self.world.set_approval_status(task, decision, actor=self.carol, at=at)
        return task

    def move(self, ticket, section, at: datetime, actor=None):
        self.world.move_task_to_section(ticket, section, actor=actor or self.bob, at=at)


TICKET = 'Ticket "%s" (Change Management): '  # how a reason names a ticket of the change project


def run(org: Org, tmp_path, as_of: datetime = AS_OF, **options):
    result = run_pipeline(org.world, tmp_path, as_of, **options)
    assert result.success
    return result


def pack_of(result, tmp_path):
    [pack] = (tmp_path / "evidence").glob(f"*_{result.run_id}")
    return pack


def summary_row(pack, monitor_id: str) -> str:
    return next(line for line in (pack / "summary.md").read_text().splitlines() if line.startswith(f"| `{monitor_id}`"))


def checks(result) -> dict:
    """The run's monitor check evaluations, by monitor."""
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.check_name in MONITORS}


# -- empty is valid -----------------------------------------------------------------------
def _no_tasks(org: Org) -> None:
    org.change_project("To Do", "In Progress", "Done")


def _no_change_project(org: Org) -> None:
    helpdesk = org.world.add_project(org.ws, "IT Helpdesk", owner=org.admin)
    new, doing = (org.world.add_section(helpdesk, name) for name in ("New", "In Progress"))
    ticket = org.ticket("Reset MFA", new)
    org.move(ticket, doing, hours(1))


def _nothing(org: Org) -> None:
    """No team, no project, no task."""


@pytest.mark.parametrize(("build", "organization"), [
    (_no_tasks, True), (_no_change_project, True), (_nothing, True), (_nothing, False),
])
def test_an_empty_workspace_materializes_everything_and_passes_nothing_it_did_not_see(tmp_path, build, organization):
    org = Org(organization)
    build(org)
    result = run(org, tmp_path)
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert set(DERIVED_TABLES) <= materialized
    warehouse = WarehouseResource(directory=str(tmp_path)).warehouse()
    for table in DERIVED_TABLES:
        assert warehouse.read(table).schema.names == DERIVED_TABLES[table].names
    # Nothing to judge for the change monitors: NOT EVALUATED everywhere an auditor looks.
    pack = pack_of(result, tmp_path)
    manifest = json.loads((pack / "manifest.json").read_text())
    evaluated = checks(result)
    assert set(evaluated) == set(MONITORS)
    for monitor_id in ("changes_approved", "approval_segregation"):
        assert manifest["verdicts"][monitor_id] == "NOT EVALUATED"
        assert manifest["monitors"][monitor_id]["verdict"] == "NOT EVALUATED"
        row = summary_row(pack, monitor_id)
        assert "**NOT EVALUATED**" in row and "PASS" not in row
        check = evaluated[monitor_id]
        assert not check.passed
        assert check.severity.value == "WARN"
        assert check.description.startswith("Not evaluated: ")
        assert check.metadata["verdict"].value == "NOT EVALUATED"
    for monitor_id in MONITORS:
        assert (pack / "monitors" / f"{monitor_id}.csv").exists()
        assert evaluated[monitor_id].metadata["verdict"].value == manifest["verdicts"][monitor_id]
    if build is _nothing:  # no ticket at all: no ticket monitor evaluated anything
        ticket_monitors = ("tickets_synced", "tickets_assigned", "changes_approved", "approval_segregation",
                           "workflow_consistent")
        assert {manifest["verdicts"][m] for m in ticket_monitors} == {"NOT EVALUATED"}
        assert not results_of(result, tmp_path)["monitor_id"].isin(ticket_monitors).any()


# -- the Done-section bypass --------------------------------------------------------------
def test_a_change_moved_to_a_done_section_without_approval_fails_cc81(tmp_path):
    org = Org()
    todo, approved, deployed = org.change_project("To Do", "Approved", "Deployed")
    bypass = org.ticket("CHG-1 bypass", todo)
    org.move(bypass, deployed, hours(2))  # never marked complete, never approved
    proper = org.ticket("CHG-2 proper", todo)
    org.move(proper, approved, hours(1), actor=org.carol)
    org.move(proper, deployed, hours(2))
    result = run(org, tmp_path)
    results = results_of(result, tmp_path)
    rows = results[results["monitor_id"] == "changes_approved"].set_index("resource_gid")
    assert rows["status"].to_dict() == {bypass.gid: "alarm", proper.gid: "ok"}
    assert rows.loc[bypass.gid, "reason"] == (
        'Ticket "CHG-1 bypass" (Change Management): implementation started at 2026-03-02 11:00 UTC without an approval.')
    row = summary_row(pack_of(result, tmp_path), "changes_approved")
    assert "**FAIL**" in row and "SOC2:CC8.1" in row
    check = checks(result)["changes_approved"]
    assert not check.passed and check.severity.value == "ERROR"
    assert check.metadata["verdict"].value == "FAIL"


# -- approvals that do not count ----------------------------------------------------------
def test_approvals_withdrawn_or_negated_before_the_start_do_not_count(tmp_path):
    org = Org()
    todo, approved, not_approved, doing = org.change_project("To Do", "Approved", "Not approved", "In Progress")
    expected = {}
    # approved, then changes requested before work started
    withdrawn = org.ticket("Withdrawn", todo)
    org.approval(withdrawn, (hours(1), "approved"), (hours(2), "changes_requested"))
    org.move(withdrawn, doing, hours(3))
    unapproved = "implementation started at 2026-03-02 {} UTC without an approval."
    expected[withdrawn.gid] = ("alarm", f'{TICKET % "Withdrawn"}{unapproved.format("12:00")}')
    # approved, then set back to pending before work started
    reset = org.ticket("Reset", todo)
    org.approval(reset, (hours(1), "approved"), (hours(2), "pending"))
    org.move(reset, doing, hours(3))
    expected[reset.gid] = ("alarm", f'{TICKET % "Reset"}{unapproved.format("12:00")}')
    # moved through "Not approved" into In Progress
    negated = org.ticket("Negated", todo)
    org.move(negated, not_approved, hours(1), actor=org.carol)
    org.move(negated, doing, hours(2))
    expected[negated.gid] = ("alarm", f'{TICKET % "Negated"}{unapproved.format("11:00")}')
    # moved to Approved, back to To Do, then started
    retracted = org.ticket("Retracted", todo)
    org.move(retracted, approved, hours(1), actor=org.carol)
    org.move(retracted, todo, hours(2), actor=org.carol)
    org.move(retracted, doing, hours(3))
    expected[retracted.gid] = ("alarm", f'{TICKET % "Retracted"}{unapproved.format("12:00")}')
    # the edges that still pass: withdrawn only after the start, approved by a move to Approved
    late_withdrawal = org.ticket("Withdrawn after the start", todo)
    org.approval(late_withdrawal, (hours(1), "approved"), (hours(3), "changes_requested"))
    org.move(late_withdrawal, doing, hours(2))
    on_time = ("approved by Carol <carol@acme.example> at 2026-03-02 10:00 UTC, at or before implementation start "
               "(2026-03-02 11:00 UTC).")
    expected[late_withdrawal.gid] = ("ok", f'{TICKET % "Withdrawn after the start"}{on_time}')
    by_section = org.ticket("Approved by a move", todo)
    org.move(by_section, approved, hours(1), actor=org.carol)
    org.move(by_section, doing, hours(2))
    expected[by_section.gid] = ("ok", f'{TICKET % "Approved by a move"}{on_time}')
    results = results_of(run(org, tmp_path), tmp_path)
    rows = results[(results["monitor_id"] == "changes_approved") & results["resource_gid"].isin(expected)]
    assert {r.resource_gid: (r.status, r.reason) for r in rows.itertuples()} == expected
    approvals = WarehouseResource(directory=str(tmp_path)).warehouse().read("approvals").to_pandas()
    assert negated.gid not in set(approvals["ticket_gid"])  # entering "Not approved" is no approval
    assert status(results, "approval_segregation", by_section.gid) == "ok"


# -- tickets_synced can alarm -------------------------------------------------------------
def test_tickets_synced_alarms_on_a_project_synced_too_long_ago(tmp_path):
    org = Org()
    (todo,) = org.change_project("To Do")
    org.ticket("Any", todo)
    later = datetime.now(UTC) + timedelta(hours=48)  # evaluated two days after this sync
    results = results_of(run(org, tmp_path, as_of=later), tmp_path)
    assert status(results, "tickets_synced", org.change.gid) == "alarm"
    results = results_of(run(org, tmp_path, as_of=later, max_sync_age_hours=72), tmp_path)
    assert status(results, "tickets_synced", org.change.gid) == "ok"


def test_tickets_synced_alarms_on_a_task_the_source_listed_but_tickets_lack(tmp_path):
    org = Org()
    (todo,) = org.change_project("To Do")
    tasks = [org.ticket(f"Task {n}", todo) for n in range(8)]
    faults = SimulatorConfig(**{**SIMULATOR.model_dump(), "malformed_rate": 0.3, "fault_seed": 3})
    served_broken = {t.gid for t in tasks if Faults(faults).is_malformed(t.gid)}
    assert 0 < len(served_broken) < len(tasks)
    result = run(org, tmp_path, as_of=datetime.now(UTC), simulator=faults)
    results = results_of(result, tmp_path)
    # The quarantined tasks, and the project: Asana counts every task, the warehouse lacks the broken.
    assert alarms(results, "tickets_synced") == served_broken | {org.change.gid}
    assert status(results, "tickets_synced", org.change.gid) == "alarm"
    assert "**FAIL**" in summary_row(pack_of(result, tmp_path), "tickets_synced")


def test_a_later_run_with_nothing_to_judge_is_not_judged_by_an_earlier_run(tmp_path):
    """Runs repeated on one warehouse: the change that passed yesterday is deleted today, so
    today's changes_approved population is empty; its check must not fall back on yesterday."""
    org = Org()
    todo, approved, doing = org.change_project("To Do", "Approved", "In Progress")
    change = org.ticket("CHG-1", todo)
    org.move(change, approved, hours(1), actor=org.carol)
    org.move(change, doing, hours(2))
    instance = dg.DagsterInstance.ephemeral()
    first = run(org, tmp_path, instance=instance)
    assert checks(first)["changes_approved"].metadata["verdict"].value == "PASS"
    assert checks(first)["changes_approved"].passed
    org.world.delete_task(change, actor=org.admin)
    second = run(org, tmp_path, as_of=AS_OF + timedelta(days=1), instance=instance)
    check = checks(second)["changes_approved"]
    assert check.metadata["verdict"].value == "NOT EVALUATED"
    assert check.metadata["evaluated_run"].value == second.run_id
    assert not check.passed and check.description == "Not evaluated: the population is empty."
