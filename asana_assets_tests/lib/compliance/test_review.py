"""access_review_completed and the decisions it reads, on a small hand-built review project: every
expected decision and status is written here, gid by gid, with the reason."""

from __future__ import annotations

from datetime import date

import pandas as pd

from asana_assets.lib.compliance.monitors import NOT_EVALUATED, verdict
from asana_assets.lib.compliance.names import Directory
from asana_assets.lib.compliance.review import (
    NOT_CONFIGURED,
    NOT_STARTED,
    decisions,
    marker,
    plan,
    read_markers,
    review_results,
)

SNAPSHOT = pd.Timestamp("2026-03-09 09:00", tz="UTC")
DUE = date(2026, 3, 10)
DECIDED = pd.Timestamp("2026-03-05 10:00", tz="UTC")


def access(*rows) -> pd.DataFrame:
    """(user, resource type, resource gid, role) rows of one snapshot."""
    return pd.DataFrame([{"snapshot_at": SNAPSHOT, "user_gid": u, "resource_type": k, "resource_gid": r, "role": role}
                         for u, k, r, role in rows], columns=["snapshot_at", "user_gid", "resource_type",
                                                              "resource_gid", "role"])


def world(extra_tasks=(), held=None) -> tuple[dict, pd.DataFrame]:
    """Review project 900. Project 500 (owner Ada, 1) is reviewed in campaign q1: its task 1000
    lists Ada (owner), Bob (2, editor), Cy (3, viewer), Dee (4, viewer) and Eve (5, viewer).
    Ada's subtask 1001 approved by Ada herself; Bob's 1002 and Cy's 1003 rejected by Ada; Dee's 1004
    pending; Eve has no subtask (deleted). Bob still holds his access, Cy no longer."""
    parent = marker("q1", "project", "500", DUE, members={"1": "owner", "2": "editor", "3": "viewer", "4": "viewer",
                                                          "5": "viewer"})

    def sub(gid, user, role, status):
        return {"gid": gid, "name": f"Keep {user}?", "parent_gid": "1000", "resource_subtype": "approval",
                "approval_status": status, "permalink_url": f"https://app.asana.com/0/0/{gid}",
                "notes": "Approve to keep.\n\n" + marker("q1", "project", "500", DUE, member=(user, role))}

    tasks = pd.DataFrame([
        {"gid": "1000", "name": "Access review q1: Payroll", "parent_gid": None, "resource_subtype": "default_task",
         "approval_status": None, "permalink_url": "https://app.asana.com/0/0/1000", "notes": "Members\n\n" + parent},
        sub("1001", "1", "owner", "approved"), sub("1002", "2", "editor", "rejected"),
        sub("1003", "3", "viewer", "rejected"), sub("1004", "4", "viewer", "pending"),
        # A task of another project with a marker: outside the review project, not read.
        {"gid": "2000", "name": "elsewhere", "parent_gid": None, "resource_subtype": "default_task",
         "approval_status": None, "permalink_url": None,
         "notes": marker("q1", "project", "501", DUE, members={"9": "editor"})},
        *extra_tasks,
    ])
    placed = pd.DataFrame({"task_gid": ["1000", "2000", *[t["gid"] for t in extra_tasks if t["parent_gid"] is None]],
                           "project_gid": ["900", "501", *["900" for t in extra_tasks if t["parent_gid"] is None]]})
    users = pd.DataFrame({"gid": ["1", "2", "3", "4", "5"], "name": ["Ada", "Bob", "Cy", "Dee", "Eve"],
                          "email": [f"{n}@acme.example" for n in ("ada", "bob", "cy", "dee", "eve")]})
    projects = pd.DataFrame({"gid": ["900", "500", "501"], "name": ["Access reviews", "Payroll", "Other"],
                             "owner_gid": ["1", "1", None], "permalink_url": [None, None, None]})
    t = {"tasks": tasks, "task_memberships": placed, "users": users, "projects": projects,
         "user_access": access(*(held if held is not None else [
             ("1", "project", "500", "owner"), ("2", "project", "500", "editor"), ("4", "project", "500", "viewer"),
             ("5", "project", "500", "viewer")])),
         "teams": pd.DataFrame(columns=["gid", "name", "permalink_url"]),
         "workspaces": pd.DataFrame(columns=["gid", "name"])}
    approvals = pd.DataFrame({
        "approval_task_gid": ["1001", "1002", "1003", "1003"],
        "decision": ["approved", "rejected", "approved", "rejected"],
        "decided_at": [DECIDED, DECIDED, DECIDED - pd.Timedelta(days=1), DECIDED],
        "approver_gid": ["1", "1", "1", "1"],
    })
    return t, approvals


def statuses(rows: pd.DataFrame) -> dict[str, str]:
    return dict(zip(rows["resource_gid"], rows["status"]))


def test_decisions_read_each_item_from_its_subtask():
    t, approvals = world()
    d = decisions(t, approvals, pd.Series(["900"])).decisions.set_index("user_gid")
    assert d["decision"].to_dict() == {"1": "approved", "2": "rejected", "3": "rejected", "4": "undecided",
                                       "5": "unknown"}
    # Cy's subtask was approved, then rejected: the decision that counts is the last, its story's.
    assert d.loc["3", "decided_at"] == DECIDED and d.loc["3", "reviewer_gid"] == "1"
    assert pd.isna(d.loc["4", "reviewer_gid"]) and pd.isna(d.loc["4", "decided_at"])
    assert d.loc["2", "role"] == "editor" and d.loc["2", "task_gid"] == "1002"
    assert d.loc["5", "problem"].startswith("the resource's task 1000 lists the member but no approval subtask")
    assert set(d["campaign"]) == {"q1"} and set(d["due_on"]) == {DUE}


def test_a_status_no_story_agrees_with_has_no_reviewer():
    t, approvals = world()
    t["tasks"].loc[t["tasks"]["gid"] == "1001", "approval_status"] = "rejected"  # changed, no story synced
    d = decisions(t, approvals, pd.Series(["900"])).decisions.set_index("user_gid")
    assert d.loc["1", "decision"] == "rejected" and pd.isna(d.loc["1", "reviewer_gid"])


def test_each_item_judged_before_the_due_day_ends():
    t, approvals = world()
    rows = review_results(t, approvals, pd.Timestamp("2026-03-10 23:59", tz="UTC"), "Access reviews", Directory(t))
    assert statuses(rows) == {
        "q1/project/500/1": "alarm",    # approved by Ada, the member herself: a self-review never counts
        "q1/project/500/2": "alarm",    # rejected, Bob still holds editor
        "q1/project/500/3": "ok",       # rejected, Cy's access is gone
        "q1/project/500/4": "info",     # undecided, the due day not over
        "q1/project/500/5": "unknown",  # its subtask is gone: never ok
    }
    reasons = dict(zip(rows["resource_gid"], rows["reason"]))
    assert reasons["q1/project/500/2"] == (
        'Access review q1: editor access of Bob <bob@acme.example> to project "Payroll" revoke decided by Ada '
        "<ada@acme.example> at 2026-03-05 10:00 UTC, and the access snapshot of 2026-03-09 09:00 UTC shows the user "
        "still holds it.")
    url = dict(zip(rows["resource_gid"], rows["resource_url"]))
    assert url["q1/project/500/2"] == "https://app.asana.com/0/0/1002"
    assert url["q1/project/500/5"] == "https://app.asana.com/0/profile/5"


def test_a_revoke_is_unknown_when_the_snapshot_lists_no_member_of_the_resource():
    """The latest snapshot lists nobody of project 500 (its members were not read): Cy's access
    being gone cannot be told from it, so the revoke is unknown, not ok."""
    t, approvals = world(held=[("1", "project", "501", "owner")])
    rows = review_results(t, approvals, pd.Timestamp("2026-03-10 12:00", tz="UTC"), "Access reviews", Directory(t))
    assert statuses(rows)["q1/project/500/3"] == "unknown"
    assert statuses(rows)["q1/project/500/2"] == "unknown"  # Bob's too: the snapshot cannot say he still holds it
    assert "lists no member of it (not read)" in dict(zip(rows["resource_gid"], rows["reason"]))["q1/project/500/3"]


def test_an_undecided_item_alarms_once_its_due_day_is_over():
    t, approvals = world()
    rows = review_results(t, approvals, pd.Timestamp("2026-03-11 00:00", tz="UTC"), "900", Directory(t))
    assert statuses(rows)["q1/project/500/4"] == "alarm"
    assert "undecided past its due day 2026-03-10" in rows.set_index("resource_gid").loc["q1/project/500/4", "reason"]


def test_a_revoke_with_no_access_snapshot_is_unknown():
    t, approvals = world(held=[])
    rows = review_results(t, approvals, pd.Timestamp("2026-03-10 12:00", tz="UTC"), "900", Directory(t))
    assert statuses(rows)["q1/project/500/2"] == "unknown"
    assert statuses(rows)["q1/project/500/3"] == "unknown"


def test_a_garbled_marker_is_an_error_and_disagreeing_subtasks_are_unknown():
    garbled = {"gid": "1100", "name": "Broken", "parent_gid": None, "resource_subtype": "default_task",
               "approval_status": None, "permalink_url": "https://app.asana.com/0/0/1100",
               "notes": "asana-assets access review: q1 project/500 due soon"}
    second = {"gid": "1005", "name": "Keep Ada?", "parent_gid": "1000", "resource_subtype": "approval",
              "approval_status": "rejected", "permalink_url": None,
              "notes": marker("q1", "project", "500", DUE, member=("1", "owner"))}
    t, approvals = world([garbled, second])
    rows = review_results(t, approvals, pd.Timestamp("2026-03-10 12:00", tz="UTC"), "900", Directory(t))
    assert statuses(rows)["1100"] == "error" and rows.set_index("resource_gid").loc["1100", "resource_type"] == "task"
    assert statuses(rows)["q1/project/500/1"] == "unknown"  # 1001 approves, 1005 rejects
    assert "its subtasks disagree (1001, 1005)" in rows.set_index("resource_gid").loc["q1/project/500/1", "reason"]


def test_not_configured_not_started_and_a_project_matching_nothing():
    t, approvals = world()
    as_of = pd.Timestamp("2026-03-10 12:00", tz="UTC")
    unset = review_results(t, approvals, as_of, None, Directory(t))
    assert unset["status"].tolist() == ["skip"] and unset["reason"].iloc[0] == NOT_CONFIGURED
    assert verdict(unset)[0] == NOT_EVALUATED
    t["task_memberships"] = t["task_memberships"].iloc[0:0]  # nothing filed in the review project
    empty = review_results(t, approvals, as_of, "Access reviews", Directory(t))
    assert empty["status"].tolist() == ["skip"] and empty["reason"].iloc[0] == NOT_STARTED
    assert verdict(empty)[0] == NOT_EVALUATED
    typo = review_results(t, approvals, as_of, "Acess reviews", Directory(t))
    assert typo["status"].tolist() == ["error"] and "'Acess reviews'" in typo["reason"].iloc[0]


def test_markers_round_trip_and_a_plain_note_has_none():
    parsed = read_markers(pd.Series([
        marker("c-1", "team", "77", DUE, members={"1": "admin", "2": "member"}),
        "intro\n" + marker("c-1", "team", "77", DUE, member=("2", "member")) + "\n",
        "no marker here",
    ]))
    assert parsed.loc[0, ["campaign", "resource_type", "resource_gid", "due", "members"]].tolist() == [
        "c-1", "team", "77", "2026-03-10", "1=admin,2=member"]
    assert parsed.loc[1, ["user_gid", "role"]].tolist() == ["2", "member"]
    assert parsed["marked"].tolist() == [True, True, False] and pd.isna(parsed.loc[2, "campaign"])


def test_plan_reviews_team_and_project_members_with_their_reviewer():
    t, _ = world()
    t["user_access"] = access(("1", "project", "500", "owner"), ("2", "project", "500", "editor"),
                              ("3", "team", "70", "admin"), ("2", "team", "70", "member"),
                              ("4", "team", "71", "member"), ("1", "workspace", "1", "admin"))
    items = plan(t)
    assert items[["resource_type", "resource_gid", "user_gid", "role", "reviewer_gid"]].values.tolist() == [
        ["project", "500", "1", "owner", "1"],   # the project's owner reviews it
        ["project", "500", "2", "editor", "1"],
        ["team", "70", "2", "member", "3"],      # the team's admin
        ["team", "70", "3", "admin", "3"],
        ["team", "71", "4", "member", None],     # no admin: unassigned
    ]  # the workspace row is not reviewed
    assert set(plan(t, "9")["reviewer_gid"]) == {"9"}


def approve_dee(t: dict, approvals: pd.DataFrame, at, by) -> pd.DataFrame:
    """Dee's subtask 1004 approved, its story at ``at`` by ``by`` (None: no story at all)."""
    t["tasks"].loc[t["tasks"]["gid"] == "1004", "approval_status"] = "approved"
    if by is None:
        return approvals
    return pd.concat([approvals, pd.DataFrame({"approval_task_gid": ["1004"], "decision": ["approved"],
                                               "decided_at": [at], "approver_gid": [by]})], ignore_index=True)


def dee_status(t: dict, approvals: pd.DataFrame, as_of: pd.Timestamp) -> tuple[str, str]:
    rows = review_results(t, approvals, as_of, "Access reviews", Directory(t)).set_index("resource_gid")
    return tuple(rows.loc["q1/project/500/4", ["status", "reason"]])


AFTER_DUE = pd.Timestamp("2026-03-25 12:00", tz="UTC")


def test_a_decision_counts_by_its_due_day_and_by_somebody_else():
    # Ada (1) approves Dee's (4) access: on the last minute of the due day, ok; a minute later, alarm.
    t, approvals = world()
    on_time = approve_dee(t, approvals, pd.Timestamp("2026-03-10 23:59", tz="UTC"), "1")
    assert dee_status(t, on_time, AFTER_DUE)[0] == "ok"
    t, approvals = world()
    status, reason = dee_status(t, approve_dee(t, approvals, pd.Timestamp("2026-03-11 00:00", tz="UTC"), "1"),
                                AFTER_DUE)
    assert status == "alarm" and reason.endswith("after its due day 2026-03-10."), reason
    # Dee approves her own access on time: a self-review, alarm.
    t, approvals = world()
    status, reason = dee_status(t, approve_dee(t, approvals, DECIDED, "4"), AFTER_DUE)
    assert status == "alarm" and "the member themself" in reason, reason


def test_a_decision_no_story_names_or_dates_is_unknown():
    # The subtask reads approved, but no approval story was synced: who decided, and when, is unknown.
    t, approvals = world()
    status, reason = dee_status(t, approve_dee(t, approvals, None, None), AFTER_DUE)
    assert status == "unknown" and "no story dates the decision" in reason, reason
    # Before the due day is over, its time no longer matters; who decided still does.
    t, approvals = world()
    status, reason = dee_status(t, approve_dee(t, approvals, None, None), pd.Timestamp("2026-03-10 12:00", tz="UTC"))
    assert status == "unknown" and "no story names who decided" in reason, reason
