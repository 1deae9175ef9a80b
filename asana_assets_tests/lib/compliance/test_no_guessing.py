"""Where the data cannot decide, the change monitors say unknown, never the reading that passes;
scope and approvals are read from history. Every expected status is written here by hand, ticket
by ticket, on the small organisation of test_rules (alice requests, bob implements, carol
approves; p1 "Change Management" is the change project)."""

from __future__ import annotations

import pandas as pd
import pytest

from asana_assets.lib.compliance import monitors, tickets
from asana_assets_tests.lib.compliance.test_rules import Org, derive, h, results_of, ticket

ODD_SECTIONS = {  # gid: name, added to p1
    "s-tobe": "To be approved", "s-wait": "Deployed - waiting for verification", "s-es": "Implementado",
    "s-odd": "Zebra crossing",
}


def org() -> Org:
    o = Org()
    for position, (gid, name) in enumerate(ODD_SECTIONS.items(), start=10):
        o.rows["sections"].append({"gid": gid, "project_gid": "p1", "name": name, "position": position})
    return o


def statuses(t, monitor_id: str) -> dict[str, str]:
    return {gid: status for gid, (status, _) in results_of(t, monitor_id).items()}


# -- section names read asymmetrically ---------------------------------------------------------
@pytest.fixture(scope="module")
def sections():
    o = org()
    # To Do -> "To be approved" (moved by carol) -> In Progress -> completed: nobody approved.
    o.task("to-be")
    o.move("to-be", "s-todo", "s-tobe", h(1), by="carol")
    o.move("to-be", "s-tobe", "s-doing", h(2))
    o.complete("to-be", h(3))
    # Edge: the same path through "Approved" is an approval.
    o.task("approved")
    o.move("approved", "s-todo", "s-approved", h(1), by="carol")
    o.move("approved", "s-approved", "s-doing", h(2))
    # "Deployed - waiting for verification": deployed starts the work whatever waits after it.
    o.task("deployed-waiting")
    o.move("deployed-waiting", "s-todo", "s-wait", h(1))
    # Spanish: "Implementado" is implemented.
    o.task("implementado")
    o.move("implementado", "s-todo", "s-es", h(1))
    # A section no rule knows, then nothing: it may have started the work.
    o.task("odd-only")
    o.move("odd-only", "s-todo", "s-odd", h(1))
    # Through the unknown section before the approval, then started: cannot be told.
    o.task("odd-before-approval")
    o.move("odd-before-approval", "s-todo", "s-odd", h(1))
    o.move("odd-before-approval", "s-odd", "s-approved", h(2), by="carol")
    o.move("odd-before-approval", "s-approved", "s-doing", h(3))
    # Edge: approved (a subtask) first, then the unknown section, then started: approved before either.
    o.task("odd-after-approval")
    o.approval("odd-after-approval", (1, "approved"))
    o.move("odd-after-approval", "s-todo", "s-odd", h(2))
    o.move("odd-after-approval", "s-odd", "s-doing", h(3))
    # Moved from Approved to the unknown section: the approval was taken back, or the work began.
    o.task("left-for-odd")
    o.move("left-for-odd", "s-todo", "s-approved", h(1), by="carol")
    o.move("left-for-odd", "s-approved", "s-odd", h(2))
    o.move("left-for-odd", "s-odd", "s-doing", h(3))
    t, _ = derive(o.raw())
    return t


def test_names_that_do_not_say_approved_are_no_approval(sections):
    got = results_of(sections, "changes_approved")
    assert got["to-be"] == ("alarm", ticket("to-be") + "implementation started at 2026-03-02 11:00 UTC without an "
                                                       "approval.")
    assert got["approved"][0] == "ok"
    assert sections["approvals"]["ticket_gid"].tolist().count("to-be") == 0


def test_a_name_that_says_the_work_started_starts_it_whatever_else_it_says(sections):
    got = results_of(sections, "changes_approved")
    assert got["deployed-waiting"] == ("alarm", ticket("deployed-waiting") + "implementation started at "
                                                                             "2026-03-02 10:00 UTC without an approval.")
    assert got["implementado"][0] == "alarm"


def test_a_section_of_no_known_stage_makes_the_change_unknown_never_skip(sections):
    got = results_of(sections, "changes_approved")
    assert got["odd-only"] == ("unknown", ticket("odd-only") + "it entered a section of no known stage at "
                               "2026-03-02 10:00 UTC, which may have started the work: map that section "
                               "(workflow_mapping).")
    assert got["odd-before-approval"] == (
        "unknown", ticket("odd-before-approval") + "it entered a section of no known stage at 2026-03-02 10:00 UTC, "
        "before its approval by Carol at 2026-03-02 11:00 UTC: map that section (workflow_mapping).")
    assert got["odd-after-approval"][0] == "ok"
    assert got["left-for-odd"] == (
        "unknown", ticket("left-for-odd") + "an approval at 2026-03-02 10:00 UTC precedes implementation start "
        "(2026-03-02 12:00 UTC), but the ticket left the approved section for a section of no known stage.")
    assert monitors.verdict(sections["monitor_results"][
        sections["monitor_results"]["monitor_id"] == "changes_approved"])[0] == "FAIL"


def test_the_unmapped_sections_of_change_projects_are_listed_with_their_override(sections):
    listed = tickets.unmapped_change_sections(sections["workflow_states"], sections["collections"])
    assert listed["section_gid"].tolist() == ["s-odd"]
    assert listed["override"].tolist() == [
        '{"project_section_overrides": {"p1": {"Zebra crossing": "<STAGE>"}}}']


# -- scope is history ----------------------------------------------------------------------------
def archive_org() -> Org:
    o = org()
    o.rows["projects"].append({"gid": "p2", "workspace_gid": "w1", "name": "2025 Archive",
                               "synced_at": o.rows["projects"][0]["synced_at"], "archived": False})
    o.rows["sections"].append({"gid": "s-arch", "project_gid": "p2", "name": "Done", "position": 0})
    return o


def move_to_archive(o: Org, task: str, at) -> None:
    o.story(task, at, "removed_from_project", "bob", project_gid="p1")
    o.story(task, at, "added_to_project", "bob", project_gid="p2")
    for m in o.rows["task_memberships"]:
        if m["task_gid"] == task:
            m.update(project_gid="p2", section_gid="s-arch")


def test_a_change_moved_to_an_archive_after_its_work_is_still_a_change():
    o = archive_org()
    # Implemented and completed unapproved in Change Management, then moved to "2025 Archive".
    o.task("archived")
    o.move("archived", "s-todo", "s-doing", h(1))
    o.complete("archived", h(2))
    move_to_archive(o, "archived", h(3))
    # Edge: never in a change project, always in the archive: not a change.
    o.task("never", None)
    o.rows["task_memberships"].append({"task_gid": "never", "project_gid": "p2", "section_gid": "s-arch",
                                       "position": 0})
    # Added to Change Management only after its work: not a change at its start.
    o.task("late", None, assignee="bob")
    o.rows["task_memberships"].append({"task_gid": "late", "project_gid": "p2", "section_gid": "s-arch",
                                       "position": 0})
    o.complete("late", h(1))
    o.story("late", h(2), "added_to_project", "bob", project_gid="p1")
    o.rows["task_memberships"].append({"task_gid": "late", "project_gid": "p1", "section_gid": "s-todo",
                                       "position": 1})
    t, _ = derive(o.raw())
    assert t["tickets"].set_index("gid")["is_change"][["archived", "never", "late"]].tolist() == [True, False, False]
    assert results_of(t, "changes_approved")["archived"][0] == "alarm"


def typed_org(field_name: str, subtype: str) -> Org:
    o = org()
    o.rows["projects"][0]["name"] = "IT Helpdesk"  # no change project: only types make changes
    o.rows["custom_fields"].append({"gid": "cf1", "workspace_gid": "w1", "name": field_name,
                                    "resource_subtype": subtype})
    return o


def test_a_multi_enum_type_holding_change_makes_a_change():
    o = typed_org("Ticket type", "multi_enum")
    o.task("multi")
    o.move("multi", "s-todo", "s-doing", h(1))
    o.rows["task_custom_fields"].append({"task_gid": "multi", "custom_field_gid": "cf1", "resource_subtype":
                                         "multi_enum", "multi_enum_option_names": ["Infra", "Change"]})
    o.task("other")  # edge: the field holds no change option
    o.rows["task_custom_fields"].append({"task_gid": "other", "custom_field_gid": "cf1", "resource_subtype":
                                         "multi_enum", "multi_enum_option_names": ["Infra"]})
    t, _ = derive(o.raw())
    assert t["tickets"].set_index("gid")["is_change"][["multi", "other"]].tolist() == [True, False]
    assert results_of(t, "changes_approved")["multi"][0] == "alarm"


def test_every_type_field_counts_and_an_option_naming_a_change_is_one():
    o = typed_org("Bug type", "enum")  # the older type field
    o.rows["custom_fields"].append({"gid": "cf2", "workspace_gid": "w1", "name": "Change type",
                                    "resource_subtype": "enum"})
    o.task("cab")
    o.rows["task_custom_fields"] += [
        {"task_gid": "cab", "custom_field_gid": "cf1", "resource_subtype": "enum", "enum_option_name": "UI"},
        {"task_gid": "cab", "custom_field_gid": "cf2", "resource_subtype": "enum",
         "enum_option_name": "Change Request (CAB)"},
    ]
    o.task("exchange")  # edge: "Exchange" is no change
    o.rows["task_custom_fields"].append({"task_gid": "exchange", "custom_field_gid": "cf2",
                                         "resource_subtype": "enum", "enum_option_name": "Exchange rates"})
    t, _ = derive(o.raw())
    got = t["tickets"].set_index("gid")
    assert got["is_change"][["cab", "exchange"]].tolist() == [True, False]
    assert got.loc["cab", "ticket_type"] == "UI"  # shown: the oldest field's value


def test_a_change_retyped_after_its_start_stays_a_change():
    o = typed_org("Ticket type", "enum")
    o.task("retyped")
    o.move("retyped", "s-todo", "s-doing", h(1))
    o.story("retyped", h(2), "enum_custom_field_changed", "bob", custom_field_gid="cf1",
            old_enum_option_name="Change", new_enum_option_name="Task")
    o.rows["task_custom_fields"].append({"task_gid": "retyped", "custom_field_gid": "cf1",
                                         "resource_subtype": "enum", "enum_option_name": "Task"})
    # Edge: typed a change only after its work started: not a change at its start.
    o.task("typed-late")
    o.move("typed-late", "s-todo", "s-doing", h(1))
    o.story("typed-late", h(2), "enum_custom_field_changed", "bob", custom_field_gid="cf1",
            old_enum_option_name="Task", new_enum_option_name="Change")
    t, _ = derive(o.raw())
    got = t["tickets"].set_index("gid")["is_change"]
    assert got[["retyped", "typed-late"]].tolist() == [True, False]


def test_a_change_project_setting_that_matches_nothing_stops_the_monitors():
    o = org()
    with pytest.raises(ValueError, match=r"change_projects names 'Chnage Management'.*change_projects"):
        tickets.collections(o.raw(), ["Change Management", "Chnage Management"])
    assert tickets.collections(o.raw(), ["change management"])["is_change_project"].tolist() == [True]


# -- approvals a person gave ------------------------------------------------------------------
def approval_by_rule(o: Org, ticket_gid: str, completed_by: str | None) -> None:
    """An approval subtask approved at hour 1 by a story without an author (a rule or an app)."""
    gid = f"{ticket_gid}-approval"
    o.rows["stories"].append({"gid": f"{gid}-s", "task_gid": gid, "created_at": h(1), "created_by_gid": None,
                              "type": "system", "resource_subtype": "marked_approved",
                              "old_approval_status": "pending", "new_approval_status": "approved"})
    o.task(gid, None, parent=ticket_gid, subtype="approval", approval_status="approved", assignee=completed_by,
           completed_at=h(1), completed_by=completed_by)


@pytest.fixture(scope="module")
def approvals():
    o = org()
    # No author; the subtask completed by the change's own assignee (bob): he approved it.
    o.task("self-approved")
    approval_by_rule(o, "self-approved", "bob")
    o.move("self-approved", "s-todo", "s-doing", h(2))
    # No author and no completed_by: nobody is known to have approved it.
    o.task("nobody")
    approval_by_rule(o, "nobody", None)
    o.move("nobody", "s-todo", "s-doing", h(2))
    # Edge: no author, completed by carol, who is independent.
    o.task("carol-by-rule")
    approval_by_rule(o, "carol-by-rule", "carol")
    o.move("carol-by-rule", "s-todo", "s-doing", h(2))
    # Approved, reset to pending by a story without approval fields, then started: withdrawn.
    o.task("reset-story")
    o.approval("reset-story", (1, "approved"))
    o.story("reset-story-approval", h(2), "marked_incomplete", "carol")
    for row in o.rows["tasks"]:
        if row["gid"] == "reset-story-approval":
            row.update(approval_status="pending", completed=False, completed_at=None, completed_by_gid=None)
    o.move("reset-story", "s-todo", "s-doing", h(3))
    # Approved, now pending with no story saying when: the reset cannot be dated.
    o.task("reset-silent")
    o.approval("reset-silent", (1, "approved"))
    for row in o.rows["tasks"]:
        if row["gid"] == "reset-silent-approval":
            row.update(approval_status="pending", completed=False, completed_at=None, completed_by_gid=None)
    o.move("reset-silent", "s-todo", "s-doing", h(3))
    t, _ = derive(o.raw())
    return t


def test_an_approval_is_attributed_to_its_subtask_completer_when_its_story_has_no_author(approvals):
    assert results_of(approvals, "approval_segregation")["self-approved"] == (
        "alarm", ticket("self-approved") + "the approver Bob is also its assignee.")
    assert results_of(approvals, "changes_approved")["self-approved"][0] == "ok"
    assert statuses(approvals, "approval_segregation")["carol-by-rule"] == "ok"


def test_an_approval_nobody_is_known_to_have_given_is_unknown_in_both_monitors(approvals):
    why = ("no person is known to have given it (a rule or an app, or a story without an author)")
    assert results_of(approvals, "changes_approved")["nobody"] == (
        "unknown", ticket("nobody") + "an approval at 2026-03-02 10:00 UTC precedes implementation start "
        "(2026-03-02 11:00 UTC), but " + why + ".")
    assert results_of(approvals, "approval_segregation")["nobody"] == (
        "unknown", ticket("nobody") + "its approval cannot be relied on: " + why + ".")


def test_a_reset_withdraws_the_approval_and_an_undated_one_is_unknown(approvals):
    got = results_of(approvals, "changes_approved")
    assert got["reset-story"] == ("alarm", ticket("reset-story") + "implementation started at 2026-03-02 12:00 UTC "
                                                                   "without an approval.")
    assert got["reset-silent"] == (
        "unknown", ticket("reset-silent") + "an approval at 2026-03-02 10:00 UTC precedes implementation start "
        "(2026-03-02 12:00 UTC), but its approval subtask now reads pending and no dated change says when it left "
        "approved.")


def test_an_approval_by_nobody_keeps_a_null_approver_on_a_change(approvals):
    """The approvals table names no approver rather than a guessed one (the assignee, say)."""
    c = approvals["tickets"]
    assert c.loc[c["gid"] == "nobody", "is_change"].item()
    assert pd.isna(approvals["approvals"].set_index("approval_task_gid").loc["nobody-approval", "approver_gid"])


def test_a_move_into_a_section_the_sync_cannot_see_is_no_known_stage():
    o = org()
    # Moved into a section of a project the connection cannot read: not in the sections table.
    o.task("hidden")
    o.move("hidden", "s-todo", "s-private", h(1))
    # Edge: the same move into a section the sync has.
    o.task("seen")
    o.move("seen", "s-todo", "s-doing", h(1))
    t, _ = derive(o.raw())
    assert statuses(t, "changes_approved")["hidden"] == "unknown"
    assert statuses(t, "changes_approved")["seen"] == "alarm"


# -- no row of nulls -----------------------------------------------------------------------------------
def test_approval_stories_give_no_event_rows_of_nulls():
    o = org()
    o.task("approved-once")
    o.approval("approved-once", (1, "approved"))  # pending -> approved: a completion, no reopening
    t, _ = derive(o.raw())  # derive refuses a derived row with a null key or required column
    events = t["ticket_events"]
    assert sorted(events.loc[events["ticket_gid"] == "approved-once-approval", "event_type"]) == [
        "approval_changed", "completed", "created"]


def test_a_derived_row_with_a_null_required_column_is_refused():
    import pyarrow as pa

    from asana_assets.lib.schema import DERIVED_TABLES, require_columns

    schema = DERIVED_TABLES["ticket_events"]
    rows = pa.Table.from_pylist([{"event_id": "s1:reopened"}], schema=schema)  # every other column null
    with pytest.raises(ValueError, match=r"ticket_events: null in required column\(s\) ticket_gid \(1 rows\), "
                                         r"event_type \(1 rows\) of 1 rows"):
        require_columns("ticket_events", rows)
