"""Who made a membership change and when, from the audit log (Enterprise+).

Snapshots only bound a change to a window. When the workspace's audit log holds an event of
the same kind for the same user and resource inside that window, the change takes the event's
actor and time (the latest such event: the one that left access as the later snapshot saw it)
and its evidence is "audit log"; otherwise it stays dated by its window ("snapshots").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AUDIT_LOG, SNAPSHOTS = "audit log", "snapshots"
# Events about a user's workspace membership: the resource is the user, the workspace is the
# log's; membership events name a team or project as the resource and the user in details.
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
MATCH = ["user_gid", "resource_type", "resource_gid", "change_type"]


def attribute(changes: pd.DataFrame, audit: pd.DataFrame | None) -> pd.DataFrame:
    """``changes`` with actor_gid, actor_name, occurred_at and evidence."""
    candidates = access_events(audit)
    pairs = changes[["change_id", *MATCH, "window_start", "window_end"]].merge(candidates, on=MATCH)
    at = pairs["occurred_at"]
    pairs = pairs[(at > pairs["window_start"]) & (at <= pairs["window_end"])]
    chosen = pairs.sort_values(["occurred_at", "event_gid"]).drop_duplicates("change_id", keep="last")
    out = changes.merge(chosen[["change_id", "actor_gid", "actor_name", "occurred_at"]], on="change_id", how="left")
    out["occurred_at"] = pd.to_datetime(out["occurred_at"], utc=True).astype("datetime64[us, UTC]")
    out["evidence"] = np.where(out["change_id"].isin(chosen["change_id"]), AUDIT_LOG, SNAPSHOTS)
    return out


def access_events(audit: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (audit event, change type it evidences), keyed like a change."""
    columns = [*MATCH, "occurred_at", "event_gid", "actor_gid", "actor_name"]
    if audit is None or audit.empty:
        empty = pd.DataFrame({name: pd.Series(dtype="str") for name in columns})
        return empty.assign(occurred_at=pd.Series(dtype="datetime64[us, UTC]"))
    events = audit.rename(columns={"gid": "event_gid", "created_at": "occurred_at", "subject_user_gid": "user_gid"})
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True).astype("datetime64[us, UTC]")
    admin = events["event_type"].eq(ADMIN_EVENT)
    was, now = _is_admin(events["old_value"]), _is_admin(events["new_value"])
    events["admin_change"] = np.select([admin & now & ~was, admin & was & ~now], ["admin_granted", "admin_revoked"],
                                       "role_changed")
    workspace = events.assign(resource_type="workspace", resource_gid=events["workspace_gid"])
    parts = [
        workspace[admin].assign(change_type=workspace.loc[admin, "admin_change"]),
        *(workspace[workspace["event_type"].eq(kind)].assign(change_type=change)
          for kind, changes in WORKSPACE_EVENTS.items() for change in changes),
        *(events[events["event_type"].eq(kind)].assign(resource_type=rtype, change_type=change)
          for kind, (rtype, change) in MEMBER_EVENTS.items()),
    ]
    found = pd.concat(parts, ignore_index=True)[columns]
    return found.dropna(subset=["user_gid", "resource_gid"])


def _is_admin(values: pd.Series) -> pd.Series:
    """An admin role value (Asana words it e.g. "admin" or "workspace_admin")."""
    return values.fillna("").str.lower().str.contains("admin")
