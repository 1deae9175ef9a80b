"""The period report's rules on hand-built worlds: the period's bounds, the sample sizes and the
seeded draw, each monitor's verdict over the period's runs, the gaps that qualify a PASS, the
access changes of the period; and that the warehouse keeps every run's history parts across
its versions. Every expected value is written here, with the reason beside it."""

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
    draw,
    evidence_gaps,
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


RUNS = pd.Series([ts("2026-01-01"), ts("2026-03-01"), ts("2026-06-29")], index=["r1", "r2", "r3"])


def test_no_gap_when_the_runs_kept_span_the_period():
    # the first run kept at the period's first instant, the last in it a day before its end
    gaps = evidence_gaps(H1, Kept(RUNS, ts("2025-10-01")), now=ts("2026-08-01"))
    assert gaps == NO_GAP


def test_a_period_starting_before_the_first_run_kept_is_a_gap_for_every_monitor():
    runs = RUNS.replace({ts("2026-01-01"): ts("2026-01-01 00:00:01")})  # one second late
    gaps = evidence_gaps(H1, Kept(runs, ts("2025-10-01")), now=ts("2026-08-01"))
    assert all(len(g) == 1 and "before the first monitor run kept" in g[0] for g in gaps.values())


def test_a_period_ending_long_after_its_last_run_is_a_gap():
    runs = RUNS.drop("r3")  # the last run in the period: 2026-03-01, four months before its end
    gaps = evidence_gaps(H1, Kept(runs, ts("2025-10-01")), now=ts("2026-08-01"))
    assert "the last run in the period is 2026-03-01 00:00 UTC" in gaps["tickets_assigned"][0]
    # the period ends in the future: it is covered up to now, not to its end
    near = evidence_gaps(H1, Kept(RUNS, ts("2025-10-01")), now=ts("2026-06-30 12:00"))
    assert near == NO_GAP


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
        # shown by a snapshot at the period's end (excluded)
        {"change_id": "c4", "user_gid": "u4", "occurred_at": None, "window_start": ts("2026-06-29"),
         "window_end": ts("2026-07-01")},
    ])
    worst = pd.DataFrame([{"monitor_id": "membership_changes", "resource_type": "membership_change",
                           "resource_gid": "c1", "status": "alarm", "reason": "admin granted, not reviewed"}])
    rows = access_changes_in_period(changes, H1, worst).set_index("change_id")
    assert rows.index.tolist() == ["c2", "c1"]  # by when, oldest first
    assert rows.loc["c1", "membership_changes_status"] == "alarm"
    assert rows.loc["c2", "membership_changes_status"] == NOT_JUDGED
    assert rows["may_predate"].tolist() == [True, False]


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

