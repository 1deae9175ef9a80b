"""activity_after_deactivation on small hand-built worlds: every expected status and reason is
written here by hand, user by user, with why."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from asana_assets.lib.compliance import access, monitors
from asana_assets.lib.compliance.activity import activity_results, deactivations
from asana_assets.lib.compliance.names import Directory
from asana_assets.lib.schema import RAW_TABLES, to_arrow

S0 = pd.Timestamp("2026-03-01 00:00", tz="UTC")  # the first snapshot: everyone active
S1 = pd.Timestamp("2026-03-02 00:00", tz="UTC")  # the second: the leavers inactive
D = pd.Timestamp("2026-03-01 12:00", tz="UTC")  # when the audit log says a leaver was deprovisioned
AS_OF = pd.Timestamp("2026-03-03 00:00", tz="UTC")
SECOND, HOUR = timedelta(seconds=1), timedelta(hours=1)
RAW = {name: to_arrow(name, []).to_pandas() for name in RAW_TABLES}
NAMES = Directory({**RAW, "users": to_arrow("users", [
    {"gid": gid, "name": name, "email": f"{name.lower()}@example.com"}
    for gid, name in (("u1", "Una"), ("u2", "Bo"), ("u3", "Cy"), ("u4", "Di"), ("u5", "Ed"), ("u6", "Flo"),
                      ("u7", "Gus"), ("u8", "Hal"))]).to_pandas(),
    "workspaces": to_arrow("workspaces", [{"gid": "w1", "name": "Acme"}]).to_pandas()})
LOGGED = "deactivated at 2026-03-01 12:00:00.000 UTC (audit log)"
WINDOW = "deactivated between 2026-03-01 00:00:00.000 UTC and 2026-03-02 00:00:00.000 UTC (snapshots)"
UNREAD = ("so whether the user acted after it cannot be told: give the connection the audit log (Enterprise+ and a "
          "service account), then sync again")
QUIET = "the audit log shows no action by the user while deactivated (the events it holds start at {})"
MAYBE = "the audit log shows the user acting where the data cannot tell whether they were still active"


def snapshots(leavers, stayers=()) -> pd.DataFrame:
    """user_access: every user an active member of w1 at S0; at S1 the leavers inactive."""
    rows = [{"user_gid": user, "resource_type": "workspace", "resource_gid": "w1", "role": "member",
             "snapshot_at": at, "run_id": run, "user_is_active": at == S0 or user in stayers}
            for at, run in ((S0, "r0"), (S1, "r1")) for user in (*leavers, *stayers)]
    return to_arrow("user_access", rows).to_pandas()


def event(gid, at, event_type, actor, subject=None) -> dict:
    """An audit_log_events row of w1: by ``actor``, about the user ``subject`` when given."""
    return {"gid": gid, "workspace_gid": "w1", "created_at": at, "event_type": event_type, "actor_gid": actor,
            "subject_user_gid": subject, "resource_type": "user", "resource_gid": subject or actor}


def deprovisioned(user, at=D, gid=None) -> dict:
    return event(gid or f"off-{user}", at, "user_deprovisioned", "admin", user)


def login(gid, at, user) -> dict:
    return event(gid, at, "user_login_succeeded", user)


def results(history, audit_rows=None, unavailable=None, memberships=()) -> pd.DataFrame:
    """The monitor's rows, from the tables as the run has them (``audit_rows`` None: never read)."""
    audit = None if audit_rows is None else to_arrow("audit_log_events", audit_rows).to_pandas()
    turns = deactivations(history, access.membership_changes(history, audit), audit,
                          to_arrow("workspace_memberships", list(memberships)).to_pandas())
    return activity_results(audit, unavailable or {}, turns, AS_OF, NAMES)


def judge(*args, **kwargs) -> dict[str, tuple[str, str]]:
    """The monitor's rows by resource gid: (status, reason)."""
    rows = results(*args, **kwargs)
    assert rows["resource_gid"].is_unique and set(rows["resource_type"]) <= {"user_in_workspace"}
    return {row.resource_gid: (row.status, row.reason) for row in rows.itertuples()}


def test_an_event_after_a_deactivation_the_audit_log_dates_alarms_and_one_before_is_ok():
    found = judge(snapshots(["u1", "u2", "u3"]), [
        deprovisioned("u1"), deprovisioned("u2"), deprovisioned("u3"),
        login("e1", D + SECOND, "u1"),  # one second after: the account was used while deactivated
        login("e2", D - HOUR, "u2"),  # an hour before: ordinary work before leaving
        # At the very instant: the log cannot say which came first, so unknown, never ok.
        login("e3", D, "u3"),
    ])
    assert found == {
        "u1/w1": ("alarm", (f"Una <una@example.com> in workspace \"Acme\": {LOGGED}; the audit log shows the user "
                           "acting after a deactivation: user_login_succeeded at 2026-03-01 12:00:01.000 UTC (event "
                           "e1), after the deactivation at 2026-03-01 12:00:00.000 UTC (audit log)")),
        # The oldest event the log holds is e2, at 11:00.
        "u2/w1": ("ok", f"Bo <bo@example.com> in workspace \"Acme\": {LOGGED}; "
                        + QUIET.format("2026-03-01 11:00:00.000 UTC")),
        "u3/w1": ("unknown", (f"Cy <cy@example.com> in workspace \"Acme\": {LOGGED}; {MAYBE}: user_login_succeeded at "
                             "2026-03-01 12:00:00.000 UTC (event e3), which the deactivation at 2026-03-01 "
                             "12:00:00.000 UTC (audit log) may precede")),
    }


def test_a_deactivation_only_the_snapshots_bound_decides_outside_its_window_only():
    """No deprovisioning event: the deactivation lies after S0, at or before S1."""
    found = judge(snapshots(["u4", "u5", "u6"]), [
        login("e4", S0 + 6 * HOUR, "u4"),  # inside the window: before or after it, nobody can tell
        login("e5", S1 + SECOND, "u5"),  # after the window: surely deactivated by then
        login("e6", S0, "u6"),  # at the earlier snapshot, which still showed the user active
    ])
    assert found == {
        "u4/w1": ("unknown", (f"Di <di@example.com> in workspace \"Acme\": {WINDOW}; {MAYBE}: user_login_succeeded at "
                             "2026-03-01 06:00:00.000 UTC (event e4), which the deactivation between 2026-03-01 "
                             "00:00:00.000 UTC and 2026-03-02 00:00:00.000 UTC (snapshots) may precede")),
        "u5/w1": ("alarm", (f"Ed <ed@example.com> in workspace \"Acme\": {WINDOW}; the audit log shows the user acting "
                           "after a deactivation: user_login_succeeded at 2026-03-02 00:00:01.000 UTC (event e5), "
                           "after the deactivation between 2026-03-01 00:00:00.000 UTC and 2026-03-02 00:00:00.000 "
                           "UTC (snapshots)")),
        "u6/w1": ("ok", f"Flo <flo@example.com> in workspace \"Acme\": {WINDOW}; "
                        + QUIET.format("2026-03-01 00:00:00.000 UTC")),  # e6, at S0, is the oldest
    }


def test_a_reactivated_user_may_act_again_and_a_second_deactivation_counts_anew():
    back = event("on-u7", D + HOUR, "user_reprovisioned", "admin", "u7")
    found = judge(snapshots([], stayers=["u7"]), [deprovisioned("u7"), back, login("e7", D + 2 * HOUR, "u7")])
    # The deprovisioning at D is the oldest event held.
    assert found == {"u7/w1": ("ok", f"Gus <gus@example.com> in workspace \"Acme\": {LOGGED}; "
                               + QUIET.format("2026-03-01 12:00:00.000 UTC"))}
    # Deprovisioned again at D + 3h: a login an hour later alarms, the one while reactivated does not.
    again = [deprovisioned("u7"), back, login("e7", D + 2 * HOUR, "u7"), deprovisioned("u7", D + 3 * HOUR, "off2-u7"),
             login("e8", D + 4 * HOUR, "u7")]
    assert judge(snapshots(["u7"]), again) == {
        "u7/w1": ("alarm", ("Gus <gus@example.com> in workspace \"Acme\": deactivated at 2026-03-01 15:00:00.000 UTC "
                           "(audit log); the audit log shows the user acting after a deactivation: "
                           "user_login_succeeded at 2026-03-01 16:00:00.000 UTC (event e8), after the deactivation "
                           "at 2026-03-01 15:00:00.000 UTC (audit log)")),
    }


def test_a_reason_lists_the_first_five_events_then_counts_the_rest():
    logins = [login(f"e{n}", D + n * HOUR, "u1") for n in range(1, 8)]  # seven sign-ins after leaving
    status, reason = judge(snapshots(["u1"]), [deprovisioned("u1"), *logins])["u1/w1"]
    assert status == "alarm"
    assert reason.count("user_login_succeeded at") == 5 and "(event e5)" in reason and "(event e6)" not in reason
    assert reason.endswith("(event e5), after the deactivation at 2026-03-01 12:00:00.000 UTC (audit log) and 2 more")


def test_without_a_readable_audit_log_every_deactivated_user_is_unknown():
    history = snapshots(["u1"])
    # Never read (no audit table): the deactivation is dated by the snapshots alone.
    assert judge(history) == {
        "u1/w1": ("unknown", (f"Una <una@example.com> in workspace \"Acme\": {WINDOW}; its audit log was not read (no "
                             f"sync has read an audit log yet), {UNREAD}")),
    }
    refused = "HTTP 402: the audit log needs Enterprise+ and a service account"  # as the sync state records it
    assert judge(history, [], {"w1": refused}) == {
        "u1/w1": ("unknown", (f"Una <una@example.com> in workspace \"Acme\": {WINDOW}; its audit log was not read "
                             f"({refused}), {UNREAD}")),
    }
    # What the log kept from before it was refused still alarms: a lapse never hides a finding.
    assert judge(history, [deprovisioned("u1"), login("e1", D + SECOND, "u1")], {"w1": refused})["u1/w1"][0] == "alarm"


def test_no_deactivated_user_is_not_evaluated():
    """Active users acting, and nobody deactivated: no population, never a PASS."""
    rows = results(snapshots([], stayers=["u8"]), [login("e8", D, "u8")])
    assert rows.empty
    assert monitors.verdict(rows) == (monitors.NOT_EVALUATED, "Not evaluated: the population is empty.")


def test_the_audit_log_dates_a_deactivation_the_first_snapshot_already_shows():
    """u1 is inactive in the only snapshot: deactivated after the membership's creation and at or
    before S1; the deprovisioning event at D dates it exactly. u2 has neither event nor creation
    time: at or before S1, so an event before S1 is unknown."""
    history = snapshots(["u1", "u2"])
    history = history[history["snapshot_at"] == S1]
    created = [{"gid": "m1", "user_gid": "u1", "workspace_gid": "w1", "created_at": S0}]
    audit = to_arrow("audit_log_events", [deprovisioned("u1")]).to_pandas()
    turns = deactivations(history, access.membership_changes(history, audit), audit,
                          to_arrow("workspace_memberships", created).to_pandas())
    assert turns.astype(object).where(turns.notna(), None).to_dict("records") == [
        {"user_gid": "u1", "workspace_gid": "w1", "change": "deactivated", "earliest": D, "latest": D,
         "evidence": "audit log"},
        {"user_gid": "u2", "workspace_gid": "w1", "change": "deactivated", "earliest": None, "latest": S1,
         "evidence": "snapshots"},
    ]
    found = judge(history, [deprovisioned("u1"), login("e2", S0 - HOUR, "u2")], memberships=created)
    assert found["u2/w1"][0] == "unknown"
    assert "deactivated at or before 2026-03-02 00:00:00.000 UTC (snapshots)" in found["u2/w1"][1]


def test_the_monitor_is_registered_as_an_access_control():
    monitor = monitors.MONITORS["activity_after_deactivation"]
    assert (monitor.severity, monitor.table, monitor.reads) == ("ERROR", "audit_log_events", ())
    assert monitor.control_refs == ("SOC2:CC6.2", "ISO27001:2022:5.18")
