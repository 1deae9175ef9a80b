"""Access review: who can reach what at each sync, what changed between syncs, and the access
monitors (SOC 2 CC6.2/CC6.3, ISO 27001:2022 5.18).

Asana keeps no history of memberships, so every sync records a snapshot of access and changes
are the differences between consecutive snapshots: each known to lie within a window (after the
previous snapshot, at or before this one). Where the workspace's audit log (Enterprise+) dates a
change it gives the actor and the time, and it also shows what the snapshots cannot: access
granted and taken back again between two syncs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.lib.compliance.attribution import ADMIN_EVENT, AUDIT_LOG, KNOWN_ROLES, MATCH, access_events, attribute
from asana_assets.lib.compliance.names import Directory, profile_url, quoted
from asana_assets.lib.compliance.rule_output import rule_rows, when
from asana_assets.lib.compliance.tickets import group_lists, lookup
from asana_assets.lib.schema import DERIVED_TABLES

ACCESS_COLUMNS = DERIVED_TABLES["user_access"].names
CHANGE_COLUMNS = DERIVED_TABLES["membership_changes"].names
KEY = ["user_gid", "resource_type", "resource_gid"]
PAIR = ["user_gid", "workspace_gid"]

# Most privileged first. Workspace and team roles (admin, member, guest) never compete with
# project roles (owner to viewer) for the same resource, so one order ranks both.
ROLE_ORDER = ("owner", "admin", "editor", "member", "commenter", "viewer", "guest")
UNKNOWN_ROLE = "unknown"  # a workspace or team membership whose admin or guest flag the API left out
# Changes a reviewer must confirm: new admin rights, outsiders let in, accounts coming back.
# Every other change (a plain grant or removal, a deactivation, an admin revoked) is listed for
# the record but is not subject to review.
ALARMING_CHANGES = ("admin_granted", "guest_added", "reactivated")
LISTED_NAMES = 5  # a reason names this many resources of a kind, then counts the rest


def access_snapshot(raw: Mapping[str, pd.DataFrame], snapshot_at: pd.Timestamp, run_id: str) -> pd.DataFrame:
    """One ``user_access`` row per user and workspace, team or project they can reach now."""
    memberships = raw["workspace_memberships"]
    teams = raw["team_memberships"].merge(
        raw["teams"][["gid", "workspace_gid"]].rename(columns={"gid": "team_gid"}), on="team_gid", how="left"
    )
    projects = raw["projects"]
    members, _ = _project_members(raw)
    members = members.merge(
        projects[["gid", "workspace_gid"]].rename(columns={"gid": "project_gid"}), on="project_gid", how="left"
    )
    rows = pd.concat([
        _rows(memberships["user_gid"], "workspace", memberships["workspace_gid"], _role(memberships),
              memberships["workspace_gid"]),
        _rows(teams["user_gid"], "team", teams["team_gid"], _role(teams), teams["workspace_gid"]),
        _rows(members["member_gid"], "project", members["project_gid"], members["access_level"],
              members["workspace_gid"]).assign(via_team_gid=members["via_team_gid"]),
        _rows(projects["owner_gid"], "project", projects["gid"], "owner", projects["workspace_gid"]),
    ], ignore_index=True).dropna(subset=["user_gid"])
    # One row per user and resource: the strongest role wins (an owner listed as editor is owner),
    # at equal strength direct access wins over access through a team, and of several teams the
    # lowest gid (as a number), so the team a row names does not depend on the listings' order.
    rank = rows["role"].map({role: i for i, role in enumerate(ROLE_ORDER)}).fillna(len(ROLE_ORDER))
    team = rows["via_team_gid"].str.zfill(32)
    order = pd.DataFrame({"rank": rank, "via": team.notna(), "team": team})
    rows = rows.loc[order.sort_values(["rank", "via", "team"], kind="stable").index].drop_duplicates(KEY)
    # Guest only where every membership there is a guest's, as the role counts a member over a guest.
    flags = (
        memberships.assign(user_is_active=memberships["is_active"].eq(True),
                           user_is_guest=memberships["is_guest"].astype("boolean"))
        .groupby(PAIR, as_index=False)
        .agg(user_is_active=("user_is_active", "any"), user_is_guest=("user_is_guest", "min"))
    )
    rows = rows.merge(flags, on=PAIR, how="left")
    # No workspace membership in the resource's workspace: the user cannot be active there, and
    # whether the user would be a guest there is unknown (null).
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
    """admin, guest or member; a guest admin is an admin (the admin monitor flags the guest).
    A flag the API left out (null) that could make it admin or guest gives "unknown", never the
    member it may not be."""
    is_admin, is_guest = memberships["is_admin"], memberships["is_guest"]
    role = np.select([is_admin.eq(True), is_admin.isna(), is_guest.eq(True), is_guest.isna()],
                     ["admin", UNKNOWN_ROLE, "guest", UNKNOWN_ROLE], "member")
    return pd.Series(role, index=memberships.index, dtype="str")


def membership_changes(history: pd.DataFrame, audit: pd.DataFrame | None = None) -> pd.DataFrame:
    """``membership_changes`` in each window between consecutive snapshots; the first snapshot is a
    baseline. A change the snapshots show takes its actor and time from the ``audit`` log's
    matching event, when there is one; every other access event the log dates inside a window is
    a change of its own, even when the snapshots around it are equal."""
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
    pairs["window_end"] = pairs["window_end"].astype(history["snapshot_at"].dtype)
    first_seen = history[history["resource_type"].eq("workspace")].groupby(KEY, as_index=False)["snapshot_at"].min()
    pairs = pairs.merge(first_seen, on=KEY, how="left")
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
        # An account back in a workspace it was in before, active, is a reactivation too.
        "reactivated": workspace & is_active & (
            (both & ~was_active) | (pairs["_merge"].eq("right_only") & (pairs["snapshot_at"] < pairs["window_end"]))),
        "admin_granted": admin_granted,
        "admin_revoked": admin_revoked,
        "guest_added": guest_added,
    }
    changes = pd.concat(
        [pairs[mask].assign(change_type=kind) for kind, mask in kinds.items()], ignore_index=True
    ).rename(columns={"role_old": "old_role", "role_new": "new_role"})
    changes["window_start"] = changes["window_end"].map(preceding).astype(history["snapshot_at"].dtype)
    changes["change_id"] = _change_ids(changes)
    events = access_events(audit, changes)
    changes = pd.concat([attribute(changes, events), _logged_only(changes, events, audit, times)], ignore_index=True)
    changes["run_id"] = changes["window_end"].map(run_of).astype("str")
    return changes[CHANGE_COLUMNS].sort_values(
        ["window_end", *KEY, "change_type", "occurred_at", "change_id"], ignore_index=True)


def _logged_only(changes: pd.DataFrame, events: pd.DataFrame, audit: pd.DataFrame | None,
                 times: pd.Series) -> pd.DataFrame:
    """A change per access event (``events``, of the ``audit`` log) that lies in a window (after
    the baseline, at or before the latest snapshot) and dates none of the snapshots' ``changes``:
    access granted and taken back between two syncs, an earlier event of a kind whose latest one
    dates a change (that one ``attribute`` takes), or an event no single user matches (its user
    null). Events at or before the baseline precede the monitoring; those after the latest
    snapshot belong to the next run's window. Only the admin role event gives roles (its old and
    new value); the others leave them null."""
    position = pd.DatetimeIndex(times).searchsorted(pd.DatetimeIndex(events["occurred_at"]), side="left")
    inside = (position > 0) & (position < len(times))
    events = events[inside].assign(window_start=times.array[position[inside] - 1],
                                   window_end=times.array[position[inside]])
    window = [*MATCH, "window_end"]
    taken = events.merge(changes[window], on=window).sort_values(["occurred_at", "event_gid"]).drop_duplicates(
        window, keep="last")
    events = events[~events["event_gid"].isin(taken["event_gid"])]
    # An invitation evidences a grant, or a guest added when a snapshot shows the guest; alone it
    # does not say which: it is one grant, of unknown role (the review monitor cannot clear it).
    events = events[events["change_type"].ne("guest_added")]
    recorded = pd.DataFrame(columns=["gid", "event_type", "old_value", "new_value"]) if audit is None else audit
    said = recorded[recorded["event_type"].eq(ADMIN_EVENT)].drop_duplicates("gid").set_index("gid")
    events = events.assign(old_role=lookup(events["event_gid"], said["old_value"]),
                           new_role=lookup(events["event_gid"], said["new_value"]), evidence=AUDIT_LOG)
    return events.assign(change_id=_change_ids(events, events["event_gid"])).drop(columns="event_gid")


def _change_ids(changes: pd.DataFrame, event_gid: pd.Series | None = None) -> pd.Series:
    """What identifies a change, hashed: the first 16 hex digits of the sha256 of
    ``window_end|user_gid|resource_type|resource_gid|change_type`` (an unknown user empty), the snapshot that detected
    it written ``2026-03-01T09:00:00.000000Z``; a change only the audit log shows appends
    ``|<event gid>`` (one window may hold several such events of a kind). Every later run derives
    the same id, so a reviewer's acknowledgement keeps pointing at it."""
    key = changes["window_end"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for column in [*KEY, "change_type"]:
        key = key + "|" + changes[column].fillna("")
    if event_gid is not None:
        key = key + "|" + event_gid
    return key.map(lambda text: hashlib.sha256(text.encode()).hexdigest()[:16]).astype("str")


def offboarding_results(
    history: pd.DataFrame,
    raw: Mapping[str, pd.DataFrame],
    as_of: pd.Timestamp,
    grace: timedelta = timedelta(days=1),
    names: Directory | None = None,
) -> pd.DataFrame:
    """Users without an active membership of a workspace who still hold a team or project
    membership there, own a live project there or are assignee of an open ticket there (CC6.2,
    ISO 5.18).

    Judged per user and workspace, whatever the user's state elsewhere: a row for every user and
    workspace with a membership now or in any snapshot, or with a holding now, so an alarm lasts
    as long as the holding. The grace runs from the earliest time the data allows the
    deactivation, the last snapshot showing the user active there, so it never restarts nor
    outlasts the real one; a user never seen active there has none. The reason dates the
    deactivation by the data's own times: after that snapshot (or, never seen active, after the
    membership's creation), at or before the first snapshot showing it. A holding whose workspace
    is unknown, and a project member of no recognisable type, alarm on a row of their own (the
    record's type and gid, with why).
    """
    names = names or Directory(raw)
    as_of = _utc(as_of)
    members, odd = _project_members(raw)
    held = _holdings(raw, members, names)
    placed = held[held["workspace_gid"].notna()]
    memberships = raw["workspace_memberships"].assign(active=lambda m: m["is_active"].eq(True))
    now = memberships.groupby(PAIR, as_index=False).agg(active=("active", "any"), created=("created_at", "min"))
    seen = history[history["resource_type"].eq("workspace")].rename(columns={"resource_gid": "workspace_gid"})
    first_seen = seen.groupby(PAIR, as_index=False)["snapshot_at"].min().rename(columns={"snapshot_at": "first_seen"})
    last_active = seen[seen["user_is_active"].eq(True)].groupby(PAIR, as_index=False)["snapshot_at"].max()
    users = (
        pd.concat([now[PAIR], seen[PAIR], placed[PAIR]]).drop_duplicates()
        .merge(now, on=PAIR, how="left").merge(first_seen, on=PAIR, how="left")
        .merge(last_active.rename(columns={"snapshot_at": "last_active"}), on=PAIR, how="left")
        .merge(_describe(placed), on=PAIR, how="left")
    )
    present, active, holds = users["active"].notna(), users["active"].eq(True), users["holdings"].notna()
    times = _times(history)
    lower, created = _utc_column(users["last_active"]), _utc_column(users["created"])
    # Seen inactive first: at the first snapshot showing the user there, else at the first of all.
    upper = _first_snapshot_after(times, lower, as_of).fillna(
        _utc_column(users["first_seen"]).fillna(times.iloc[0] if len(times) else as_of))
    overdue = lower.isna() | (as_of - lower > grace)
    status = np.select([active, ~holds, overdue], ["skip", "ok", "alarm"], "info")
    until = " and " + when(upper)
    left = np.select(
        [present & lower.notna(), present & created.notna(), present, lower.notna()],
        ["deactivated some time between " + when(lower) + " (last seen active)" + until,
         "deactivated some time between " + when(created) + " (membership created)" + until,
         "deactivated at " + when(upper) + " or earlier",
         "removed some time between " + when(lower) + " (last seen active)" + until],
        "without an active membership in any sync since " + when(upper),
    )
    detail = np.where(holds, "; still " + users["holdings"].fillna(""), "; no residual access")
    suffix = np.select(
        [status == "info", (status == "alarm") & lower.isna()],
        ["; grace ends " + when(lower + grace), "; never seen active there, so no grace applies"], "",
    )
    person = names.person(users["user_gid"])
    who = person + " in " + names.workspace(users["workspace_gid"]) + ": "
    reason = who + np.where(status == "skip", "active member", left + detail + suffix)
    judged = rule_rows("user_in_workspace", users["user_gid"] + "/" + users["workspace_gid"], status, reason,
                       profile_url(users["user_gid"]), person, None, person)
    return pd.concat([judged, *_unplaced(held, odd, names)], ignore_index=True).sort_values(
        ["resource_type", "resource_gid"], ignore_index=True)


def _project_members(raw: Mapping[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Project memberships held by users (directly, or through a team: one row per team member,
    with ``via_team_gid``), and those whose member is of no recognisable type.

    A member is a user when Asana says so or, its type missing or unknown, when its gid is the
    gid of a workspace or team member (gids are unique across resource types); a team is never a
    user.
    """
    members = raw["project_memberships"]
    kind, gid = members["member_type"], members["member_gid"]
    team_members = raw["team_memberships"]
    users = pd.concat([raw["workspace_memberships"]["user_gid"], team_members["user_gid"]])
    untyped = ~kind.isin(["user", "team"])
    user = kind.eq("user") | (untyped & gid.isin(users))
    team = kind.eq("team") | (untyped & gid.isin(raw["teams"]["gid"]))
    # A team's access is each of its members' access, through it.
    through = members[team & ~user].merge(
        team_members[["team_gid", "user_gid"]], left_on="member_gid", right_on="team_gid"
    ).assign(via_team_gid=lambda m: m["team_gid"], member_gid=lambda m: m["user_gid"])
    direct = members[user].assign(via_team_gid=None)
    expanded = pd.concat([direct, through[[*members.columns, "via_team_gid"]]], ignore_index=True)
    return expanded, members[~user & ~team]


def _holdings(raw: Mapping[str, pd.DataFrame], members: pd.DataFrame, names: Directory) -> pd.DataFrame:
    """What users hold now (``members``: the users' project memberships), one row per record:
    its workspace (null when the data cannot tell, ``missing`` says why), how a reason names it
    and where it is in Asana."""
    teams = raw["teams"].drop_duplicates("gid").set_index("gid")
    projects = raw["projects"].drop_duplicates("gid").set_index("gid")
    team_members = raw["team_memberships"]
    owned = raw["projects"][~raw["projects"]["archived"].eq(True) & raw["projects"]["owner_gid"].notna()]
    tasks = raw["tasks"]
    tickets = tasks[~tasks["completed"].eq(True) & tasks["assignee_gid"].notna()]
    team, project = team_members["team_gid"], members["project_gid"]
    return pd.concat([
        _held(team_members["user_gid"], lookup(team, teams["workspace_gid"]), 0, "member of", names.team(team),
              "team_membership", team_members["gid"],
              np.where(team.isin(teams.index), "the team has no workspace", "the team is not among the synced teams"),
              names.team_link(team), None),
        _held(members["member_gid"], lookup(project, projects["workspace_gid"]), 1, "member of",
              names.project(project), "project_membership", members["gid"],
              np.where(project.isin(projects.index), "the project has no workspace",
                       "the project is not among the synced projects"),
              names.project_link(project), names.project_name(project)),
        _held(owned["owner_gid"], owned["workspace_gid"], 2, "owner of", names.project(owned["gid"]), "project",
              owned["gid"], "the project has no workspace", names.project_link(owned["gid"]), owned["name"]),
        _held(tickets["assignee_gid"], tickets["workspace_gid"], 3, "assignee of",
              "ticket " + quoted(tickets["name"], tickets["gid"]), "task", tickets["gid"],
              "the task has no workspace", tickets["permalink_url"], None),
    ], ignore_index=True)


def _held(user_gid, workspace_gid, kind, clause, item, record_type, record_gid, missing, link,
          project) -> pd.DataFrame:
    def column(value):
        return value.to_numpy() if isinstance(value, pd.Series) else value

    return pd.DataFrame({
        "user_gid": user_gid.to_numpy(), "workspace_gid": workspace_gid.to_numpy(), "kind": kind, "clause": clause,
        "item": item.to_numpy(), "record_type": record_type, "record_gid": record_gid.to_numpy(), "missing": missing,
        "link": column(link), "project": column(project),
    })


def _describe(placed: pd.DataFrame) -> pd.DataFrame:
    """Per user and workspace, what they still hold, the first few of each kind by name:
    'member of team "A", project "B"; owner of project "C"; assignee of ticket "D"'. Joined by
    Arrow: pandas would call Python once per user and kind."""
    # Teams before projects, then by name: the groups below keep this order.
    listed = placed[[*PAIR, "kind", "clause", "item"]].drop_duplicates().sort_values([*PAIR, "kind", "item"])
    clauses = group_lists(listed, [*PAIR, "clause"], "item")
    items, rest = clauses["item"], pc.subtract(pc.list_value_length(clauses["item"]), LISTED_NAMES)
    shown = pc.binary_join(pc.list_slice(items, 0, LISTED_NAMES), ", ")
    shown = pc.if_else(pc.greater(rest, 0), pc.binary_join_element_wise(
        shown, " and ", rest.cast(pa.string()), " more", ""), shown)  # the first few only: one readable sentence
    holdings = clauses.select(PAIR).append_column("holdings", pc.binary_join_element_wise(
        clauses["clause"].cast(pa.string()), shown, " "))
    per_user = group_lists(holdings, PAIR, "holdings")
    return per_user.set_column(2, "holdings", pc.binary_join(per_user["holdings"], "; ")).to_pandas()


def _unplaced(held: pd.DataFrame, odd: pd.DataFrame, names: Directory) -> list[pd.DataFrame]:
    """Alarms for what cannot be judged: a holding in an unknown workspace, a project member of
    no recognisable type (``odd``)."""
    lost = held[held["workspace_gid"].isna()]
    person = names.person(lost["user_gid"])
    lost = lost.assign(name=person, people=person,
                       reason=person + " is " + lost["clause"] + " " + lost["item"] + ", but "
                       + lost["missing"] + ": whether the user may hold it there cannot be judged")
    project = names.project(odd["project_gid"])
    odd = odd.assign(
        record_type="project_membership", record_gid=odd["gid"], link=names.project_link(odd["project_gid"]),
        name="member " + odd["member_gid"], project=names.project_name(odd["project_gid"]), people=None,
        reason="Member " + odd["member_gid"] + " of " + project + " is of no recognisable type ("
        + odd["member_type"].fillna("none") + "): whether it is an active user cannot be judged",
    )
    rows = pd.concat([lost, odd])
    return [rule_rows(kind, part["record_gid"], "alarm", part["reason"], part["link"], part["name"],
                      part["project"], part["people"]) for kind, part in rows.groupby("record_type")]


def _first_snapshot_after(times: pd.Series, moments: pd.Series, default: pd.Timestamp) -> pd.Series:
    """Per moment, the first snapshot after it, else ``default``; an unknown moment stays unknown."""
    snapshots = pd.DatetimeIndex(times)
    position = snapshots.searchsorted(pd.DatetimeIndex(moments.fillna(default)), side="right")
    after = pd.Series(snapshots.append(pd.DatetimeIndex([default]))[position], index=moments.index)
    return after.where(moments.notna())


def admin_results(raw: Mapping[str, pd.DataFrame], approved_admins: Sequence[str] | None,
                  names: Directory | None = None) -> pd.DataFrame:
    """Workspace admins against the approved list (CC6.3): guests never, others only if listed.

    ``approved_admins`` holds user gids or emails, compared case-insensitively. ``None`` means
    no list is configured: whether an admin is approved cannot be decided (unknown), though a
    guest admin still alarms. A membership whose ``is_active`` or ``is_admin`` the API left out
    (null), the other not false, may be an active admin's: unknown unless the user is approved.
    A reason names the user and the workspaces where the user is an active admin.
    """
    names = names or Directory(raw)
    memberships = raw["workspace_memberships"]
    active, is_admin = memberships["is_active"], memberships["is_admin"]
    admin = active.eq(True) & is_admin.eq(True)
    maybe = ~admin & ~active.eq(False) & ~is_admin.eq(False)
    flags = pd.DataFrame({
        "user_gid": memberships["user_gid"], "admin": admin, "guest": admin & memberships["is_guest"].eq(True),
        "maybe": maybe,
    }).groupby("user_gid", as_index=False).any()
    admin_of = memberships[admin].assign(workspace=lambda m: names.workspace(m["workspace_gid"])).sort_values(
        "workspace").groupby("user_gid")["workspace"].agg(", ".join)
    users = flags.merge(raw["users"][["gid"]].rename(columns={"gid": "user_gid"}), on="user_gid", how="outer")
    listed = _approved(users["user_gid"], raw["users"], approved_admins)
    unconfigured = pd.Series(approved_admins is None, index=users.index)
    admin, maybe = users["admin"].eq(True), users["maybe"].eq(True)
    cases = [~admin & ~maybe, users["guest"].eq(True), listed, unconfigured | ~admin]
    status = np.select(cases, ["skip", "alarm", "ok", "unknown"], "alarm")
    person = names.person(users["user_gid"])
    who = person + ", admin of " + lookup(users["user_gid"], admin_of).fillna("no workspace") + ","
    doubt = np.where(admin, who + " cannot be judged: no approved admin list is configured (set approved_admins "
                     "of the compliance resource)",
                     person + " may be an active workspace admin (the API left the membership's is_active or "
                     "is_admin out) and is not on the approved admin list")
    reason = np.select(
        cases,
        [person + " is not an active workspace admin", who + " is a guest", who + " is on the approved admin list",
         doubt],
        who + " is not on the approved admin list",
    )
    return _results("user", users["user_gid"], status, reason, users["user_gid"], names)


def membership_change_results(
    changes: pd.DataFrame,
    history: pd.DataFrame,
    users: pd.DataFrame,
    acknowledged: Sequence[str] = (),
    approved_admins: Sequence[str] | None = None,
    names: Directory | None = None,
) -> pd.DataFrame:
    """Membership changes for review (CC6.2/CC6.3).

    An admin grant, a guest added or a reactivation is a finding from the run that detects it
    until a reviewer acknowledges it: its ``change_id`` in ``acknowledged``, or, for an admin
    grant, the user (gid or email) on ``approved_admins``. An admin grant revoked again still
    happened: it stays a finding, its reason naming the revocation. A workspace grant of unknown
    role (an invitation only the audit log shows, or a membership whose admin or guest flag the
    API left out: either may have let a guest in), an audit event
    whose member no single snapshot change names, and a workspace role change whose role values
    are not the documented ones are unknown until acknowledged: none is read as the reading that
    passes. Every other change of the latest window is listed, as not subject to review
    (skip). A reason names the user and the workspace, team or project, dates the change by its
    window (between the two snapshots that show it) and, from the audit log, by its actor and time.
    """
    names = names or Directory({"users": users})
    times = _times(history)
    workspaces = history.loc[history["resource_type"].eq("workspace"), "resource_gid"].unique()
    scope = workspaces[0] if len(workspaces) == 1 else None
    if len(times) < 2:
        reason = "Baseline snapshot: membership changes are reported from the next sync on"
        return _results("membership_change", [scope or "baseline"], ["skip"], [reason])
    changes = changes.reset_index(drop=True)  # rows are matched by index below
    workspace = changes["resource_type"].eq("workspace")
    role_unknown = changes["change_type"].eq("granted") & workspace & ~changes["new_role"].isin(KNOWN_ROLES)
    member_unknown = changes["user_gid"].isna()
    value_unknown = (changes["change_type"].eq("role_changed") & workspace
                     & ~(changes["old_role"].isin(KNOWN_ROLES) & changes["new_role"].isin(KNOWN_ROLES)))
    review = changes["change_type"].isin(ALARMING_CHANGES) | role_unknown | member_unknown | value_unknown
    listed = changes.assign(review=review, role_unknown=role_unknown, member_unknown=member_unknown,
                            value_unknown=value_unknown)[review | changes["window_end"].eq(times.iloc[-1])]
    if listed.empty:
        start, end = when(times.iloc[-2:]).tolist()
        reason = f"No membership changed between {start} and {end}"
        return _results("membership_change", [scope or "no_changes"], ["ok"], [reason])
    by_id = listed["change_id"].isin(list(acknowledged))
    by_list = listed["change_type"].eq("admin_granted") & _approved(listed["user_gid"], users, approved_admins)
    # A change not subject to review is skip: info would say "not yet due", which it never becomes.
    cases = [~listed["review"], by_id, by_list, listed["member_unknown"], listed["value_unknown"],
             listed["role_unknown"]]
    status = np.select(cases, ["skip", "ok", "ok", "unknown", "unknown", "unknown"], "alarm")
    old, new = listed["old_role"].fillna("no access"), listed["new_role"].fillna("no access")
    roles = np.select([listed["old_role"].isna() & listed["new_role"].isna(), old.eq(new)],
                      ["", " (" + new + ")"], " (" + old + " -> " + new + ")")
    outcome = np.select(cases, [
        "", "; acknowledged in acknowledged_changes", "; the user is on the approved admin list",
        ("; the audit log does not name the member and no single change between the snapshots matches it: "
         "whose access changed cannot be told: review it, then add its change_id to acknowledged_changes"),
        ("; the audit log's role values are not the documented ones (" + ", ".join(sorted(KNOWN_ROLES))
         + "): whether admin rights changed cannot be told: review it, then add its change_id to "
         "acknowledged_changes"),
        np.where(listed["new_role"].isna(), "; whether it let a guest in cannot be told (the audit log gives no "
                 "role, no snapshot shows the membership)", "; whether it let a guest in cannot be told (the "
                 "membership's admin or guest flag is missing)") + ": review it, then add its change_id to "
        "acknowledged_changes",
    ], "; not acknowledged yet")
    reason = (
        names.person(listed["user_gid"]).fillna("A member the audit log does not name") + ": "
        + listed["change_type"].str.replace("_", " ") + " on "
        + names.resource(listed["resource_type"], listed["resource_gid"]) + roles + ", " + _window(listed)
        + (", " + _logged(listed, names)).fillna("")
        + _revoked_again(listed, changes, names) + outcome
    )
    project = names.project_name(listed["resource_gid"].where(listed["resource_type"].eq("project")))
    return _results("membership_change", listed["change_id"], status, reason, listed["user_gid"], names, project)


def _window(changes: pd.DataFrame) -> pd.Series:
    """``between <window start> and <window end>``: the snapshots around each change."""
    return "between " + when(changes["window_start"]) + " and " + when(changes["window_end"])


def _logged(changes: pd.DataFrame, names: Directory) -> pd.Series:
    """``by <actor> at <time> (audit log)`` for a change the audit log dates, else null. The actor
    is named as the sync knows the user, else as the log names it."""
    actor = (lookup(changes["actor_gid"].astype("str"), names.labels).fillna(changes["actor_name"])
             .fillna(names.person(changes["actor_gid"])).fillna("an actor the audit log does not name"))
    return ("by " + actor + " at " + when(changes["occurred_at"]) + " (audit log)").where(
        changes["occurred_at"].notna())


def _revoked_again(listed: pd.DataFrame, changes: pd.DataFrame, names: Directory) -> pd.Series:
    """Per admin grant of ``listed``, ``; revoked again <when>``: the first admin revocation of the
    user in the workspace after it among ``changes`` (each placed at its audit time, else at the
    end of its window); empty for other changes and grants still in force."""
    def moments(frame):
        return frame.assign(at=frame["occurred_at"].fillna(frame["window_end"]), row=frame.index)

    grants = moments(listed[listed["change_type"].eq("admin_granted")])
    revokes = moments(changes[changes["change_type"].eq("admin_revoked")])
    revokes = revokes.assign(text="; revoked again " + _logged(revokes, names).fillna(_window(revokes)))
    paired = pd.merge_asof(grants[["user_gid", "resource_gid", "at", "row"]].sort_values("at"),
                           revokes[["user_gid", "resource_gid", "at", "text"]].sort_values("at"), on="at",
                           by=["user_gid", "resource_gid"], direction="forward", allow_exact_matches=False)
    return paired.set_index("row")["text"].reindex(listed.index).fillna("")


def _approved(user_gid: pd.Series, users: pd.DataFrame, approved_admins: Sequence[str] | None) -> pd.Series:
    """Whether each user is on the approved admin list, by gid or email, case-insensitively."""
    approved = {entry.casefold() for entry in approved_admins or ()}
    emails = lookup(user_gid, users.drop_duplicates("gid").set_index("gid")["email"])
    return user_gid.str.casefold().isin(approved) | emails.str.casefold().isin(approved)


def _results(resource_type: str, resource_gid, status, reason, user_gid: pd.Series | None = None,
             names: Directory | None = None, project=None) -> pd.DataFrame:
    """A rule output frame about users (``user_gid``, aligned with the rows), by gid: each row
    links to the user's profile and names the user."""
    if user_gid is None:
        return rule_rows(resource_type, resource_gid, status, reason).sort_values("resource_gid", ignore_index=True)
    person = names.person(user_gid)
    return rule_rows(resource_type, resource_gid, status, reason, profile_url(user_gid), person, project,
                     person).sort_values("resource_gid", ignore_index=True)


def _times(history: pd.DataFrame) -> pd.Series:
    """The snapshot times, oldest first."""
    return pd.Series(history["snapshot_at"].unique()).sort_values(ignore_index=True)


def _neighbour(times: pd.Series, step: int) -> pd.Series:
    """Each snapshot time mapped to the next (step -1) or the previous (step 1) one."""
    return pd.Series(times.shift(step).array, index=pd.DatetimeIndex(times))


def _utc_column(times: pd.Series) -> pd.Series:
    """A column of timestamps in UTC at the warehouse's resolution, whatever a merge left it as."""
    return pd.to_datetime(times, utc=True).astype("datetime64[us, UTC]")


def _utc(ts) -> pd.Timestamp:
    """A timestamp in UTC at the warehouse's microsecond resolution; naive means UTC."""
    ts = pd.Timestamp(ts)
    return (ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")).as_unit("us")


