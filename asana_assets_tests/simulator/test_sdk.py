"""Asana's official Python client (v5) works against the simulator as against the real API."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asana
import pytest
from asana.rest import ApiException
from urllib3.util.retry import Retry

from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World, generate_world
from asana_assets_tests.support.worlds import add_custom_fields

NOW = datetime(2026, 6, 1, tzinfo=UTC)
PAGE = 7  # small pages, so every listing below really paginates


@pytest.fixture(scope="module")
def simulator():
    with Simulator(generate_world(seed=5, tasks=500, now=NOW)) as running:
        yield running


@pytest.fixture()
def client(simulator):
    cfg = asana.Configuration()
    cfg.host = simulator.base_url
    cfg.access_token = DEMO_TOKEN
    cfg.page_limit = PAGE
    cfg.retry_strategy = Retry(total=2, backoff_factor=0, status_forcelist=[429, 500, 503])
    return asana.ApiClient(cfg)


def _truth(simulator, collection):
    return {record["gid"]: record for record in simulator.world.ground_truth()[collection]}


def test_workspaces_and_me(simulator, client):
    workspaces = list(asana.WorkspacesApi(client).get_workspaces({}))
    assert {w["gid"] for w in workspaces} == set(simulator.world.workspaces)
    me = asana.UsersApi(client).get_user("me", {"opt_fields": "name,email,workspaces.name"})
    assert me["gid"] == simulator.world.default_user
    assert me["workspaces"][0]["name"] == workspaces[0]["name"]


def test_users_and_memberships(simulator, client):
    workspace = simulator.world.workspaces[0]
    users = list(asana.UsersApi(client).get_users({"workspace": workspace, "opt_fields": "name,email"}))
    assert [u["gid"] for u in users] == sorted(_truth(simulator, "users"))  # ordered by gid
    memberships = asana.WorkspaceMembershipsApi(client).get_workspace_memberships_for_workspace(
        workspace, {"opt_fields": "user.email,is_active,is_admin,is_guest"}
    )
    inactive = [m for m in memberships if not m["is_active"]]  # the planted leaver and a long-gone alumnus
    assert len(inactive) == 2 and all("@" in m["user"]["email"] for m in inactive)


def test_projects_sections_and_paginated_tasks(simulator, client):
    workspace = simulator.world.workspaces[0]
    projects = list(asana.ProjectsApi(client).get_projects({"workspace": workspace, "archived": False}))
    truth = _truth(simulator, "projects")
    assert {p["gid"] for p in projects} == {gid for gid, p in truth.items() if not p["archived"]}
    project = projects[0]["gid"]
    sections = list(asana.SectionsApi(client).get_sections_for_project(project, {}))
    assert [s["gid"] for s in sections] == simulator.world.objects[project].sections
    tasks = list(
        asana.TasksApi(client).get_tasks(
            {"project": project, "opt_fields": "name,memberships.section.name,modified_at"}
        )
    )
    assert len(tasks) > 3 * PAGE
    assert [t["gid"] for t in tasks] == simulator.world.project_tasks(project)
    by_gid = _truth(simulator, "tasks")
    assert all(t["modified_at"] == by_gid[t["gid"]]["modified_at"] for t in tasks)


def test_subtasks_and_stories(simulator, client):
    world = simulator.world
    parent = next(o for o in world.objects.values() if o.resource_type == "task" and len(o.subtasks) >= 2)
    subtasks = list(asana.TasksApi(client).get_subtasks_for_task(parent.gid, {}))
    assert [s["gid"] for s in subtasks] == parent.subtasks
    chatty = max((o for o in world.objects.values() if o.resource_type == "task"), key=lambda t: len(t.stories))
    assert len(chatty.stories) > 100
    client.configuration.page_limit = 100
    stories = list(
        asana.StoriesApi(client).get_stories_for_task(chatty.gid, {"opt_fields": "created_at,resource_subtype,text"})
    )
    assert [s["gid"] for s in stories] == chatty.stories
    assert [s["created_at"] for s in stories] == sorted(s["created_at"] for s in stories)


def test_events_feed(simulator, client):
    events = asana.EventsApi(client)
    project = simulator.world.objects[simulator.world.workspaces[0]].projects[0]
    assert list(events.get_events(project, {})) == []  # the SDK answers the first 412 itself
    with pytest.raises(ApiException) as first:
        events.get_events(project, {}, full_payload=True)
    assert first.value.status == 412
    sync = json.loads(first.value.body)["sync"]
    task = simulator.world.project_tasks(project)[0]
    simulator.world.add_comment(task, "New evidence", actor=simulator.world.default_user)
    page = events.get_events(project, {"sync": sync}, full_payload=True)
    assert page["has_more"] is False
    assert [(e["action"], e["resource"]["resource_type"], e["parent"]["gid"]) for e in page["data"]] == [
        ("added", "story", task)
    ]


def test_writes_through_the_sdk(simulator, client):
    project = simulator.world.objects[simulator.world.workspaces[0]].projects[0]
    tasks = asana.TasksApi(client)
    created = tasks.create_task({"data": {"name": "CHG-9999: SDK change", "projects": [project], "assignee": "me"}}, {})
    updated = tasks.update_task({"data": {"completed": True}}, created["gid"], {"opt_fields": "completed,completed_by"})
    assert updated["completed"] is True and updated["completed_by"]["gid"] == simulator.world.default_user
    tasks.delete_task(created["gid"])
    with pytest.raises(ApiException) as gone:
        tasks.get_task(created["gid"], {})
    assert gone.value.status == 404


def test_custom_fields_through_the_sdk():
    """The SDK lists a project's custom field settings, a workspace's fields, one field, the values
    on tasks and the change stories, all paginated."""
    world = World(now=NOW)
    workspace = world.add_workspace("Acme", ["acme.com"])
    ann = world.add_user("Ann", "ann@acme.com")
    world.add_workspace_membership(ann, workspace)
    world.default_user = ann.gid
    project = world.add_project(workspace, "Changes")
    world.add_section(project, "To do")
    tasks = [world.create_task(f"Change {i}", project=project, actor=ann) for i in range(3)]
    fields = add_custom_fields(world, project, tasks, ann)
    with Simulator(world) as running:
        cfg = asana.Configuration()
        cfg.host, cfg.access_token, cfg.page_limit = running.base_url, DEMO_TOKEN, 2
        client = asana.ApiClient(cfg)
        settings = list(asana.CustomFieldSettingsApi(client).get_custom_field_settings_for_project(
            project.gid, {"opt_fields": "custom_field.name,custom_field.resource_subtype,custom_field.enum_options.name,is_important"}
        ))
        assert [s["custom_field"]["name"] for s in settings] == [
            "Ticket ref", "Risk score", "Type", "Systems", "Go-live", "Reviewers"]
        assert [o["name"] for o in settings[2]["custom_field"]["enum_options"]] == ["Bug", "Change"]
        listed = list(asana.CustomFieldsApi(client).get_custom_fields_for_workspace(workspace.gid, {}))
        assert {f["gid"] for f in listed} == {f.gid for f in fields.values()}
        one = asana.CustomFieldsApi(client).get_custom_field(fields["number"].gid, {"opt_fields": "name,precision"})
        assert (one["name"], one["precision"]) == ("Risk score", 1)
        got = list(asana.TasksApi(client).get_tasks({
            "project": project.gid, "opt_fields": "custom_fields.enum_value.name,custom_fields.display_value"}))
        assert len(got) == 3
        by_field = {v["gid"]: v for v in got[0]["custom_fields"]}
        assert by_field[fields["enum"].gid]["enum_value"]["name"] == "Change"
        assert by_field[fields["number"].gid]["display_value"] == "4.0"
        stories = list(asana.StoriesApi(client).get_stories_for_task(tasks[0].gid, {
            "opt_fields": "resource_subtype,custom_field.name,old_enum_value.name,new_enum_value.name"}))
        last = [s for s in stories if s["resource_subtype"] == "enum_custom_field_changed"][-1]
        assert (last["custom_field"]["name"], last["old_enum_value"]["name"], last["new_enum_value"]["name"]) == (
            "Type", "Bug", "Change")


def test_team_members_visibility_and_the_audit_log_through_the_sdk():
    """The SDK lists a project's members through the memberships API (a team among them); a
    person's token does not list a private project it is not in, and the audit log refuses it."""
    world = World(now=NOW)
    workspace = world.add_workspace("Acme", ["acme.com"])
    pat = world.add_user("Pat", "pat@acme.com")
    world.add_workspace_membership(pat, workspace)
    robot = world.add_service_account(workspace, "Robot", "robot@acme.com")
    team = world.add_team(workspace, "Ops")
    shared = world.add_project(workspace, "Shared")
    world.add_project_team(shared, team, "commenter")
    world.add_project_membership(shared, pat, "editor")
    world.add_project(workspace, "Hidden", privacy_setting="private")
    config = SimulatorConfig(tokens={"pat-token": pat.gid, "robot-token": robot.gid})
    with Simulator(world, config) as running:
        def client(token):
            cfg = asana.Configuration()
            cfg.host, cfg.access_token = running.base_url, token
            return asana.ApiClient(cfg)

        members = list(asana.MembershipsApi(client("pat-token")).get_memberships(
            {"parent": shared.gid, "opt_fields": "member.name,member.resource_type,access_level"}))
        assert [(m["member"]["resource_type"], m["member"]["name"], m["access_level"]) for m in members] == [
            ("team", "Ops", "commenter"), ("user", "Pat", "editor")]
        for token, names in (("pat-token", ["Shared"]), ("robot-token", ["Shared", "Hidden"])):
            listed = asana.ProjectsApi(client(token)).get_projects({"workspace": workspace.gid})
            assert [p["name"] for p in listed] == names
        world.enterprise = True  # the organisation has the audit log (no event recorded yet)
        with pytest.raises(ApiException) as refused:
            list(asana.AuditLogAPIApi(client("pat-token")).get_audit_log_events(workspace.gid, {}))
        assert refused.value.status == 403
        assert list(asana.AuditLogAPIApi(client("robot-token")).get_audit_log_events(workspace.gid, {})) == []


def _enterprise(enterprise: bool):
    """A small world whose admin grant is made by a named actor at a set time."""
    world = World(now=NOW)
    world.enterprise = enterprise
    acme = world.add_workspace("Acme", ["acme.example"])
    ada, uma = world.add_user("Ada", "ada@acme.example"), world.add_user("Uma", "uma@acme.example")
    for user in (ada, uma):
        world.add_workspace_membership(user, acme, at=NOW)
    world.default_user = ada.gid
    world.service_accounts.add(ada.gid)  # only a service account may read the audit log
    world.set_workspace_admin(uma, acme, actor=ada, at=datetime(2026, 6, 2, 8, 30, tzinfo=UTC))
    return world, acme, ada, uma


def _sdk(simulator) -> asana.ApiClient:
    cfg = asana.Configuration()
    cfg.host, cfg.access_token = simulator.base_url, DEMO_TOKEN
    return asana.ApiClient(cfg)


def test_the_audit_log_through_the_sdk():
    world, acme, ada, uma = _enterprise(True)
    with Simulator(world) as running:
        audit = asana.AuditLogAPIApi(_sdk(running))
        page = audit.get_audit_log_events(acme.gid, {"start_at": "2026-06-02T00:00:00Z"}, full_payload=True)
        # One event from that day on: the grant, by Ada at 08:30 (the two invitations came before).
        assert [(e["event_type"], e["actor"]["gid"], e["resource"]["gid"], e["created_at"],
                 e["details"]["new_value"]) for e in page["data"]] == [
            ("user_workspace_admin_role_changed", ada.gid, uma.gid, "2026-06-02T08:30:00.000Z", "admin")]
        assert page["next_page"]["offset"]  # the stream keeps a next page once there is data
        rest = audit.get_audit_log_events(
            acme.gid, {"start_at": "2026-06-02T00:00:00Z", "offset": page["next_page"]["offset"]}, full_payload=True)
        assert rest["data"] == []  # the end of the current data is an empty page


def test_the_audit_log_is_refused_outside_enterprise():
    world, acme, _ada, _uma = _enterprise(False)
    with Simulator(world) as running, pytest.raises(ApiException) as refused:
        asana.AuditLogAPIApi(_sdk(running)).get_audit_log_events(acme.gid, {}, full_payload=True)
    assert refused.value.status == 402
    assert world.audit_log == []


def test_a_finding_task_and_its_comment_through_the_sdk(simulator, client):
    """The writes findings as tasks make: a task with notes in a project, a comment, completion."""
    project = simulator.world.objects[simulator.world.workspaces[0]].projects[0]
    tasks, stories = asana.TasksApi(client), asana.StoriesApi(client)
    created = tasks.create_task({"data": {"name": "[admin_access_restricted] Uma", "notes": "finding",
                                          "projects": [project]}}, {"opt_fields": "notes"})
    assert created["notes"] == "finding"
    comment = stories.create_story_for_task({"data": {"text": "Cleared"}}, created["gid"], {})
    tasks.update_task({"data": {"completed": True}}, created["gid"], {})
    task = simulator.world.objects[created["gid"]]
    assert task.completed and comment["gid"] in task.stories
    assert simulator.world.objects[comment["gid"]].text == "Cleared"
