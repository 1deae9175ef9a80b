"""Access through teams: a project shared with a team reaches each of its members, through the
pipeline. Expected rows are written by hand for a hand-built world."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import World
from asana_assets_tests.support.pipeline import results_of, run_pipeline, status

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=30)


def shared_world():
    """Project "Payroll" is shared with team "Finance" (commenter); Dana reaches it only through
    the team, Erin is also a direct editor, Frank is in no team and not in the project."""
    w = World(now=T0 - timedelta(days=10))
    ws = w.add_workspace("Acme", ["acme.example"])
    admin, dana, erin, frank = (w.add_user(n, f"{n.lower()}@acme.example") for n in ("Admin", "Dana", "Erin", "Frank"))
    for user in (admin, dana, erin, frank):
        w.add_workspace_membership(user, ws, is_admin=user is admin)
    w.default_user = admin.gid
    finance, other = w.add_team(ws, "Finance"), w.add_team(ws, "Other")
    for user in (dana, erin):
        w.add_team_membership(finance, user)
    payroll = w.add_project(ws, "Payroll", team=other, owner=admin)  # owned by another team: access comes via sharing
    w.add_section(payroll, "To do")
    w.add_project_team(payroll, finance, "commenter")
    w.add_project_membership(payroll, erin, "editor")
    return w, ws, {"admin": admin, "dana": dana, "erin": erin, "frank": frank}, finance, payroll


def project_access(tmp_path, payroll):
    access = WarehouseResource(directory=str(tmp_path)).warehouse().read("user_access").to_pylist()
    return {r["user_gid"]: (r["role"], r["via_team_gid"]) for r in access
            if r["resource_type"] == "project" and r["resource_gid"] == payroll.gid}


def test_a_user_reaching_a_project_only_through_a_team_is_in_user_access(tmp_path):
    w, _ws, people, finance, payroll = shared_world()
    run = run_pipeline(w, tmp_path, AS_OF)
    assert run.success
    assert project_access(tmp_path, payroll) == {
        people["admin"].gid: ("owner", None),
        people["dana"].gid: ("commenter", finance.gid),  # only through Finance
        people["erin"].gid: ("editor", None),  # direct editor beats commenter through the team
    }
    raw = ParquetWarehouse(tmp_path).read("project_memberships").to_pandas()
    assert sorted(zip(raw["member_gid"], raw["member_type"])) == sorted(
        [(finance.gid, "team"), (people["erin"].gid, "user")])


def test_a_deactivated_user_reaching_a_project_through_a_team_alarms_in_offboarding(tmp_path):
    w, ws, people, finance, payroll = shared_world()
    w.deactivate_user(people["dana"], ws)
    run = run_pipeline(w, tmp_path, AS_OF)
    assert run.success
    assert project_access(tmp_path, payroll)[people["dana"].gid] == ("commenter", finance.gid)
    results = results_of(run, tmp_path)
    dana = f"{people['dana'].gid}/{ws.gid}"
    assert status(results, "offboarding_access_removed", dana) == "alarm"
    reason = results.loc[results["resource_gid"] == dana, "reason"].iloc[0]
    assert 'project "Payroll"' in reason and 'team "Finance"' in reason
    assert status(results, "offboarding_access_removed", f"{people['erin'].gid}/{ws.gid}") == "skip"


def test_a_team_without_members_gives_no_one_access(tmp_path):
    w, _ws, people, finance, payroll = shared_world()
    for membership in list(finance.memberships):
        w.remove_team_membership(membership)
    run = run_pipeline(w, tmp_path, AS_OF)
    assert run.success
    assert project_access(tmp_path, payroll) == {
        people["admin"].gid: ("owner", None), people["erin"].gid: ("editor", None)}
