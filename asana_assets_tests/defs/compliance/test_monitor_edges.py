"""The rules' edges, each on a small hand-built organisation run through the whole pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import World
from asana_assets_tests.support.pipeline import alarms, results_of, run_pipeline, status

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=30)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


class Org:
    """A workspace with an admin, three members, a change project and a helpdesk project."""

    def __init__(self) -> None:
        w = self.world = World(now=T0 - timedelta(days=10))
        ws = self.ws = w.add_workspace("Acme", ["acme.example"])
        self.admin, self.alice, self.bob, self.carol = (
            w.add_user(name, f"{name.lower()}@acme.example") for name in ("Admin", "Alice", "Bob", "Carol")
        )
        for user in (self.admin, self.alice, self.bob, self.carol):
            w.add_workspace_membership(user, ws, is_admin=user is self.admin)
        w.default_user = self.admin.gid
        self.change = w.add_project(ws, "Change Management", owner=self.admin)
        self.todo, self.approved, self.doing, self.done = (
            w.add_section(self.change, name) for name in ("To Do", "Approved", "In Progress", "Done")
        )
        self.helpdesk = w.add_project(ws, "IT Helpdesk", owner=self.admin)
        self.h_todo, self.h_doing, self.h_done = (
            w.add_section(self.helpdesk, name) for name in ("New", "Doing", "Closed")
        )

    def change_ticket(self, name: str, at: datetime, assignee=None):
        return self.world.create_task(
            name, actor=self.alice, project=self.change, section=self.todo,
            assignee=assignee or self.bob, at=at,
        )

    def approve(self, ticket, approver, at: datetime, status: str = "approved"):
        """An approval subtask of ``ticket``, decided by ``approver`` at ``at``."""
        task = self.world.create_task(
            f"Approve {ticket.name}", actor=self.alice, parent=ticket, resource_subtype="approval",
            assignee=self.carol, at=at - timedelta(minutes=5),
        )
        self.world.set_approval_status(task, status, actor=approver, at=at)
        return task

    def start(self, ticket, at: datetime, section=None):
        self.world.move_task_to_section(ticket, section or self.doing, actor=self.bob, at=at)

    def finish(self, ticket, at: datetime, actor=None):
        self.world.move_task_to_section(ticket, self.done, actor=actor or self.bob, at=at)
        self.world.complete_task(ticket, actor=actor or self.bob, at=at)


def run(org: Org, tmp_path):
    result = run_pipeline(org.world, tmp_path, AS_OF)
    assert result.success
    return results_of(result, tmp_path)


def test_approval_exactly_at_implementation_start_counts(tmp_path):
    org = Org()
    on_time, late = org.change_ticket("On time", hours(0)), org.change_ticket("Late", hours(0))
    org.approve(on_time, org.carol, hours(5))
    org.start(on_time, hours(5))
    org.approve(late, org.carol, hours(5) + timedelta(milliseconds=1))
    org.start(late, hours(5))
    results = run(org, tmp_path)
    assert status(results, "changes_approved", on_time.gid) == "ok"
    assert status(results, "changes_approved", late.gid) == "alarm"


def test_an_approval_withdrawn_before_start_does_not_count(tmp_path):
    org = Org()
    withdrawn, kept = org.change_ticket("Withdrawn", hours(0)), org.change_ticket("Kept", hours(0))
    for ticket, withdrawn_at in ((withdrawn, hours(3)), (kept, hours(9))):
        task = org.approve(ticket, org.carol, hours(2))
        org.world.set_approval_status(task, "changes_requested", actor=org.carol, at=withdrawn_at)
        org.start(ticket, hours(5))
    results = run(org, tmp_path)
    assert status(results, "changes_approved", withdrawn.gid) == "alarm"
    assert status(results, "changes_approved", kept.gid) == "ok"  # withdrawn only after the start
    assert status(results, "approval_segregation", withdrawn.gid) == "skip"


def test_reassignment_before_completion_decides_the_implementer(tmp_path):
    org = Org()
    by_old, by_new = org.change_ticket("Old assignee approves", hours(0)), org.change_ticket("New approves", hours(0))
    for ticket, approver in ((by_old, org.bob), (by_new, org.carol)):
        org.approve(ticket, approver, hours(1))
        org.start(ticket, hours(2))
        org.world.update_task(ticket, assignee=org.carol.gid, actor=org.alice, at=hours(3))
        org.finish(ticket, hours(4), actor=org.admin)
    results = run(org, tmp_path)
    assert status(results, "approval_segregation", by_old.gid) == "ok"  # Bob no longer implemented it
    assert status(results, "approval_segregation", by_new.gid) == "alarm"  # Carol approved her own work
    assert status(results, "tickets_assigned", by_new.gid) == "ok"


def test_a_reopened_ticket_starts_at_its_first_completion(tmp_path):
    org = Org()
    ticket = org.change_ticket("Reopened", hours(0))
    org.world.complete_task(ticket, actor=org.bob, at=hours(2))  # never went through In Progress
    org.world.reopen_task(ticket, actor=org.bob, at=hours(3))
    org.approve(ticket, org.carol, hours(4))
    org.finish(ticket, hours(6))
    results = run(org, tmp_path)
    assert status(results, "changes_approved", ticket.gid) == "alarm"  # approved after the first completion
    history = ParquetWarehouse(tmp_path).read("ticket_status_history").to_pandas()
    mine = history[(history["ticket_gid"] == ticket.gid) & (history["project_gid"] == org.change.gid)]
    assert mine["state"].tolist() == ["OPEN", "CLOSED", "OPEN", "CLOSED"]
    assert mine["entered_at"].tolist()[1:] == [hours(2), hours(3), hours(6)]
    assert mine["left_at"].isna().tolist() == [False, False, False, True]


def test_a_ticket_in_two_projects_starts_at_its_earliest_in_progress(tmp_path):
    org = Org()
    ticket = org.change_ticket("Two homes", hours(0))
    org.world.add_task_to_project(ticket, org.helpdesk, section=org.h_todo, actor=org.alice, at=hours(0.5))
    org.start(ticket, hours(1), section=org.h_doing)  # implementation starts in the helpdesk project
    org.approve(ticket, org.carol, hours(2))
    org.start(ticket, hours(3))
    results = run(org, tmp_path)
    assert status(results, "changes_approved", ticket.gid) == "alarm"
    history = ParquetWarehouse(tmp_path).read("ticket_status_history").to_pandas()
    assert set(history.loc[history["ticket_gid"] == ticket.gid, "project_gid"]) == {org.change.gid, org.helpdesk.gid}


def test_subtasks_are_tickets_but_not_changes(tmp_path):
    org = Org()
    parent = org.change_ticket("Parent", hours(0))
    org.approve(parent, org.carol, hours(1))
    sub = org.world.create_task("Step", actor=org.alice, parent=parent, at=hours(1))
    fresh = org.world.create_task("Fresh step", actor=org.alice, parent=parent, at=AS_OF - timedelta(hours=2))
    results = run(org, tmp_path)
    assert status(results, "changes_approved", sub.gid) == "skip"
    assert status(results, "tickets_assigned", sub.gid) == "alarm"  # unassigned for weeks
    assert status(results, "tickets_assigned", fresh.gid) == "info"  # within the grace
    assert status(results, "changes_approved", parent.gid) == "skip"  # not started


@pytest.mark.parametrize("grace_hours, expected", [(24, "alarm"), (24 * 60, "info")])
def test_drift_alarms_only_past_its_grace(tmp_path, grace_hours, expected):
    org = Org()
    ticket = org.change_ticket("Drifted", hours(0))
    org.approve(ticket, org.carol, hours(1))
    org.start(ticket, hours(2))
    org.world.complete_task(ticket, actor=org.bob, at=hours(3))  # completed but left In Progress
    result = run_pipeline(org.world, tmp_path, AS_OF, drift_grace_hours=grace_hours)
    results = results_of(result, tmp_path)
    assert status(results, "workflow_consistent", ticket.gid) == expected
    assert alarms(results, "changes_approved") == set()
