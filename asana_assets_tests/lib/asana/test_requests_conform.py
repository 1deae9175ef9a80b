"""Every request the client sends is one Asana's official OpenAPI spec declares: its path and
method, its query parameters, its opt_fields and its write bodies' keys.

The client's real operations (a full crawl, an incremental sync, a reconcile, the listing
fallbacks, the audit log, coverage, remediation's writes) run against the simulator, which
records each request it receives; the checker then reports every violation at once.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pandas as pd
import pytest
from aiohttp import web

from asana_assets.lib.asana.audit_log import read_audit_log
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.crawl import crawl
from asana_assets.lib.asana.incremental import incremental_sync, record_full_sync
from asana_assets.lib.asana.reconcile import reconcile_sync
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.compliance.remediation import remediate
from asana_assets.lib.connections.coverage import coverage
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World, generate_world
from asana_assets.simulator.calls import API
from asana_assets_tests.support.truth import assert_matches_truth
from asana_assets_tests.support.worlds import change_the_world

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUOTA = 1_000_000
LIMIT = 120  # a listing past it is truncated (max_listing_results): its second page answers 400

# What the client sends though the spec does not declare it, and why. Keys are
# (method, path template, "param" or "opt_fields" or "body", name).
ALLOWED: dict[tuple[str, str, str, str], str] = {
    ("GET", "/workspaces/{workspace_gid}/workspace_memberships", "opt_fields", "user.email"): (
        "the API notes (§15) read users this way, user.name,user.email included: the listing is paginated, "
        "unlike /workspaces/{gid}/users (capped at 2000), and shows deprovisioned members as inactive (§6)"),
}


@dataclass(frozen=True)
class Sent:
    """One request as the simulator received it: the path below /api/1.0, the query's items in
    order (a name may repeat) and the JSON body of a write (None for a GET)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: Any = None


# ---------------------------------------------------------------------- the checker
def violations(oas: dict[str, Any], sent: list[Sent], allowed=ALLOWED) -> list[str]:
    """Every way the requests in ``sent`` depart from the spec, each named once."""
    # Literal segments first: /tasks/search before /tasks/{task_gid}.
    templates = [(t, _pattern(t)) for t in sorted(oas["paths"], key=lambda t: t.count("{"))]
    found: dict[str, None] = {}  # ordered, without repeats
    for request in sent:
        template = next((t for t, pattern in templates if pattern.fullmatch(request.path)), None)
        operation = oas["paths"][template].get(request.method.lower()) if template else None
        if operation is None:
            found[f"{request.method} {request.path}: no such operation in the spec"] = None
            continue
        for problem in _check(oas, template, operation, request):
            where = (request.method, template, *problem[:2])
            if where not in allowed:
                found[f"{request.method} {template}: {problem[2]}"] = None
    return list(found)


def _pattern(template: str) -> re.Pattern[str]:
    """A path template as a regex: each ``{name}`` is one segment."""
    return re.compile(re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template)))


def _check(oas: dict[str, Any], template: str, operation: dict[str, Any], request: Sent):
    """(kind, name, message) for each departure of one request from its operation."""
    declared = {}
    for parameter in oas["paths"][template].get("parameters", []) + operation.get("parameters", []):
        parameter = _resolve(oas, parameter)
        if parameter["in"] == "query":
            declared[parameter["name"]] = parameter
    names = [name for name, _ in request.query]
    for name, value in request.query:
        if name not in declared:
            yield "param", name, f"query parameter {name!r} is not declared"
        elif name == "opt_fields":
            enum = set(declared[name]["schema"]["items"].get("enum", ()))
            for field in value.split(","):
                if field not in enum:
                    yield "opt_fields", field, f"opt_field {field!r} is not in the enum"
    for name, parameter in declared.items():
        if parameter.get("required") and name not in names:
            yield "param", name, f"required query parameter {name!r} is missing"
    if request.body is not None:
        content = _resolve(oas, operation.get("requestBody", {})).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            yield "body", "", "the operation takes no JSON body"
        else:
            yield from _body(oas, schema, request.body, "")


def _body(oas: dict[str, Any], schema: dict[str, Any], value: Any, at: str):
    """Each key of an object ``value`` the schema does not have (or has read-only), at any depth;
    an object whose schema names no properties (a map such as custom_fields) is free-form."""
    properties = _properties(oas, schema)
    if not isinstance(value, dict) or not properties:
        return
    for key, item in value.items():
        name = f"{at}{key}"
        if key not in properties:
            yield "body", name, f"body key {name!r} is not in the request schema"
        elif _resolve(oas, properties[key]).get("readOnly"):
            yield "body", name, f"body key {name!r} is read-only"
        else:
            yield from _body(oas, properties[key], item, f"{name}.")


def _properties(oas: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema's properties, through its $refs and allOf branches."""
    schema = _resolve(oas, schema)
    properties = dict(schema.get("properties", {}))
    for branch in schema.get("allOf", []):
        properties |= _properties(oas, branch)
    return properties


def _resolve(oas: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target = oas
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


# ---------------------------------------------------------------------- recording
def serving(world: World, config: SimulatorConfig, middleware) -> Simulator:
    """A simulator whose application has ``middleware`` ahead of its own (so it sees refused and
    retried requests too)."""
    simulator = Simulator(world, config)
    build = simulator.api.app

    def app() -> web.Application:
        application = build()
        application.middlewares.insert(0, middleware)
        return application

    simulator.api.app = app
    return simulator


def recording(world: World, config: SimulatorConfig, sent: list[Sent]) -> Simulator:
    """A simulator that appends each API request it receives to ``sent``."""

    @web.middleware
    async def record(request: web.Request, handler):
        if request.path.startswith(API):
            body = orjson.loads(await request.read() or b"null") if request.method != "GET" else None
            sent.append(Sent(request.method, request.path.removeprefix(API), tuple(request.query.items()), body))
        return await handler(request)

    return serving(world, config, record)


def run(base_url: str, work):
    async def go():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=QUOTA, max_retries=1,
                               backoff_base=0.01) as client:
            return await work(client)

    return asyncio.run(go())


def grown_world() -> World:
    """A small world whose largest project holds more than LIMIT tasks (its sections fewer), so
    it is read section by section; every other listing stays under LIMIT."""
    world = generate_world(seed=4, tasks=60, now=NOW)
    # Room for the stories the changes between syncs add.
    assert max(len(world.objects[t["gid"]].stories) for t in world.ground_truth()["tasks"]) < LIMIT - 5
    project = max((world.objects[p] for p in world.objects[world.workspaces[0]].projects),
                  key=lambda p: len(p.sections))
    sections = list(project.sections)
    for i in range(LIMIT + 1 - len(world.project_tasks(project))):
        world.create_task(f"Grown {i}", project=project.gid, section=sections[i % len(sections)],
                          actor=world.default_user)
    assert all(len(world.objects[s].tasks) <= LIMIT for s in sections)
    return world


def synced(world: World, sent: list[Sent]) -> None:
    """A full crawl (listings split: tasks by section, projects by team), an incremental sync
    after a busy day, and a reconcile; each leaves the tables equal to the ground truth."""
    config = SimulatorConfig(requests_per_minute=QUOTA, max_listing_results=LIMIT, large_domain_projects=0)
    with recording(world, config, sent) as sim:
        first = run(sim.base_url, lambda client: crawl(client, track_events=True))
        assert set(first.split) == {"tasks_by_section", "projects_by_team"}
        assert first.tables["quarantine"].num_rows == 0
        assert_matches_truth(first.tables, world.ground_truth())
        state = SyncState()
        record_full_sync(state, first)
        change_the_world(world)
        changed = run(sim.base_url, lambda client: incremental_sync(client, state, first.tables))
        assert_matches_truth(changed.result.tables, world.ground_truth())
        reconciled = run(sim.base_url, lambda client: reconcile_sync(client, state, changed.result.tables))
        assert_matches_truth(reconciled.result.tables, world.ground_truth())


def enterprise(sent: list[Sent]) -> None:
    """The audit log read and coverage in an Enterprise workspace, then remediation's writes: a
    finding opened, updated by a later run, then cleared (commented and completed)."""
    world = World(now=NOW)
    world.enterprise = True
    acme = world.add_workspace("Acme", ["acme.example"])
    ada, uma = world.add_user("Ada", "ada@acme.example"), world.add_user("Uma", "uma@acme.example")
    world.add_workspace_membership(ada, acme, is_admin=True, at=NOW - timedelta(days=1))
    world.add_workspace_membership(uma, acme, is_admin=True, at=NOW - timedelta(hours=1))
    world.default_user = ada.gid
    world.service_accounts.add(ada.gid)
    findings = world.add_project(acme, "Compliance findings", owner=ada)
    world.add_section(findings, "Open")
    finding = {"monitor_id": "admin_access_restricted", "resource_type": "user", "resource_gid": uma.gid,
               "reason": "an admin nobody approved", "severity": "high", "control_refs": ["SOC2:CC6.3"],
               "resource_url": None}

    def remediation(status: str, known: dict[str, str]):
        results = pd.DataFrame([{**finding, "status": status}])
        as_of = pd.Timestamp(NOW)
        return lambda client: remediate(client, findings.gid, ada.gid, results, known, "r1", as_of, "report.html")

    with recording(world, SimulatorConfig(requests_per_minute=QUOTA), sent) as sim:
        audit = run(sim.base_url, lambda client: read_audit_log(client, [acme.gid], {}, {}, None, NOW))
        assert audit.table.num_rows == 2 and audit.unavailable == {}
        assert run(sim.base_url, lambda client: coverage(client, [acme.gid])).full
        opened = run(sim.base_url, remediation("alarm", {}))
        assert opened.opened and run(sim.base_url, remediation("alarm", {})).updated  # found by its marker
        assert run(sim.base_url, remediation("ok", opened.tasks)).closed


@pytest.fixture(scope="module")
def sent() -> list[Sent]:
    requests: list[Sent] = []
    synced(grown_world(), requests)
    enterprise(requests)
    return requests


# ---------------------------------------------------------------------- the tests
def test_every_request_the_client_sends_is_declared_by_the_spec(oas, sent):
    assert violations(oas, sent) == []


def test_the_operations_covered(sent):
    """The requests checked include every operation the runs above make, so one dropped from
    them cannot pass unseen."""
    routes = {(r.method, re.sub(r"/\d+", "/{gid}", r.path)) for r in sent}
    assert {
        ("GET", "/users/me"), ("GET", "/users/me/workspace_memberships"), ("GET", "/users"), ("GET", "/workspaces"),
        ("GET", "/workspaces/{gid}/workspace_memberships"), ("GET", "/workspaces/{gid}/teams"),
        ("GET", "/workspaces/{gid}/tags"), ("GET", "/teams/{gid}/team_memberships"), ("GET", "/teams/{gid}/projects"),
        ("GET", "/projects"), ("GET", "/projects/{gid}/sections"), ("GET", "/projects/{gid}/custom_field_settings"),
        ("GET", "/projects/{gid}/task_counts"), ("GET", "/memberships"), ("GET", "/sections/{gid}/tasks"),
        ("GET", "/tasks"), ("GET", "/tasks/{gid}/stories"), ("GET", "/tasks/{gid}/subtasks"), ("GET", "/events"),
        ("GET", "/tasks/{gid}"), ("GET", "/workspaces/{gid}/audit_log_events"), ("GET", "/projects/{gid}/tasks"),
        ("POST", "/tasks"), ("PUT", "/tasks/{gid}"), ("POST", "/tasks/{gid}/stories"),
    } <= routes


def test_the_checker_reports_every_violation(oas):
    bad = [
        Sent("GET", "/tasks/1/nowhere", ()),
        Sent("DELETE", "/workspaces", ()),
        Sent("GET", "/tasks", (("project", "1"), ("colour", "red"), ("opt_fields", "name,mood,notes"))),
        Sent("GET", "/events", ()),
        Sent("PUT", "/tasks/1", (), {"data": {"completed": True, "mood": "sunny", "gid": "1"}}),
        Sent("POST", "/tasks", (), {"data": {"name": "x"}, "extra": 1}),
    ]
    assert violations(oas, bad) == [
        "GET /tasks/1/nowhere: no such operation in the spec",
        "DELETE /workspaces: no such operation in the spec",
        "GET /tasks: query parameter 'colour' is not declared",
        "GET /tasks: opt_field 'mood' is not in the enum",
        "GET /events: required query parameter 'resource' is missing",
        "PUT /tasks/{task_gid}: body key 'data.mood' is not in the request schema",
        "PUT /tasks/{task_gid}: body key 'data.gid' is read-only",
        "POST /tasks: body key 'extra' is not in the request schema",
    ]
    # An allowlisted departure is not reported, and only that one.
    allowed = {("GET", "/tasks", "opt_fields", "mood"): "a reason"}
    assert "GET /tasks: opt_field 'mood' is not in the enum" not in violations(oas, bad, allowed)
    assert len(violations(oas, bad, allowed)) == 7


def test_avatars_are_read_where_the_spec_has_them():
    """The users listing is where the spec gives a user's photo (the simulator serves none: a
    middleware adds one to each user it lists); each user's row holds it."""
    world = generate_world(seed=4, tasks=10, now=NOW)
    photo = "https://s3.example.test/{}_128x128.png".format

    @web.middleware
    async def with_photos(request: web.Request, handler):
        response = await handler(request)
        if request.path == f"{API}/users" and "photo.image_128x128" in request.query.get("opt_fields", ""):
            body = orjson.loads(response.body)
            for user in body["data"]:
                user["photo"] = {"image_128x128": photo(user["gid"])}
            response.body = orjson.dumps(body)
        return response

    with serving(world, SimulatorConfig(requests_per_minute=QUOTA), with_photos) as sim:
        result = run(sim.base_url, lambda client: crawl(client, tables=["users", "workspace_memberships"]))
    users = result.tables["users"].to_pylist()
    assert {u["gid"] for u in users} == {u["gid"] for u in world.ground_truth()["users"]}
    assert all(u["photo_url"] == photo(u["gid"]) for u in users)
