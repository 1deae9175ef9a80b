"""offboarding_ticket on small hand-built worlds: every expected status and reason is written here
by hand, user by user, with why."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pandas as pd

from asana_assets.lib.compliance import access, monitors
from asana_assets.lib.compliance.activity import deactivations
from asana_assets.lib.compliance.names import Directory
from asana_assets.lib.compliance.offboarding import NOT_CONFIGURED, offboarding_ticket_results
from asana_assets.lib.schema import RAW_TABLES, to_arrow

S0 = pd.Timestamp("2026-03-01 00:00", tz="UTC")  # the first snapshot: everyone active
S1 = pd.Timestamp("2026-03-11 00:00", tz="UTC")  # the second, ten days on: the leavers inactive
D = pd.Timestamp("2026-03-05 12:00", tz="UTC")  # when the audit log says a leaver was deprovisioned
AS_OF = pd.Timestamp("2026-03-20 00:00", tz="UTC")
DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)
PEOPLE = (("u1", "Una Ray"), ("u2", "Bo Lind"), ("u3", "Cy Moss"), ("u4", "Di Park"), ("u5", "Al"),
          ("u6", "Flo Kent"), ("u7", "Gus Hale"), ("u8", "Hal Ito"), ("u9", "Alice Ward"))
USERS = [{"gid": gid, "name": name, "email": f"{name.split()[0].lower()}@example.com"} for gid, name in PEOPLE]
RAW = {name: to_arrow(name, []).to_pandas() for name in RAW_TABLES}
LOGGED = "deactivated at 2026-03-05 12:00:00.000 UTC (audit log)"
WINDOW = "deactivated between 2026-03-01 00:00:00.000 UTC and 2026-03-11 00:00:00.000 UTC (snapshots)"
DEADLINE = "2026-03-10 12:00 UTC"  # five days after D


def world(tickets: list[dict], people_fields: list[dict] = ()) -> dict[str, pd.DataFrame]:
    """The tables: project p1 "IT Offboarding" holds every ticket, p2 "Helpdesk" none."""
    return {**RAW, "users": to_arrow("users", USERS).to_pandas(),
            "workspaces": to_arrow("workspaces", [{"gid": "w1", "name": "Acme"}]).to_pandas(),
            "projects": to_arrow("projects", [{"gid": "p1", "name": "IT Offboarding", "workspace_gid": "w1"},
                                              {"gid": "p2", "name": "Helpdesk", "workspace_gid": "w1"}]).to_pandas(),
            "task_memberships": to_arrow("task_memberships", [
                {"task_gid": t["gid"], "project_gid": t.get("project", "p1"), "position": 0} for t in tickets
            ]).to_pandas(),
            "task_custom_fields": to_arrow("task_custom_fields", [
                {"custom_field_gid": "f1", "resource_subtype": "people", **f} for f in people_fields]).to_pandas(),
            "tickets": to_arrow("tickets", [
                {"status": "CLOSED" if t.get("completed_at") else "OPEN", "is_change": False,
                 "completed": t.get("completed_at") is not None, "url": f"https://app.asana.com/0/p1/{t['gid']}",
                 "workspace_gid": "w1", **{k: v for k, v in t.items() if k != "project"}} for t in tickets]).to_pandas()}


def history(leavers) -> pd.DataFrame:
    """user_access: every user an active member of w1 at S0; at S1 the leavers inactive."""
    rows = [{"user_gid": user, "resource_type": "workspace", "resource_gid": "w1", "role": "member",
             "snapshot_at": at, "run_id": run, "user_is_active": at == S0 or user not in leavers}
            for at, run in ((S0, "r0"), (S1, "r1")) for user in (gid for gid, _ in PEOPLE)]
    return to_arrow("user_access", rows).to_pandas()


def deprovisioned(user, at=D) -> dict:
    return {"gid": f"off-{user}", "workspace_gid": "w1", "created_at": at, "event_type": "user_deprovisioned",
            "actor_gid": "admin", "subject_user_gid": user, "resource_type": "user", "resource_gid": user}


def judge(t, leavers, logged, projects=("IT Offboarding",), days=5.0, match=("assignee", "people_field", "title"),
          as_of=AS_OF) -> dict[str, tuple[str, str]]:
    """The monitor's rows by resource gid, (status, reason): ``leavers`` inactive at S1, those of
    ``logged`` deprovisioned (audit log) at the time given."""
    audit = to_arrow("audit_log_events", [deprovisioned(u, at) for u, at in logged.items()]).to_pandas()
    snapshots = history(leavers)
    turns = deactivations(snapshots, access.membership_changes(snapshots, audit), audit, RAW["workspace_memberships"])
    rows = offboarding_ticket_results(t, t["tickets"], turns, as_of, list(projects) or None, days, match, Directory(t))
    assert rows["resource_gid"].is_unique
    return {row.resource_gid: (row.status, row.reason) for row in rows.itertuples()}


def test_each_deactivated_user_needs_a_ticket_naming_them_completed_within_the_days_allowed():
    t = world([
        {"gid": "t2", "name": "Offboarding", "assignee_gid": "u2", "completed_at": D + 2 * DAY},  # by its assignee
        {"gid": "t3", "name": "Offboard Cy Moss", "completed_at": D + 5 * DAY + MINUTE},  # a minute late
        {"gid": "t4", "name": "Remove DI@Example.com from Okta", "completed_at": D + DAY},  # by email alone
        {"gid": "t5", "name": "Offboard Alice Ward", "completed_at": D + DAY},  # Alice, not Al: a prefix only
        {"gid": "t6", "name": "Laptop return", "completed_at": D + 5 * DAY},  # by a people field, at the deadline
        {"gid": "t1", "name": "Offboard Una Ray", "completed_at": D + DAY, "project": "p2"},  # not an offboarding project
        {"gid": "t8", "name": "Offboard Hal Ito"},  # still open
    ], [{"task_gid": "t6", "people_gids": ["u6"]}])
    found = judge(t, ["u1", "u2", "u3", "u4", "u5", "u6", "u8"], dict.fromkeys(["u1", "u2", "u3", "u4", "u5", "u6", "u8"], D))
    assert found == {
        "u1/w1": ("alarm", (f"Una Ray <una@example.com> in workspace \"Acme\": {LOGGED}; no offboarding ticket naming "
                            f"the user was completed by its deadline ({DEADLINE}): no ticket of the offboarding projects "
                            "names the user")),
        "u2/w1": ("ok", (f"Bo Lind <bo@example.com> in workspace \"Acme\": {LOGGED}; offboarding ticket \"Offboarding\" "
                         "(IT Offboarding) was completed at 2026-03-07 12:00 UTC, within the 5 days allowed (deadline "
                         f"{DEADLINE})")),
        "u3/w1": ("alarm", (f"Cy Moss <cy@example.com> in workspace \"Acme\": {LOGGED}; offboarding ticket \"Offboard Cy "
                            "Moss\" (IT Offboarding) was completed at 2026-03-10 12:01 UTC, after its deadline "
                            f"({DEADLINE})")),
        "u4/w1": ("ok", (f"Di Park <di@example.com> in workspace \"Acme\": {LOGGED}; offboarding ticket \"Remove "
                         "DI@Example.com from Okta\" (IT Offboarding) was completed at 2026-03-06 12:00 UTC, within "
                         f"the 5 days allowed (deadline {DEADLINE})")),
        "u5/w1": ("alarm", (f"Al <al@example.com> in workspace \"Acme\": {LOGGED}; no offboarding ticket naming the user "
                            f"was completed by its deadline ({DEADLINE}): no ticket of the offboarding projects names the "
                            "user")),
        "u6/w1": ("ok", (f"Flo Kent <flo@example.com> in workspace \"Acme\": {LOGGED}; offboarding ticket \"Laptop "
                         "return\" (IT Offboarding) was completed at 2026-03-10 12:00 UTC, within the 5 days allowed "
                         f"(deadline {DEADLINE})")),
        "u8/w1": ("alarm", (f"Hal Ito <hal@example.com> in workspace \"Acme\": {LOGGED}; no offboarding ticket naming the "
                            f"user was completed by its deadline ({DEADLINE}): ticket \"Offboard Hal Ito\" (IT "
                            "Offboarding) is still open")),
    }
    # Counted by title only, Bo's (assigned) and Flo's (people field) tickets name nobody.
    by_title = judge(t, ["u2", "u6"], {"u2": D, "u6": D}, match=("title",))
    assert [status for status, _ in by_title.values()] == ["alarm", "alarm"]


def test_a_deactivation_only_a_window_wider_than_the_days_allowed_dates_is_unknown():
    """No audit event for Gus: he left somewhere between S0 and S1, ten days apart."""
    t = world([{"gid": "t7", "name": "Offboard gus hale", "completed_at": S1 + DAY}])
    assert judge(t, ["u7"], {}) == {
        "u7/w1": ("unknown", (f"Gus Hale <gus@example.com> in workspace \"Acme\": {WINDOW}; offboarding ticket "
                              "\"Offboard gus hale\" (IT Offboarding) was completed at 2026-03-12 00:00 UTC, and whether "
                              "that was within the 5 days after the deactivation cannot be told (deadline between "
                              "2026-03-06 00:00 UTC and 2026-03-16 00:00 UTC, a window wider than the 5 days allowed: "
                              "its deadline cannot be placed)")),
    }
    # Completed after the latest possible deadline, it is late whenever he left: an alarm.
    late = world([{"gid": "t7", "name": "Offboard gus hale", "completed_at": S1 + 5 * DAY + MINUTE}])
    assert judge(late, ["u7"], {})["u7/w1"][0] == "alarm"


def test_an_open_ticket_before_its_deadline_is_not_yet_due():
    t = world([{"gid": "t8", "name": "Offboard Hal Ito"}])
    assert judge(t, ["u8"], {"u8": D}, as_of=D + DAY) == {
        "u8/w1": ("info", (f"Hal Ito <hal@example.com> in workspace \"Acme\": {LOGGED}; not yet due: the deadline is "
                           f"{DEADLINE} and ticket \"Offboard Hal Ito\" (IT Offboarding) is still open")),
    }


def test_not_evaluated_without_an_offboarding_project_or_a_deactivated_user():
    t = world([{"gid": "t2", "name": "Offboarding", "assignee_gid": "u2", "completed_at": D + DAY}])
    unconfigured = judge(t, ["u2"], {"u2": D}, projects=())
    assert unconfigured == {"offboarding_projects": ("skip", NOT_CONFIGURED)}
    assert monitors.verdict(pd.DataFrame({"status": ["skip"], "reason": [NOT_CONFIGURED]}))[0] == monitors.NOT_EVALUATED
    assert judge(t, [], {}) == {}  # nobody left: the population is empty, NOT EVALUATED too
    # A configured name no project has is said, beside the judged users.
    assert judge(t, ["u2"], {"u2": D}, projects=("IT Offboarding", "Offboardin"))["offboarding_projects"] == (
        "error", ("offboarding_projects names 'Offboardin', which match(es) no synced project by gid or name, so "
                  "tickets filed there are not seen: correct the compliance setting offboarding_projects"))
    # People fields to match, but no table holding them: said, never silently left out.
    unread = {name: frame for name, frame in t.items() if name != "task_custom_fields"}
    assert judge(unread, ["u2"], {"u2": D})["offboarding_match"] == (
        "error", ("the evaluation was given no task_custom_fields table, so a ticket naming a user only in a people "
                  "custom field is not seen: read the table into the monitors' inputs"))


def test_only_a_refused_listing_of_an_offboarding_project_makes_the_monitor_unknown():
    """Helpdesk's tickets hold no offboarding ticket: its refused listing hides nothing from this monitor."""
    t = world([])
    monitor = monitors.MONITORS["offboarding_ticket"]
    scope = monitor.scope(SimpleNamespace(t=t, params=monitors.MonitorParams(offboarding_projects=["it offboarding"])))
    refused = pd.DataFrame({"project_gid": ["p1", "p2"], "listing": ["tasks", "tasks"],
                            "error": ["tasks: HTTP 403", "tasks: HTTP 403"]})
    rows = monitors.unread_projects(monitor, refused, Directory(t), scope)
    assert rows[["resource_type", "resource_gid", "status"]].values.tolist() == [["project", "p1", "unknown"]]
