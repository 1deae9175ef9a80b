"""The period report's rules on hand-built worlds: the period's bounds, the sample sizes and the
seeded draw, each monitor's verdict over the period's runs, the gaps that qualify a PASS, the
changes, access changes and leavers of the period; and that the warehouse keeps every run's
history parts across its versions. Every expected value is written here, with the reason beside it."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from asana_assets.lib.compliance.monitors import FAIL, INCOMPLETE, MONITORS, NOT_EVALUATED, PASS
from asana_assets.lib.compliance.period import (
    NOT_JUDGED,
    QUALIFIED,
    Kept,
    Period,
    access_changes_in_period,
    changes_in_period,
    draw,
    evidence_gaps,
    leavers_in_period,
    parse_sample_sizes,
    period_verdicts,
    sample_size,
    worst_rows,
)
from asana_assets.lib.compliance.period_report import NO_BROWSER, print_pdf
from asana_assets.lib.schema import to_arrow
from asana_assets.lib.storage.warehouse import Warehouse

H1 = Period.of("2026-01-01", "2026-06-30")


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# -- the period ---------------------------------------------------------------------------------
def test_a_period_is_whole_utc_days_both_included():
    assert (H1.start, H1.end) == (ts("2026-01-01"), ts("2026-07-01"))
    assert H1.name == "period_2026-01-01_2026-06-30"
    times = pd.Series([ts("2025-12-31 23:59:59"), ts("2026-01-01"), ts("2026-06-30 23:59:59"), ts("2026-07-01"), None])
    assert H1.contains(times).tolist() == [False, True, True, False, False]  # a null time is in no period


@pytest.mark.parametrize(("first", "last", "error"), [
    ("2026-06-30", "2026-01-01", r"ends \(2026-01-01\) before it starts"),
    ("2026-13-01", "2026-12-31", "--from must be a date"),
    ("yesterday", "2026-12-31", "--from must be a date"),
])
def test_a_bad_period_is_a_clear_error(first, last, error):
    with pytest.raises(ValueError, match=error):
        Period.of(first, last)


def test_a_one_day_period_is_allowed():
    assert Period.of(date(2026, 3, 1), date(2026, 3, 1)).end == ts("2026-03-02")


# -- the sample ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("population", "size"), [
    (0, 0), (1, 1), (2, 2), (4, 2), (5, 5), (12, 5), (13, 13), (16, 15), (52, 15), (53, 40), (365, 40), (366, 60),
    (100_000, 60),
])
def test_sample_sizes_by_population(population, size):
    # 13 items fall in the 13-52 row (15), which takes them all
    assert sample_size(population) == size


def test_a_configured_table_and_a_size_never_above_the_population():
    sizes = parse_sample_sizes("3:5, *:2")
    assert sizes == ((3, 5), (None, 2))
    assert [sample_size(n, sizes) for n in (1, 3, 4, 50)] == [1, 3, 2, 2]  # 1 and 3: the whole population


@pytest.mark.parametrize("text", ["", "4:2", "4:2,2:1,*:5", "a:1,*:2", "*:2,4:1", "4:0,*:2"])
def test_a_malformed_table_is_refused(text):
    with pytest.raises(ValueError, match="sample sizes"):
        parse_sample_sizes(text)


def test_the_draw_is_numpys_choice_over_the_sorted_population():
    population = pd.Series(["d", "b", "a", "c", "b", None])  # duplicates and nulls are not items
    picks = np.sort(np.random.default_rng(5).choice(4, size=2, replace=False))  # 4 items: 2 drawn
    assert draw(population, 5) == [["a", "b", "c", "d"][i] for i in picks]
    assert draw(population, 5) == draw(population.sample(frac=1, random_state=3), 5)  # order given does not matter


def test_the_same_seed_draws_the_same_sample_and_another_seed_another():
    population = pd.Series([f"{n:04d}" for n in range(400)])  # 400 items: 60 drawn
    first = draw(population, 11)
    assert len(first) == 60 and first == draw(population, 11)
    assert first != draw(population, 12)


def test_a_population_of_one_is_taken_whole_and_an_empty_one_gives_nothing():
    assert draw(pd.Series(["x"]), 1) == ["x"]
    assert draw(pd.Series([], dtype=object), 1) == []


# -- verdicts over the period ---------------------------------------------------------------------
def result(run: str, at: str, monitor: str, gid: str, status: str) -> dict:
    return {"run_id": run, "evaluated_at": ts(at), "monitor_id": monitor, "resource_type": "ticket",
            "resource_gid": gid, "status": status, "reason": f"{monitor} {gid} {status} in {run}"}


RESULTS = pd.DataFrame([
    # t1 approved in r1, alarms in r2: an exception of the period although r1 passed it
    result("r1", "2026-01-10", "changes_approved", "t1", "ok"),
    result("r2", "2026-02-10", "changes_approved", "t1", "alarm"),
    result("r1", "2026-01-10", "changes_approved", "t2", "ok"),
    result("r2", "2026-02-10", "changes_approved", "t2", "ok"),
    # assigned in both runs: PASS
    result("r1", "2026-01-10", "tickets_assigned", "t1", "ok"),
    result("r2", "2026-02-10", "tickets_assigned", "t1", "ok"),
    # unknown in r1, ok in r2: stays unknown, never passed
    result("r1", "2026-01-10", "workflow_consistent", "t1", "unknown"),
    result("r2", "2026-02-10", "workflow_consistent", "t1", "ok"),
    # only out of scope: nothing judged
    result("r1", "2026-01-10", "tickets_synced", "p1", "skip"),
])
NO_GAP = {m: [] for m in MONITORS}


def test_each_resource_keeps_its_worst_status_over_the_runs():
    worst = worst_rows(RESULTS).set_index(["monitor_id", "resource_gid"])
    assert worst.loc[("changes_approved", "t1"), "reason"] == "changes_approved t1 alarm in r2"
    assert worst.loc[("changes_approved", "t2"), "run_id"] == "r2"  # equal statuses: the latest run's
    assert worst.loc[("workflow_consistent", "t1"), "status"] == "unknown"


def test_verdicts_over_the_period():
    verdicts = period_verdicts(RESULTS, NO_GAP)
    assert verdicts["changes_approved"][0] == FAIL
    assert verdicts["tickets_assigned"][0] == PASS
    assert verdicts["workflow_consistent"][0] == INCOMPLETE
    assert verdicts["tickets_synced"][0] == NOT_EVALUATED
    assert verdicts["offboarding_ticket"][0] == NOT_EVALUATED  # no row at all
    assert "Over 2 run(s)" in verdicts["changes_approved"][1]


def test_no_run_in_the_period_evaluates_nothing():
    verdicts = period_verdicts(RESULTS.iloc[0:0], NO_GAP)
    assert {v for v, _ in verdicts.values()} == {NOT_EVALUATED}
    assert verdicts["changes_approved"][1] == "Not evaluated: no monitor run in the period."


def test_a_gap_qualifies_a_pass_and_leaves_a_fail_a_fail():
    gaps = {m: ["the period starts before the first run kept"] for m in MONITORS}
    verdicts = period_verdicts(RESULTS, gaps)
    assert verdicts["tickets_assigned"][0] == QUALIFIED
    assert verdicts["changes_approved"][0] == FAIL
    assert "the period starts before the first run kept" in verdicts["changes_approved"][1]


# A run a day, from the period's first instant to a day before its end.
RUNS = pd.Series(pd.date_range("2026-01-01", "2026-06-29", freq="D", tz="UTC"))
RUNS.index = "r" + RUNS.index.astype(str)


def test_no_gap_when_the_runs_kept_span_the_period():
    # the first run kept at the period's first instant, the last in it a day before its end
    gaps = evidence_gaps(H1, Kept(RUNS, ts("2025-10-01")), now=ts("2026-08-01"))
    assert gaps == NO_GAP


def test_a_period_starting_before_the_first_run_kept_is_a_gap_for_every_monitor():
    runs = RUNS.replace({ts("2026-01-01"): ts("2026-01-01 00:00:01")})  # one second late
    gaps = evidence_gaps(H1, Kept(runs, ts("2025-10-01")), now=ts("2026-08-01"))
    assert all(len(g) == 1 and "before the first monitor run kept" in g[0] for g in gaps.values())


def test_a_period_ending_long_after_its_last_run_is_a_gap():
    runs = RUNS[RUNS <= ts("2026-03-01")]  # the last run in the period: four months before its end
    gaps = evidence_gaps(H1, Kept(runs, ts("2025-10-01")), now=ts("2026-08-01"))
    assert "the last run in the period is 2026-03-01 00:00 UTC" in gaps["tickets_assigned"][0]
    # the period ends in the future: it is covered up to now, not to its end
    near = evidence_gaps(H1, Kept(RUNS, ts("2025-10-01")), now=ts("2026-06-30 12:00"))
    assert near == NO_GAP


def test_runs_further_apart_than_a_daily_sync_within_the_period_are_a_gap():
    # Two months without a run in the middle of the period: what happened then is unseen.
    runs = RUNS[(RUNS <= ts("2026-03-01")) | (RUNS >= ts("2026-05-02"))]
    gaps = evidence_gaps(H1, Kept(runs, ts("2025-10-01")), now=ts("2026-08-01"))
    assert gaps["tickets_assigned"] == [
        "no monitor run from 2026-03-01 00:00 UTC to 2026-05-02 00:00 UTC: nothing shows the controls between them"]
    # The edge: two days apart is a daily sync's allowance; a second more is a gap.
    apart = pd.Timedelta(days=2)
    edge = pd.concat([RUNS[RUNS <= ts("2026-03-01")], RUNS[RUNS >= ts("2026-03-03")]])
    assert evidence_gaps(H1, Kept(edge, ts("2025-10-01")), now=ts("2026-08-01")) == NO_GAP
    late = edge.where(edge != ts("2026-03-01") + apart, ts("2026-03-01") + apart + pd.Timedelta(seconds=1))
    assert len(evidence_gaps(H1, Kept(late, ts("2025-10-01")), now=ts("2026-08-01"))["tickets_assigned"]) == 1
    # A gap before the period starts, or after now, is none of the period's.
    around = pd.concat([pd.Series([ts("2025-09-01")]), RUNS, pd.Series([ts("2026-12-01")])])
    assert evidence_gaps(H1, Kept(around, ts("2025-10-01")), now=ts("2026-06-30 12:00")) == NO_GAP


def test_an_audit_log_kept_from_after_the_period_start_qualifies_only_the_monitors_reading_it():
    gaps = evidence_gaps(H1, Kept(RUNS, ts("2026-02-01")), now=ts("2026-08-01"))
    assert "the oldest audit log event kept is 2026-02-01" in gaps["activity_after_deactivation"][0]
    assert gaps["membership_changes"] and not gaps["changes_approved"]
    none_kept = evidence_gaps(H1, Kept(RUNS, None), now=ts("2026-08-01"))
    assert none_kept["activity_after_deactivation"] == ["the warehouse keeps no audit log event"]
    # the oldest event at the period's first instant: kept from the start
    assert evidence_gaps(H1, Kept(RUNS, ts("2026-01-01")), now=ts("2026-08-01")) == NO_GAP


# -- the access changes of the period ----------------------------------------------------------------
def test_access_changes_are_placed_by_their_audit_time_else_their_snapshot():
    changes = pd.DataFrame([
        # dated by the audit log inside the period
        {"change_id": "c1", "user_gid": "u1", "occurred_at": ts("2026-02-01"), "window_start": ts("2026-01-31"),
         "window_end": ts("2026-02-02")},
        # snapshots only: shown by the snapshot of 2026-01-02, whose window opens in 2025
        {"change_id": "c2", "user_gid": "u2", "occurred_at": None, "window_start": ts("2025-12-30"),
         "window_end": ts("2026-01-02")},
        # the audit log dates it before the period though its snapshot is inside: not of the period
        {"change_id": "c3", "user_gid": "u3", "occurred_at": ts("2025-12-31"), "window_start": ts("2025-12-30"),
         "window_end": ts("2026-01-02")},
        # shown by the snapshot at the period's end, made after 2026-06-29: it may be of the period
        {"change_id": "c4", "user_gid": "u4", "occurred_at": None, "window_start": ts("2026-06-29"),
         "window_end": ts("2026-07-01")},
    ])
    worst = pd.DataFrame([{"monitor_id": "membership_changes", "resource_type": "membership_change",
                           "resource_gid": "c1", "status": "alarm", "reason": "admin granted, not reviewed"}])
    rows = access_changes_in_period(changes, H1, worst).set_index("change_id")
    assert rows.index.tolist() == ["c2", "c1", "c4"]  # by when, oldest first; c3 is dated before the period
    assert rows.loc["c1", "membership_changes_status"] == "alarm"
    assert rows.loc["c2", "membership_changes_status"] == NOT_JUDGED
    assert rows["may_predate"].tolist() == [True, False, False]
    assert rows["may_postdate"].tolist() == [False, False, True]  # c4's window ends at the period's end


# -- the changes of the period ------------------------------------------------------------------------
CREATED = ts("2025-12-01")  # every ticket is created in To Do of p1, long before the period


def judged_row(monitor: str, gid: str, status: str, reason: str, kind: str = "ticket") -> dict:
    """A row of the worst statuses of the period's runs (``worst_rows``), as the rules read it."""
    return {"monitor_id": monitor, "resource_type": kind, "resource_gid": gid, "status": status, "reason": reason}


def change_world(*tickets: dict, moves=(), approvals=(), subtasks=()) -> dict[str, pd.DataFrame]:
    """The tables ``changes_in_period`` reads: p1's To Do, In Progress and Deployed sections; each
    ticket (a change unless it says not) created in To Do; ``moves`` (ticket, section, at) as the
    section stories; ``approvals`` and the approval ``subtasks`` as given."""
    rows = [{"gid": t["gid"], "name": t["gid"].upper(), "is_change": t.get("is_change", True), "status": "OPEN",
             "completed": t.get("completed_at") is not None, "completed_at": t.get("completed_at"),
             "creator_gid": "alice", "assignee_gid": "bob", "primary_project_gid": "p1", "ticket_type": "Change",
             "url": f"https://app.asana.com/0/p1/{t['gid']}", "workspace_gid": "w1"} for t in tickets]
    tasks = [{"gid": t["gid"], "created_at": CREATED, "created_by_gid": "alice", "completed": t["completed"],
              "completed_at": t["completed_at"], "completed_by_gid": "bob" if t["completed"] else None}
             for t in rows] + [{"created_at": CREATED, "completed": True, **sub} for sub in subtasks]
    return {
        "tickets": to_arrow("tickets", rows).to_pandas(),
        "tasks": to_arrow("tasks", tasks).to_pandas(),
        "task_memberships": to_arrow("task_memberships", [
            {"task_gid": t["gid"], "project_gid": "p1", "section_gid": "s-todo"} for t in rows]).to_pandas(),
        "ticket_events": to_arrow("ticket_events", [
            {"event_id": f"e{n}", "ticket_gid": gid, "event_type": "section_changed", "occurred_at": at,
             "actor_gid": "bob", "project_gid": "p1", "old_section_gid": "s-todo", "new_section_gid": section}
            for n, (gid, section, at) in enumerate(moves)]).to_pandas(),
        "workflow_states": to_arrow("workflow_states", [
            {"section_gid": "s-todo", "project_gid": "p1", "name": "To Do", "stage": "TODO", "state": "OPEN"},
            {"section_gid": "s-doing", "project_gid": "p1", "name": "In Progress", "stage": "IN_PROGRESS",
             "state": "IN_PROGRESS"},
            {"section_gid": "s-done", "project_gid": "p1", "name": "Deployed", "stage": "DONE", "state": "CLOSED"},
        ]).to_pandas(),
        "approvals": to_arrow("approvals", list(approvals)).to_pandas(),
    }


CHANGES = change_world(
    {"gid": "inside"}, {"gid": "day-before"}, {"gid": "first-instant"}, {"gid": "last-instant"},
    {"gid": "after-last-day"}, {"gid": "completed", "completed_at": ts("2026-02-01 08:00")},
    {"gid": "waiting-unknown"}, {"gid": "waiting-skipped"}, {"gid": "waiting-unjudged"},
    {"gid": "before-unknown"}, {"gid": "not-a-change", "is_change": False},
    moves=[
        ("inside", "s-doing", ts("2026-03-15 12:00")),
        ("inside", "s-done", ts("2026-03-20 12:00")),  # a later stage does not move the start
        ("day-before", "s-doing", ts("2025-12-31 12:00")),
        ("first-instant", "s-doing", ts("2026-01-01 00:00")),
        ("last-instant", "s-done", ts("2026-06-30 23:59:59.999999")),
        ("after-last-day", "s-doing", ts("2026-07-01 00:00")),
        ("before-unknown", "s-doing", ts("2025-12-15 09:00")),
        ("not-a-change", "s-doing", ts("2026-03-15 12:00")),
    ],
    approvals=[{"approval_id": "a1", "ticket_gid": "inside", "source": "subtask", "approval_task_gid": "inside-ok",
                "decision": "approved", "decided_at": ts("2026-03-15 10:00"), "approver_gid": "carol"}],
    subtasks=[{"gid": "inside-ok", "parent_gid": "inside", "resource_subtype": "approval",
               "approval_status": "approved", "completed_at": ts("2026-03-15 10:00"), "completed_by_gid": "carol"}],
)
CHANGE_WORST = pd.DataFrame([
    judged_row("changes_approved", "inside", "alarm", "approved by the implementer"),
    judged_row("approval_segregation", "inside", "ok", "approver is not the implementer"),
    judged_row("changes_approved", "waiting-unknown", "unknown", "its section is mapped to no stage"),
    judged_row("approval_segregation", "waiting-unknown", "skip", "not completed"),
    judged_row("changes_approved", "waiting-skipped", "skip", "not started"),
    judged_row("changes_approved", "before-unknown", "unknown", "approved with no date"),
    judged_row("changes_approved", "not-a-change", "unknown", "typed as a change at some time"),
])


def test_changes_are_of_the_period_by_their_implementation_start():
    changes, _ = changes_in_period(CHANGES, H1, CHANGE_WORST)
    # inside: started 2026-03-15 12:00 (into In Progress); first-instant: at the period's first instant;
    # completed: never moved, its completion is its start; last-instant: into Deployed a microsecond before
    # the period ends. Out: day-before (2025-12-31), after-last-day (at the midnight after 2026-06-30),
    # before-unknown (2025-12-15: its start is known, its unknown status does not pull it in), the
    # waiting ones (never started) and not-a-change (no change ticket).
    assert changes[["gid", "implementation_start"]].values.tolist() == [
        ["first-instant", ts("2026-01-01 00:00")],
        ["completed", ts("2026-02-01 08:00")],
        ["inside", ts("2026-03-15 12:00")],
        ["last-instant", ts("2026-06-30 23:59:59.999999")],
    ]
    rows = changes.set_index("gid")
    # inside's approval counts (approved before the start, still approved), with the monitors' worst statuses.
    assert rows.loc["inside", ["approval_id", "approver_gid", "approved_at", "ticket_type", "primary_project_gid"]
                    ].tolist() == ["a1", "carol", ts("2026-03-15 10:00"), "Change", "p1"]
    assert rows.loc["inside", ["changes_approved_status", "changes_approved_reason", "approval_segregation_status",
                               "approval_segregation_reason"]].tolist() == [
        "alarm", "approved by the implementer", "ok", "approver is not the implementer"]
    # No run judged the others: "not judged", no reason; no approval.
    assert rows.loc[["first-instant", "completed", "last-instant"], "changes_approved_status"].tolist() == [
        NOT_JUDGED] * 3
    assert rows.loc[["first-instant", "completed", "last-instant"], "approval_segregation_status"].tolist() == [
        NOT_JUDGED] * 3
    assert rows.loc[["first-instant", "completed", "last-instant"], "changes_approved_reason"].isna().all()
    assert rows.loc[["first-instant", "completed", "last-instant"], "approval_id"].isna().all()


def test_a_change_of_unknown_start_judged_unknown_is_listed_apart():
    _, unknown = changes_in_period(CHANGES, H1, CHANGE_WORST)
    # waiting-unknown: never started and judged unknown in a run of the period: it may belong to it.
    # Not listed: waiting-skipped (judged skip: the run decided it is not started), waiting-unjudged
    # (no run judged it), before-unknown (its start is known and before the period).
    assert unknown["gid"].tolist() == ["waiting-unknown"]
    assert unknown["implementation_start"].isna().all()
    assert unknown[["changes_approved_status", "changes_approved_reason", "approval_segregation_status"]
                   ].values.tolist() == [["unknown", "its section is mapped to no stage", "skip"]]


def test_no_change_in_the_period_gives_empty_frames_with_their_columns():
    changes, unknown = changes_in_period(CHANGES, Period.of("2027-01-01", "2027-01-31"), CHANGE_WORST.iloc[0:0])
    assert changes.empty and unknown.empty  # waiting-unknown is judged by no run of this period
    assert {"gid", "implementation_start", "changes_approved_status", "approval_segregation_reason"} <= set(
        changes.columns) & set(unknown.columns)


# -- the leavers of the period -------------------------------------------------------------------------
def deprovisioned(user: str, at: pd.Timestamp) -> dict:
    """The audit log's event that ``user`` was deactivated in w1 at ``at``."""
    return {"gid": f"off-{user}", "workspace_gid": "w1", "created_at": at, "event_type": "user_deprovisioned",
            "actor_gid": "admin", "subject_user_gid": user, "resource_type": "user", "resource_gid": user}


def between(user: str, change: str, opened: pd.Timestamp, closed: pd.Timestamp) -> dict:
    """A membership change of w1 the snapshots show between ``opened`` and ``closed`` (no audit time)."""
    return {"change_id": f"{change}-{user}", "user_gid": user, "resource_type": "workspace", "resource_gid": "w1",
            "change_type": change, "window_start": opened, "window_end": closed, "evidence": "snapshots"}


LEAVERS = {
    "audit_log_events": to_arrow("audit_log_events", [
        deprovisioned("u1", ts("2026-03-05 12:00")),  # inside
        deprovisioned("u2", ts("2025-12-31 23:59:59.999999")),  # a microsecond before the period: out
        deprovisioned("u3", ts("2026-01-01 00:00")),  # at its first instant: in, and not earlier
        deprovisioned("u4", ts("2026-07-01 00:00")),  # at the midnight after its last day: out
    ]).to_pandas(),
    "membership_changes": to_arrow("membership_changes", [
        between("u5", "deactivated", ts("2025-12-20"), ts("2026-01-10")),  # window opens before: in, may predate
        between("u6", "deactivated", ts("2026-01-01"), ts("2026-01-12")),  # opens at the start: after it, in
        between("u7", "deactivated", ts("2026-06-25"), ts("2026-07-01")),  # in, though it may be of the next period
        between("u10", "deactivated", ts("2026-07-01"), ts("2026-07-03")),  # after the period's end: out
        between("u8", "reactivated", ts("2026-02-01"), ts("2026-02-02")),  # a return, no leaver
    ]).to_pandas(),
    # u9's first snapshot already shows it inactive, and no membership says since when.
    "user_access": to_arrow("user_access", [
        {"snapshot_at": ts("2026-02-01"), "run_id": "r1", "user_gid": "u9", "user_is_active": False,
         "resource_type": "workspace", "resource_gid": "w1", "role": "member"}]).to_pandas(),
    "workspace_memberships": to_arrow("workspace_memberships", []).to_pandas(),
}
LEAVER_WORST = pd.DataFrame([
    judged_row("offboarding_access_removed", "u1/w1", "alarm", "still in project p1", "user_in_workspace"),
    judged_row("offboarding_ticket", "u1/w1", "ok", "ticket IT-1 closed", "user_in_workspace"),
    judged_row("activity_after_deactivation", "u5/w1", "unknown", "no audit log", "user_in_workspace"),
    judged_row("offboarding_ticket", "u2/w1", "alarm", "no ticket", "user_in_workspace"),  # not of the period
])


def test_leavers_are_of_the_period_by_the_latest_time_they_can_have_left():
    leavers = leavers_in_period(LEAVERS, H1, LEAVER_WORST)
    # Every leaver who may have left in the period, by their latest possible time: u3 2026-01-01 00:00,
    # u5 01-10, u6 01-12, u9 02-01 (its first snapshot), u1 03-05 12:00, u7 07-01 (its window opens
    # 06-25). Out: u2 (before), u4 (at the period's end, which it excludes), u10 (its window opens at
    # the end), u8 (returned).
    assert leavers[["leaver_id", "latest", "may_predate", "may_postdate"]].values.tolist() == [
        ["u3/w1", ts("2026-01-01 00:00"), False, False],  # dated by the audit log at the first instant
        ["u5/w1", ts("2026-01-10"), True, False],  # its window opens 2025-12-20: it may be before the period
        ["u6/w1", ts("2026-01-12"), False, False],  # its window opens at the first instant: it left after it
        ["u9/w1", ts("2026-02-01"), True, False],  # no earliest time at all: it may be long before
        ["u1/w1", ts("2026-03-05 12:00"), False, False],
        ["u7/w1", ts("2026-07-01"), False, True],  # it may have left after the period's last day
    ]
    assert leavers["evidence"].tolist() == ["audit log", "snapshots", "snapshots", "snapshots", "audit log",
                                            "snapshots"]


def test_leavers_carry_what_the_offboarding_monitors_said_of_them():
    leavers = leavers_in_period(LEAVERS, H1, LEAVER_WORST).set_index("leaver_id")
    statuses = leavers[["offboarding_access_removed_status", "offboarding_ticket_status",
                        "activity_after_deactivation_status"]]
    assert statuses.loc["u1/w1"].tolist() == ["alarm", "ok", NOT_JUDGED]
    assert statuses.loc["u5/w1"].tolist() == [NOT_JUDGED, NOT_JUDGED, "unknown"]
    assert statuses.loc["u3/w1"].tolist() == [NOT_JUDGED] * 3
    assert leavers.loc["u1/w1", ["offboarding_access_removed_reason", "offboarding_ticket_reason"]].tolist() == [
        "still in project p1", "ticket IT-1 closed"]
    assert pd.isna(leavers.loc["u1/w1", "activity_after_deactivation_reason"])


def test_without_the_audit_log_only_the_snapshots_place_leavers():
    leavers = leavers_in_period({**LEAVERS, "audit_log_events": None}, H1, LEAVER_WORST)
    assert leavers["leaver_id"].tolist() == ["u5/w1", "u6/w1", "u9/w1", "u7/w1"]  # u1, u3: by the log alone


# -- the PDF ---------------------------------------------------------------------------------------
def test_without_chromium_the_pdf_is_not_made_and_the_reason_says_how(tmp_path):
    html = tmp_path / "report.html"
    html.write_text("<p>x</p>")
    assert print_pdf(html, tmp_path / "report.pdf", browser=str(tmp_path / "no-chromium")) == NO_BROWSER
    assert not (tmp_path / "report.pdf").exists()


# -- the evidence kept ---------------------------------------------------------------------------------
def test_the_warehouse_keeps_every_runs_history_across_more_versions_than_it_keeps(tmp_path):
    """Five daily runs, three versions kept: every run's monitor results and access snapshot,
    and the audit events of the first day, are still read after the fifth."""
    days = [ts(f"2026-03-0{d} 09:00") for d in range(1, 6)]
    for day, run in zip(days, ["r1", "r2", "r3", "r4", "r5"], strict=True):
        w = Warehouse(tmp_path, None, "asana", keep_versions=3, run=run)
        w.stage("monitor_results", to_arrow("monitor_results", [{
            "run_id": run, "evaluated_at": day, "monitor_id": "tickets_assigned", "resource_type": "ticket",
            "resource_gid": "t1", "status": "ok", "reason": "assigned", "severity": "WARN"}]), part=run)
        w.stage("user_access", to_arrow("user_access", [{
            "snapshot_at": day, "run_id": run, "user_gid": "u1", "resource_type": "workspace",
            "resource_gid": "w1", "role": "member"}]), part=run)
        if run == "r1":  # the audit log read once; later runs write the table they read back whole
            w.stage("audit_log_events", to_arrow("audit_log_events", [{"gid": "e1", "created_at": day}]))
        else:
            w.stage("audit_log_events", w.read("audit_log_events"))
        w.commit()
    kept = Warehouse(tmp_path, None, "asana")
    assert sorted(kept.read_history("monitor_results", ["run_id"])["run_id"].to_pylist()) == [
        "r1", "r2", "r3", "r4", "r5"]
    assert kept.read_history("user_access", ["snapshot_at"]).num_rows == 5
    assert kept.read("audit_log_events")["gid"].to_pylist() == ["e1"]
    assert len(list((tmp_path / "versions").iterdir())) == 3  # the versions themselves are pruned

