"""The audit log through the whole pipeline: an Enterprise world's changes reach
membership_changes with their actor and time; a workspace without the audit log is noted once
and the sync succeeds with every change dated by its snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.simulator import World
from asana_assets_tests.support.pipeline import run_pipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the first run; the worlds are built ten days before


def organisation(enterprise: bool):
    world = World(now=T0 - timedelta(days=10))
    world.enterprise = enterprise
    acme = world.add_workspace("Acme", ["acme.example"])
    admin, uma, vic = (world.add_user(n, f"{n.lower()}@acme.example") for n in ("Admin", "Uma", "Vic"))
    for user in (admin, uma, vic):
        world.add_workspace_membership(user, acme, is_admin=user is admin, at=T0 - timedelta(days=10))
    world.default_user = admin.gid
    world.service_accounts.add(admin.gid)  # only a service account may read the audit log
    web = world.add_team(acme, "Web")
    world.add_project(acme, "Website", team=web, owner=admin)
    return world, acme, admin, uma, vic, web


def changes(directory) -> pd.DataFrame:
    return WarehouseResource(directory=str(directory)).warehouse().read("membership_changes").to_pandas()


def test_an_admin_grant_takes_its_actor_and_time_from_the_audit_log(tmp_path):
    world, acme, admin, uma, vic, web = organisation(enterprise=True)
    assert run_pipeline(world, tmp_path, T0).success  # the baseline snapshot
    granted_at = T0 + timedelta(hours=5, minutes=17)  # set by hand, between the two runs
    world.set_workspace_admin(uma, acme, actor=admin, at=granted_at)
    world.add_team_membership(web, vic, actor=admin, at=T0 + timedelta(hours=6))
    # A change made with no audit trail (the world records none for a direct edit): snapshots only.
    with world.lock:
        membership = world.objects[vic.workspace_memberships[0]]
        membership.is_guest = True
    assert run_pipeline(world, tmp_path, T0 + timedelta(days=1)).success

    found = changes(tmp_path).set_index(["user_gid", "resource_gid", "change_type"])
    grant = found.loc[(uma.gid, acme.gid, "admin_granted")]
    assert grant["actor_gid"] == admin.gid
    assert grant["actor_name"] == "Admin"
    assert grant["occurred_at"] == pd.Timestamp(granted_at)
    assert grant["evidence"] == "audit log"
    team = found.loc[(vic.gid, web.gid, "granted")]
    assert (team["actor_gid"], team["occurred_at"], team["evidence"]) == (
        admin.gid, pd.Timestamp(T0 + timedelta(hours=6)), "audit log")
    guest = found.loc[(vic.gid, acme.gid, "guest_added")]
    assert guest["evidence"] == "snapshots"
    assert pd.isna(guest["actor_gid"]) and pd.isna(guest["occurred_at"])
    # The events are kept; a third run reads only what came after the cursor (no duplicates).
    assert run_pipeline(world, tmp_path, T0 + timedelta(days=2)).success
    events = WarehouseResource(directory=str(tmp_path)).warehouse().read("audit_log_events").to_pandas()
    assert events["gid"].is_unique
    assert set(events["gid"]) == {e["gid"] for e in world.audit_log}


def test_an_event_outside_the_window_is_not_taken(tmp_path):
    """The audit event that made Uma admin before the baseline does not date the later grant."""
    world, acme, admin, uma, _vic, _web = organisation(enterprise=True)
    world.set_workspace_admin(uma, acme, actor=admin, at=T0 - timedelta(days=2))
    world.set_workspace_admin(uma, acme, False, actor=admin, at=T0 - timedelta(days=1))
    assert run_pipeline(world, tmp_path, T0).success
    with world.lock:  # made admin again without an audit event
        world.objects[uma.workspace_memberships[0]].is_admin = True
    assert run_pipeline(world, tmp_path, T0 + timedelta(days=1)).success
    grant = changes(tmp_path).set_index(["user_gid", "change_type"]).loc[(uma.gid, "admin_granted")]
    assert grant["evidence"] == "snapshots" and pd.isna(grant["actor_gid"])


def notes(instance: dg.DagsterInstance, run) -> list[str]:
    return [e.user_message for e in instance.all_logs(run.run_id) if "Audit log not available" in e.user_message]


def test_a_workspace_without_the_audit_log_is_noted_once_and_the_sync_succeeds(tmp_path):
    world, acme, admin, uma, _vic, _web = organisation(enterprise=False)
    instance = dg.DagsterInstance.ephemeral()
    first = run_pipeline(world, tmp_path, T0, instance=instance)
    assert first.success
    [note] = notes(instance, first)
    assert acme.gid in note and "402" in note
    world.set_workspace_admin(uma, acme, actor=admin, at=T0 + timedelta(hours=5))
    run = run_pipeline(world, tmp_path, T0 + timedelta(days=1), instance=instance)
    assert run.success
    assert notes(instance, run) == []  # noted once, not at every sync
    materialization = next(m for m in run.get_asset_materialization_events()
                           if m.asset_key.path == ["asana", "audit_log_events"]).materialization
    assert acme.gid in materialization.metadata["audit_log_unavailable"].value
    assert "402" in materialization.metadata["audit_log_unavailable"].value[acme.gid]
    assert materialization.metadata["dagster/row_count"].value == 0
    grant = changes(tmp_path).set_index(["user_gid", "change_type"]).loc[(uma.gid, "admin_granted")]
    assert grant["evidence"] == "snapshots" and pd.isna(grant["occurred_at"])
    # The plan gains the audit log: it is read from then on, and a later change takes its actor.
    world.enterprise = True
    revoked_at = T0 + timedelta(days=1, hours=3)
    world.set_workspace_admin(uma, acme, False, actor=admin, at=revoked_at)
    assert run_pipeline(world, tmp_path, T0 + timedelta(days=2), instance=instance).success
    revoke = changes(tmp_path).set_index(["user_gid", "change_type"]).loc[(uma.gid, "admin_revoked")]
    assert (revoke["actor_gid"], revoke["occurred_at"], revoke["evidence"]) == (
        admin.gid, pd.Timestamp(revoked_at), "audit log")


def refused(directory) -> list[dict]:
    quarantine = WarehouseResource(directory=str(directory)).warehouse().read("quarantine").to_pylist()
    return [row for row in quarantine if row["table"] == "audit_log_events"]


def quarantine_check(run):
    (evaluation,) = [e for e in run.get_asset_check_evaluations() if e.check_name == "quarantine_is_empty"]
    return evaluation


def test_an_invalid_audit_event_is_quarantined_once_and_the_valid_ones_still_sync(tmp_path):
    world, acme, admin, uma, _vic, _web = organisation(enterprise=True)
    first = run_pipeline(world, tmp_path, T0)
    assert first.success and refused(tmp_path) == [] and quarantine_check(first).passed  # no alarm
    world.set_workspace_admin(uma, acme, actor=admin, at=T0 + timedelta(hours=1))
    # A malformed event, as a broken API would send it: no actor, a time that does not parse.
    broken = {"gid": "9990001", "created_at": "yesterday", "event_type": "user_deprovisioned",
              "event_category": "user_access", "resource": {"resource_type": "user", "gid": uma.gid},
              "details": {}, "context": {}, "workspace": acme.gid}
    world.audit_log.append(broken)
    second = run_pipeline(world, tmp_path, T0 + timedelta(days=1))
    assert second.success
    [row] = refused(tmp_path)
    assert row["gid"] == "9990001"
    assert "actor" in row["error"] and "created_at" in row["error"]  # the reason names both fields
    check = quarantine_check(second)
    assert not check.passed and check.metadata["by_table"].value == {"audit_log_events": 1}
    events = WarehouseResource(directory=str(tmp_path)).warehouse().read("audit_log_events").to_pandas()
    assert set(events["gid"]) == {e["gid"] for e in world.audit_log} - {"9990001"}  # the valid ones synced
    # Edge: the next syncs read it again ("yesterday" sorts after every date, so it is always
    # after the cursor), full and incremental alike: it stays quarantined, once.
    assert run_pipeline(world, tmp_path, T0 + timedelta(days=2)).success
    assert run_pipeline(world, tmp_path, T0 + timedelta(days=3), mode="incremental").success
    assert [r["gid"] for r in refused(tmp_path)] == ["9990001"]


def test_a_refused_audit_event_read_once_stays_through_a_full_sync(tmp_path):
    """The crawl rebuilds the quarantine of the raw tables; the audit log's rows are not its own
    to drop (the event, once behind the cursor, is never read again)."""
    world, acme, admin, uma, _vic, _web = organisation(enterprise=True)
    world.audit_log.append({"gid": "9990002", "created_at": "2026-03-02T08:00:00.000Z", "event_type": "user_invited",
                            "actor": "not an object", "resource": {"gid": uma.gid}, "workspace": acme.gid})
    assert run_pipeline(world, tmp_path, T0).success
    assert [r["gid"] for r in refused(tmp_path)] == ["9990002"]
    world.set_workspace_admin(uma, acme, actor=admin, at=T0 + timedelta(hours=1))  # moves the cursor past it
    assert run_pipeline(world, tmp_path, T0 + timedelta(days=1)).success
    assert run_pipeline(world, tmp_path, T0 + timedelta(days=2)).success
    assert [r["gid"] for r in refused(tmp_path)] == ["9990002"]


def test_team_additions_the_log_cannot_tell_apart_end_unknown_in_the_review(tmp_path):
    """Asana's team_member_added names the team, not the member. One addition between two runs
    takes its member from the snapshots; two additions to one team cannot be told apart: each
    event stays unattributed and the review is unknown, never ok."""
    world, _acme, admin, uma, vic, web = organisation(enterprise=True)
    assert run_pipeline(world, tmp_path, T0).success
    world.add_team_membership(web, uma, actor=admin, at=T0 + timedelta(hours=1))
    assert run_pipeline(world, tmp_path, T0 + timedelta(days=1)).success
    one = changes(tmp_path).set_index(["user_gid", "resource_gid", "change_type"]).loc[(uma.gid, web.gid, "granted")]
    assert (one["actor_gid"], one["occurred_at"], one["evidence"]) == (
        admin.gid, pd.Timestamp(T0 + timedelta(hours=1)), "audit log")
    world.add_team_membership(web, vic, actor=admin, at=T0 + timedelta(days=1, hours=1))
    world.add_team_membership(web, admin, actor=admin, at=T0 + timedelta(days=1, hours=2))
    assert run_pipeline(world, tmp_path, T0 + timedelta(days=2)).success
    latest = changes(tmp_path)
    latest = latest[latest["window_end"] == pd.Timestamp(T0 + timedelta(days=2))]
    found = sorted((row.user_gid if isinstance(row.user_gid, str) else "", row.evidence) for row in latest.itertuples())
    assert found == sorted([(vic.gid, "snapshots"), (admin.gid, "snapshots"), ("", "audit log"), ("", "audit log")])
    results = WarehouseResource(directory=str(tmp_path)).warehouse().read("monitor_results").to_pandas()
    review = results[results["monitor_id"].eq("membership_changes")
                     & results["evaluated_at"].eq(pd.Timestamp(T0 + timedelta(days=2)))]
    unattributed = set(latest.loc[latest["user_gid"].isna(), "change_id"])
    assert set(review.loc[review["status"].eq("unknown"), "resource_gid"]) == unattributed
    assert not review["status"].isin(["ok"]).any()
