"""The access monitors through the whole pipeline, over several runs of small hand-built
organisations changed between the runs: offboarding judged per user and workspace for as long
as the holding lasts, and membership changes that stay findings until a reviewer acknowledges
them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pandas as pd

from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import World
from asana_assets_tests.support.pipeline import results_of, run_pipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the first run; the worlds are built ten days before


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def judged(world: World, directory, as_of: datetime, monitor_id: str, **compliance) -> dict[str, tuple[str, str]]:
    """Run the pipeline as of ``as_of``; one monitor's results, resource gid -> (status, reason)."""
    run = run_pipeline(world, directory, as_of, **compliance)
    assert run.success
    results = results_of(run, directory)
    mine = results[results["monitor_id"] == monitor_id]
    assert mine["resource_gid"].is_unique
    return {row.resource_gid: (row.status, row.reason) for row in mine.itertuples()}


def remove_from_workspace(world: World, user, workspace) -> None:
    """A member leaves a workspace that keeps no inactive membership: the membership is gone."""
    with world.lock:
        for gid in [g for g in user.workspace_memberships if world.objects[g].workspace == workspace.gid]:
            world.objects[workspace.gid].memberships.remove(gid)
            user.workspace_memberships.remove(gid)
            del world.objects[gid]


def test_a_user_deactivated_in_one_workspace_alarms_there_only(tmp_path):
    world = World(now=T0 - timedelta(days=10))
    acme, labs = world.add_workspace("Acme", ["acme.example"]), world.add_workspace("Acme Labs", ["acme.example"])
    admin, uma = world.add_user("Admin", "admin@acme.example"), world.add_user("Uma", "uma@acme.example")
    for workspace in (acme, labs):
        world.add_workspace_membership(admin, workspace, is_admin=True)
        world.add_workspace_membership(uma, workspace)
    world.default_user = admin.gid
    web = world.add_team(acme, "Web")
    world.add_team_membership(web, uma)
    world.add_project(acme, "Website", team=web, owner=uma)
    platform = world.add_team(labs, "Platform")
    world.add_team_membership(platform, uma)
    infra = world.add_project(labs, "Infra", team=platform, owner=uma)
    world.create_task("Patch hosts", actor=admin, project=infra, section=world.add_section(infra, "To Do"),
                      assignee=uma, at=T0 - timedelta(days=5))
    in_acme, in_labs = f"{uma.gid}/{acme.gid}", f"{uma.gid}/{labs.gid}"

    uma_in = 'Uma <uma@acme.example> in workspace "Acme'
    first = judged(world, tmp_path, day(0), "offboarding_access_removed")
    assert first[in_acme] == ("skip", f'{uma_in}": active member')
    assert first[in_labs] == ("skip", f'{uma_in} Labs": active member')
    world.deactivate_user(uma, labs)
    second = judged(world, tmp_path, day(2), "offboarding_access_removed")
    # Still active in Acme, so what Uma holds there is hers; in Labs it is residual access.
    assert second[in_acme] == ("skip", f'{uma_in}": active member')
    assert second[in_labs] == (
        "alarm", (f'{uma_in} Labs": deactivated some time between 2026-03-02 09:00 UTC (last seen active) and '
                 '2026-03-04 09:00 UTC; still member of team "Platform"; owner of project "Infra"; '
                 'assignee of ticket "Patch hosts"'))
    assert {gid for gid, (status, _) in second.items() if status == "alarm"} == {in_labs}


LEE_IN_ACME = 'Lee <lee@acme.example> in workspace "Acme": '


class Helpdesk:
    """A workspace with an admin, Lee (who is about to leave) and Kim; Lee has an open ticket."""

    def __init__(self) -> None:
        world = self.world = World(now=T0 - timedelta(days=10))
        self.ws = world.add_workspace("Acme", ["acme.example"])
        self.admin, self.lee, self.kim = (
            world.add_user(name, f"{name.lower()}@acme.example") for name in ("Admin", "Lee", "Kim"))
        for user in (self.admin, self.lee, self.kim):
            world.add_workspace_membership(user, self.ws, is_admin=user is self.admin)
        world.default_user = self.admin.gid
        project = world.add_project(self.ws, "IT Helpdesk", owner=self.admin)
        section = world.add_section(project, "New")
        self.ticket = world.create_task("Rotate keys", actor=self.admin, project=project, section=section,
                                        assignee=self.lee, at=T0 - timedelta(days=5))


def test_a_leaver_alarms_in_every_run_while_the_open_ticket_stays_assigned(tmp_path):
    org = Helpdesk()
    lee = f"{org.lee.gid}/{org.ws.gid}"
    assert judged(org.world, tmp_path, day(0), "offboarding_access_removed")[lee] == (
        "skip", f"{LEE_IN_ACME}active member")
    remove_from_workspace(org.world, org.lee, org.ws)
    # Gone between the first run and the second, and never back: the window stays the same.
    window = f"{LEE_IN_ACME}removed some time between 2026-03-02 09:00 UTC (last seen active) and 2026-03-04 09:00 UTC"
    for as_of in (day(2), day(4)):
        assert judged(org.world, tmp_path, as_of, "offboarding_access_removed")[lee] == (
            "alarm", f'{window}; still assignee of ticket "Rotate keys"')
    org.world.update_task(org.ticket, assignee=org.kim.gid, actor=org.admin, at=day(4.5))
    assert judged(org.world, tmp_path, day(5), "offboarding_access_removed")[lee] == (
        "ok", f"{window}; no residual access")


def test_a_deactivated_leaver_is_within_the_grace_then_alarms(tmp_path):
    org = Helpdesk()
    lee = f"{org.lee.gid}/{org.ws.gid}"
    judged(org.world, tmp_path, day(0), "offboarding_access_removed")
    org.world.deactivate_user(org.lee, org.ws)
    window = (f"{LEE_IN_ACME}deactivated some time between 2026-03-02 09:00 UTC (last seen active) and "
              '2026-03-02 21:00 UTC; still assignee of ticket "Rotate keys"')
    # Twelve hours after the last run that saw Lee active: inside the grace of a day.
    assert judged(org.world, tmp_path, day(0.5), "offboarding_access_removed")[lee] == (
        "info", f"{window}; grace ends 2026-03-03 09:00 UTC")
    assert judged(org.world, tmp_path, day(1.5), "offboarding_access_removed")[lee] == ("alarm", window)


def change_id(window_end: datetime, user: str, workspace: str, change_type: str) -> str:
    """The documented formula, written out: sha256 of window_end|user|resource type|resource|change type."""
    text = f"{window_end:%Y-%m-%dT%H:%M:%S.%f}Z|{user}|workspace|{workspace}|{change_type}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_membership_findings_alarm_until_acknowledged(tmp_path):
    org = Helpdesk()
    world, ws = org.world, org.ws
    dana = world.add_user("Dana", "dana@acme.example")
    world.add_workspace_membership(dana, ws)
    world.deactivate_user(dana, ws)  # left long ago
    assert judged(world, tmp_path, day(0), "membership_changes") == {
        ws.gid: ("skip", "Baseline snapshot: membership changes are reported from the next sync on")}
    world.set_workspace_admin(org.kim, ws)
    gina = world.add_user("Gina", "gina@contractor.example")
    world.add_workspace_membership(gina, ws, is_guest=True)
    world.reactivate_user(dana, ws)

    grant = change_id(day(1), org.kim.gid, ws.gid, "admin_granted")
    window = "between 2026-03-02 09:00 UTC and 2026-03-03 09:00 UTC"
    findings = {
        grant: f'Kim <kim@acme.example>: admin granted on workspace "Acme" (member -> admin), {window}',
        "guest": f'Gina <gina@contractor.example>: guest added on workspace "Acme" (no access -> guest), {window}',
        "back": f'Dana <dana@acme.example>: reactivated on workspace "Acme" (member), {window}',
    }
    ids = []
    for as_of in (day(1), day(2)):
        results = judged(world, tmp_path, as_of, "membership_changes")
        changes = ParquetWarehouse(tmp_path).read("membership_changes").to_pandas()
        changes = changes.set_index(["user_gid", "change_type"])["change_id"]
        ids.append((changes[(gina.gid, "guest_added")], changes[(dana.gid, "reactivated")]))
        guest, back = ids[-1]
        assert changes[(org.kim.gid, "admin_granted")] == grant
        alarms = {gid: reason for gid, (status, reason) in results.items() if status == "alarm"}
        assert alarms == {
            grant: f"{findings[grant]}; not acknowledged yet",
            guest: f"{findings['guest']}; not acknowledged yet",
            back: f"{findings['back']}; not acknowledged yet",
        }
    assert ids[0] == ids[1]  # the ids a reviewer copies from one run hold in the next
    guest, back = ids[0]
    [open_list] = (tmp_path / "evidence").glob("20260304T090000Z_*/populations/membership_changes_open.csv")
    assert set(pd.read_csv(open_list, dtype=str)["change_id"]) == {grant, guest, back}

    results = judged(world, tmp_path, day(3), "membership_changes",
                     approved_admins=["admin@acme.example", "KIM@acme.example"], acknowledged_changes=[guest, back])
    assert results == {
        grant: ("ok", f"{findings[grant]}; the user is on the approved admin list"),
        guest: ("ok", f"{findings['guest']}; acknowledged in acknowledged_changes"),
        back: ("ok", f"{findings['back']}; acknowledged in acknowledged_changes"),
    }
    [pack] = (tmp_path / "evidence").glob("20260305T090000Z_*")
    assert pd.read_csv(pack / "populations" / "membership_changes_open.csv").empty
    acknowledged = pd.read_csv(pack / "populations" / "membership_changes_acknowledged.csv", dtype=str)
    assert set(acknowledged["change_id"]) == {grant, guest, back}
