"""Membership changes dated by the audit log: which event matches which change, by hand."""

from __future__ import annotations

import pandas as pd

from asana_assets.lib.compliance.attribution import access_events, attribute

W = "100"  # workspace
TEAM = "300"
UMA, ADA, VIC = "11", "12", "14"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def change(change_id, user, rtype, resource, kind, start="2026-03-01T09:00", end="2026-03-02T09:00"):
    return {"change_id": change_id, "user_gid": user, "resource_type": rtype, "resource_gid": resource,
            "change_type": kind, "window_start": ts(start), "window_end": ts(end)}


def event(gid, at, event_type, subject, resource=None, old=None, new=None, actor=ADA, actor_name="Ada"):
    """An audit row; a membership event names no subject (None), as Asana's names only the team."""
    return {"gid": gid, "workspace_gid": W, "created_at": ts(at), "event_type": event_type, "actor_gid": actor,
            "actor_name": actor_name, "resource_gid": resource or subject, "subject_user_gid": subject,
            "old_value": old, "new_value": new}


def attributed(changes, events):
    columns = ["change_id", "user_gid", "resource_type", "resource_gid", "change_type", "window_start", "window_end"]
    changes = pd.DataFrame(changes, columns=columns)
    out = attribute(changes, access_events(pd.DataFrame(events) if events is not None else None, changes))
    # A missing actor is null in the table (NaN in pandas): written None here.
    return {row.change_id: (None if pd.isna(row.actor_gid) else row.actor_gid, row.occurred_at, row.evidence)
            for row in out.itertuples()}


def test_an_admin_grant_in_the_window_gives_actor_and_time():
    found = attributed([change("c1", UMA, "workspace", W, "admin_granted")],
                       [event("e1", "2026-03-01T14:05", "user_workspace_admin_role_changed", UMA, old="member",
                              new="admin")])
    assert found == {"c1": (ADA, ts("2026-03-01T14:05"), "audit log")}


def test_the_window_bounds_start_exclusive_and_end_inclusive():
    changes = [change("c1", UMA, "workspace", W, "deactivated")]
    at_start = event("e1", "2026-03-01T09:00", "user_deprovisioned", UMA)
    at_end = event("e2", "2026-03-02T09:00", "user_deprovisioned", UMA)
    assert attributed(changes, [at_start])["c1"][2] == "snapshots"  # before the window: an earlier change
    assert attributed(changes, [at_end])["c1"] == (ADA, ts("2026-03-02T09:00"), "audit log")


def test_an_event_of_another_kind_user_or_resource_does_not_match():
    changes = [change("c1", UMA, "workspace", W, "admin_granted"), change("c2", UMA, "team", TEAM, "granted")]
    events = [
        event("e1", "2026-03-01T10:00", "user_workspace_admin_role_changed", UMA, old="admin", new="member"),
        event("e2", "2026-03-01T10:00", "user_workspace_admin_role_changed", ADA, old="member", new="admin"),
        event("e3", "2026-03-01T10:00", "team_member_added", None, resource="301"),
        event("e4", "2026-03-01T10:00", "team_member_removed", None, resource=TEAM),
    ]
    assert attributed(changes, events) == {"c1": (None, pd.NaT, "snapshots"), "c2": (None, pd.NaT, "snapshots")}


def test_the_latest_of_several_matching_events_is_taken():
    events = [event("e1", "2026-03-01T10:00", "user_deprovisioned", UMA),
              event("e2", "2026-03-01T18:00", "user_deprovisioned", UMA, actor="13", actor_name="Cy")]
    found = attributed([change("c1", UMA, "workspace", W, "deactivated")], events)
    assert found == {"c1": ("13", ts("2026-03-01T18:00"), "audit log")}


def members(changes, events):
    """The user access_events gives each event (None: unattributed)."""
    columns = ["change_id", "user_gid", "resource_type", "resource_gid", "change_type", "window_start", "window_end"]
    found = access_events(pd.DataFrame(events), pd.DataFrame(changes, columns=columns))
    return {row.event_gid: None if pd.isna(row.user_gid) else row.user_gid for row in found.itertuples()}


def test_a_membership_event_takes_the_user_of_the_one_matching_snapshot_change():
    """The event names the team only; the snapshots show one member added in its window."""
    events = [event("e1", "2026-03-01T14:00", "team_member_added", None, resource=TEAM)]
    changes = [change("c1", UMA, "team", TEAM, "granted")]
    assert members(changes, events) == {"e1": UMA}
    assert attributed(changes, events) == {"c1": (ADA, ts("2026-03-01T14:00"), "audit log")}


def test_a_membership_event_no_single_user_matches_stays_unattributed():
    two_changes = [change("c1", UMA, "team", TEAM, "granted"), change("c2", VIC, "team", TEAM, "granted")]
    one = [event("e1", "2026-03-01T14:00", "team_member_added", None, resource=TEAM)]
    assert members(two_changes, one) == {"e1": None}  # two users joined: which one is it?
    two_events = [*one, event("e2", "2026-03-01T15:00", "team_member_added", None, resource=TEAM)]
    assert members(two_changes[:1], two_events) == {"e1": None, "e2": None}  # one user, two events
    assert attributed(two_changes[:1], two_events) == {"c1": (None, pd.NaT, "snapshots")}
    assert members([], one) == {"e1": None}  # no change at all (granted and removed between syncs)


def test_without_an_audit_log_every_change_is_dated_by_snapshots():
    changes = [change("c1", UMA, "workspace", W, "guest_added")]
    assert attributed(changes, None) == {"c1": (None, pd.NaT, "snapshots")}
    assert attributed([], None) == {}
