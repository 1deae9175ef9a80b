"""Findings as Asana tasks through the whole pipeline: an alarm opens one task (not a second on a
rerun, nor after the sync state is lost), the task follows the alarm and is completed with a
comment when it clears; nothing is written when the feature is off or the source is the demo."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from asana_assets.defs.compliance.remediation import remediation_tasks
from asana_assets.defs.resources.asana import DemoAsanaResource
from asana_assets.defs.resources.compliance import ComplianceResource
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.simulator import World
from asana_assets.simulator.models import Task
from asana_assets_tests.support.pipeline import materialize, run_pipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def organisation():
    """Ada is the approved admin; Uma is an admin nobody approved (admin_access_restricted alarms)."""
    world = World(now=T0 - timedelta(days=10))
    acme = world.add_workspace("Acme", ["acme.example"])
    ada, uma = world.add_user("Ada", "ada@acme.example"), world.add_user("Uma", "uma@acme.example")
    world.add_workspace_membership(ada, acme, is_admin=True)
    world.add_workspace_membership(uma, acme, is_admin=True)
    world.default_user = ada.gid
    findings = world.add_project(acme, "Compliance findings", owner=ada)
    world.add_section(findings, "Open")
    return world, acme, ada, uma, findings


def enabled(world_project, ada) -> dict:
    return {"approved_admins": [ada.gid], "remediation_enabled": True,
            "remediation_project_gid": world_project.gid, "remediation_assignee_gid": ada.gid}


def tasks_in(world: World, project) -> list[Task]:
    with world.lock:
        return [world.objects[gid] for gid in world.project_tasks(project)]


def test_a_finding_opens_one_task_that_follows_the_alarm_and_closes_with_a_comment(tmp_path):
    world, _acme, ada, uma, findings = organisation()
    key = f"admin_access_restricted/user/{uma.gid}"  # the monitor, and the resource it names
    assert run_pipeline(world, tmp_path, day(0), **enabled(findings, ada)).success
    [task] = tasks_in(world, findings)
    assert f"asana-assets finding: {key}" in task.notes
    assert "admin_access_restricted" in task.name and "Uma" in task.name
    assert "SOC2:CC6.3" in task.notes and "report.html" in task.notes
    assert task.assignee == ada.gid and not task.completed
    first_notes = task.notes

    assert run_pipeline(world, tmp_path, day(1), **enabled(findings, ada)).success  # the alarm lasts
    assert [t.gid for t in tasks_in(world, findings)] == [task.gid]  # no second task
    assert task.notes != first_notes and not task.completed  # updated: the later run is named

    # Approving Uma's admin role judges her ok: only an evaluated ok closes a finding (a demotion
    # would make her row skip, which leaves the task open for a person to close).
    approved = {**enabled(findings, ada), "approved_admins": [ada.gid, uma.gid]}
    run = run_pipeline(world, tmp_path, day(2), **approved)
    assert run.success
    assert task.completed
    with world.lock:
        comments = [world.objects[s].text for s in task.stories if world.objects[s].resource_subtype == "comment_added"]
    assert len(comments) == 1 and comments[0].startswith("Cleared")
    assert [t.gid for t in tasks_in(world, findings)] == [task.gid]

    assert run_pipeline(world, tmp_path, day(3), **approved).success  # nothing left to do
    assert [t.gid for t in tasks_in(world, findings)] == [task.gid] and task.completed


def test_a_lost_state_finds_the_open_task_by_its_marker(tmp_path):
    world, _acme, ada, uma, findings = organisation()
    assert run_pipeline(world, tmp_path, day(0), **enabled(findings, ada)).success
    [task] = tasks_in(world, findings)
    state_file = tmp_path / "state" / "sync_state.json"
    state = json.loads(state_file.read_text())
    assert state["remediation"] == {f"admin_access_restricted/user/{uma.gid}": task.gid}
    state["remediation"] = {}  # the state is lost (restored from an old backup, say)
    state_file.write_text(json.dumps(state))
    run = run_pipeline(world, tmp_path, day(1), **enabled(findings, ada))
    assert run.success
    assert [t.gid for t in tasks_in(world, findings)] == [task.gid]
    materialization = next(m for m in run.get_asset_materialization_events()
                           if m.asset_key.path == ["asana", "remediation_tasks"]).materialization
    assert materialization.metadata["reconciled_from_markers"].value == 1
    assert materialization.metadata["opened"].value == 0


def test_nothing_is_written_when_disabled(tmp_path):
    world, _acme, ada, _uma, findings = organisation()
    run = run_pipeline(world, tmp_path, day(0), approved_admins=[ada.gid], remediation_project_gid=findings.gid)
    assert run.success
    assert tasks_in(world, findings) == []
    assert not [m for m in run.get_asset_materialization_events() if m.asset_key.path[-1] == "remediation_tasks"]
    # The run still published its tables and its evidence.
    assert WarehouseResource(directory=str(tmp_path)).warehouse().read("monitor_results").num_rows > 0


def test_nothing_is_written_for_the_demo(tmp_path):
    asana = DemoAsanaResource()
    assert asana.provenance("default")["source"]["demo"]
    instance = dg.DagsterInstance.ephemeral()
    run = materialize([remediation_tasks], instance=instance, resources={
            "asana": asana, "warehouse": WarehouseResource(directory=str(tmp_path)),
        "compliance": ComplianceResource(remediation_enabled=True, remediation_project_gid="1"),
    })
    assert run.success
    assert not run.get_asset_materialization_events()
    assert any("refused: the source is the demo" in entry.user_message for entry in instance.all_logs(run.run_id))
    assert not any(tmp_path.iterdir())  # nothing read or written either


def test_enabled_without_a_project_fails_with_the_setting_to_add(tmp_path):
    world, _acme, _ada, _uma, findings = organisation()
    with pytest.raises(dg.Failure, match="remediation_project_gid"):
        run_pipeline(world, tmp_path, day(0), remediation_enabled=True)
    assert tasks_in(world, findings) == []
    # The tables were published before: a failure here costs no evidence.
    assert WarehouseResource(directory=str(tmp_path)).warehouse().read("monitor_results").num_rows > 0


def test_a_task_deleted_in_asana_while_the_alarm_lasts_is_filed_again(tmp_path):
    world, _acme, ada, _uma, findings = organisation()
    assert run_pipeline(world, tmp_path, day(0), **enabled(findings, ada)).success
    [first] = tasks_in(world, findings)
    world.delete_task(first, actor=ada)
    assert run_pipeline(world, tmp_path, day(1), **enabled(findings, ada)).success
    [second] = tasks_in(world, findings)
    assert second.gid != first.gid and not second.completed
