"""Access review: who can reach what at each sync, what changed between syncs, and the access
monitors (SOC 2 CC6.2/CC6.3, ISO 27001:2022 5.18).

Asana keeps no history of memberships, so every sync records a snapshot of access and changes
are the differences between consecutive snapshots. A change is therefore known to lie within a
window (after the previous snapshot, at or before this one), never at an exact time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import numpy as np
import pandas as pd

from asana_assets.lib.compliance.rule_output import rule_rows, when
from asana_assets.lib.schema import DERIVED_TABLES

ACCESS_COLUMNS = DERIVED_TABLES["user_access"].names
CHANGE_COLUMNS = DERIVED_TABLES["membership_changes"].names
KEY = ["user_gid", "resource_type", "resource_gid"]

# Most privileged first. Workspace and team roles (admin, member, guest) never compete with
# project roles (owner to viewer) for the same resource, so one order ranks both.
ROLE_ORDER = ("owner", "admin", "editor", "member", "commenter", "viewer", "guest")
# Changes a reviewer must confirm: new admin rights, outsiders let in, accounts coming back.
ALARMING_CHANGES = ("admin_granted", "guest_added", "reactivated")
LISTED_NAMES = 5  # a reason names this many resources, then counts the rest


def access_snapshot(raw: Mapping[str, pd.DataFrame], snapshot_at: pd.Timestamp, run_id: str) -> pd.DataFrame:
    """One ``user_access`` row per user and workspace, team or project they can reach now."""
    memberships = raw["workspace_memberships"]
    teams = raw["team_memberships"].merge(
        raw["teams"][["gid", "workspace_gid"]].rename(columns={"gid": "team_gid"}), on="team_gid", how="left"
    )
    projects = raw["projects"]
    members = raw["project_memberships"]
    members = members[members["member_type"].eq("user")].merge(
        projects[["gid", "workspace_gid"]].rename(columns={"gid": "project_gid"}), on="project_gid", how="left"
    )
    rows = pd.concat([
        _rows(memberships["user_gid"], "workspace", memberships["workspace_gid"], _role(memberships),
              memberships["workspace_gid"]),
        _rows(teams["user_gid"], "team", teams["team_gid"], _role(teams), teams["workspace_gid"]),
        _rows(members["member_gid"], "project", members["project_gid"], members["access_level"],
              members["workspace_gid"]),
        _rows(projects["owner_gid"], "project", projects["gid"], "owner", projects["workspace_gid"]),
    ], ignore_index=True).dropna(subset=["user_gid"])
    # One row per user and resource: the strongest role wins (an owner listed as editor is owner).
    rank = rows["role"].map({role: i for i, role in enumerate(ROLE_ORDER)}).fillna(len(ROLE_ORDER))
    rows = rows.loc[rank.sort_values(kind="stable").index].drop_duplicates(KEY)
    active = (
        memberships.assign(user_is_active=memberships["is_active"].eq(True))
        .groupby(["user_gid", "workspace_gid"], as_index=False)["user_is_active"].any()
    )
    rows = rows.merge(active, on=["user_gid", "workspace_gid"], how="left")
    # No workspace membership in the resource's workspace: the user cannot be active there.
    rows["user_is_active"] = rows["user_is_active"].eq(True)
    rows["snapshot_at"] = _utc(snapshot_at)
    rows["run_id"] = run_id
    return rows[ACCESS_COLUMNS].sort_values(KEY, ignore_index=True)


def _rows(
    user_gid: pd.Series, resource_type: str, resource_gid: pd.Series, role: pd.Series | str, workspace_gid: pd.Series
) -> pd.DataFrame:
    return pd.DataFrame({
        "user_gid": user_gid, "resource_type": resource_type, "resource_gid": resource_gid,
        "role": role, "workspace_gid": workspace_gid,
    })


def _role(memberships: pd.DataFrame) -> pd.Series:
    """admin, guest or member; a guest admin is an admin (the admin monitor flags the guest)."""
    role = np.select(
        [memberships["is_admin"].eq(True), memberships["is_guest"].eq(True)], ["admin", "guest"], "member"
    )
    return pd.Series(role, index=memberships.index, dtype="str")


def membership_changes(history: pd.DataFrame) -> pd.DataFrame:
    """``membership_changes`` between each pair of consecutive snapshots; the first is a baseline."""
    times = _times(history)
    if len(times) < 2:
        return DERIVED_TABLES["membership_changes"].empty_table().to_pandas()
    following, preceding = _neighbour(times, -1), _neighbour(times, 1)
    run_of = history.drop_duplicates("snapshot_at").set_index("snapshot_at")["run_id"]
    rows = history[[*KEY, "role", "user_is_active"]]
    # A snapshot's rows are the "before" of the window ending at the next snapshot and the
    # "after" of the window ending at itself.
    before = rows.assign(window_end=history["snapshot_at"].map(following)).dropna(subset=["window_end"])
    after = rows.assign(window_end=history["snapshot_at"])[history["snapshot_at"].map(preceding).notna()]
    pairs = before.merge(after, on=["window_end", *KEY], how="outer", suffixes=("_old", "_new"), indicator=True)
    old, new = pairs["role_old"].fillna(""), pairs["role_new"].fillna("")
    both = pairs["_merge"].eq("both")
    workspace = pairs["resource_type"].eq("workspace")
    was_active, is_active = pairs["user_is_active_old"].eq(True), pairs["user_is_active_new"].eq(True)
    # Admin and guest changes count from and to "no membership" too: an account added as admin
    # is an admin grant, an admin's membership removed an admin revocation.
    admin_granted = workspace & new.eq("admin") & ~old.eq("admin")
    admin_revoked = workspace & old.eq("admin") & ~new.eq("admin")
    guest_added = workspace & new.eq("guest") & ~old.eq("guest")
    # A workspace role change no specific type describes (guest to member) is still reported.
    role_changed = both & old.ne(new) & ~(admin_granted | admin_revoked | guest_added)
    kinds = {
        "granted": pairs["_merge"].eq("right_only"),
        "revoked": pairs["_merge"].eq("left_only"),
        "role_changed": role_changed,
        "deactivated": workspace & both & was_active & ~is_active,
        "reactivated": workspace & both & ~was_active & is_active,
        "admin_granted": admin_granted,
        "admin_revoked": admin_revoked,
        "guest_added": guest_added,
    }
    changes = pd.concat(
        [pairs[mask].assign(change_type=kind) for kind, mask in kinds.items()], ignore_index=True
    ).rename(columns={"role_old": "old_role", "role_new": "new_role"})
    changes["window_end"] = changes["window_end"].astype(history["snapshot_at"].dtype)
    changes["window_start"] = changes["window_end"].map(preceding).astype(history["snapshot_at"].dtype)
    changes["run_id"] = changes["window_end"].map(run_of).astype("str")
    changes["change_id"] = _change_ids(changes)
    return changes[CHANGE_COLUMNS].sort_values(["window_end", *KEY, "change_type"], ignore_index=True)


def _change_ids(changes: pd.DataFrame) -> pd.Series:
    """A hash of what identifies a change, so re-deriving the table gives the same ids."""
    key = changes["window_end"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for column in [*KEY, "change_type"]:
        key = key + "|" + changes[column]
    return pd.util.hash_pandas_object(key, index=False).map("{:016x}".format).astype("str")


def offboarding_results(
    history: pd.DataFrame,
    raw: Mapping[str, pd.DataFrame],
    as_of: pd.Timestamp,
    grace: timedelta = timedelta(days=1),
) -> pd.DataFrame:
    """Users inactive or gone who still hold access or open work (CC6.2, ISO 5.18).

    One row per user in the latest snapshot or the one before. The grace runs from the first
    snapshot that showed the user inactive or gone; a user already inactive in the very first
    snapshot has had no grace observed, and leaving access behind is not excused by it.
    """
    if history.empty:
        return _results("user", [], [], [])
    times = _times(history)
    users = _user_states(history, times)
    users["holdings"] = _holdings(raw, users.index[~users["active"]])
    held = users["holdings"].notna()
    at_baseline = users["since"].eq(times.iloc[0])
    overdue = at_baseline | (_utc(as_of) - users["since"] > grace)
    status = np.select([users["active"], ~held, overdue], ["skip", "ok", "alarm"], "info")
    down = np.where(users["present"], "Inactive since ", "Removed from the workspace since ")
    suffix = np.select(
        [status == "info", (status == "alarm") & at_baseline],
        ["; grace ends " + when(users["since"] + grace), "; already inactive at the first snapshot"],
        "",
    )
    detail = np.where(held, "; still " + users["holdings"].fillna(""), "; no residual access")
    reason = np.where(status == "skip", "Active member", down + when(users["since"]) + detail + suffix)
    return _results("user", users.index, status, reason)


def _user_states(history: pd.DataFrame, times: pd.Series) -> pd.DataFrame:
    """Users of the last two snapshots: present and active in the latest, and since when they
    have been inactive or gone (the snapshot after the last one showing them active, else the
    first showing them at all)."""
    states = history.groupby(["snapshot_at", "user_gid"], as_index=False)["user_is_active"].any()
    recent = states["snapshot_at"].isin(times.iloc[-2:])
    users = pd.DataFrame(index=pd.Index(states.loc[recent, "user_gid"].unique(), name="user_gid"))
    latest = states[states["snapshot_at"].eq(times.iloc[-1])]
    users["present"] = users.index.isin(latest["user_gid"])
    users["active"] = users.index.isin(latest.loc[latest["user_is_active"], "user_gid"])
    last_active = states[states["user_is_active"]].groupby("user_gid")["snapshot_at"].max()
    first_seen = states.groupby("user_gid")["snapshot_at"].min()
    users["since"] = last_active.map(_neighbour(times, -1)).combine_first(first_seen)
    return users


def _holdings(raw: Mapping[str, pd.DataFrame], users: pd.Index) -> pd.Series:
    """Per user, what they still hold: "member of team A, project B; owner of project C; ..."."""
    teams = raw["team_memberships"].merge(
        raw["teams"][["gid", "name"]].rename(columns={"gid": "team_gid"}), on="team_gid", how="left"
    )
    projects = raw["projects"]
    names = projects.set_index("gid")["name"]
    members = raw["project_memberships"]
    members = members[members["member_type"].eq("user")]
    owned = projects[~projects["archived"].eq(True)]
    tasks = raw["tasks"]
    open_tickets = tasks[~tasks["completed"].eq(True)].groupby("assignee_gid").size()
    held = pd.concat([
        _held(teams["user_gid"], "member of", "team " + teams["name"].fillna(teams["team_gid"])),
        _held(members["member_gid"], "member of",
              "project " + members["project_gid"].map(names).fillna(members["project_gid"])),
        _held(owned["owner_gid"], "owner of", "project " + owned["name"].fillna(owned["gid"])),
        _held(open_tickets.index.to_series(), "assignee of",
              open_tickets.astype(str) + np.where(open_tickets.eq(1), " open ticket", " open tickets")),
    ], keys=range(4), names=["kind", None]).reset_index(level="kind")
    # Teams before projects, then by name: the groups below keep this order.
    held = held[held["user_gid"].isin(users)].drop_duplicates().sort_values(["user_gid", "kind", "item"])
    clauses = held.groupby(["user_gid", "clause"], sort=False, as_index=False)["item"].agg(_listing)
    clauses["text"] = clauses["clause"] + " " + clauses["item"]
    return clauses.groupby("user_gid", sort=False)["text"].agg("; ".join)


def _held(user_gid: pd.Series, clause: str, item: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"user_gid": user_gid.to_numpy(), "clause": clause, "item": item.to_numpy()})


def _listing(items: pd.Series) -> str:
    """The first few names only, so a reason stays one readable sentence."""
    names = items.tolist()
    rest = len(names) - LISTED_NAMES
    return ", ".join(names[:LISTED_NAMES]) + (f" and {rest} more" if rest > 0 else "")


def admin_results(raw: Mapping[str, pd.DataFrame], approved_admins: Sequence[str] | None) -> pd.DataFrame:
    """Workspace admins against the approved list (CC6.3): guests never, others only if listed.

    ``approved_admins`` holds user gids or emails, compared case-insensitively. ``None`` means
    no list is configured: admins are reported for review, not judged.
    """
    memberships = raw["workspace_memberships"]
    admin = memberships["is_active"].eq(True) & memberships["is_admin"].eq(True)
    flags = pd.DataFrame({
        "user_gid": memberships["user_gid"], "admin": admin, "guest": admin & memberships["is_guest"].eq(True),
    }).groupby("user_gid", as_index=False).any()
    users = raw["users"][["gid", "name", "email"]].rename(columns={"gid": "user_gid"})
    users = flags.merge(users, on="user_gid", how="outer")
    approved = {entry.casefold() for entry in approved_admins or ()}
    listed = users["user_gid"].str.casefold().isin(approved) | users["email"].str.casefold().isin(approved)
    unconfigured = pd.Series(approved_admins is None, index=users.index)
    cases = [~users["admin"].eq(True), users["guest"].eq(True), unconfigured, listed]
    status = np.select(cases, ["skip", "alarm", "info", "ok"], "alarm")
    who = "Workspace admin " + users["email"].fillna(users["name"]).fillna(users["user_gid"])
    reason = np.select(
        cases,
        ["Not an active workspace admin", who + " is a guest", who + "; no approved admin list configured",
         who + " is on the approved admin list"],
        who + " is not on the approved admin list",
    )
    return _results("user", users["user_gid"], status, reason)


def membership_change_results(changes: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The latest window's membership changes for review (CC6.2/CC6.3): admin grants, guests
    and reactivations alarm, every other change is information."""
    times = _times(history)
    workspaces = history.loc[history["resource_type"].eq("workspace"), "resource_gid"].unique()
    scope = workspaces[0] if len(workspaces) == 1 else None
    if len(times) < 2:
        reason = "Baseline snapshot: membership changes are reported from the next sync on"
        return _results("membership_change", [scope or "baseline"], ["skip"], [reason])
    start, end = when(times.iloc[-2:]).tolist()
    latest = changes[changes["window_end"].eq(times.iloc[-1])]
    if latest.empty:
        reason = f"No membership changed between {start} and {end}"
        return _results("membership_change", [scope or "no_changes"], ["ok"], [reason])
    status = np.where(latest["change_type"].isin(ALARMING_CHANGES), "alarm", "info")
    old, new = latest["old_role"].fillna("no access"), latest["new_role"].fillna("no access")
    roles = np.where(old.eq(new), "(" + new + ")", "(" + old + " -> " + new + ")")
    reason = (
        "User " + latest["user_gid"] + ": " + latest["change_type"].str.replace("_", " ") + " on "
        + latest["resource_type"] + " " + latest["resource_gid"] + " " + roles
        + f", between {start} and {end}"
    )
    return _results("membership_change", latest["change_id"], status, reason)


def _results(resource_type: str, resource_gid, status, reason) -> pd.DataFrame:
    """A rule output frame, by gid. No row links anywhere: user profiles are not in the data."""
    return rule_rows(resource_type, resource_gid, status, reason).sort_values("resource_gid", ignore_index=True)


def _times(history: pd.DataFrame) -> pd.Series:
    """The snapshot times, oldest first."""
    return pd.Series(history["snapshot_at"].unique()).sort_values(ignore_index=True)


def _neighbour(times: pd.Series, step: int) -> pd.Series:
    """Each snapshot time mapped to the next (step -1) or the previous (step 1) one."""
    return pd.Series(times.shift(step).array, index=pd.DatetimeIndex(times))


def _utc(ts) -> pd.Timestamp:
    """A timestamp in UTC at the warehouse's microsecond resolution; naive means UTC."""
    ts = pd.Timestamp(ts)
    return (ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")).as_unit("us")


