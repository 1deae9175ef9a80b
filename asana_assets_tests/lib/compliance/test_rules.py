"""The ticket tables and the ticket monitors on small hand-built raw tables: every expected status
is written here by hand, ticket by ticket, with the reason it must have."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest

from asana_assets.lib.compliance import access, evidence, monitors, review, tickets
from asana_assets.lib.compliance.monitors import MONITORS, MonitorParams
from asana_assets.lib.compliance.workflow import workflow_states
from asana_assets.lib.schema import DERIVED_TABLES, RAW_TABLES, require_columns, to_arrow

T0 = pd.Timestamp("2026-03-02 09:00", tz="UTC")
AS_OF = T0 + timedelta(days=10)


def h(n: float) -> pd.Timestamp:
    return T0 + timedelta(hours=n)


def raw_tables(**rows) -> dict[str, pd.DataFrame]:
    """Raw tables typed as the warehouse stores them; tables not given are empty."""
    return {name: to_arrow(name, rows.get(name, [])).to_pandas() for name in RAW_TABLES}


def derive(raw: dict[str, pd.DataFrame], **params) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Every derived table, as the assets build them (each through its Arrow schema), then the
    monitors: (tables, populations)."""
    t = dict(raw)

    def keep(name: str, frame: pd.DataFrame) -> None:
        schema = DERIVED_TABLES[name]
        t[name] = require_columns(
            name, pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)).to_pandas()

    keep("collections", tickets.collections(t))
    keep("workflow_states", workflow_states(t["sections"]))
    keep("ticket_events", tickets.ticket_events(t, t["workflow_states"]))
    keep("tickets", tickets.tickets(t, t["workflow_states"], t["collections"], t["ticket_events"]))
    timeline, done = monitors.history_inputs(t, t["workflow_states"], t["ticket_events"])
    keep("ticket_status_history", tickets.status_history(t, timeline, done))
    keep("ticket_section_history", tickets.section_history(timeline))
    keep("approvals", tickets.approvals(t, t["ticket_events"], timeline))
    keep("user_access", access.access_snapshot(t, AS_OF, "run"))
    keep("membership_changes", access.membership_changes(t["user_access"]))
    scope = review.review_scope(t["projects"], params.get("review_project"))
    keep("access_review_decisions", review.decisions(t, t["approvals"], scope).decisions)
    # The monitors' step reads only these columns of task_custom_fields: so do the rules here.
    read = {**t, "task_custom_fields": t["task_custom_fields"][monitors.CUSTOM_FIELD_COLUMNS]}
    results, populations = monitors.evaluate(read, MonitorParams(**params), "run", AS_OF)
    keep("monitor_results", results)
    return t, populations


def results_of(t, monitor_id: str) -> dict[str, tuple[str, str]]:
    r = t["monitor_results"]
    r = r[r["monitor_id"] == monitor_id]
    assert r["resource_gid"].is_unique
    return {row.resource_gid: (row.status, row.reason) for row in r.itertuples()}


# -- a small organisation ---------------------------------------------------------------
USERS = ("alice", "bob", "carol")  # alice requests, bob implements, carol approves
SECTIONS = {  # gid: name, all in the change project p1
    "s-todo": "To Do", "s-approved": "Approved", "s-not": "Not approved", "s-doing": "In Progress",
    "s-deployed": "Deployed",
}


class Org:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {name: [] for name in RAW_TABLES}
        self.rows["workspaces"].append({"gid": "w1", "name": "Acme", "is_organization": True})
        for user in USERS:
            self.rows["users"].append({"gid": user, "name": user.title()})
            self.rows["workspace_memberships"].append({
                "gid": f"wm-{user}", "workspace_gid": "w1", "user_gid": user, "is_active": True,
                "is_admin": False, "is_guest": False})
        self.rows["projects"].append({"gid": "p1", "workspace_gid": "w1", "name": "Change Management",
                                      "synced_at": AS_OF - timedelta(hours=1), "archived": False})
        for position, (gid, name) in enumerate(SECTIONS.items()):
            self.rows["sections"].append({"gid": gid, "project_gid": "p1", "name": name, "position": position})
        self._story = 0

    def task(self, gid: str, section: str | None = "s-todo", *, at=T0, parent=None, subtype="default_task",
             approval_status=None, completed_at=None, completed_by=None, assignee="bob") -> str:
        self.rows["tasks"].append({
            "gid": gid, "workspace_gid": "w1", "parent_gid": parent, "resource_subtype": subtype,
            "approval_status": approval_status, "name": gid, "assignee_gid": assignee, "created_by_gid": "alice",
            "completed": completed_at is not None, "completed_at": completed_at, "completed_by_gid": completed_by,
            "created_at": at, "modified_at": at, "permalink_url": f"https://app.asana.com/0/0/{gid}",
        })
        if section:
            self.rows["task_memberships"].append(
                {"task_gid": gid, "project_gid": "p1", "section_gid": section, "position": 0})
        return gid

    def story(self, task: str, at, subtype: str | None, by: str = "bob", **fields) -> str:
        self._story += 1
        gid = f"st{self._story}"
        self.rows["stories"].append({"gid": gid, "task_gid": task, "created_at": at, "created_by_gid": by,
                                     "type": "system", "resource_subtype": subtype, **fields})
        return gid

    def move(self, task: str, old: str, new: str, at, by: str = "bob") -> str:
        self._set_section(task, new)
        return self.story(task, at, "section_changed", by, old_section_gid=old, new_section_gid=new)

    def _set_section(self, task: str, section: str) -> None:
        for m in self.rows["task_memberships"]:
            if m["task_gid"] == task:
                m["section_gid"] = section

    def approval(self, ticket: str, *decisions: tuple[float, str], by: str = "carol") -> str:
        """An approval subtask of ``ticket`` whose status changes at the given hours."""
        gid = f"{ticket}-approval"
        old = "pending"
        for hour, status in decisions:
            subtype = {"approved": "marked_approved", "rejected": "marked_rejected",
                       "changes_requested": "marked_changes_requested", "pending": "marked_incomplete"}[status]
            self.story(gid, h(hour), subtype, by, old_approval_status=old, new_approval_status=status)
            old = status
        last = decisions[-1][0] if decisions else None
        self.task(gid, None, parent=ticket, subtype="approval", approval_status=old, assignee=by,
                  completed_at=h(last) if old != "pending" else None, completed_by=by if old != "pending" else None)
        return gid

    def complete(self, task: str, at, by: str = "bob") -> None:
        for row in self.rows["tasks"]:
            if row["gid"] == task:
                row.update(completed=True, completed_at=at, completed_by_gid=by)
        self.story(task, at, "marked_complete", by)

    def raw(self) -> dict[str, pd.DataFrame]:
        return raw_tables(**self.rows)


# -- changes_approved: implementation start and approvals --------------------------------
@pytest.fixture(scope="module")
def changes():
    org = Org()
    # Moved To Do -> Deployed (a DONE section) and never completed, with no approval.
    org.task("bypass")
    org.move("bypass", "s-todo", "s-deployed", h(2))
    # Created straight into In Progress (no section story): implementation started at creation.
    org.task("born-doing", "s-doing")
    org.approval("born-doing", (1, "approved"))
    # Approved, then set back to pending before work started: no approval stands.
    org.task("back-to-pending")
    org.approval("back-to-pending", (1, "approved"), (2, "pending"))
    org.move("back-to-pending", "s-todo", "s-doing", h(3))
    # Approved, then changes requested before work started.
    org.task("withdrawn")
    org.approval("withdrawn", (1, "approved"), (2, "changes_requested"))
    org.move("withdrawn", "s-todo", "s-doing", h(3))
    # Changes requested only after work started: the approval stood at the start.
    org.task("withdrawn-late")
    org.approval("withdrawn-late", (1, "approved"), (3, "changes_requested"))
    org.move("withdrawn-late", "s-todo", "s-doing", h(2))
    # Rejected, then approved, then started.
    org.task("re-approved")
    org.approval("re-approved", (1, "rejected"), (2, "approved"))
    org.move("re-approved", "s-todo", "s-doing", h(3))
    # Through "Not approved" into In Progress: that section is no approval.
    org.task("not-approved")
    org.move("not-approved", "s-todo", "s-not", h(1), by="carol")
    org.move("not-approved", "s-not", "s-doing", h(2))
    # Approved by moving to Approved, then started.
    org.task("by-section")
    org.move("by-section", "s-todo", "s-approved", h(1), by="carol")
    org.move("by-section", "s-approved", "s-doing", h(2))
    # Moved to Approved, back to To Do, then started: the approval was taken back.
    org.task("left-approved")
    org.move("left-approved", "s-todo", "s-approved", h(1), by="carol")
    org.move("left-approved", "s-approved", "s-todo", h(2))
    org.move("left-approved", "s-todo", "s-doing", h(3))
    # Moved to Approved, started, then back to To Do: the approval stood at the start.
    org.task("left-after-start")
    org.move("left-after-start", "s-todo", "s-approved", h(1), by="carol")
    org.move("left-after-start", "s-approved", "s-doing", h(2))
    org.move("left-after-start", "s-doing", "s-todo", h(3))
    # Never moved, completed without approval: the completion is the start.
    org.task("completed")
    org.complete("completed", h(5))
    # Sitting in To Do with no approval: nothing to judge yet.
    org.task("waiting")
    # Approved exactly when it entered Deployed: at the start counts.
    org.task("on-time")
    org.approval("on-time", (4, "approved"))
    org.move("on-time", "s-todo", "s-deployed", h(4))
    t, populations = derive(org.raw())
    return t, populations


def ticket(gid: str) -> str:
    """How a reason starts for a ticket of the change project (every task is named by its gid here)."""
    return f'Ticket "{gid}" (Change Management): '


def approval_task(gid: str) -> str:
    """How a reason starts for an approval subtask, which is in no project of its own."""
    return f'Subtask "{gid}-approval" of "{gid}" (Change Management): '


CHANGES_APPROVED = {
    "bypass": ("alarm", ticket("bypass") + "implementation started at 2026-03-02 11:00 UTC without an approval."),
    "born-doing": ("alarm", ticket("born-doing") + "approved by Carol at 2026-03-02 10:00 UTC, after implementation "
                            "started at 2026-03-02 09:00 UTC."),
    "back-to-pending": ("alarm", ticket("back-to-pending")
                        + "implementation started at 2026-03-02 12:00 UTC without an approval."),
    "withdrawn": ("alarm", ticket("withdrawn") + "implementation started at 2026-03-02 12:00 UTC without an approval."),
    "withdrawn-late": ("ok", ticket("withdrawn-late") + "approved by Carol at 2026-03-02 10:00 UTC, at or before "
                             "implementation start (2026-03-02 11:00 UTC)."),
    "re-approved": ("ok", ticket("re-approved") + "approved by Carol at 2026-03-02 11:00 UTC, at or before "
                          "implementation start (2026-03-02 12:00 UTC)."),
    "not-approved": ("alarm", ticket("not-approved")
                     + "implementation started at 2026-03-02 11:00 UTC without an approval."),
    "by-section": ("ok", ticket("by-section") + "approved by Carol at 2026-03-02 10:00 UTC, at or before "
                         "implementation start (2026-03-02 11:00 UTC)."),
    "left-approved": ("alarm", ticket("left-approved")
                      + "implementation started at 2026-03-02 12:00 UTC without an approval."),
    "left-after-start": ("ok", ticket("left-after-start") + "approved by Carol at 2026-03-02 10:00 UTC, at or before "
                               "implementation start (2026-03-02 11:00 UTC)."),
    "completed": ("alarm", ticket("completed") + "implementation started at 2026-03-02 14:00 UTC without an approval."),
    "waiting": ("skip", ticket("waiting") + "implementation has not started."),
    "on-time": ("ok", ticket("on-time") + "approved by Carol at 2026-03-02 13:00 UTC, at or before implementation "
                      "start (2026-03-02 13:00 UTC)."),
}


def test_changes_approved_judges_each_ticket_as_written(changes):
    t, _ = changes
    subtasks = ("born-doing", "back-to-pending", "withdrawn", "withdrawn-late", "re-approved", "on-time")
    approval_tasks = {f"{gid}-approval": ("skip", approval_task(gid) + "not a change ticket.") for gid in subtasks}
    assert results_of(t, "changes_approved") == {**CHANGES_APPROVED, **approval_tasks}


def test_the_change_population_shows_the_implementation_start_and_the_approval(changes):
    _, populations = changes
    c = populations["change_tickets"].set_index("gid")
    assert c.loc["bypass", "implementation_start"] == h(2)
    assert c.loc["born-doing", "implementation_start"] == T0
    assert c.loc["completed", "implementation_start"] == h(5)
    assert pd.isna(c.loc["waiting", "implementation_start"])
    assert c.loc["by-section", "approval_source"] == "section" and c.loc["by-section", "approver_gid"] == "carol"
    assert pd.isna(c.loc["left-approved", "approval_id"])
    assert c.loc["re-approved", "approved_at"] == h(2)


def test_a_return_to_pending_is_an_approval_row_that_withdraws(changes):
    t, _ = changes
    a = t["approvals"]
    mine = a[a["ticket_gid"] == "back-to-pending"].sort_values("decided_at")
    assert mine["decision"].tolist() == ["approved", "pending"]
    assert set(a.loc[a["ticket_gid"] == "not-approved", "source"]) == set()  # "Not approved" is no approval


# -- story kinds --------------------------------------------------------------------------
def test_story_kinds_come_from_the_subtype_first():
    org = Org()
    org.task("t1", completed_at=None)
    org.story("t1", h(0), "assigned", "alice", assignee_gid="bob")
    # An unassigned story that still names the previous assignee is no assignment.
    org.story("t1", h(1), "unassigned", "alice", assignee_gid="bob")
    org.complete("t1", h(2))
    # No subtype: the fields decide.
    org.story("t1", h(3), None, "alice", new_name="Renamed", old_name="t1")
    org.story("t1", h(3.5), "comment_added", "alice")
    t, _ = derive(org.raw())
    events = t["ticket_events"]
    mine = events[events["ticket_gid"] == "t1"].sort_values("occurred_at")
    assert mine["event_type"].tolist() == ["created", "assigned", "unassigned", "completed", "name_changed"]
    unassigned = mine[mine["event_type"] == "unassigned"].iloc[0]
    assert pd.isna(unassigned["new_value"]) and unassigned["old_value"] == "bob"
    assert results_of(t, "tickets_assigned")["t1"] == (
        "alarm", ticket("t1") + "completed at 2026-03-02 11:00 UTC by Bob without an assignee at completion.")


def test_a_section_story_without_a_section_is_not_a_move():
    org = Org()
    org.task("t1", "s-doing")
    org.story("t1", h(1), "section_changed", "bob")  # structured fields missing
    t, _ = derive(org.raw())
    assert "section_changed" not in set(t["ticket_events"]["event_type"])
    history = t["ticket_status_history"]
    assert history.loc[history["ticket_gid"] == "t1", "state"].tolist() == ["IN_PROGRESS"]


# -- a ticket completed more than once -----------------------------------------------------
def recomplete(org: Org, gid: str, at, by: str, **fields) -> None:
    """Complete ``gid`` again (its row now says the later completion)."""
    for row in org.rows["tasks"]:
        if row["gid"] == gid:
            row.update(completed=True, completed_at=at, completed_by_gid=by, **fields)
    org.story(gid, at, "marked_complete", by)


def test_every_completion_of_a_reopened_ticket_is_judged():
    org = Org()
    # Bob holds it at its first completion; reopened and unassigned, completed again by nobody's.
    org.task("last-bare", assignee=None)
    org.story("last-bare", h(1), "assigned", "alice", assignee_gid="bob")
    org.story("last-bare", h(5), "marked_complete", "bob")
    org.story("last-bare", h(6), "marked_incomplete", "alice")
    org.story("last-bare", h(7), "unassigned", "alice")
    recomplete(org, "last-bare", h(8), "alice")
    # The other way round: unassigned, completed, then assigned and completed again.
    org.task("first-bare", assignee=None)
    org.story("first-bare", h(0.5), "assigned", "alice", assignee_gid="bob")
    org.story("first-bare", h(0.8), "unassigned", "alice")
    org.story("first-bare", h(1), "marked_complete", "alice")
    org.story("first-bare", h(2), "marked_incomplete", "alice")
    org.story("first-bare", h(3), "assigned", "alice", assignee_gid="bob")
    recomplete(org, "first-bare", h(4), "bob", assignee_gid="bob")
    # The edge: reopened and completed again, assigned throughout: ok, on the last completion's.
    org.task("both-held", assignee=None)
    org.story("both-held", h(1), "assigned", "alice", assignee_gid="bob")
    org.story("both-held", h(2), "marked_complete", "bob")
    org.story("both-held", h(3), "marked_incomplete", "alice")
    org.story("both-held", h(4), "assigned", "alice", assignee_gid="alice")
    recomplete(org, "both-held", h(5), "alice", assignee_gid="alice")
    t, _ = derive(org.raw())
    judged = results_of(t, "tickets_assigned")
    assert judged["last-bare"] == ("alarm", ticket("last-bare") + "completed at 2026-03-02 17:00 UTC by Alice "
                                   "without an assignee at completion.")
    # Named by the completion it alarms on: the first, at h(1) by Alice, not Bob's later one.
    assert judged["first-bare"] == ("alarm", ticket("first-bare") + "completed at 2026-03-02 10:00 UTC by Alice "
                                    "without an assignee at completion.")
    assert judged["both-held"] == ("ok", ticket("both-held") + "completed; assigned to Alice at completion.")


def reopened_change(org: Org, gid: str, first: str, last: str) -> None:
    """A change approved by Carol, held by ``first`` when completed, reopened, then held by ``last``
    when completed again (Alice closing it each time)."""
    org.task(gid, assignee=None)
    org.story(gid, h(0.2), "assigned", "alice", assignee_gid=first)
    org.approval(gid, (0.5, "approved"))
    org.move(gid, "s-todo", "s-doing", h(1))
    org.story(gid, h(2), "marked_complete", "alice")
    org.story(gid, h(3), "marked_incomplete", "alice")
    if last != first:
        org.story(gid, h(4), "assigned", "alice", assignee_gid=last)
    recomplete(org, gid, h(6), "alice", assignee_gid=last)


def test_an_approver_who_held_a_reopened_change_at_any_completion_is_its_implementer():
    org = Org()
    reopened_change(org, "taken-over", "bob", "carol")  # the approver took it over: her own work
    reopened_change(org, "handed-back", "carol", "bob")  # hers at the first completion only: still hers
    reopened_change(org, "bob-twice", "bob", "bob")  # the edge: Bob's each time, independent
    t, _ = derive(org.raw())
    judged = results_of(t, "approval_segregation")
    assert judged["taken-over"][0] == "alarm" and "also its assignee" in judged["taken-over"][1]
    assert judged["handed-back"][0] == "alarm" and "also its assignee" in judged["handed-back"][1]
    assert judged["bob-twice"][0] == "ok", judged["bob-twice"]


# -- two approvers, one refusing ----------------------------------------------------------
def second_approval(org: Org, ticket: str, *decisions: tuple[float, str]) -> None:
    """A second approval subtask of ``ticket``, Alice's, whose status changes at the given hours."""
    gid, old = f"{ticket}-approval2", "pending"
    for hour, status in decisions:
        org.story(gid, h(hour), f"marked_{status}", "alice", old_approval_status=old, new_approval_status=status)
        old = status
    org.task(gid, None, parent=ticket, subtype="approval", approval_status=old, assignee="alice",
             completed_at=h(decisions[-1][0]), completed_by="alice")


def test_an_approval_another_approver_refused_before_the_work_started_is_unknown():
    org = Org()
    for gid in ("refused", "refused-then-approved", "refused-after-start"):
        org.task(gid)
        org.approval(gid, (1, "approved"))  # Carol approves at h(1)
        org.move(gid, "s-todo", "s-doing", h(2))  # the work starts at h(2)
    second_approval(org, "refused", (1.5, "rejected"))  # Alice refuses before the start: two readings
    second_approval(org, "refused-then-approved", (1.2, "rejected"), (1.8, "approved"))  # the edge: withdrawn
    second_approval(org, "refused-after-start", (3, "rejected"))  # after the start: the work was approved
    t, _ = derive(org.raw())
    judged = results_of(t, "changes_approved")
    assert judged["refused"][0] == "unknown"
    assert "another approval subtask, refused-approval2, stood rejected" in judged["refused"][1]
    assert judged["refused-then-approved"][0] == "ok", judged["refused-then-approved"]
    assert judged["refused-after-start"][0] == "ok", judged["refused-after-start"]


# -- a change ticket whose place names no section ------------------------------------------
def test_a_change_whose_membership_names_no_section_is_still_a_change():
    org = Org()
    org.task("ok1")
    org.approval("ok1", (1, "approved"))
    org.move("ok1", "s-todo", "s-doing", h(2))
    # In the change project, its section left out: completed, never approved.
    org.task("no-section", None)
    org.rows["task_memberships"].append({"task_gid": "no-section", "project_gid": "p1", "section_gid": None,
                                         "position": 0})
    org.complete("no-section", h(3))
    # Its section left out too, open, never moved: where it sits (maybe in progress) is unknown.
    org.task("no-section-open", None)
    org.rows["task_memberships"].append({"task_gid": "no-section-open", "project_gid": "p1", "section_gid": None,
                                         "position": 1})
    t, _ = derive(org.raw())
    assert t["tickets"].set_index("gid").loc[["no-section", "no-section-open"], "is_change"].tolist() == [True, True]
    judged = results_of(t, "changes_approved")
    assert judged["no-section"][0] == "alarm", judged["no-section"]
    assert judged["no-section-open"][0] == "unknown", judged["no-section-open"]
    assert judged["ok1"][0] == "ok", judged["ok1"]


# -- admin_access_restricted: flags the API left out ---------------------------------------
def test_a_membership_that_may_be_an_active_admins_is_never_skipped():
    org = Org()
    flags = {"alice": {"is_admin": True}, "bob": {"is_admin": True, "is_active": None},
             "carol": {"is_admin": None}}
    for row in org.rows["workspace_memberships"]:
        row.update(flags.get(row["user_gid"], {}))
    for user, flag in (("dave", {"is_admin": None, "is_active": False}), ("erin", {"is_admin": None})):
        org.rows["users"].append({"gid": user, "name": user.title()})
        org.rows["workspace_memberships"].append({"gid": f"wm-{user}", "workspace_gid": "w1", "user_gid": user,
                                                  "is_active": True, "is_guest": False, **flag})
    t, _ = derive(org.raw(), approved_admins=["alice", "erin"])
    judged = {user: status for user, (status, _) in results_of(t, "admin_access_restricted").items()}
    assert judged == {
        "alice": "ok",       # an active admin, approved
        "bob": "unknown",    # an admin whose activity the API left out, not approved: maybe an active admin
        "carol": "unknown",  # active, its admin flag left out, not approved
        "dave": "skip",      # inactive: whatever its admin flag, not an active admin
        "erin": "ok",        # its admin flag left out, but approved: ok either way
    }


# -- tickets_assigned: milestones ----------------------------------------------------------
def test_only_asana_milestones_are_exempt_from_assignment_whatever_their_ticket_type():
    org = Org()
    # Created 10 days before as_of: past the 24 h grace, open and unassigned.
    org.task("m-typed", subtype="milestone", assignee=None)  # a milestone the Type field calls "Change"
    org.task("m-plain", subtype="milestone", assignee=None)  # a milestone with no type: the edge
    org.task("t-typed", assignee=None)  # a task the Type field calls "Milestone": still work to own
    org.task("t-plain", assignee=None)
    org.rows["custom_fields"].append({"gid": "cf-type", "workspace_gid": "w1", "name": "Type",
                                      "resource_subtype": "enum"})
    for task, value in (("m-typed", "Change"), ("t-typed", "Milestone")):
        org.rows["task_custom_fields"].append({"task_gid": task, "custom_field_gid": "cf-type",
                                               "resource_subtype": "enum", "enum_option_name": value})
    t, _ = derive(org.raw())
    typed = t["tickets"].set_index("gid")["ticket_type"]
    assert typed[["m-typed", "m-plain", "t-typed"]].tolist() == ["Change", "milestone", "Milestone"]
    unassigned = "open and unassigned for longer than the grace period (created 2026-03-02 09:00 UTC)."
    assert results_of(t, "tickets_assigned") == {
        "m-typed": ("skip", ticket("m-typed") + "milestones are not assigned work."),
        "m-plain": ("skip", ticket("m-plain") + "milestones are not assigned work."),
        "t-typed": ("alarm", ticket("t-typed") + unassigned),
        "t-plain": ("alarm", ticket("t-plain") + unassigned),
    }


def test_a_ticket_type_named_by_option_gid_alone_is_the_option_the_field_lists():
    org = Org()
    org.rows["custom_fields"].append({"gid": "cf-type", "workspace_gid": "w1", "name": "Type",
                                      "resource_subtype": "enum", "enum_option_gids": ["opt-change", "opt-bug"],
                                      "enum_option_names": ["Change", "Bug"]})
    for task, option in (("by-gid", "opt-change"), ("unlisted", "opt-gone")):
        org.task(task)
        org.rows["task_custom_fields"].append({"task_gid": task, "custom_field_gid": "cf-type",
                                               "resource_subtype": "enum", "enum_option_gid": option})
    t, _ = derive(org.raw())
    typed = t["tickets"].set_index("gid")["ticket_type"]
    # Listed: its name; not listed: no name to type it by, so the task's kind.
    assert typed[["by-gid", "unlisted"]].tolist() == ["Change", "task"]


# -- tickets_synced -----------------------------------------------------------------------
def test_tickets_synced_alarms_on_a_stale_or_unlisted_project_and_a_lost_task():
    org = Org()
    org.rows["projects"] = [
        {"gid": "fresh", "workspace_gid": "w1", "name": "Fresh", "synced_at": AS_OF - timedelta(hours=23),
         "num_tasks": 0, "tasks_counted_at": AS_OF - timedelta(hours=23)},
        {"gid": "edge", "workspace_gid": "w1", "name": "Edge", "synced_at": AS_OF - timedelta(hours=24),
         "num_tasks": 0, "tasks_counted_at": AS_OF - timedelta(hours=24)},
        # Fresh, but Asana's count was never read: whether a task is missing cannot be told.
        {"gid": "uncounted", "workspace_gid": "w1", "name": "Uncounted", "synced_at": AS_OF - timedelta(hours=1)},
        {"gid": "stale", "workspace_gid": "w1", "name": "Stale",
         "synced_at": AS_OF - timedelta(hours=24, seconds=1)},
        {"gid": "never", "workspace_gid": "w1", "name": "Never", "synced_at": None},
    ]
    org.rows["sections"] = []
    org.task("kept", None)
    org.rows["quarantine"] = [
        {"table": "tasks", "gid": "lost", "error": "created_at: invalid datetime", "raw": "{}", "observed_at": AS_OF},
        {"table": "stories", "gid": "story-lost", "error": "bad", "raw": "{}", "observed_at": AS_OF},
    ]
    t, _ = derive(org.raw())
    assert results_of(t, "tickets_synced") == {
        "fresh": ("ok", 'Project "Fresh": last synced at 2026-03-11 10:00 UTC; Asana counts 0 tasks, the warehouse '
                        'holds 0.'),
        # exactly the allowed age
        "edge": ("ok", 'Project "Edge": last synced at 2026-03-11 09:00 UTC; Asana counts 0 tasks, the warehouse '
                       'holds 0.'),
        "uncounted": ("unknown", 'Project "Uncounted": last synced at 2026-03-12 08:00 UTC, but Asana\'s count of '
                                 "its tasks was never read."),
        "stale": ("alarm", 'Project "Stale": last synced at 2026-03-11 08:59 UTC, longer ago than allowed.'),
        "never": ("alarm", 'Project "Never": its tasks were never listed completely.'),
        # The quarantined record carries no name: the task is named by its gid.
        "lost": ("alarm", "Task lost: the source listed it but it is not in tickets (see quarantine)."),
    }


def test_tickets_synced_passes_when_every_project_is_fresh_and_nothing_is_lost():
    org = Org()
    org.rows["projects"][0].update(num_tasks=1, tasks_counted_at=AS_OF - timedelta(hours=1))
    org.task("kept")
    t, _ = derive(org.raw())
    assert results_of(t, "tickets_synced") == {"p1": ("ok", ('Project "Change Management": last synced at '
                                                            '2026-03-12 08:00 UTC; Asana counts 1 task, the '
                                                            'warehouse holds 1.'))}
    org.rows["projects"][0].update(num_tasks=2)  # Asana holds a task the sync lost: an alarm
    t, _ = derive(org.raw())
    assert results_of(t, "tickets_synced")["p1"] == ("alarm", 'Project "Change Management": Asana counts 2 tasks, '
                                                              "the warehouse holds 1.")
    t, _ = derive(org.raw(), max_sync_age_hours=0.5)
    assert results_of(t, "tickets_synced")["p1"][0] == "alarm"


# -- verdicts -----------------------------------------------------------------------------
@pytest.mark.parametrize(("statuses", "expected"), [
    ([], "NOT EVALUATED"),
    (["skip", "skip"], "NOT EVALUATED"),
    (["info"], "NOT EVALUATED"),  # not yet due: nothing was judged
    (["info", "skip"], "NOT EVALUATED"),
    (["ok"], "PASS"),
    (["ok", "skip", "info"], "PASS"),
    (["unknown"], "INCOMPLETE"),
    (["ok", "unknown"], "INCOMPLETE"),  # one the data cannot decide is enough to withhold PASS
    (["unknown", "alarm"], "FAIL"),
    (["unknown", "error"], "ERROR"),
    (["ok", "alarm"], "FAIL"),
    (["alarm", "skip"], "FAIL"),
    (["error", "ok"], "ERROR"),
    (["error", "alarm"], "FAIL"),
    # A status that is none of the six cannot be read: an error, never counted as nothing.
    (["ok", "Alarm"], "ERROR"),
    (["ok", "passed"], "ERROR"),
    (["ok", None], "ERROR"),
    (["Alarm"], "ERROR"),  # not NOT EVALUATED either
    (["alarm", "odd"], "FAIL"),  # an alarm still says FAIL
])
def test_a_verdict_needs_a_judged_population(statuses, expected):
    rows = pd.DataFrame({"status": pd.Series(statuses, dtype=object),
                         "reason": pd.Series(["why"] * len(statuses), dtype=object)})
    result, why = monitors.verdict(rows)
    assert result == expected
    assert why.startswith("Not evaluated: ") == (expected == "NOT EVALUATED")


def test_a_population_of_skips_says_why_it_was_not_evaluated():
    rows = pd.DataFrame({"status": ["skip"] * 3, "reason": ["Not a change ticket."] * 2 + ["Milestone."]})
    assert monitors.verdict(rows) == (
        "NOT EVALUATED",
        ("Not evaluated: no resource could be judged (0 not yet due, 3 out of scope): Not a change ticket. (2); "
         "Milestone. (1)"),
    )


def test_an_incomplete_verdict_names_the_unknowns_and_the_fix():
    rows = pd.DataFrame({"status": ["ok", "unknown", "unknown"],
                         "reason": ["fine.", "no approver.", "no approver."]})
    result, why = monitors.verdict(rows)
    assert result == "INCOMPLETE"
    assert why.startswith("2 of 3 judged resource(s) are unknown")
    assert why.endswith("no approver. (2)") and "map the section" in why


# -- empty is valid -----------------------------------------------------------------------
@pytest.mark.parametrize("world", ["nothing", "no tasks", "no change project"])
def test_an_empty_workspace_gives_every_table_and_a_pack_of_not_evaluated(world, tmp_path):
    org = Org()
    if world == "nothing":
        org.rows = {name: [] for name in RAW_TABLES}
    elif world == "no tasks":
        pass
    else:
        org.rows["projects"][0]["name"] = "IT Helpdesk"
        org.task("ticket")
        org.move("ticket", "s-todo", "s-doing", h(1))
    t, populations = derive(org.raw())
    for name in DERIVED_TABLES:
        assert name in t
    pack = evidence.write_evidence_pack(tmp_path, "run", AS_OF, ["w1"], {}, t["monitor_results"], populations)
    manifest = json.loads((pack / "manifest.json").read_text())
    assert set(manifest["verdicts"]) == set(MONITORS)
    assert manifest["verdicts"]["changes_approved"] == "NOT EVALUATED"
    assert manifest["verdicts"]["approval_segregation"] == "NOT EVALUATED"
    summary = (pack / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if line.startswith("| `changes_approved`"))
    assert "**NOT EVALUATED**" in row and "PASS" not in row
    for monitor_id in MONITORS:
        assert (pack / "monitors" / f"{monitor_id}.csv").exists()
    if world == "nothing":
        # Skips: the access baseline, offboarding_ticket without an offboarding project configured, and
        # ticket_sla without an SLA category, access_review_completed without a review project.
        assert len(t["monitor_results"]) == 4
        assert set(manifest["verdicts"].values()) == {"NOT EVALUATED"}
        assert "PASS" not in summary.replace("PASS = ", "")
