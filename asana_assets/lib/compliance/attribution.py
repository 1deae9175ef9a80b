"""Who made a membership change and when, from the audit log (Enterprise+).

Snapshots only bound a change to a window. When the workspace's audit log holds an event of
the same kind for the same user and resource inside that window, the change takes the event's
actor and time (the latest such event: the one that left access as the later snapshot saw it)
and its evidence is "audit log"; otherwise it stays dated by its window ("snapshots").

A user or role event names its user as its resource. A team or project membership event names
only the team or project: its user is the one of the snapshot change of its kind and resource
in its window, when that window holds exactly one such change and one such event; otherwise no
single user matches and the event stays unattributed (null user), which the review monitor
reports as unknown rather than guess.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from asana_assets.lib.compliance.tickets import lookup

AUDIT_LOG, SNAPSHOTS = "audit log", "snapshots"
# Events about a user's workspace membership: the resource is the user, the workspace is the
# log's; membership events name a team or project as the resource.
WORKSPACE_EVENTS = {
    "user_invited": ("granted", "guest_added"),
    "user_deprovisioned": ("deactivated",),
    "user_reprovisioned": ("reactivated",),
}
MEMBER_EVENTS = {
    "team_member_added": ("team", "granted"),
    "team_member_removed": ("team", "revoked"),
    "project_member_added": ("project", "granted"),
    "project_member_removed": ("project", "revoked"),
}
ADMIN_EVENT = "user_workspace_admin_role_changed"
# The role values the spec documents (a role's base_role_type), compared exactly: any other
# value, or none, leaves the event's reading of admin rights unknown.
ADMIN_ROLES = frozenset({"admin", "super_admin"})
KNOWN_ROLES = ADMIN_ROLES | {"guest", "member"}
MATCH = ["user_gid", "resource_type", "resource_gid", "change_type"]


def attribute(changes: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """``changes`` with actor_gid, actor_name, occurred_at and evidence, from ``events``
    (``access_events``)."""
    pairs = changes[["change_id", *MATCH, "window_start", "window_end"]].merge(
        events[events["user_gid"].notna()], on=MATCH)
    at = pairs["occurred_at"]
    pairs = pairs[(at > pairs["window_start"]) & (at <= pairs["window_end"])]
    chosen = pairs.sort_values(["occurred_at", "event_gid"]).drop_duplicates("change_id", keep="last")
    out = changes.merge(chosen[["change_id", "actor_gid", "actor_name", "occurred_at"]], on="change_id", how="left")
    out["occurred_at"] = pd.to_datetime(out["occurred_at"], utc=True).astype("datetime64[us, UTC]")
    out["evidence"] = np.where(out["change_id"].isin(chosen["change_id"]), AUDIT_LOG, SNAPSHOTS)
    return out


def access_events(audit: pd.DataFrame | None, changes: pd.DataFrame) -> pd.DataFrame:
    """One row per (audit event, change type it evidences), keyed like a change; the user of an
    event that names none is found from the snapshot ``changes`` where a single one matches."""
    columns = [*MATCH, "occurred_at", "event_gid", "actor_gid", "actor_name"]
    if audit is None or audit.empty:
        empty = pd.DataFrame({name: pd.Series(dtype="str") for name in columns})
        return empty.assign(occurred_at=pd.Series(dtype="datetime64[us, UTC]"))
    events = audit.rename(columns={"gid": "event_gid", "created_at": "occurred_at", "subject_user_gid": "user_gid"})
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True).astype("datetime64[us, UTC]")
    admin = events["event_type"].eq(ADMIN_EVENT)
    known = events["old_value"].isin(KNOWN_ROLES) & events["new_value"].isin(KNOWN_ROLES)
    was, now = events["old_value"].isin(ADMIN_ROLES), events["new_value"].isin(ADMIN_ROLES)
    events["admin_change"] = np.select([admin & known & now & ~was, admin & known & was & ~now],
                                       ["admin_granted", "admin_revoked"], "role_changed")
    workspace = events.assign(resource_type="workspace", resource_gid=events["workspace_gid"])
    parts = [
        workspace[admin].assign(change_type=workspace.loc[admin, "admin_change"]),
        *(workspace[workspace["event_type"].eq(kind)].assign(change_type=change)
          for kind, changes_of in WORKSPACE_EVENTS.items() for change in changes_of),
        *(events[events["event_type"].eq(kind)].assign(resource_type=rtype, change_type=change)
          for kind, (rtype, change) in MEMBER_EVENTS.items()),
    ]
    found = pd.concat(parts, ignore_index=True)[columns].dropna(subset=["resource_gid"])
    return _named(found, changes)


def _named(events: pd.DataFrame, changes: pd.DataFrame) -> pd.DataFrame:
    """``events`` where an event without a user takes the user of the one snapshot change of its
    kind and resource whose window holds it, when that window holds no other such event."""
    kind = MATCH[1:]
    window = [*kind, "window_end"]
    unnamed = events.loc[events["user_gid"].isna(), ["event_gid", *kind, "occurred_at"]]
    pairs = unnamed.merge(changes[[*MATCH, "window_start", "window_end"]], on=kind)
    at = pairs["occurred_at"]
    pairs = pairs[(at > pairs["window_start"]) & (at <= pairs["window_end"])]
    per_window = pairs.groupby(window)
    single = per_window["event_gid"].transform("nunique").eq(1) & per_window["user_gid"].transform("nunique").eq(1)
    users = pairs[single].drop_duplicates("event_gid").set_index("event_gid")["user_gid"]
    return events.assign(user_gid=events["user_gid"].fillna(lookup(events["event_gid"], users)))
