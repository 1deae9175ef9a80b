"""Access snapshots, membership changes and the access monitors, on small hand-built tables."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest

from asana_assets.lib.compliance import monitors
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
RESULT_COLUMNS = ["resource_type", "resource_gid", "status", "reason", "resource_url", "name", "project", "people"]
PROFILE = "https://app.asana.com/0/profile/"


def tables(**rows) -> dict[str, pd.DataFrame]:
    """Raw tables typed as the warehouse stores them; tables not given are empty."""
    return {name: to_arrow(name, rows.get(name, [])).to_pandas() for name in RAW_TABLES}


def wm(user, active=True, admin=False, guest=False, workspace="w1"):
    return {"gid": f"wm-{user}-{workspace}", "workspace_gid": workspace, "user_gid": user,
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
        ("u3", "project", "p1", "editor", True),  # through team t1, an editor of p1
        ("u4", "workspace", "w1", "member", False), ("u4", "project", "p2", "owner", False),
        ("u5", "project", "p1", "viewer", False),  # no workspace membership: inactive
    }
    # Only u3's access comes through the team: u1 (admin) and u2 (owner) hold stronger roles directly.
    via = snapshot.dropna(subset=["via_team_gid"])
    assert set(zip(via["user_gid"], via["resource_gid"], via["via_team_gid"], strict=True)) == {("u3", "p1", "t1")}


def test_snapshot_names_the_team_a_project_is_reached_through_and_the_guest_flag():
    def team_member(team, user):
        return {"gid": f"tm-{team}-{user}", "team_gid": team, "user_gid": user, "is_admin": False, "is_guest": False}

    def shared(gid, member, kind, level):
        return {"gid": gid, "project_gid": "p1", "member_gid": member, "member_type": kind, "access_level": level}

    raw = tables(
        workspace_memberships=[wm("u1"), wm("u2", guest=True), {**wm("u3"), "is_guest": None},
                               # Two memberships, one a guest's: a member (role), so no guest.
                               {**wm("u5", active=False, guest=True), "gid": "wm-u5-old"}, wm("u5")],
        teams=[{"gid": "10", "workspace_gid": "w1", "name": "Ten"},
               {"gid": "9", "workspace_gid": "w1", "name": "Nine"}],
        team_memberships=[team_member("10", "u1"), team_member("10", "u2"), team_member("10", "u3"),
                          team_member("9", "u2"), team_member("9", "u4")],
        projects=[{"gid": "p1", "workspace_gid": "w1", "team_gid": "9", "name": "Payroll", "archived": False}],
        # Team 10 is listed before team 9: the team a row names must not follow the listing.
        project_memberships=[shared("pm1", "u1", "user", "editor"), shared("pm2", "10", "team", "editor"),
                             shared("pm3", "9", "team", "editor"), shared("pm4", "u3", "user", "viewer")],
    )
    snapshot = access_snapshot(raw, T0, "r1")
    pa.Table.from_pandas(snapshot, schema=DERIVED_TABLES["user_access"], preserve_index=False)
    columns = ["user_gid", "resource_type", "resource_gid", "role", "via_team_gid", "user_is_guest", "user_is_active"]
    rows = {tuple(None if pd.isna(v) else v for v in row) for row in snapshot[columns].itertuples(index=False)}
    assert rows == {
        ("u1", "workspace", "w1", "member", None, False, True), ("u1", "team", "10", "member", None, False, True),
        ("u1", "project", "p1", "editor", None, False, True),  # directly and through team 10 alike: direct wins
        ("u2", "workspace", "w1", "guest", None, True, True), ("u2", "team", "10", "member", None, True, True),
        ("u2", "team", "9", "member", None, True, True),
        ("u2", "project", "p1", "editor", "9", True, True),  # teams 9 and 10 alike: 9 is the lower gid, as a number
        # Its guest flag unknown: null, and a role that may be a guest's is unknown, not member.
        ("u3", "workspace", "w1", "unknown", None, None, True),
        ("u3", "team", "10", "member", None, None, True),
        ("u3", "project", "p1", "editor", "10", None, True),  # team 10's editor beats the direct viewer
        ("u4", "team", "9", "member", None, None, False),  # no membership of w1: not active, guest unknown
        ("u4", "project", "p1", "editor", "9", None, False),
        ("u5", "workspace", "w1", "member", None, False, True),
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
def offboarding_raw(departed: bool, gone_ticket_open: bool = True):
    tasks = [{"gid": "k1", "assignee_gid": "dep", "completed": False, "workspace_gid": "w1"},
             {"gid": "k2", "assignee_gid": "clean", "completed": True, "workspace_gid": "w1"},
             {"gid": "k3", "assignee_gid": "gone", "completed": not gone_ticket_open, "workspace_gid": "w1"}]
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


def judged(raw_by_time, as_of, **options):
    """Offboarding results over the history of (time, raw) syncs, judged against the last raw
    tables at ``as_of``, by (resource type, gid)."""
    snapshots = [access_snapshot(raw, at, f"r{i}") for i, (at, raw) in enumerate(raw_by_time)]
    results = offboarding_results(history(*snapshots), raw_by_time[-1][1], as_of, **options)
    assert list(results.columns) == RESULT_COLUMNS
    users = results[results["resource_type"] == "user_in_workspace"]
    assert (users["resource_url"] == PROFILE + users["resource_gid"].str.split("/").str[0]).all()
    assert not results.duplicated(["resource_type", "resource_gid"]).any()
    return {(row.resource_type, row.resource_gid): (row.status, row.reason) for row in results.itertuples()}


def offboarding(raw_by_time, as_of, **options):
    """The per user and workspace rows only, by "<user gid>/<workspace gid>"."""
    results = judged(raw_by_time, as_of, **options)
    assert {kind for kind, _ in results} <= {"user_in_workspace"}
    return {gid: outcome for (_, gid), outcome in results.items()}


RESIDUAL = 'still member of team "Security", project "Payroll"; assignee of ticket k1'
NO_GRACE = "never seen active there, so no grace applies"
# Whom the first snapshot shows without an active membership (and whose membership has no
# creation time): nothing says since when, only that it was at or before that snapshot.
AT_FIRST = "deactivated at 2026-03-01 00:00 UTC or earlier"
# The users table is empty here: users are named by gid, and so is the workspace.
W1 = "in workspace w1: "


def test_offboarding_inactive_at_the_first_snapshot_alarms_at_once():
    assert offboarding([(T0, offboarding_raw(departed=True))], as_of=T0) == {
        "dep/w1": ("alarm", f"user dep {W1}{AT_FIRST}; {RESIDUAL}; {NO_GRACE}"),
        # An archived project's ownership and a completed ticket are not residual access.
        "clean/w1": ("ok", f"user clean {W1}{AT_FIRST}; no residual access"),
        "stay/w1": ("skip", f"user stay {W1}active member"),
        # No membership in any snapshot, yet assignee of an open ticket in the workspace.
        "gone/w1": ("alarm", (f"user gone {W1}without an active membership in any sync since 2026-03-01 00:00 UTC; "
                             f"still assignee of ticket k3; {NO_GRACE}")),
    }


def test_offboarding_counts_ownership_of_a_live_project():
    raw = offboarding_raw(departed=True)
    raw["projects"]["archived"] = False
    assert offboarding([(T0, raw)], as_of=T0)["clean/w1"] == (
        "alarm", f'user clean {W1}{AT_FIRST}; still owner of project "Old"; {NO_GRACE}')


def test_offboarding_reason_names_the_first_few_resources():
    raw = tables(
        workspace_memberships=[wm("dep", active=False)],
        projects=[{"gid": f"p{i}", "workspace_gid": "w1", "name": f"P{i}"} for i in range(7)],
        project_memberships=[{"gid": f"pm{i}", "project_gid": f"p{i}", "member_gid": "dep", "member_type": "user",
                              "access_level": "viewer"} for i in range(7)],
    )
    assert offboarding([(T0, raw)], as_of=T0)["dep/w1"][1] == (
        f'user dep {W1}{AT_FIRST}; still member of project "P0", '
        f'project "P1", project "P2", project "P3", project "P4" and 2 more; {NO_GRACE}')


def test_offboarding_grace_runs_from_the_last_snapshot_showing_the_user_active():
    syncs = [(T0, offboarding_raw(departed=False)), (T1, offboarding_raw(departed=True)),
             (T2, offboarding_raw(departed=True))]
    window = "some time between 2026-03-01 00:00 UTC (last seen active) and 2026-03-02 00:00 UTC"
    # Active at T0, inactive at T1: the grace of a day from T0 ends exactly at T1.
    at_the_edge = offboarding(syncs[:2], as_of=T1)
    assert at_the_edge["dep/w1"] == (
        "info", f"user dep {W1}deactivated {window}; {RESIDUAL}; grace ends 2026-03-02 00:00 UTC")
    assert at_the_edge["gone/w1"] == (
        "info", f"user gone {W1}removed {window}; still assignee of ticket k3; grace ends 2026-03-02 00:00 UTC")
    assert at_the_edge["clean/w1"][0] == "ok"
    past = offboarding(syncs[:2], as_of=T1 + timedelta(microseconds=1))
    assert past["dep/w1"] == ("alarm", f"user dep {W1}deactivated {window}; {RESIDUAL}")
    # A later snapshot does not restart the grace; a longer grace still runs from T0.
    assert offboarding(syncs, as_of=T2)["dep/w1"] == ("alarm", f"user dep {W1}deactivated {window}; {RESIDUAL}")
    assert offboarding(syncs, as_of=T2, grace=timedelta(days=2))["dep/w1"] == (
        "info", f"user dep {W1}deactivated {window}; {RESIDUAL}; grace ends 2026-03-03 00:00 UTC")


def test_offboarding_user_never_seen_active_has_no_grace():
    # "late" joins and is deactivated between two snapshots: the data shows no time it was active.
    before = tables(workspace_memberships=[wm("stay")], teams=TEAMS)
    after = tables(workspace_memberships=[wm("stay"), wm("late", active=False)], teams=TEAMS,
                   team_memberships=[{"gid": "tm1", "team_gid": "t1", "user_gid": "late"}])
    assert offboarding([(T0, before), (T1, after)], as_of=T1)["late/w1"] == (
        "alarm", (f'user late {W1}deactivated at 2026-03-02 00:00 UTC or earlier; still member of team "Security"; '
                 f"{NO_GRACE}"))


def test_offboarding_keeps_alarming_while_the_holding_lasts():
    days = [T0 + timedelta(days=n) for n in range(5)]
    syncs = [(days[0], offboarding_raw(departed=False))] + [(at, offboarding_raw(departed=True)) for at in days[1:4]]
    removed = f"user gone {W1}removed some time between 2026-03-01 00:00 UTC (last seen active) and 2026-03-02 00:00 UTC"
    for last in range(2, 5):
        assert offboarding(syncs[:last], as_of=days[last - 1] + timedelta(hours=1))["gone/w1"] == (
            "alarm", f"{removed}; still assignee of ticket k3")
    # Once the ticket is closed the user stays on the list, with nothing left.
    closed = [*syncs, (days[4], offboarding_raw(departed=True, gone_ticket_open=False))]
    assert offboarding(closed, as_of=days[4])["gone/w1"] == ("ok", f"{removed}; no residual access")


def test_offboarding_judges_each_workspace_apart():
    teams = [*TEAMS, {"gid": "t2", "workspace_gid": "w2", "name": "Platform"}]

    def raw(active_in_w2: bool):
        return tables(
            workspace_memberships=[wm("u"), wm("u", active=active_in_w2, workspace="w2"),
                                   wm("v", active=False), wm("v", workspace="w2")],
            teams=teams,
            team_memberships=[{"gid": "tm1", "team_gid": "t2", "user_gid": "u"},
                              {"gid": "tm2", "team_gid": "t2", "user_gid": "v"}],
            projects=[{**PROJECTS[0], "owner_gid": None},
                      {"gid": "p3", "workspace_gid": "w2", "owner_gid": "u", "name": "Infra"}],
            project_memberships=[{"gid": "pm1", "project_gid": "p1", "member_gid": "u", "member_type": "user"}],
            tasks=[{"gid": "k1", "assignee_gid": "u", "completed": False, "workspace_gid": "w2"},
                   {"gid": "k2", "assignee_gid": "v", "completed": False, "workspace_gid": "w2"}],
        )

    syncs = [(T0, raw(active_in_w2=True)), (T1, raw(active_in_w2=False))]
    assert offboarding(syncs, as_of=T1 + timedelta(days=1, seconds=1)) == {
        # Active in w1, where its project membership is: nothing to judge there.
        "u/w1": ("skip", f"user u {W1}active member"),
        # Deactivated in w2 only: what it holds in w2 is residual access.
        "u/w2": ("alarm", ("user u in workspace w2: deactivated some time between 2026-03-01 00:00 UTC (last seen "
                          'active) and 2026-03-02 00:00 UTC; still member of team "Platform"; '
                          'owner of project "Infra"; assignee of ticket k1')),
        # Inactive in w1 with nothing there; what it holds in w2, where it is active, does not count.
        "v/w1": ("ok", f"user v {W1}{AT_FIRST}; no residual access"),
        "v/w2": ("skip", "user v in workspace w2: active member"),
    }


def test_offboarding_alarms_on_holdings_it_cannot_place():
    raw = tables(
        workspace_memberships=[wm("dep")],
        projects=[{"gid": "p8", "owner_gid": "dep", "name": "Orphan"}],  # no workspace
        team_memberships=[{"gid": "tm9", "team_gid": "t9", "user_gid": "dep"}],  # team t9 never synced
        project_memberships=[{"gid": "pm9", "project_gid": "p9", "member_gid": "dep", "member_type": "user"}],
        tasks=[{"gid": "k9", "assignee_gid": "dep", "completed": False}],  # no workspace
    )
    cannot = "whether the user may hold it there cannot be judged"
    assert judged([(T0, raw)], as_of=T0) == {
        ("user_in_workspace", "dep/w1"): ("skip", f"user dep {W1}active member"),
        ("team_membership", "tm9"): (
            "alarm", f"user dep is member of team t9, but the team is not among the synced teams: {cannot}"),
        ("project_membership", "pm9"): (
            "alarm", f"user dep is member of project p9, but the project is not among the synced projects: {cannot}"),
        ("project", "p8"): (
            "alarm", f'user dep is owner of project "Orphan", but the project has no workspace: {cannot}'),
        ("task", "k9"): ("alarm", f"user dep is assignee of ticket k9, but the task has no workspace: {cannot}"),
    }


def test_project_members_of_no_recognisable_type():
    raw = tables(
        workspace_memberships=[wm("u", active=False)],
        teams=TEAMS,
        projects=[{**PROJECTS[0], "owner_gid": None}],
        project_memberships=[
            # Untyped, but u is a known user: u's membership.
            {"gid": "pm1", "project_gid": "p1", "member_gid": "u", "member_type": None, "access_level": "editor"},
            # Untyped, and t1 is a known team: a team's membership, not a user's.
            {"gid": "pm2", "project_gid": "p1", "member_gid": "t1", "member_type": None, "access_level": "editor"},
            # Neither a user nor a team the sync knows.
            {"gid": "pm3", "project_gid": "p1", "member_gid": "x1", "member_type": "group", "access_level": "editor"},
            {"gid": "pm4", "project_gid": "p1", "member_gid": "x2", "member_type": None, "access_level": "viewer"},
        ],
    )
    snapshot = access_snapshot(raw, T0, "r0")
    assert set(snapshot[["user_gid", "resource_type", "resource_gid", "role"]].itertuples(index=False, name=None)) == {
        ("u", "workspace", "w1", "member"), ("u", "project", "p1", "editor")}
    cannot = "whether it is an active user cannot be judged"
    odd = 'of project "Payroll" is of no recognisable type'
    assert judged([(T0, raw)], as_of=T0) == {
        ("user_in_workspace", "u/w1"): (
            "alarm", f'user u {W1}{AT_FIRST}; still member of project "Payroll"; {NO_GRACE}'),
        ("project_membership", "pm3"): ("alarm", f"Member x1 {odd} (group): {cannot}"),
        ("project_membership", "pm4"): ("alarm", f"Member x2 {odd} (none): {cannot}"),
    }


def test_offboarding_without_history_has_no_rows():
    results = offboarding_results(snap(T0, "r0"), tables(), T0)
    assert results.empty and list(results.columns) == RESULT_COLUMNS


ADMINS = tables(
    users=[{"gid": "u1", "name": "Alice", "email": "Alice@Example.com"}, {"gid": "u2", "name": "Bob"},
           {"gid": "u3", "email": "guest@outside.org"}, {"gid": "u4"}, {"gid": "u5"}],
    workspace_memberships=[wm("u1", admin=True), wm("u2", admin=True), wm("u3", admin=True, guest=True),
                           wm("u4"), wm("u5", admin=True, active=False)],
)


def test_admins_without_an_approved_list_are_unknown_and_a_guest_admin_still_alarms():
    results = admin_results(ADMINS, None)
    unjudged = ("cannot be judged: no approved admin list is configured (set approved_admins of the compliance "
                "resource)")
    assert by_gid(results) == {
        "u1": ("unknown", f"Alice <Alice@Example.com>, admin of workspace w1, {unjudged}"),
        "u2": ("unknown", f"Bob, admin of workspace w1, {unjudged}"),
        "u3": ("alarm", "guest@outside.org, admin of workspace w1, is a guest"),
        "u4": ("skip", "user u4 is not an active workspace admin"),
        "u5": ("skip", "user u5 is not an active workspace admin"),
    }
    assert monitors.verdict(results)[0] == "FAIL"  # the guest admin
    # Without the guest admin, nothing alarms and nothing is approved: incomplete, never a pass.
    assert monitors.verdict(results[results["resource_gid"] != "u3"])[0] == "INCOMPLETE"


@pytest.mark.parametrize("approved", [["alice@example.COM", "U2", "u3"], ["u1", "BOB", "u2"]])
def test_admins_on_the_approved_list_by_gid_or_email(approved):
    results = admin_results(ADMINS, approved)
    assert (results["resource_url"] == PROFILE + results["resource_gid"]).all()
    statuses = {gid: status for gid, (status, _) in by_gid(results).items()}
    assert statuses == {"u1": "ok", "u2": "ok", "u3": "alarm", "u4": "skip", "u5": "skip"}
    # u3 is on the first list, yet a guest admin alarms whatever the list says.
    assert by_gid(results)["u3"] == ("alarm", "guest@outside.org, admin of workspace w1, is a guest")
    assert monitors.verdict(results[results["resource_gid"] != "u3"])[0] == "PASS"


def test_admins_off_the_approved_list_alarm():
    results = by_gid(admin_results(ADMINS, ["u2"]))
    assert results["u1"] == ("alarm", "Alice <Alice@Example.com>, admin of workspace w1, is not on the approved admin list")
    assert results["u2"] == ("ok", "Bob, admin of workspace w1, is on the approved admin list")
    assert {status for status, _ in by_gid(admin_results(ADMINS, [])).values()} == {"alarm", "skip"}


NO_USERS = tables()["users"]


def reviewed(changes, hist, users=NO_USERS, **options):
    """membership_change_results by (user, resource, change type, window end), with the change row."""
    results = membership_change_results(changes, hist, users, **options)
    rows = changes.set_index("change_id")
    assert results["resource_type"].eq("membership_change").all()
    assert (results["resource_url"] == PROFILE + rows.loc[results["resource_gid"], "user_gid"].to_numpy()).all()
    out = {}
    for gid, (status, reason) in by_gid(results).items():
        change = rows.loc[gid]
        out[(change.user_gid, change.resource_gid, change.change_type, change.window_end)] = (status, reason)
    return out


def test_membership_change_statuses_for_the_latest_window_and_open_findings():
    hist = history(restamp(AFTER, T0 - timedelta(days=1), "r0"), BEFORE, AFTER)
    results = reviewed(membership_changes(hist), hist)
    statuses = {key: status for key, (status, _) in results.items()}
    assert statuses == {
        # The window ending T0 (AFTER seen first, then BEFORE): only its findings stay listed.
        ("b", "w1", "admin_granted", T0): "alarm",
        ("c", "w1", "reactivated", T0): "alarm",
        ("i", "w1", "guest_added", T0): "alarm",
        # The latest window: every change, the findings alarming, the rest listed but not
        # subject to review (skip).
        ("c", "w1", "admin_granted", T1): "alarm",
        ("d", "w1", "reactivated", T1): "alarm",
        ("e", "w1", "guest_added", T1): "alarm",
        ("g", "w1", "guest_added", T1): "alarm",
        ("h", "w1", "admin_granted", T1): "alarm",
        # g and h were members at T0 - 1 day, gone at T0 and are back: reactivations.
        ("g", "w1", "reactivated", T1): "alarm",
        ("h", "w1", "reactivated", T1): "alarm",
        ("a", "t1", "role_changed", T1): "skip",
        ("a", "p1", "role_changed", T1): "skip",
        ("b", "w1", "admin_revoked", T1): "skip",
        ("c", "w1", "deactivated", T1): "skip",
        ("e", "p1", "revoked", T1): "skip",
        ("f", "t1", "revoked", T1): "skip",
        ("f", "p2", "granted", T1): "skip",
        ("g", "w1", "granted", T1): "skip",
        ("h", "w1", "granted", T1): "skip",
        ("i", "w1", "role_changed", T1): "skip",
    }
    assert results[("h", "w1", "admin_granted", T1)][1] == (
        "user h: admin granted on workspace w1 (no access -> admin), "
        "between 2026-03-01 00:00 UTC and 2026-03-02 00:00 UTC; not acknowledged yet")
    # b was made admin before T0 and lost it by T1: the grant still happened and is still a finding.
    assert results[("b", "w1", "admin_granted", T0)][1] == (
        "user b: admin granted on workspace w1 (member -> admin), "
        "between 2026-02-28 00:00 UTC and 2026-03-01 00:00 UTC; "
        "revoked again between 2026-03-01 00:00 UTC and 2026-03-02 00:00 UTC; not acknowledged yet")


def test_membership_change_baseline_and_quiet_window():
    baseline = by_gid(membership_change_results(membership_changes(BEFORE), BEFORE, NO_USERS))
    assert list(baseline) == ["w1"] and baseline["w1"][0] == "skip" and "Baseline" in baseline["w1"][1]
    hist = history(BEFORE, restamp(BEFORE, T1, "r2"))
    quiet = by_gid(membership_change_results(membership_changes(hist), hist, NO_USERS))
    assert quiet == {"w1": ("ok", "No membership changed between 2026-03-01 00:00 UTC and 2026-03-02 00:00 UTC")}
    # Before any snapshot names a single workspace, the baseline row falls back to a fixed gid.
    nothing = snap(T0, "r0")
    assert list(by_gid(membership_change_results(membership_changes(nothing), nothing, NO_USERS))) == ["baseline"]


def change_id(text: str) -> str:
    """The documented id: sha256 of window_end|user|resource type|resource|change type, 16 hex digits."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# "a" is made an admin and the guest "g" joins between T0 and T1; nothing changes after.
GRANT_BEFORE = snap(T0, "r0", ("a", "workspace", "w1", "member", True), ("b", "workspace", "w1", "member", True))
GRANT_AFTER = snap(T1, "r1", ("a", "workspace", "w1", "admin", True), ("b", "workspace", "w1", "member", True),
                   ("g", "workspace", "w1", "guest", True))
GRANT_USERS = tables(users=[{"gid": "a", "email": "Ann@Example.com"}, {"gid": "g", "email": "g@outside.org"}])["users"]
A_GRANT = change_id("2026-03-02T00:00:00.000000Z|a|workspace|w1|admin_granted")
G_GUEST = change_id("2026-03-02T00:00:00.000000Z|g|workspace|w1|guest_added")
G_GRANTED = change_id("2026-03-02T00:00:00.000000Z|g|workspace|w1|granted")


def test_change_ids_follow_the_documented_formula_in_every_later_run():
    first = membership_changes(history(GRANT_BEFORE, GRANT_AFTER))
    later = membership_changes(history(GRANT_BEFORE, GRANT_AFTER, restamp(GRANT_AFTER, T2, "r2")))
    expected = {(A_GRANT, "admin_granted"), (G_GUEST, "guest_added"), (G_GRANTED, "granted")}
    assert set(first[["change_id", "change_type"]].itertuples(index=False, name=None)) == expected
    assert set(later[["change_id", "change_type"]].itertuples(index=False, name=None)) == expected


def test_findings_stay_alarms_until_acknowledged():
    quiet = [restamp(GRANT_AFTER, T2, "r2"), restamp(GRANT_AFTER, T2 + timedelta(days=1), "r3")]
    hist = history(GRANT_BEFORE, GRANT_AFTER, *quiet)
    changes = membership_changes(hist)
    window = "between 2026-03-01 00:00 UTC and 2026-03-02 00:00 UTC"
    grant = f"Ann@Example.com: admin granted on workspace w1 (member -> admin), {window}"
    guest = f"g@outside.org: guest added on workspace w1 (no access -> guest), {window}"
    # Two quiet windows later, both findings still alarm; the plain grant of g's membership,
    # information in its own window, is no longer listed.
    assert by_gid(membership_change_results(changes, hist, GRANT_USERS)) == {
        A_GRANT: ("alarm", f"{grant}; not acknowledged yet"), G_GUEST: ("alarm", f"{guest}; not acknowledged yet")}
    acknowledged = by_gid(membership_change_results(
        changes, hist, GRANT_USERS, acknowledged=[G_GUEST], approved_admins=["ann@example.COM"]))
    assert acknowledged == {
        A_GRANT: ("ok", f"{grant}; the user is on the approved admin list"),
        G_GUEST: ("ok", f"{guest}; acknowledged in acknowledged_changes"),
    }
    # The approved admin list acknowledges admin grants only; another change's id acknowledges nothing.
    unrelated = by_gid(membership_change_results(
        changes, hist, GRANT_USERS, acknowledged=[G_GRANTED], approved_admins=["g", "g@outside.org"]))
    assert {gid: status for gid, (status, _) in unrelated.items()} == {A_GRANT: "alarm", G_GUEST: "alarm"}
    by_gid_list = membership_change_results(changes, hist, GRANT_USERS, approved_admins=["A"])
    assert dict(zip(by_gid_list["resource_gid"], by_gid_list["status"])) == {A_GRANT: "ok", G_GUEST: "alarm"}


# The audit log of w1 (Ada, an admin, acting). QUIET: two equal snapshots, a member at T0 and T1.
ADMIN_ROLE = "user_workspace_admin_role_changed"
H = timedelta(hours=1)
QUIET = history(GRANT_BEFORE, restamp(GRANT_BEFORE, T1, "r1"))
AUDIT_USERS = tables(users=[{"gid": "a", "email": "Ann@Example.com"},
                            {"gid": "ada", "name": "Ada", "email": "ada@example.com"}])["users"]
BY_ADA = "by Ada <ada@example.com> at"
WINDOW = "between 2026-03-01 00:00 UTC and 2026-03-02 00:00 UTC"


def event(gid, at, event_type, subject, resource=None, old=None, new=None):
    """An audit_log_events row of w1 by Ada about ``subject``; its resource is the subject user
    unless given. A membership event names its team or project, not the member: its subject is
    None, as the audit log reader leaves it."""
    return {"gid": gid, "workspace_gid": "w1", "created_at": at, "event_type": event_type, "actor_gid": "ada",
            "actor_name": "Ada", "subject_user_gid": subject, "resource_gid": resource or subject,
            "old_value": old, "new_value": new}


def audit_log(*events):
    return to_arrow("audit_log_events", list(events)).to_pandas()


def logged_rows(changes):
    """(change_id, user, resource, change type, old role, new role, actor, time, evidence) per change."""
    columns = ["change_id", "user_gid", "resource_gid", "change_type", "old_role", "new_role", "actor_gid",
               "occurred_at", "evidence"]
    return {tuple(None if pd.isna(v) else v for v in row) for row in changes[columns].itertuples(index=False)}


LOGGED = "2026-03-02T00:00:00.000000Z|a|workspace|w1"  # the window ending T1, user a's workspace w1
GRANT = event("e1", T0 + 1 * H, ADMIN_ROLE, "a", old="member", new="admin")
REVOKE = event("e2", T0 + 2 * H, ADMIN_ROLE, "a", old="admin", new="member")
A_LOGGED_GRANT = change_id(f"{LOGGED}|admin_granted|e1")
A_LOGGED_REVOKE = change_id(f"{LOGGED}|admin_revoked|e2")
GRANTED_AND_REVOKED = (f"Ann@Example.com: admin granted on workspace w1 (member -> admin), {WINDOW}, "
                       f"{BY_ADA} 2026-03-01 01:00 UTC (audit log); revoked again {BY_ADA} 2026-03-01 02:00 UTC "
                       "(audit log)")


def test_an_admin_granted_and_revoked_between_two_equal_snapshots_is_a_finding():
    changes = membership_changes(QUIET, audit_log(GRANT, REVOKE))
    pa.Table.from_pandas(changes, schema=DERIVED_TABLES["membership_changes"], preserve_index=False)
    # The snapshots show nothing; each event is a change of its own, in the window that holds it.
    assert logged_rows(changes) == {
        (A_LOGGED_GRANT, "a", "w1", "admin_granted", "member", "admin", "ada", T0 + 1 * H, "audit log"),
        (A_LOGGED_REVOKE, "a", "w1", "admin_revoked", "admin", "member", "ada", T0 + 2 * H, "audit log"),
    }
    assert (changes["window_start"] == T0).all() and (changes["window_end"] == T1).all()
    assert (changes["run_id"] == "r1").all()
    results = membership_change_results(changes, QUIET, AUDIT_USERS)
    assert by_gid(results) == {
        # The grant happened, so it needs review though it was undone; the revocation needs none.
        A_LOGGED_GRANT: ("alarm", f"{GRANTED_AND_REVOKED}; not acknowledged yet"),
        A_LOGGED_REVOKE: ("skip", (f"Ann@Example.com: admin revoked on workspace w1 (admin -> member), {WINDOW}, "
                                   f"{BY_ADA} 2026-03-01 02:00 UTC (audit log)")),
    }
    assert monitors.verdict(results)[0] == "FAIL"
    # A quiet window later the grant is still a finding and still names its revocation.
    later = history(QUIET, restamp(GRANT_BEFORE, T2, "r2"))
    assert by_gid(membership_change_results(membership_changes(later, audit_log(GRANT, REVOKE)), later,
                                            AUDIT_USERS)) == {
        A_LOGGED_GRANT: ("alarm", f"{GRANTED_AND_REVOKED}; not acknowledged yet")}
    # The snapshots alone cannot see it: without the audit log the window is quiet.
    assert by_gid(membership_change_results(membership_changes(QUIET), QUIET, AUDIT_USERS)) == {
        "w1": ("ok", f"No membership changed {WINDOW}")}


def test_an_admin_granted_and_revoked_is_cleared_by_acknowledging_the_grant():
    changes = membership_changes(QUIET, audit_log(GRANT, REVOKE))
    results = membership_change_results(changes, QUIET, AUDIT_USERS, acknowledged=[A_LOGGED_GRANT])
    assert {gid: status for gid, (status, _) in by_gid(results).items()} == {A_LOGGED_GRANT: "ok",
                                                                           A_LOGGED_REVOKE: "skip"}
    assert by_gid(results)[A_LOGGED_GRANT][1] == f"{GRANTED_AND_REVOKED}; acknowledged in acknowledged_changes"
    assert monitors.verdict(results)[0] == "PASS"
    # Acknowledging the revocation instead clears nothing: the grant is the finding.
    unrelated = membership_change_results(changes, QUIET, AUDIT_USERS, acknowledged=[A_LOGGED_REVOKE])
    assert by_gid(unrelated)[A_LOGGED_GRANT][0] == "alarm"


def test_a_change_the_snapshots_show_is_listed_once_dated_by_its_latest_event():
    # a: made admin at 01:00, back to member at 02:00, admin again at 03:00 (as T1 shows her);
    # g: invited at 04:00 (a guest, as T1 shows).
    events = audit_log(GRANT, REVOKE, event("e3", T0 + 3 * H, ADMIN_ROLE, "a", old="member", new="admin"),
                       event("e4", T0 + 4 * H, "user_invited", "g"))
    changes = membership_changes(history(GRANT_BEFORE, GRANT_AFTER), events)
    assert logged_rows(changes) == {
        # The snapshots' changes keep their ids and take the latest matching event's actor and time.
        (A_GRANT, "a", "w1", "admin_granted", "member", "admin", "ada", T0 + 3 * H, "audit log"),
        (G_GUEST, "g", "w1", "guest_added", None, "guest", "ada", T0 + 4 * H, "audit log"),
        (G_GRANTED, "g", "w1", "granted", None, "guest", "ada", T0 + 4 * H, "audit log"),
        # The earlier grant and its revocation only the audit log shows.
        (A_LOGGED_GRANT, "a", "w1", "admin_granted", "member", "admin", "ada", T0 + 1 * H, "audit log"),
        (A_LOGGED_REVOKE, "a", "w1", "admin_revoked", "admin", "member", "ada", T0 + 2 * H, "audit log"),
    }
    results = by_gid(membership_change_results(changes, history(GRANT_BEFORE, GRANT_AFTER), GRANT_USERS))
    assert {gid: status for gid, (status, _) in results.items()} == {
        A_GRANT: "alarm", A_LOGGED_GRANT: "alarm", A_LOGGED_REVOKE: "skip", G_GUEST: "alarm", G_GRANTED: "skip"}
    # The grant in force names no revocation; the earlier one names the revocation after it.
    assert results[A_GRANT][1] == (
        f"Ann@Example.com: admin granted on workspace w1 (member -> admin), {WINDOW}, by Ada at 2026-03-01 03:00 UTC "
        "(audit log); not acknowledged yet")  # GRANT_USERS has no email for Ada: named as the log names her
    assert "; revoked again by Ada at 2026-03-01 02:00 UTC (audit log); not acknowledged yet" in (
        results[A_LOGGED_GRANT][1])


def test_audit_events_count_after_the_previous_snapshot_up_to_this_one():
    at_baseline = event("e0", T0, ADMIN_ROLE, "a", old="member", new="admin")  # before any window
    at_end = event("e5", T1, ADMIN_ROLE, "a", old="member", new="admin")  # the window's last instant
    after = event("e6", T1 + timedelta(microseconds=1), ADMIN_ROLE, "a", old="admin", new="member")  # next window
    changes = membership_changes(QUIET, audit_log(at_baseline, at_end, after))
    assert logged_rows(changes) == {
        (change_id(f"{LOGGED}|admin_granted|e5"), "a", "w1", "admin_granted", "member", "admin", "ada", T1,
         "audit log")}


def test_every_access_event_the_snapshots_miss_is_a_change():
    # Between T0 and T1: z invited and gone again, a deprovisioned and reprovisioned, someone
    # added to and removed from team t1 and project p1 (the log does not say who). The snapshots
    # are equal.
    events = audit_log(
        event("e1", T0 + 1 * H, "user_invited", "z"),
        event("e2", T0 + 2 * H, "user_deprovisioned", "a"),
        event("e3", T0 + 3 * H, "user_reprovisioned", "a"),
        event("e4", T0 + 4 * H, "team_member_added", None, resource="t1"),
        event("e5", T0 + 5 * H, "team_member_removed", None, resource="t1"),
        event("e6", T0 + 6 * H, "project_member_added", None, resource="p1"),
        event("e7", T0 + 7 * H, "project_member_removed", None, resource="p1"),
    )
    changes = membership_changes(QUIET, events)
    end = "2026-03-02T00:00:00.000000Z"
    ids = {
        "z": change_id(f"{end}|z|workspace|w1|granted|e1"),
        "a-": change_id(f"{end}|a|workspace|w1|deactivated|e2"),
        "a+": change_id(f"{end}|a|workspace|w1|reactivated|e3"),
        "t+": change_id(f"{end}||team|t1|granted|e4"), "t-": change_id(f"{end}||team|t1|revoked|e5"),
        "p+": change_id(f"{end}||project|p1|granted|e6"), "p-": change_id(f"{end}||project|p1|revoked|e7"),
    }
    assert logged_rows(changes) == {
        # An invitation alone does not say whether a guest came in: a grant of unknown role.
        (ids["z"], "z", "w1", "granted", None, None, "ada", T0 + 1 * H, "audit log"),
        (ids["a-"], "a", "w1", "deactivated", None, None, "ada", T0 + 2 * H, "audit log"),
        (ids["a+"], "a", "w1", "reactivated", None, None, "ada", T0 + 3 * H, "audit log"),
        # No snapshot change matches the membership events: their member stays unknown.
        (ids["t+"], None, "t1", "granted", None, None, "ada", T0 + 4 * H, "audit log"),
        (ids["t-"], None, "t1", "revoked", None, None, "ada", T0 + 5 * H, "audit log"),
        (ids["p+"], None, "p1", "granted", None, None, "ada", T0 + 6 * H, "audit log"),
        (ids["p-"], None, "p1", "revoked", None, None, "ada", T0 + 7 * H, "audit log"),
    }
    results = membership_change_results(changes, QUIET, AUDIT_USERS)
    assert {gid: status for gid, (status, _) in by_gid(results).items()} == {
        ids["z"]: "unknown", ids["a-"]: "skip", ids["a+"]: "alarm", ids["t+"]: "unknown", ids["t-"]: "unknown",
        ids["p+"]: "unknown", ids["p-"]: "unknown"}
    assert by_gid(results)[ids["z"]][1] == (
        f"user z: granted on workspace w1, {WINDOW}, {BY_ADA} 2026-03-01 01:00 UTC (audit log); whether it let a "
        "guest in cannot be told (the audit log gives no role, no snapshot shows the membership): review it, then "
        "add its change_id to acknowledged_changes")
    # Reviewed: every event acknowledged, the monitor passes.
    reviewed_all = membership_change_results(changes, QUIET, AUDIT_USERS, acknowledged=list(ids.values()))
    assert by_gid(reviewed_all)[ids["z"]][0] == "ok"
    assert monitors.verdict(reviewed_all)[0] == "PASS"
    # The invitation alone unreviewed: nothing alarms, yet the monitor cannot pass.
    unreviewed = [gid for key, gid in ids.items() if key != "z"]
    assert monitors.verdict(membership_change_results(changes, QUIET, AUDIT_USERS, acknowledged=unreviewed))[0] == (
        "INCOMPLETE")


# Two syncs around team t1: at T0 only c is in it; at T1 a joined it (TEAM_ONE) or a and b did (TEAM_TWO).
TEAM_BEFORE = snap(T0, "r0", ("c", "team", "t1", "member", True))
TEAM_ONE = history(TEAM_BEFORE, snap(T1, "r1", ("c", "team", "t1", "member", True),
                                     ("a", "team", "t1", "member", True)))
TEAM_TWO = history(TEAM_BEFORE, snap(T1, "r1", ("c", "team", "t1", "member", True),
                                     ("a", "team", "t1", "member", True), ("b", "team", "t1", "member", True)))
TEAM_END = "2026-03-02T00:00:00.000000Z"


def test_a_membership_event_takes_its_member_from_the_one_snapshot_change_it_matches():
    """The log names team t1 only; the snapshots show one member added in that window: a."""
    added = event("e1", T0 + 1 * H, "team_member_added", None, resource="t1")
    changes = membership_changes(TEAM_ONE, audit_log(added))
    a_joined = change_id(f"{TEAM_END}|a|team|t1|granted")
    assert logged_rows(changes) == {(a_joined, "a", "t1", "granted", None, "member", "ada", T0 + 1 * H, "audit log")}
    results = by_gid(membership_change_results(changes, TEAM_ONE, AUDIT_USERS))
    assert results == {a_joined: ("skip", (
        f"Ann@Example.com: granted on team t1 (no access -> member), {WINDOW}, {BY_ADA} 2026-03-01 01:00 UTC "
        "(audit log)"))}
    # Edge: at the window's start the event precedes it (the baseline's); at its end it is inside.
    at_start = membership_changes(TEAM_ONE, audit_log(event("e1", T0, "team_member_added", None, resource="t1")))
    assert logged_rows(at_start) == {(a_joined, "a", "t1", "granted", None, "member", None, None, "snapshots")}
    at_end = membership_changes(TEAM_ONE, audit_log(event("e1", T1, "team_member_added", None, resource="t1")))
    assert logged_rows(at_end) == {(a_joined, "a", "t1", "granted", None, "member", "ada", T1, "audit log")}
    # Another kind or another team does not match: each event stays unattributed, unknown.
    other = membership_changes(TEAM_ONE, audit_log(event("e2", T0 + 1 * H, "team_member_removed", None,
                                                         resource="t1"),
                                                   event("e3", T0 + 1 * H, "team_member_added", None,
                                                         resource="t2")))
    assert {(r[1], r[2], r[3], r[8]) for r in logged_rows(other)} == {
        ("a", "t1", "granted", "snapshots"), (None, "t1", "revoked", "audit log"),
        (None, "t2", "granted", "audit log")}


def test_membership_events_no_single_member_matches_end_unknown_never_ok():
    """a and b both joined t1 in the window, and the log holds two additions to t1: which event is
    whose cannot be told. Each stays unattributed and unknown; the monitor cannot pass."""
    events = audit_log(event("e1", T0 + 1 * H, "team_member_added", None, resource="t1"),
                       event("e2", T0 + 2 * H, "team_member_added", None, resource="t1"))
    changes = membership_changes(TEAM_TWO, events)
    a_joined, b_joined = (change_id(f"{TEAM_END}|{user}|team|t1|granted") for user in "ab")
    e1, e2 = (change_id(f"{TEAM_END}||team|t1|granted|{gid}") for gid in ("e1", "e2"))
    assert logged_rows(changes) == {
        (a_joined, "a", "t1", "granted", None, "member", None, None, "snapshots"),
        (b_joined, "b", "t1", "granted", None, "member", None, None, "snapshots"),
        (e1, None, "t1", "granted", None, None, "ada", T0 + 1 * H, "audit log"),
        (e2, None, "t1", "granted", None, None, "ada", T0 + 2 * H, "audit log"),
    }
    results = membership_change_results(changes, TEAM_TWO, AUDIT_USERS)
    assert {gid: status for gid, (status, _) in by_gid(results).items()} == {
        a_joined: "skip", b_joined: "skip", e1: "unknown", e2: "unknown"}
    assert by_gid(results)[e1][1] == (
        f"A member the audit log does not name: granted on team t1, {WINDOW}, {BY_ADA} 2026-03-01 01:00 UTC (audit "
        "log); the audit log does not name the member and no single change between the snapshots matches it: whose "
        "access changed cannot be told: review it, then add its change_id to acknowledged_changes")
    assert monitors.verdict(results)[0] == "INCOMPLETE"
    # Edge: one addition logged for the two members seen: still not one user to one event.
    one_event = membership_changes(TEAM_TWO, audit_log(event("e1", T0 + 1 * H, "team_member_added", None,
                                                             resource="t1")))
    assert monitors.verdict(membership_change_results(one_event, TEAM_TWO, AUDIT_USERS))[0] == "INCOMPLETE"
    assert monitors.verdict(membership_change_results(changes, TEAM_TWO, AUDIT_USERS, acknowledged=[e1, e2]))[0] == (
        "PASS")


@pytest.mark.parametrize(("old", "new", "kind", "status"), [
    ("member", "admin", "admin_granted", "alarm"),
    ("guest", "super_admin", "admin_granted", "alarm"),  # the spec's other admin role
    ("super_admin", "admin", "role_changed", "skip"),  # admin before and after: no grant
    ("member", "not_admin", "role_changed", "unknown"),  # not a documented role: never read as admin or not
    ("member", "domain_admin", "role_changed", "unknown"),
    (None, "admin", "role_changed", "unknown"),
])
def test_admin_roles_are_compared_exactly(old, new, kind, status):
    changes = membership_changes(QUIET, audit_log(event("e1", T0 + 1 * H, ADMIN_ROLE, "a", old=old, new=new)))
    [change] = changes.itertuples()
    assert (change.change_type, change.old_role if old else None, change.new_role) == (kind, old, new)
    [(result, _reason)] = by_gid(membership_change_results(changes, QUIET, AUDIT_USERS)).values()
    assert result == status


def test_a_membership_back_after_a_snapshot_without_it_is_a_reactivation():
    hist = history(
        snap(T0, "r0", ("r", "workspace", "w1", "member", True), ("q", "workspace", "w1", "member", True),
             ("s", "workspace", "w1", "member", True)),
        snap(T1, "r1", ("s", "workspace", "w1", "member", True)),
        snap(T2, "r2", ("r", "workspace", "w1", "member", True), ("q", "workspace", "w1", "member", False),
             ("s", "workspace", "w1", "member", True), ("n", "workspace", "w1", "member", True)),
    )
    changes = membership_changes(hist)
    assert change_rows(changes[changes["window_end"] == T2]) == {
        ("r", "workspace", "w1", "granted", None, "member"),
        ("r", "workspace", "w1", "reactivated", None, "member"),  # gone at T1, back and active
        ("q", "workspace", "w1", "granted", None, "member"),  # back, but inactive
        ("n", "workspace", "w1", "granted", None, "member"),  # never seen before
    }


def test_a_user_never_seen_active_is_dated_from_the_membership_creation_and_named():
    created = T0 - timedelta(days=30)
    raw = tables(
        users=[{"gid": "dep", "name": "Dee", "email": "dee@acme.example"}],
        workspaces=[{"gid": "w1", "name": "Acme"}],
        workspace_memberships=[{**wm("dep", active=False), "created_at": created}],
        teams=TEAMS,
        team_memberships=[{"gid": "tm1", "team_gid": "t1", "user_gid": "dep"}],
    )
    results = offboarding_results(access_snapshot(raw, T0, "r0"), raw, T0)
    [row] = results.itertuples()
    assert (row.status, row.reason) == (
        "alarm", 'Dee <dee@acme.example> in workspace "Acme": deactivated some time between 2026-01-30 00:00 UTC '
                 '(membership created) and 2026-03-01 00:00 UTC; still member of team "Security"; ' + NO_GRACE)
    assert (row.resource_url, row.name, row.people) == (
        PROFILE + "dep", "Dee <dee@acme.example>", "Dee <dee@acme.example>")


def test_a_grant_whose_guest_or_admin_flag_is_missing_is_unknown_until_acknowledged():
    users = [{"gid": "a"}, {"gid": "n"}, {"gid": "m"}, {"gid": "g"}]
    before = tables(workspace_memberships=[wm("a")], users=users)
    after = tables(workspace_memberships=[wm("a"), {**wm("n"), "is_guest": None}, {**wm("m"), "is_admin": None},
                                          wm("g", guest=True)], users=users)
    hist = history(access_snapshot(before, T0, "r0"), access_snapshot(after, T1, "r1"))
    changes = membership_changes(hist)
    role = dict(zip(changes["user_gid"], changes["new_role"]))
    assert role == {"n": "unknown", "m": "unknown", "g": "guest"}
    by_user = dict(zip(changes["change_id"], changes["user_gid"]))
    results = membership_change_results(changes, hist, after["users"])
    judged = {by_user[gid]: status for gid, status in zip(results["resource_gid"], results["status"])}
    # n may be a guest, m an admin: neither is read as a plain member's grant; g is a guest added.
    assert judged == {"n": "unknown", "m": "unknown", "g": "alarm"}
    reasons = dict(zip(results["resource_gid"], results["reason"]))
    assert "the membership's admin or guest flag is missing" in reasons[changes.loc[changes["user_gid"] == "n",
                                                                                   "change_id"].iloc[0]]
    acknowledged = changes.loc[changes["user_gid"].isin(["n", "m"]), "change_id"].tolist()
    results = membership_change_results(changes, hist, after["users"], acknowledged=acknowledged)
    judged = {by_user[gid]: status for gid, status in zip(results["resource_gid"], results["status"])}
    assert judged == {"n": "ok", "m": "ok", "g": "alarm"}
