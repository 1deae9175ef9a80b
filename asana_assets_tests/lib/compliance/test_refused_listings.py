"""A project whose listing Asana refused (402/403: the crawl's quarantine rows) is unknown to every
monitor whose population that listing holds, never passed for want of its rows. Expected rows
written by hand on the small organisation of test_rules (p1 "Change Management")."""

from __future__ import annotations

from asana_assets_tests.lib.compliance.test_rules import Org, derive, results_of

REASON = ('Project "Change Management": Asana refused its listing in the sync ({errors}), so what it holds is '
          "missing from the tables and cannot be judged. Give the connection access to the project (403) or the "
          "plan's feature (402), then sync again.")
TASKS_403 = "tasks: Asana refused the request (403)"
SECTIONS_402 = "sections: the plan lacks the feature (402)"


def refused(org: Org, *errors: str, project: str = "p1") -> Org:
    for error in errors:
        org.rows["quarantine"].append({"table": "projects", "gid": project, "error": f"listing refused: {error}",
                                       "raw": "{}"})
    return org


def org_with_a_passing_ticket() -> Org:
    org = Org()
    org.task("kept")  # assigned to bob, an active member: tickets_assigned is ok
    return org


def test_a_refused_task_listing_makes_every_ticket_monitor_unknown_for_its_project():
    t, _ = derive(refused(org_with_a_passing_ticket(), TASKS_403).raw())
    unknown = ("unknown", REASON.format(errors=TASKS_403))
    for monitor in ("tickets_assigned", "changes_approved", "approval_segregation", "workflow_consistent",
                    "offboarding_access_removed"):
        assert results_of(t, monitor).get("p1") == unknown, monitor
    assert results_of(t, "tickets_assigned")["kept"][0] == "ok"  # the tickets read are still judged
    # Not a population of per-project listings: no row of its own (tickets_synced judges the
    # project from Asana's task count; the admin and membership-change monitors read no project).
    for monitor in ("admin_access_restricted", "membership_changes"):
        assert "p1" not in results_of(t, monitor), monitor


def test_a_refused_section_listing_reaches_only_the_monitors_that_read_stages():
    t, _ = derive(refused(org_with_a_passing_ticket(), SECTIONS_402).raw())
    for monitor in ("changes_approved", "approval_segregation", "workflow_consistent"):
        assert results_of(t, monitor)["p1"] == ("unknown", REASON.format(errors=SECTIONS_402)), monitor
    for monitor in ("tickets_assigned", "offboarding_access_removed"):
        assert "p1" not in results_of(t, monitor), monitor


def test_two_refused_listings_of_one_project_are_one_row_naming_both():
    t, _ = derive(refused(org_with_a_passing_ticket(), TASKS_403, SECTIONS_402).raw())
    assert results_of(t, "changes_approved")["p1"] == ("unknown", REASON.format(errors=f"{SECTIONS_402}; {TASKS_403}"))


def test_other_quarantine_rows_and_no_refusal_add_nothing():
    org = org_with_a_passing_ticket()
    org.rows["quarantine"].append({"table": "tasks", "gid": "t9", "error": "missing gid", "raw": "{}"})
    org.rows["quarantine"].append({"table": "projects", "gid": "p1", "error": "unresolved reference: team_gid",
                                   "raw": "{}"})
    t, _ = derive(org.raw())
    results = t["monitor_results"]
    assert not ((results["resource_type"] == "project") & (results["monitor_id"] != "tickets_synced")).any()
    assert set(results_of(t, "tickets_assigned")) == {"kept"}  # the ticket alone, no project row


def test_a_project_whose_own_record_was_refused_alarms_in_tickets_synced_and_is_unknown_elsewhere():
    # p2 was listed, but its record failed validation: it is not in projects, none of its tasks
    # was read. p1's quarantine row (a malformed count) names a project that is in the table.
    org = org_with_a_passing_ticket()
    org.rows["quarantine"] += [
        {"table": "projects", "gid": "p2", "error": "created_at: invalid datetime", "raw": '{"gid": "p2"}'},
        {"table": "projects", "gid": "p1", "error": "task_counts: num_tasks: not an integer", "raw": "{}"}]
    t, _ = derive(org.raw())
    assert results_of(t, "tickets_synced")["p2"] == (
        "alarm", ("Project p2: the source listed it but its record was refused (created_at: invalid datetime; see "
                  "quarantine), so none of its tasks was read."))
    for monitor in ("tickets_assigned", "changes_approved", "approval_segregation", "workflow_consistent",
                    "offboarding_access_removed"):
        assert results_of(t, monitor)["p2"][0] == "unknown", monitor
        assert "p1" not in results_of(t, monitor), monitor
    for monitor in ("admin_access_restricted", "membership_changes"):
        assert "p2" not in results_of(t, monitor), monitor


def test_a_refused_task_record_without_a_readable_gid_still_alarms():
    # A subtask record whose gid is not a string: the quarantine keeps it without one.
    org = org_with_a_passing_ticket()
    raw = '{"gid": 1209, "name": "Rotate prod keys", "parent": {"gid": "kept"}}'
    org.rows["quarantine"].append({"table": "tasks", "gid": None, "error": "gid: Input should be a valid string",
                                   "raw": raw})
    t, _ = derive(org.raw())
    # Named by the first 16 hex digits of the sha256 of its raw record (sha256sum of that text).
    lost = {gid: row for gid, row in results_of(t, "tickets_synced").items() if gid.startswith("quarantined:")}
    assert lost == {"quarantined:ccf0f57d9152de70": (
        "alarm", 'Task "Rotate prod keys": the source listed it but it is not in tickets (see quarantine).')}
