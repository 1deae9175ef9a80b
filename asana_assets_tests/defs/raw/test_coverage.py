"""What a connection can see: a person's token misses the private project a service account of an
Enterprise organisation reads, and connection_coverage says so, naming the kind a stored
connection declares; what a person's token is not shown leaves nothing unresolved. Hand-built
world, hand-written expectations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx
import pytest
from cryptography.fernet import Fernet

from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.lib.connections.oauth import OAuthApp, complete_authorization, start_authorization
from asana_assets.lib.connections.store import TokenStore
from asana_assets.lib.connections.validation import connect_service_account
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import Simulator, SimulatorConfig, World
from asana_assets.simulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI
from asana_assets_tests.support.pipeline import ASSETS, QUOTA, RUN_CHECKS, materialize, resources, run_pipeline

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
    w, people, containers, _tasks = org()
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


# -- a stored connection declares its kind by how it was connected

ROBOT_KEY = "2/robot/key:simulator"  # the service account's key, as an admin would paste it
OAUTH = {"oauth_client_id": DEMO_CLIENT_ID, "oauth_client_secret": DEMO_CLIENT_SECRET,
         "oauth_redirect_uri": DEMO_REDIRECT_URI}


def run_stored(w: World, people: dict, tmp_path, monkeypatch, auth_method: str, approver: str | None = None):
    """Store a connection as `asana-connections connect` does (the robot's service-account key,
    or an OAuth grant approved by ``approver``), run the pipeline through it; its coverage check."""
    monkeypatch.setenv("ASANA_CONNECTION_KEYS", Fernet.generate_key().decode())
    store = TokenStore.at(tmp_path / "connections.json")
    config = SimulatorConfig(tokens={ROBOT_KEY: people["robot"].gid}, oauth_approver=approver,
                             requests_per_minute=QUOTA, secret="tests")
    with Simulator(w, config) as sim:
        if auth_method == "service_account":
            connection = connect_service_account(sim.base_url, ROBOT_KEY, store)
        else:
            app = OAuthApp(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI, sim.base_url)
            pending = start_authorization(app)
            redirect = httpx.get(pending.url).headers["location"]  # what the browser does on approval
            connection = complete_authorization(app, pending, redirect, store)
        asana = AsanaResource(connection_id=connection.id, connections_file=str(tmp_path / "connections.json"),
                              requests_per_minute=QUOTA, **OAUTH)
        run = materialize([*ASSETS, *RUN_CHECKS], resources={
            **resources(sim.base_url, tmp_path / "warehouse", as_of=AS_OF.isoformat()), "asana": asana})
    assert run.success and connection.auth_method == auth_method
    return coverage_check(run)


def test_a_stored_service_account_key_below_enterprise_is_declared_and_still_warned_about(tmp_path, monkeypatch):
    """Alarm: below Enterprise the audit log answers 402, which says nothing of who the key acts
    for; the stored connection says a service account, and that is what is reported, as declared.
    It still reads no private project (a service account sees everything only on Enterprise): WARN."""
    w, people, _containers, _tasks = org(plan="business")
    check = run_stored(w, people, tmp_path, monkeypatch, "service_account")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["user_kind"].text == "service account"
    assert check.metadata["user_kind_basis"].text == "declared by the connection"
    assert check.metadata["plan"].text == "unknown" and check.metadata["private_projects_read"].value == 0
    assert ("Compliance bot <compliance-bot@acme.example>, a service account (declared by the connection; "
            "plan: unknown)") in check.description
    assert "connect with a service account on an Enterprise organisation" in check.description


def test_a_stored_service_account_key_on_enterprise_reads_the_audit_log(tmp_path, monkeypatch):
    """No alarm: on Enterprise the audit log answers the key, evidence stronger than the declaration."""
    w, people, _containers, _tasks = org()
    check = run_stored(w, people, tmp_path, monkeypatch, "service_account")
    assert check.passed
    assert check.metadata["user_kind"].text == "service account"
    assert check.metadata["user_kind_basis"].text == "it reads the audit log"
    assert check.metadata["plan"].text == "Enterprise" and check.metadata["private_projects_read"].value == 1


def test_a_stored_oauth_connection_is_a_person_and_is_warned_about(tmp_path, monkeypatch):
    """Edge: Gil, an admin who belongs to the private project, connects by OAuth. The grant acts
    for a person (declared; the audit log's 403 agrees), who reads the private project it is in
    and is still warned: other private projects would escape it."""
    w, people, _containers, _tasks = org()
    w.set_workspace_admin(people["gil"], w.workspaces[0], at=T0)  # only an admin may connect
    check = run_stored(w, people, tmp_path, monkeypatch, "oauth", approver=people["gil"].gid)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["user_kind"].text == "person"
    assert check.metadata["user_kind_basis"].text == "declared by the connection"
    assert check.metadata["private_projects_read"].value == 1
    assert "Gil <gil@acme.example>, a person (declared by the connection; plan: unknown)" in check.description
