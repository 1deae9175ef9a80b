"""Every endpoint the simulator serves answers with bodies valid under Asana's official OpenAPI spec.

The spec is the ``oas`` fixture (asana_assets_tests/support/oas.py).
Each GET route is called with default fields and with every opt_field the spec lists for it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker

from asana_assets.simulator import DEMO_TOKEN, Simulator, World, generate_world
from asana_assets_tests.support.worlds import add_custom_fields

NOW = datetime(2026, 6, 1, tzinfo=UTC)
API = "/api/1.0"


@pytest.fixture(scope="module")
def served():
    world = generate_world(seed=11, tasks=400, now=NOW)
    project = next(o for o in world.objects.values() if o.resource_type == "project")
    add_custom_fields(world, project, world.project_tasks(project)[:2], world.default_user)
    world.add_project_team(project, next(o for o in world.objects.values() if o.resource_type == "team"), "commenter")
    with (
        Simulator(world) as simulator,
        httpx.Client(base_url=simulator.base_url, headers={"Authorization": f"Bearer {DEMO_TOKEN}"}) as client,
    ):
        yield simulator, client


def _response_schema(oas: dict[str, Any], template: str, method: str, status: int) -> dict[str, Any]:
    responses = oas["paths"][template][method]["responses"]
    response = responses.get(str(status)) or responses[status]  # YAML reads some codes as ints
    if "$ref" in response:
        response = oas["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response["content"]["application/json"]["schema"]


def _check(oas: dict[str, Any], template: str, method: str, response: httpx.Response) -> None:
    schema = {"components": oas["components"], **_response_schema(oas, template, method, response.status_code)}
    OAS30ReadValidator(schema, format_checker=oas30_format_checker).validate(response.json())


def _spec_opt_fields(oas: dict[str, Any], template: str) -> str:
    """Every opt_field the spec lists for a GET route (pagination fields included)."""
    for parameter in oas["paths"][template]["get"].get("parameters", []):
        if parameter.get("name") == "opt_fields":
            return ",".join(parameter["schema"]["items"]["enum"])
    return ""


def _samples(world) -> dict[str, list[str]]:
    """Gids for each path parameter, chosen to cover every flavour of record."""
    objects = world.objects.values()

    def of(rtype: str) -> list[Any]:
        return [o for o in objects if o.resource_type == rtype]

    tasks = of("task")
    flavours = [
        next(t for t in tasks if t.resource_subtype == "approval" and t.parent),
        next(t for t in tasks if len(t.memberships) > 1),
        next(t for t in tasks if t.subtasks and t.tags and t.completed),
        next(t for t in tasks if t.resource_subtype == "milestone"),
    ]
    stories_by_subtype = {s.resource_subtype: s.gid for s in of("story")}
    first = lambda rtype: [of(rtype)[0].gid]  # noqa: E731
    return {
        "user_gid": ["me", of("user")[-1].gid, of("user")[0].email],
        "workspace_gid": first("workspace"),
        "workspace_membership_gid": first("workspace_membership"),
        "team_gid": first("team"),
        "team_membership_gid": first("team_membership"),
        "project_gid": first("project"),
        "project_membership_gid": first("project_membership"),
        "membership_gid": first("project_membership"),
        "section_gid": [next(s for s in of("section") if s.tasks).gid],
        "task_gid": [t.gid for t in flavours] + [next(t for t in tasks if t.custom_fields).gid],
        "custom_field_gid": [f.gid for f in of("custom_field")],
        "story_gid": sorted(stories_by_subtype.values()),
        "tag_gid": [next(t for t in of("tag") if t.tasks).gid],
    }


def _query(world, template: str, sample: dict[str, list[str]]) -> dict[str, str]:
    workspace = sample["workspace_gid"][0]
    return {
        "/users": {"workspace": workspace},
        "/projects": {"workspace": workspace},
        "/tags": {"workspace": workspace},
        "/team_memberships": {"team": sample["team_gid"][0]},
        "/users/{user_gid}/team_memberships": {"workspace": workspace},
        "/memberships": {"parent": sample["project_gid"][0]},
        "/tasks": {"project": sample["project_gid"][0]},
    }.get(template, {})


def _get_routes(simulator: Simulator) -> list[str]:
    app = simulator.api.app()
    return sorted(
        {
            r.resource.canonical.removeprefix(API)
            for r in app.router.routes()
            if r.method == "GET" and r.resource.canonical.startswith(API)
        }
    )


def test_every_get_route_is_in_the_spec_and_validates(oas, served):
    simulator, client = served
    sample = _samples(simulator.world)
    checked = 0
    for template in _get_routes(simulator):
        if template in ("/events", "/workspaces/{workspace_gid}/audit_log_events"):
            continue  # needs a sync token, or an Enterprise world; see the tests below
        assert template in oas["paths"], f"{template} is not an Asana endpoint"
        params = _query(simulator.world, template, sample)
        names = re.findall(r"{(\w+)}", template)
        choices = [sample[name] for name in names]
        variants = [dict(zip(names, combo)) for combo in zip(*choices)] if names else [{}]
        variants += [dict(zip(names, [c[-1] for c in choices]))] if names else []
        for values in variants:
            path = template.format(**values)
            for extra in ({}, {"limit": "5"}, {"opt_fields": _spec_opt_fields(oas, template)}, {"opt_pretty": "true"}):
                response = client.get(path, params={**params, **extra})
                assert response.status_code == 200, (path, extra, response.text)
                _check(oas, template, "get", response)
                checked += 1
    assert checked > 150


def test_events_validate(oas, served):
    simulator, client = served
    project = next(o for o in simulator.world.objects.values() if o.resource_type == "project")
    first = client.get("/events", params={"resource": project.gid})
    assert first.status_code == 412
    _check(oas, "/events", "get", first)
    task_gid = simulator.world.project_tasks(project)[0]
    simulator.world.add_comment(task_gid, "checking events")
    simulator.world.update_task(task_gid, name="Renamed by a system change")  # user is null
    world, actor = simulator.world, simulator.world.default_user
    section = world.add_section(project, "Schema check", actor=actor)
    world.rename_section(section, "Schema checked", actor=actor)
    world.remove_section(section, actor=actor)
    world.add_project_membership(project, world.users[-1], "viewer", actor=actor)
    world.delete_task(task_gid, actor=actor)
    world.undelete_task(task_gid, actor=actor)
    for naming in ("project_membership", "membership"):
        simulator.config.membership_events = naming
        for opt_fields in (None, _spec_opt_fields(oas, "/events")):
            params = {"resource": project.gid, "sync": first.json()["sync"]}
            response = client.get("/events", params=params | ({"opt_fields": opt_fields} if opt_fields else {}))
            assert response.status_code == 200 and len(response.json()["data"]) >= 9
            _check(oas, "/events", "get", response)
    simulator.config.membership_events = "project_membership"


def test_audit_log_events_validate(oas):
    """An Enterprise world's audit log, with every kind of event the world records, and its 402."""
    world = generate_world(seed=11, tasks=50, now=NOW)
    world.enterprise = True
    workspace = world.objects[world.workspaces[0]]
    user, actor = world.users[-1], world.default_user
    team = world.objects[workspace.teams[0]]
    project = world.objects[workspace.projects[0]]
    world.set_workspace_admin(user, workspace, actor=actor)
    world.set_workspace_admin(user, workspace, False, actor=actor)
    world.deactivate_user(user, workspace, actor=actor)
    world.reactivate_user(user, workspace)  # by Asana itself: no actor
    membership = world.add_team_membership(team, user, actor=actor)
    world.remove_team_membership(membership, actor=actor)
    world.remove_project_membership(world.add_project_membership(project, user, actor=actor), actor=actor)
    world.add_workspace_membership(world.add_user("Newcomer", "newcomer@example.com"), workspace, actor=actor)
    template = "/workspaces/{workspace_gid}/audit_log_events"
    with (
        Simulator(world) as simulator,
        httpx.Client(base_url=simulator.base_url, headers={"Authorization": f"Bearer {DEMO_TOKEN}"}) as client,
    ):
        path = template.format(workspace_gid=workspace.gid)
        response = client.get(path, params={"limit": "100"})
        assert response.status_code == 200
        assert {e["event_type"] for e in response.json()["data"]} == {
            "user_workspace_admin_role_changed", "user_deprovisioned", "user_reprovisioned", "team_member_added",
            "team_member_removed", "project_member_added", "project_member_removed", "user_invited"}
        _check(oas, template, "get", response)
        world.enterprise = False
        refused = client.get(path)
        assert refused.status_code == 402
        OAS30ReadValidator({"components": oas["components"], "$ref": "#/components/schemas/ErrorResponse"}).validate(
            refused.json())


def test_writes_validate(oas, served):
    simulator, client = served
    project = next(o for o in simulator.world.objects.values() if o.resource_type == "project")
    created = client.post(
        "/tasks", json={"data": {"name": "Schema check", "projects": [project.gid], "assignee": "me"}}
    )
    assert created.status_code == 201
    _check(oas, "/tasks", "post", created)
    gid = created.json()["data"]["gid"]
    updated = client.put(f"/tasks/{gid}", json={"data": {"completed": True, "due_on": "2026-07-01"}})
    _check(oas, "/tasks/{task_gid}", "put", updated)
    story = client.post(f"/tasks/{gid}/stories", json={"data": {"text": "Evidence attached."}})
    assert story.status_code == 201
    _check(oas, "/tasks/{task_gid}/stories", "post", story)
    section = simulator.world.objects[project.sections[-1]]
    moved = client.post(f"/sections/{section.gid}/addTask", json={"data": {"task": gid}})
    _check(oas, "/sections/{section_gid}/addTask", "post", moved)
    deleted = client.request("DELETE", f"/tasks/{gid}", json={})
    assert deleted.json() == {"data": {}}
    _check(oas, "/tasks/{task_gid}", "delete", deleted)


@pytest.mark.parametrize(
    ("path", "params", "headers", "status"),
    [
        ("/tasks", {}, {}, 400),
        ("/tasks/1", {}, {}, 404),
        ("/workspaces", {}, {"Authorization": "Bearer wrong"}, 401),
    ],
)
def test_errors_validate(oas, served, path, params, headers, status):
    _simulator, client = served
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == status
    schema = {"components": oas["components"], "$ref": "#/components/schemas/ErrorResponse"}
    OAS30ReadValidator(schema).validate(response.json())


def test_the_project_memberships_of_a_team_validate(oas):
    """``GET /memberships?member=<team>&resource_subtype=project_membership`` (no parent): every
    project shared with the team, as the spec documents it; without the subtype, or for a user,
    the spec requires a parent (400)."""
    world = World(now=NOW)
    acme = world.add_workspace("Acme", ["acme.example"])
    ada = world.add_user("Ada", "ada@acme.example")
    world.add_workspace_membership(ada, acme, is_admin=True)
    world.default_user = ada.gid
    web, ops = world.add_team(acme, "Web"), world.add_team(acme, "Ops")
    site, infra, other = (world.add_project(acme, name, team=web) for name in ("Site", "Infra", "Other"))
    shared = [world.add_project_team(site, web, "commenter"), world.add_project_team(infra, web, "editor")]
    world.add_project_team(other, ops, "viewer")  # another team's: not listed
    world.add_project_membership(site, ada, "admin")  # a user's: not listed
    with (
        Simulator(world) as simulator,
        httpx.Client(base_url=simulator.base_url, headers={"Authorization": f"Bearer {DEMO_TOKEN}"}) as client,
    ):
        query = {"member": web.gid, "resource_subtype": "project_membership"}
        response = client.get("/memberships", params={**query, "limit": "1"})
        assert response.status_code == 200
        _check(oas, "/memberships", "get", response)
        rest = client.get("/memberships", params={**query, "limit": "1",
                                                   "offset": response.json()["next_page"]["offset"]}).json()
        found = [(m["gid"], m["parent"]["gid"], m["member"]["gid"], m["access_level"], m["resource_subtype"])
                 for m in response.json()["data"] + rest["data"]]
        assert found == [(shared[0].gid, site.gid, web.gid, "commenter", "project_membership"),
                         (shared[1].gid, infra.gid, web.gid, "editor", "project_membership")]
        assert rest["next_page"] is None
        # Edge: without the subtype, or with a user as member, the spec requires a parent.
        assert client.get("/memberships", params={"member": web.gid}).status_code == 400
        assert client.get("/memberships", params={"member": ada.gid, "resource_subtype": "project_membership"}
                          ).status_code == 400
        # With a parent, the member filters that project's memberships, as before.
        by_parent = client.get("/memberships", params={"parent": site.gid, "member": web.gid}).json()["data"]
        assert [m["gid"] for m in by_parent] == [shared[0].gid]
