"""The compliance layer on a generated organisation: every monitor alarms on exactly the planted
violations and says unknown on exactly the planted undecidable cases, the ticket tables agree with
the simulator's own record of each task's life, and the evidence pack reproduces the results."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from asana_assets import demo
from asana_assets.lib.compliance.monitors import MONITORS
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import generate_world, plant_membership_changes
from asana_assets.simulator.generator import INCIDENTS, OFFBOARDING, SECTION_MEANING, SLA_CATEGORY, planted_statuses
from asana_assets_tests.support.pipeline import alarms, results_of, run_pipeline

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# The monitors judging each user per workspace (resource gid <user gid>/<workspace gid>).
PER_USER = ("offboarding_access_removed", "activity_after_deactivation", "offboarding_ticket")


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """One generated Enterprise world (the demo's kind: its audit log is read), synced and
    evaluated as of its generation time with the demo's compliance settings."""
    directory = tmp_path_factory.mktemp("warehouse")
    world = generate_world(seed=1, tasks=400, now=NOW, enterprise=True)
    # Every admin the generator makes is approved, except the planted guest admin (it alarms either way).
    memberships = world.ground_truth()["workspace_memberships"]
    admins = [m["user"]["gid"] for m in memberships if m["is_admin"] and not m["is_guest"]]
    run = run_pipeline(world, directory, NOW, approved_admins=admins, **demo.COMPLIANCE)
    assert run.success
    return world, directory, run


@pytest.mark.parametrize("monitor_id", [m for m in MONITORS if m != "membership_changes"])
def test_alarms_and_unknowns_are_exactly_the_planted_ones(synced, monitor_id):
    world, directory, run = synced
    planted = planted_statuses(world).get(monitor_id, {})
    if monitor_id in PER_USER:
        planted = {f"{user}/{world.workspaces[0]}": status for user, status in planted.items()}
    if monitor_id == "ticket_sla":  # per ticket and category (resource gid <ticket gid>/<category>)
        planted = {f"{ticket}/{SLA_CATEGORY['name']}": status for ticket, status in planted.items()}
    results = results_of(run, directory)
    mine = results[(results["monitor_id"] == monitor_id) & results["status"].isin(["alarm", "unknown"])]
    found = dict(zip(mine["resource_gid"], mine["status"], strict=True))
    assert found == planted


def test_every_monitor_has_planted_violations(synced):
    world, _, _ = synced
    expected = planted_statuses(world)
    unplanted = ("membership_changes", "tickets_synced")
    assert {m for m in MONITORS if m not in unplanted} <= set(expected)
    undecided = {monitor for monitor, statuses in expected.items() if "unknown" in statuses.values()}
    assert undecided == {"changes_approved", "approval_segregation", "workflow_consistent"}


def test_offboarding_tickets_judge_the_leaver_and_the_alumnus(synced):
    world, directory, run = synced
    results = results_of(run, directory)
    rows = results[(results["monitor_id"] == "offboarding_ticket") & (results["resource_type"] == "user_in_workspace")]
    rows = rows.set_index("resource_gid")
    workspace = world.workspaces[0]
    (leaver,) = world.planted["offboarding_ticket"]
    assert len(rows) == 2 and rows.loc[f"{leaver}/{workspace}", "status"] == "alarm"  # still open, a day overdue
    assert "still open" in rows.loc[f"{leaver}/{workspace}", "reason"]
    others = rows.drop(f"{leaver}/{workspace}")
    assert others["status"].tolist() == ["ok"]  # the alumnus's, completed half a day after leaving
    assert others["reason"].str.contains("within the 1 day allowed").all()


def test_the_incidents_are_judged_against_their_severity_s_sla(synced):
    """The seven incidents of the demo's SLA category, each with the days the strictest severity it
    held allows (Critical 1, High 3, else the default 14) and its time in Blocked paused."""
    _, directory, run = synced
    results = results_of(run, directory)
    rows = results[results["monitor_id"] == "ticket_sla"]
    assert set(rows["resource_type"]) == {"ticket_in_category"}
    # Each reason starts with its ticket: 'Ticket "SEC-1: Leaked API key ..." (Security Incidents): ...'.
    assert rows["reason"].str.match(r'Ticket "SEC-\d: [^"]+" \(Security Incidents\): ').all()
    found = {reason[8:13]: (status, reason) for status, reason in zip(rows["status"], rows["reason"], strict=True)}
    assert {name: status for name, (status, _) in found.items()} == {
        "SEC-1": "alarm",  # Critical, open three days
        "SEC-2": "ok",  # High, closed in two days
        "SEC-3": "alarm",  # Critical, closed after a day and two hours
        "SEC-4": "info",  # High, five days open, three of them Blocked
        "SEC-5": "info",  # no severity: the default, two days in
        "SEC-6": "ok",  # Low has no days of its own: the default, closed in five days
        "SEC-7": "alarm",  # Critical, lowered to Low on its second day, closed on its third
    }
    assert ('category "Security incidents", Severity lowered from Critical to Low on 2026-05-28 12:00 UTC, held to '
            "Critical's 1 day; created 2026-05-26 12:00 UTC; 0 h paused in BLOCKED sections; deadline "
            "2026-05-27 12:00 UTC; completed at 2026-05-29 12:00 UTC, after it.") in found["SEC-7"][1]
    assert "; 72 h paused in BLOCKED sections; deadline 2026-06-02 12:00 UTC; open, not yet due." in found["SEC-4"][1]
    assert "category \"Security incidents\", no priority, so the default SLA of 14 days" in found["SEC-5"][1]
    assert "priority Low, which has no SLA of its own, so the default of 14 days" in found["SEC-6"][1]
    assert "still open at 2026-06-01 12:00 UTC, past it." in found["SEC-1"][1]
    assert rows["resource_url"].str.startswith("https://app.asana.com/0/").all()


def test_the_access_review_campaign_is_judged_item_by_item(synced):
    """The demo's campaign review-2026-05-29 (due three days before the run): the IT Offboarding
    owner's access is kept by the Security Incidents owner; the IT Offboarding owner leaves the
    editor's undecided and revokes the viewer's (removed since); the Security Incidents owner keeps
    their own (a self-review) and revokes the editor's, who still holds it."""
    world, directory, run = synced
    results = results_of(run, directory)
    rows = results[results["monitor_id"] == "access_review_completed"]
    assert set(rows["resource_type"]) == {"access_review_item"}
    projects = {world.objects[g].name: g for g in world.objects[world.workspaces[0]].projects}
    offboarding, incidents = projects[OFFBOARDING], projects[INCIDENTS]
    assert rows["resource_gid"].str.startswith("review-2026-05-29/project/").all()
    # Each reason names the role: 'Access review review-2026-05-29: editor access of ...'.
    role = rows["reason"].str.extract(r"^Access review review-2026-05-29: (\w+) access of ")[0]
    judged = {(gid.split("/")[2], r): (status, reason)
              for gid, r, status, reason in zip(rows["resource_gid"], role, rows["status"], rows["reason"], strict=True)}
    assert {key: status for key, (status, _) in judged.items()} == {
        (offboarding, "owner"): "ok", (offboarding, "editor"): "alarm", (offboarding, "viewer"): "ok",
        (incidents, "owner"): "alarm", (incidents, "editor"): "alarm"}
    assert "undecided past its due day 2026-05-29." in judged[offboarding, "editor"][1]
    assert "shows the user still holds it." in judged[incidents, "editor"][1]
    assert "and the access is gone (snapshot of" in judged[offboarding, "viewer"][1]
    assert "approved (keep) by" in judged[offboarding, "owner"][1]
    assert "the member themself: their own access needs another reviewer's" in judged[incidents, "owner"][1]


def test_membership_changes_alarm_on_the_changes_made_between_syncs(synced, tmp_path):
    world, _, _ = synced
    first = results_of(run_pipeline(world, tmp_path, NOW), tmp_path)
    assert alarms(first, "membership_changes") == set()  # the first snapshot is a baseline
    expected = plant_membership_changes(world)
    later = NOW + timedelta(hours=6)
    second = run_pipeline(world, tmp_path, later)
    changes = ParquetWarehouse(tmp_path).read("membership_changes").to_pandas()
    flagged = changes[changes["change_id"].isin(alarms(results_of(second, tmp_path), "membership_changes"))]
    assert set(flagged["user_gid"]) == set(expected)


def test_tickets_match_each_tasks_final_state(synced):
    world, directory, _ = synced
    tickets = ParquetWarehouse(directory).read("tickets").to_pandas().set_index("gid")
    for task in world.ground_truth()["tasks"]:
        row = tickets.loc[task["gid"]]
        memberships = task["memberships"]
        expected = "CLOSED" if task["completed"] else (
            SECTION_MEANING[memberships[0]["section"]["name"]][1] if memberships else "OPEN")
        assert row["status"] == expected, task["gid"]
        for column, ref in (("assignee_gid", task["assignee"]), ("parent_gid", task["parent"])):
            assert (None if pd.isna(row[column]) else row[column]) == (ref or {}).get("gid")


def _expected_history(world, section_state) -> pd.DataFrame:
    """State intervals rebuilt from the simulator's timeline of each task, not from stories."""
    rows = []
    for task in world.ground_truth()["tasks"]:
        intervals: dict[str, list] = {}
        timeline = world.timeline(task["gid"])
        for snap in timeline:
            at = pd.Timestamp(snap["at"])
            places = snap["memberships"] or {"": None}
            for project, section in places.items():
                state = "CLOSED" if snap["completed"] else (section_state(section) if project else "OPEN")
                seq = intervals.setdefault(project, [])
                if seq and seq[-1][1] == at:
                    seq.pop()  # several changes at one instant: the last one stands
                if not seq or seq[-1][0] != state:
                    seq.append((state, at))
        for project, seq in intervals.items():
            rows += [(task["gid"], project or None, state, at) for state, at in seq]
    return pd.DataFrame(rows, columns=["ticket_gid", "project_gid", "state", "entered_at"])


def test_status_history_matches_the_simulators_timeline(synced):
    world, directory, _ = synced
    sections = {s["gid"]: s["name"] for s in world.ground_truth()["sections"]}
    expected = _expected_history(world, lambda gid: SECTION_MEANING[sections[gid]][1])
    got = ParquetWarehouse(directory).read("ticket_status_history").to_pandas()
    key = ["ticket_gid", "project_gid", "entered_at"]
    got = got[["ticket_gid", "project_gid", "state", "entered_at"]].fillna({"project_gid": ""})
    expected = expected.fillna({"project_gid": ""})
    merged = expected.merge(got, on=key, how="outer", suffixes=("_expected", "_got"), indicator=True)
    wrong = merged[(merged["_merge"] != "both") | (merged["state_expected"] != merged["state_got"])]
    assert wrong.empty, wrong.head(10).to_string()


def test_ticket_events_follow_the_structured_story_fields(synced):
    world, directory, _ = synced
    truth = world.ground_truth()
    events = ParquetWarehouse(directory).read("ticket_events").to_pandas()
    counts = events["event_type"].value_counts()
    stories = truth["stories"]
    assert counts["created"] == len(truth["tasks"])
    assert counts["section_changed"] == sum(1 for s in stories if s.get("new_section"))
    assert counts["approval_changed"] == sum(1 for s in stories if s.get("new_approval_status"))
    assert counts["assigned"] == sum(1 for s in stories if s["resource_subtype"] == "assigned")
    moves = events[events["event_type"] == "section_changed"].set_index("event_id")
    for story in (s for s in stories if s.get("new_section")):
        assert moves.loc[story["gid"], "new_section_gid"] == story["new_section"]["gid"]
        assert moves.loc[story["gid"], "actor_gid"] == (story["created_by"] or {}).get("gid")


def test_the_evidence_pack_reproduces_the_results(synced):
    _, directory, run = synced
    [pack] = (directory / "evidence").glob(f"*_{run.run_id}")
    manifest = json.loads((pack / "manifest.json").read_text())
    assert manifest["run_id"] == run.run_id and manifest["as_of"] == NOW.isoformat()
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((pack / name).read_bytes()).hexdigest() == digest
    results = results_of(run, directory)
    for monitor_id in MONITORS:
        csv = pd.read_csv(pack / "monitors" / f"{monitor_id}.csv", dtype=str)
        mine = results[results["monitor_id"] == monitor_id]
        assert sorted(csv["resource_gid"]) == sorted(mine["resource_gid"])
        assert (csv["status"] == "alarm").sum() == (mine["status"] == "alarm").sum()
    change = pd.read_csv(pack / "populations" / "change_tickets.csv", dtype=str)
    assert {"implementation_start", "approved_at", "approver_gid", "url"} <= set(change.columns)
    summary = (pack / "summary.md").read_text()
    assert all(f"`{m}`" in summary for m in MONITORS) and "CC8.1" in summary
