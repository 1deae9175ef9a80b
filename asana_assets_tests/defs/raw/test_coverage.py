"""What a connection can see: a person's token misses the private project a service account of an
Enterprise organisation reads, and connection_coverage says so. Hand-built world, hand-written
expectations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import World
from asana_assets_tests.support.pipeline import run_pipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=30)


def org(plan: str = "enterprise"):
    w = World(now=T0 - timedelta(days=10))
    w.enterprise = plan == "enterprise"  # the audit log exists on Enterprise only
    ws = w.add_workspace("Acme", ["acme.example"])
    ws.plan = plan
    pat, gil = w.add_user("Pat", "pat@acme.example"), w.add_user("Gil", "gil@acme.example")
    for user in (pat, gil):
        w.add_workspace_membership(user, ws)
    robot = w.add_service_account(ws, "Compliance bot", "compliance-bot@acme.example")
    hr = w.add_team(ws, "HR", visibility="secret")
    w.add_team_membership(hr, gil)
    helpdesk = w.add_project(ws, "Helpdesk", owner=gil)
    w.add_section(helpdesk, "New")
    secret = w.add_project(ws, "Salaries", team=hr, owner=gil, privacy_setting="private")
    w.add_section(secret, "New")
    w.add_project_membership(secret, gil, "editor")
    public = w.create_task("Printer jam", project=helpdesk, assignee=pat, actor=gil, at=T0)
    private = w.create_task("Raise for Pat", project=secret, assignee=gil, actor=gil, at=T0)
    child = w.create_task("Check budget", parent=private, actor=gil, at=T0)
    return w, {"pat": pat, "gil": gil, "robot": robot}, {"helpdesk": helpdesk, "secret": secret, "hr": hr}, {
        "public": public, "private": private, "child": child}


def coverage_check(run: dg.ExecuteInProcessResult):
    (evaluation,) = [e for e in run.get_asset_check_evaluations() if e.check_name == "connection_coverage"]
    return evaluation


def test_a_persons_token_misses_the_private_project_and_coverage_warns(tmp_path):
    w, people, containers, tasks = org()
    w.default_user = people["pat"].gid  # a person in no private project
    run = run_pipeline(w, tmp_path, AS_OF)
    assert run.success
    warehouse = ParquetWarehouse(tmp_path)
    assert warehouse.read("projects")["gid"].to_pylist() == [containers["helpdesk"].gid]
    assert containers["hr"].gid not in warehouse.read("teams")["gid"].to_pylist()  # secret, and Pat is not in it
    check = coverage_check(run)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "Pat <pat@acme.example>, a person" in check.description
    assert "connect with a service account on an Enterprise organisation" in check.description
    assert check.metadata["private_projects_read"].value == 0
    assert check.metadata["user_kind"].text == "person"


def test_a_service_account_on_enterprise_sees_everything(tmp_path):
    w, people, containers, tasks = org()
    w.default_user = people["robot"].gid
    run = run_pipeline(w, tmp_path, AS_OF)
    assert run.success
    warehouse = ParquetWarehouse(tmp_path)
    assert sorted(warehouse.read("projects")["gid"].to_pylist()) == sorted(
        [containers["helpdesk"].gid, containers["secret"].gid])
    check = coverage_check(run)
    assert check.passed
    assert check.metadata["user_kind"].text == "service account" and check.metadata["plan"].text == "Enterprise"
    assert check.metadata["private_projects_read"].value == 1
    tickets = {r["gid"]: r["visibility"] for r in warehouse.read("tickets").to_pylist()}
    assert tickets == {tasks["public"].gid: "public", tasks["private"].gid: "private",
                       tasks["child"].gid: "private"}  # a subtask takes its parent's visibility
    followers = {(r["task_gid"], r["user_gid"]) for r in warehouse.read("task_followers").to_pylist()}
    assert (tasks["public"].gid, people["pat"].gid) in followers  # the assignee follows
    assert (tasks["private"].gid, people["gil"].gid) in followers


def test_a_service_account_below_enterprise_is_warned_about(tmp_path):
    """Without Enterprise the service account sees only what a person would: the warning stays."""
    w, people, containers, _tasks = org(plan="business")
    w.default_user = people["robot"].gid
    run = run_pipeline(w, tmp_path, AS_OF)
    assert run.success
    assert ParquetWarehouse(tmp_path).read("projects")["gid"].to_pylist() == [containers["helpdesk"].gid]
    check = coverage_check(run)
    assert not check.passed and check.metadata["private_projects_read"].value == 0
    # The audit log's 402 says the plan may lack it, not who the token acts for: never "person".
    assert check.metadata["user_kind"].text == "unknown"
    assert "Compliance bot <compliance-bot@acme.example>, an account of unknown kind" in check.description
    assert "connect with a service account on an Enterprise organisation" in check.description


def multi_homed(w, people, containers):
    """A task of the public Helpdesk also in the private Salaries, moved between Salaries' sections."""
    gil, secret = people["gil"], containers["secret"]
    paid = w.add_section(secret, "Paid", at=T0)
    task = w.create_task("Payroll printer", project=containers["helpdesk"], actor=gil, at=T0)
    w.add_task_to_project(task, secret, actor=gil, at=T0 + timedelta(hours=1))
    w.move_task_to_section(task, paid, actor=gil, at=T0 + timedelta(hours=2))
    return task, paid


@pytest.mark.parametrize("reader", ["pat", "robot"])
def test_a_task_in_a_public_and_a_private_project_syncs_without_quarantine(tmp_path, reader):
    """Pat's token is shown the task's public membership only, and none of the private project's
    stories: nothing is left unresolved, so nothing is quarantined (a full sync, then an
    incremental one after another move inside Salaries). The service account on Enterprise is
    shown both memberships and the moves, resolved too. Expectations written by hand."""
    w, people, containers, _tasks = org()
    w.default_user = people[reader].gid
    task, paid = multi_homed(w, people, containers)
    helpdesk_new, salaries_new = containers["helpdesk"].sections[0], containers["secret"].sections[0]
    assert run_pipeline(w, tmp_path, AS_OF).success
    w.move_task_to_section(task, salaries_new, actor=people["gil"], at=T0 + timedelta(days=1))
    w.add_comment(task, "Toner ordered", actor=people["gil"], at=T0 + timedelta(days=1))
    run = run_pipeline(w, tmp_path, AS_OF + timedelta(hours=1), mode="incremental")
    assert run.success
    warehouse = ParquetWarehouse(tmp_path)
    memberships = {(r["project_gid"], r["section_gid"])
                   for r in warehouse.read("task_memberships").to_pylist() if r["task_gid"] == task.gid}
    moves = [(r["resource_subtype"], r["old_section_gid"], r["new_section_gid"])
             for r in warehouse.read("stories").to_pylist() if r["task_gid"] == task.gid]
    public = {(containers["helpdesk"].gid, helpdesk_new)}
    if reader == "pat":
        assert memberships == public
        assert moves == [("comment_added", None, None)]
    else:
        assert memberships == public | {(containers["secret"].gid, salaries_new)}
        assert moves == [("added_to_project", None, None), ("section_changed", salaries_new, paid.gid),
                         ("section_changed", paid.gid, salaries_new), ("comment_added", None, None)]
    assert warehouse.read("quarantine").to_pylist() == []
    (check,) = [e for e in run.get_asset_check_evaluations() if e.check_name == "quarantine_is_empty"]
    assert check.passed
