"""Access snapshots, membership changes and the access monitors, on small hand-built tables."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest

from asana_assets.lib.compliance.access import (
    access_snapshot,
    admin_results,
    membership_change_results,
    membership_changes,
    offboarding_results,
)
from asana_assets.lib.schema import DERIVED_TABLES, RAW_TABLES, to_arrow

T0 = pd.Timestamp("2026-03-01", tz="UTC")
T1 = T0 + timedelta(days=1)
T2 = T1 + timedelta(hours=12)
RESULT_COLUMNS = ["resource_type", "resource_gid", "status", "reason", "resource_url"]


def tables(**rows) -> dict[str, pd.DataFrame]:
    """Raw tables typed as the warehouse stores them; tables not given are empty."""
    return {name: to_arrow(name, rows.get(name, [])).to_pandas() for name in RAW_TABLES}


def wm(user, active=True, admin=False, guest=False, workspace="w1"):
    return {"gid": f"wm-{user}", "workspace_gid": workspace, "user_gid": user,
            "is_active": active, "is_admin": admin, "is_guest": guest}


def snap(at, run_id, *rows):
    """A user_access snapshot from (user, resource_type, resource_gid, role, user_is_active)."""
    records = [dict(zip(["user_gid", "resource_type", "resource_gid", "role", "user_is_active"], row),
                    snapshot_at=at, run_id=run_id) for row in rows]
    return to_arrow("user_access", records).to_pandas()


def restamp(snapshot, at, run_id):
    """The same access seen by a later run."""
    return snapshot.assign(snapshot_at=at, run_id=run_id)


def history(*snapshots):
    return pd.concat(snapshots, ignore_index=True)


def by_gid(results):
    assert list(results.columns) == RESULT_COLUMNS
    assert results["resource_gid"].is_unique
    return {row.resource_gid: (row.status, row.reason) for row in results.itertuples()}


TEAMS = [{"gid": "t1", "workspace_gid": "w1", "name": "Security"}]
PROJECTS = [
    {"gid": "p1", "workspace_gid": "w1", "team_gid": "t1", "owner_gid": "u2", "name": "Payroll", "archived": False},
    {"gid": "p2", "workspace_gid": "w1", "team_gid": "t1", "owner_gid": "u4", "name": "Old", "archived": True},
]


def test_snapshot_roles_owner_precedence_and_activity():
    raw = tables(
        workspace_memberships=[wm("u1", admin=True), wm("u2"), wm("u3", guest=True), wm("u4", active=False)],
        teams=TEAMS,
        team_memberships=[
            {"gid": "tm1", "team_gid": "t1", "user_gid": "u1", "is_admin": True, "is_guest": False},
            {"gid": "tm2", "team_gid": "t1", "user_gid": "u2", "is_admin": False, "is_guest": False},
            {"gid": "tm3", "team_gid": "t1", "user_gid": "u3", "is_admin": False, "is_guest": True},
        ],
        projects=PROJECTS,
        project_memberships=[
            {"gid": "pm1", "project_gid": "p1", "member_gid": "u2", "member_type": "user", "access_level": "editor"},
            {"gid": "pm2", "project_gid": "p1", "member_gid": "u1", "member_type": "user", "access_level": "admin"},
            {"gid": "pm3", "project_gid": "p1", "member_gid": "u5", "member_type": "user", "access_level": "viewer"},
            {"gid": "pm4", "project_gid": "p1", "member_gid": "t1", "member_type": "team", "access_level": "editor"},
        ],
    )
    snapshot = access_snapshot(raw, T0, "r1")
    assert list(snapshot.columns) == DERIVED_TABLES["user_access"].names
    pa.Table.from_pandas(snapshot, schema=DERIVED_TABLES["user_access"], preserve_index=False)
    assert (snapshot["snapshot_at"] == T0).all() and (snapshot["run_id"] == "r1").all()
    rows = set(snapshot[["user_gid", "resource_type", "resource_gid", "role", "user_is_active"]].itertuples(
        index=False, name=None))
    assert rows == {
        ("u1", "workspace", "w1", "admin", True), ("u1", "team", "t1", "admin", True),
        ("u1", "project", "p1", "admin", True),
        ("u2", "workspace", "w1", "member", True), ("u2", "team", "t1", "member", True),
        ("u2", "project", "p1", "owner", True),  # owner beats the editor membership
        ("u3", "workspace", "w1", "guest", True), ("u3", "team", "t1", "guest", True),
        ("u4", "workspace", "w1", "member", False), ("u4", "project", "p2", "owner", False),
        ("u5", "project", "p1", "viewer", False),  # no workspace membership: inactive
    }


def test_snapshot_of_an_empty_workspace_is_empty():
    snapshot = access_snapshot(tables(), T0, "r1")
    assert snapshot.empty and list(snapshot.columns) == DERIVED_TABLES["user_access"].names


BEFORE = snap(
    T0, "r1",
    ("a", "workspace", "w1", "member", True), ("a", "team", "t1", "member", True),
    ("a", "project", "p1", "editor", True),
    ("b", "workspace", "w1", "admin", True),
    ("c", "workspace", "w1", "member", True),
    ("d", "workspace", "w1", "member", False),
    ("e", "workspace", "w1", "member", True), ("e", "project", "p1", "viewer", True),
    ("f", "team", "t1", "member", False),
    ("i", "workspace", "w1", "guest", True),
)
AFTER = snap(
    T1, "r2",
    ("a", "workspace", "w1", "member", True), ("a", "team", "t1", "admin", True),
    ("a", "project", "p1", "viewer", True),
    ("b", "workspace", "w1", "member", True),
    ("c", "workspace", "w1", "admin", False),
    ("d", "workspace", "w1", "member", True),
    ("e", "workspace", "w1", "guest", True),
    ("f", "project", "p2", "editor", False),
    ("g", "workspace", "w1", "guest", True),
    ("h", "workspace", "w1", "admin", True),
    ("i", "workspace", "w1", "member", True),
)
EXPECTED = {
    ("a", "team", "t1", "role_changed", "member", "admin"),  # a team admin is a role change
    ("a", "project", "p1", "role_changed", "editor", "viewer"),
    ("b", "workspace", "w1", "admin_revoked", "admin", "member"),
    ("c", "workspace", "w1", "admin_granted", "member", "admin"),
    ("c", "workspace", "w1", "deactivated", "member", "admin"),
    ("d", "workspace", "w1", "reactivated", "member", "member"),
    ("e", "workspace", "w1", "guest_added", "member", "guest"),
    ("e", "project", "p1", "revoked", "viewer", None),
    ("f", "team", "t1", "revoked", "member", None),
    ("f", "project", "p2", "granted", None, "editor"),
    ("g", "workspace", "w1", "granted", None, "guest"),
    ("g", "workspace", "w1", "guest_added", None, "guest"),
    ("h", "workspace", "w1", "granted", None, "admin"),
    ("h", "workspace", "w1", "admin_granted", None, "admin"),
    ("i", "workspace", "w1", "role_changed", "guest", "member"),
}


def change_rows(changes):
    columns = ["user_gid", "resource_type", "resource_gid", "change_type", "old_role", "new_role"]
    return {tuple(None if pd.isna(v) else v for v in row) for row in changes[columns].itertuples(index=False)}


def test_every_change_type_between_two_snapshots():
    changes = membership_changes(history(BEFORE, AFTER))
    assert list(changes.columns) == DERIVED_TABLES["membership_changes"].names
    pa.Table.from_pandas(changes, schema=DERIVED_TABLES["membership_changes"], preserve_index=False)
    assert change_rows(changes) == EXPECTED
    assert (changes["window_start"] == T0).all() and (changes["window_end"] == T1).all()
    assert (changes["run_id"] == "r2").all()
    assert changes["change_id"].is_unique
    assert membership_changes(history(BEFORE, AFTER))["change_id"].tolist() == changes["change_id"].tolist()


def test_first_snapshot_is_a_baseline():
    changes = membership_changes(BEFORE)
    assert changes.empty and list(changes.columns) == DERIVED_TABLES["membership_changes"].names


def test_changes_compare_consecutive_snapshots_only():
    later = restamp(AFTER[AFTER["user_gid"] != "h"], T2, "r3")
    changes = membership_changes(history(BEFORE, AFTER, later))
    assert change_rows(changes[changes["window_end"] == T1]) == EXPECTED
    last = changes[changes["window_end"] == T2]
    assert change_rows(last) == {("h", "workspace", "w1", "revoked", "admin", None),
                                 ("h", "workspace", "w1", "admin_revoked", "admin", None)}
    assert (last["window_start"] == T1).all() and (last["run_id"] == "r3").all()


# Offboarding: "dep" leaves with access behind, "clean" owns only an archived project and a
# completed task, "gone" disappears from the workspace with an open task, "stay" is active.
def offboarding_raw(departed: bool):
    tasks = [{"gid": "k1", "assignee_gid": "dep", "completed": False},
                 {"gid": "k2", "assignee_gid": "clean", "completed": True},
                 {"gid": "k3", "assignee_gid": "gone", "completed": False}]
    return tables(
        workspace_memberships=[wm("dep", active=not departed), wm("clean", active=False), wm("stay")]
        + ([] if departed else [wm("gone")]),
        teams=TEAMS,
        team_memberships=[{"gid": "tm1", "team_gid": "t1", "user_gid": "dep", "is_admin": False, "is_guest": False}],
        projects=[{**PROJECTS[0], "owner_gid": "stay"}, {**PROJECTS[1], "owner_gid": "clean"}],
        project_memberships=[{"gid": "pm1", "project_gid": "p1", "member_gid": "dep", "member_type": "user",
                              "access_level": "editor"}],
        tasks=tasks,
    )


def offboarding(raw_by_time, as_of, **options):
    """History from (time, raw) syncs, judged against the last raw tables at ``as_of``."""
    snapshots = [access_snapshot(raw, at, f"r{i}") for i, (at, raw) in enumerate(raw_by_time)]
    return by_gid(offboarding_results(history(*snapshots), raw_by_time[-1][1], as_of, **options))


RESIDUAL = "still member of team Security, project Payroll; assignee of 1 open ticket"


def test_offboarding_inactive_at_the_first_snapshot_alarms_at_once():
    results = offboarding([(T0, offboarding_raw(departed=True))], as_of=T0)
    assert results["dep"] == (
        "alarm", f"Inactive since 2026-03-01 00:00 UTC; {RESIDUAL}; already inactive at the first snapshot")
    # An archived project's ownership and a completed ticket are not residual access.
    assert results["clean"] == ("ok", "Inactive since 2026-03-01 00:00 UTC; no residual access")
    assert results["stay"] == ("skip", "Active member")
    assert set(results) == {"dep", "clean", "stay"}


def test_offboarding_counts_ownership_of_a_live_project():
    raw = offboarding_raw(departed=True)
    raw["projects"]["archived"] = False
    status, reason = offboarding([(T0, raw)], as_of=T0)["clean"]
    assert status == "alarm" and "owner of project Old" in reason


def test_offboarding_reason_names_the_first_few_resources():
    raw = tables(
        workspace_memberships=[wm("dep", active=False)],
        projects=[{"gid": f"p{i}", "workspace_gid": "w1", "name": f"P{i}"} for i in range(7)],
        project_memberships=[{"gid": f"pm{i}", "project_gid": f"p{i}", "member_gid": "dep", "member_type": "user",
                              "access_level": "viewer"} for i in range(7)],
    )
    assert offboarding([(T0, raw)], as_of=T0)["dep"][1] == (
        "Inactive since 2026-03-01 00:00 UTC; still member of project P0, project P1, project P2, project P3, "
        "project P4 and 2 more; already inactive at the first snapshot")


def test_offboarding_grace_runs_from_the_first_snapshot_showing_the_user_inactive():
    syncs = [(T0, offboarding_raw(departed=False)), (T1, offboarding_raw(departed=True)),
             (T2, offboarding_raw(departed=True))]
    inside = offboarding(syncs, as_of=T2)
    assert inside["dep"] == ("info", f"Inactive since 2026-03-02 00:00 UTC; {RESIDUAL}; "
                                     "grace ends 2026-03-03 00:00 UTC")
    assert inside["clean"][0] == "ok"
    past = offboarding(syncs, as_of=T1 + timedelta(days=1, seconds=1))
    assert past["dep"] == ("alarm", f"Inactive since 2026-03-02 00:00 UTC; {RESIDUAL}")
    assert offboarding(syncs, as_of=T2, grace=timedelta(hours=1))["dep"][0] == "alarm"


def test_offboarding_user_gone_from_the_workspace():
    syncs = [(T0, offboarding_raw(departed=False)), (T1, offboarding_raw(departed=True))]
    assert offboarding(syncs, as_of=T1)["gone"] == (
        "info", "Removed from the workspace since 2026-03-02 00:00 UTC; still assignee of 1 open ticket; "
                "grace ends 2026-03-03 00:00 UTC")
    assert offboarding(syncs, as_of=T1 + timedelta(days=2))["gone"][0] == "alarm"
    raw = offboarding_raw(departed=True)
    raw["tasks"]["completed"] = True
    assert offboarding([syncs[0], (T1, raw)], as_of=T1)["gone"] == (
        "ok", "Removed from the workspace since 2026-03-02 00:00 UTC; no residual access")
    # Gone for two snapshots: no longer one of the users reviewed.
    assert "gone" not in offboarding([*syncs, (T2, offboarding_raw(departed=True))], as_of=T2)


def test_offboarding_without_history_has_no_rows():
    results = offboarding_results(snap(T0, "r0"), tables(), T0)
    assert results.empty and list(results.columns) == RESULT_COLUMNS


ADMINS = tables(
    users=[{"gid": "u1", "name": "Alice", "email": "Alice@Example.com"}, {"gid": "u2", "name": "Bob"},
           {"gid": "u3", "email": "guest@outside.org"}, {"gid": "u4"}, {"gid": "u5"}],
    workspace_memberships=[wm("u1", admin=True), wm("u2", admin=True), wm("u3", admin=True, guest=True),
                           wm("u4"), wm("u5", admin=True, active=False)],
)


def test_admins_without_an_approved_list_are_reported():
    results = by_gid(admin_results(ADMINS, None))
    assert results == {
        "u1": ("info", "Workspace admin Alice@Example.com; no approved admin list configured"),
        "u2": ("info", "Workspace admin Bob; no approved admin list configured"),
        "u3": ("alarm", "Workspace admin guest@outside.org is a guest"),
        "u4": ("skip", "Not an active workspace admin"),
        "u5": ("skip", "Not an active workspace admin"),
    }


@pytest.mark.parametrize("approved", [["alice@example.COM", "U2", "u3"], ["u1", "BOB", "u2"]])
def test_admins_on_the_approved_list_by_gid_or_email(approved):
    results = admin_results(ADMINS, approved)
    assert results["resource_url"].isna().all()
    statuses = {gid: status for gid, (status, _) in by_gid(results).items()}
    assert statuses == {"u1": "ok", "u2": "ok", "u3": "alarm", "u4": "skip", "u5": "skip"}


def test_admins_off_the_approved_list_alarm():
    results = by_gid(admin_results(ADMINS, ["u2"]))
    assert results["u1"] == ("alarm", "Workspace admin Alice@Example.com is not on the approved admin list")
    assert results["u2"] == ("ok", "Workspace admin Bob is on the approved admin list")
    assert {status for status, _ in by_gid(admin_results(ADMINS, [])).values()} == {"alarm", "skip"}


def test_membership_change_statuses_for_the_latest_window():
    hist = history(restamp(AFTER, T0 - timedelta(days=1), "r0"), BEFORE, AFTER)
    changes = membership_changes(hist)
    results = membership_change_results(changes, hist)
    assert results["resource_type"].eq("membership_change").all() and results["resource_url"].isna().all()
    status = results.set_index("resource_gid")["status"]
    kinds = changes.set_index("change_id")["change_type"]
    assert len(status) == len(EXPECTED)
    assert {kinds[gid] for gid in status[status == "alarm"].index} == {"admin_granted", "guest_added", "reactivated"}
    assert {kinds[gid] for gid in status[status == "info"].index} == {
        "granted", "revoked", "role_changed", "deactivated", "admin_revoked"}
    grant = changes.loc[changes["user_gid"].eq("h") & changes["change_type"].eq("admin_granted"), "change_id"]
    assert by_gid(results)[grant.item()][1] == ("User h: admin granted on workspace w1 (no access -> admin), "
                      "between 2026-03-01 00:00 UTC and 2026-03-02 00:00 UTC")


def test_membership_change_baseline_and_quiet_window():
    baseline = by_gid(membership_change_results(membership_changes(BEFORE), BEFORE))
    assert list(baseline) == ["w1"] and baseline["w1"][0] == "skip" and "Baseline" in baseline["w1"][1]
    hist = history(BEFORE, restamp(BEFORE, T1, "r2"))
    quiet = by_gid(membership_change_results(membership_changes(hist), hist))
    assert quiet == {"w1": ("ok", "No membership changed between 2026-03-01 00:00 UTC and 2026-03-02 00:00 UTC")}
    # Before any snapshot names a single workspace, the baseline row falls back to a fixed gid.
    nothing = snap(T0, "r0")
    assert list(by_gid(membership_change_results(membership_changes(nothing), nothing))) == ["baseline"]
