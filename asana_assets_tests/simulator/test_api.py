"""The simulator's HTTP behaviour: auth, envelopes, paging, opt_fields, filters, limits, faults, events."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest

from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World, generate_world

NOW = datetime(2026, 6, 1, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {DEMO_TOKEN}"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="module")
def shared():
    """A read-only simulator for tests that do not change the world."""
    with (
        Simulator(generate_world(seed=2, tasks=600, now=NOW)) as simulator,
        httpx.Client(base_url=simulator.base_url, headers=AUTH) as client,
    ):
        yield simulator, client


@pytest.fixture()
def fresh():
    """A small world of its own, for tests that mutate it or change the configuration."""
    running: list[tuple[Simulator, httpx.Client]] = []

    def start(**config) -> tuple[Simulator, httpx.Client]:
        simulator = Simulator(generate_world(seed=3, tasks=120, now=NOW), SimulatorConfig(**config))
        simulator.start()
        running.append((simulator, httpx.Client(base_url=simulator.base_url, headers=AUTH)))
        return running[-1]

    yield start
    for simulator, client in running:
        client.close()
        simulator.stop()


def _project(simulator):
    return simulator.world.objects[simulator.world.objects[simulator.world.workspaces[0]].projects[0]]


def _walk(client, path, params):
    """Follow next_page from the first page; return every record and the number of pages."""
    records, pages, offset = [], 0, None
    while True:
        body = client.get(path, params={**params, **({"offset": offset} if offset else {})}).json()
        records += body["data"]
        pages += 1
        if body["next_page"] is None:
            return records, pages
        offset = body["next_page"]["offset"]


# ---------------------------------------------------------------------- auth and envelopes
def test_auth_is_required_and_tokens_map_to_users(fresh):
    simulator, client = fresh()
    other = simulator.world.users[-1]
    simulator.config.tokens["other-token"] = other
    bare = httpx.get(simulator.base_url + "/users/me")
    assert bare.status_code == 401 and bare.json()["errors"][0]["message"] == "Not Authorized"
    assert client.get("/users/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/users/me", headers={"Authorization": "Bearer other-token"}).json()["data"]["gid"] == other
    sdk_headers = {
        "X-Asana-Client-Lib": "language=Python&version=5.4.0",
        "Asana-Enable": "new_goal_memberships",
        "Asana-Disable": "string_ids",
        "Accept": "application/json; charset=UTF-8",
    }
    assert client.get("/users/me", headers=sdk_headers).status_code == 200


def test_unknown_routes_and_objects(shared):
    _simulator, client = shared
    assert client.get("/no/such/route").status_code == 404
    assert client.get("/tasks/123").status_code == 404
    bad = client.get("/tasks/not-a-gid")
    assert bad.status_code == 400 and "task" in bad.json()["errors"][0]["message"]


def test_compact_lists_full_singles_and_timestamps(shared):
    simulator, client = shared
    project = _project(simulator)
    listed = client.get("/tasks", params={"project": project.gid, "limit": 3}).json()["data"]
    assert all(set(task) == {"gid", "resource_type", "name", "resource_subtype"} for task in listed)
    full = client.get(f"/tasks/{listed[0]['gid']}").json()["data"]
    assert {"assignee", "memberships", "modified_at", "completed", "workspace", "permalink_url"} <= set(full)
    assert "num_subtasks" not in full and "html_notes" not in full  # opt-in only
    assert TIMESTAMP.fullmatch(full["created_at"]) and TIMESTAMP.fullmatch(full["modified_at"])
    stories = client.get(f"/tasks/{listed[0]['gid']}/stories").json()["data"]
    assert set(stories[0]) == {"gid", "resource_type", "created_at", "created_by", "resource_subtype", "text"}
    assert all(story["gid"].isdigit() and len(story["gid"]) == 16 for story in stories)


# ---------------------------------------------------------------------- pagination
def test_pages_cover_the_list_exactly(shared):
    simulator, client = shared
    project = _project(simulator)
    records, pages = _walk(client, "/tasks", {"project": project.gid, "limit": 9})
    assert [r["gid"] for r in records] == simulator.world.project_tasks(project)
    assert pages == -(-len(records) // 9)
    first = client.get("/tasks", params={"project": project.gid, "limit": 9}).json()["next_page"]
    assert first["path"].startswith("/tasks?") and "offset=" in first["path"]
    assert first["uri"] == simulator.base_url + first["path"]
    assert "next_page" not in client.get(f"/projects/{project.gid}/sections").json()


@pytest.mark.parametrize("limit", ["0", "101", "ten", "-1"])
def test_limit_out_of_range_is_400(shared, limit):
    _simulator, client = shared
    response = client.get("/workspaces", params={"limit": limit})
    assert response.status_code == 400 and response.json()["errors"][0]["message"].startswith("limit:")


def test_offsets_are_tamper_proof_and_bound_to_their_query(fresh):
    simulator, client = fresh(offset_ttl_seconds=0.5)
    projects = simulator.world.objects[simulator.world.workspaces[0]].projects
    offset = client.get("/tasks", params={"project": projects[0], "limit": 2}).json()["next_page"]["offset"]
    assert client.get("/tasks", params={"project": projects[0], "limit": 2, "offset": offset}).status_code == 200
    tampered = offset[:-2] + ("AA" if not offset.endswith("AA") else "BB")
    assert client.get("/tasks", params={"project": projects[0], "limit": 2, "offset": tampered}).status_code == 400
    assert client.get("/tasks", params={"project": projects[1], "limit": 2, "offset": offset}).status_code == 400
    assert client.get("/tasks", params={"project": projects[0], "offset": "garbage!"}).status_code == 400
    with Simulator(simulator.world) as stranger:  # another secret: offsets are foreign
        foreign = httpx.get(
            stranger.base_url + "/tasks", params={"project": projects[0], "limit": 2, "offset": offset}, headers=AUTH
        )
        assert foreign.status_code == 400
    time.sleep(0.6)
    assert client.get("/tasks", params={"project": projects[0], "limit": 2, "offset": offset}).status_code == 400


def test_unpaginated_lists_are_capped(fresh):
    simulator, client = fresh(max_unpaginated_results=10)
    project = _project(simulator)
    too_large = client.get("/tasks", params={"project": project.gid})
    assert too_large.status_code == 400 and "too large" in too_large.json()["errors"][0]["message"]
    assert client.get(f"/projects/{project.gid}/sections").status_code == 200  # a short list is fine


# ---------------------------------------------------------------------- opt_fields and parameters
def test_opt_fields_dotted_paths_and_unknown_fields(shared):
    simulator, client = shared
    task = next(
        t for t in simulator.world.objects.values() if t.resource_type == "task" and t.assignee and t.memberships
    )
    fields = "name,assignee.name,memberships.section.name,no_such_field,parent,workspace"
    record = client.get(f"/tasks/{task.gid}", params={"opt_fields": fields}).json()["data"]
    assert set(record) == {"gid", "name", "assignee", "memberships", "parent", "workspace"}
    assert record["assignee"] == {"gid": task.assignee, "name": simulator.world.objects[task.assignee].name}
    assert record["memberships"] == [
        {"section": {"gid": s, "name": simulator.world.objects[s].name}} for _p, s in task.memberships
    ]
    assert record["workspace"] == {"gid": task.workspace, "resource_type": "workspace"}  # named without sub-fields
    grouped = client.get(f"/tasks/{task.gid}", params={"opt_fields": "(assignee|workspace).name"}).json()["data"]
    assert set(grouped["assignee"]) == set(grouped["workspace"]) == {"gid", "name"}
    membership = simulator.world.objects[simulator.world.objects[simulator.world.workspaces[0]].memberships[0]]
    users = client.get(
        f"/workspaces/{membership.workspace}/workspace_memberships",
        params={"opt_fields": "user.email,is_active", "limit": 1},
    ).json()["data"]
    assert set(users[0]["user"]) == {"gid", "email"} and users[0]["is_active"] in (True, False)


def test_opt_pretty(shared):
    _simulator, client = shared
    assert "\n  " in client.get("/users/me", params={"opt_pretty": ""}).text
    assert "\n" not in client.get("/users/me").text


@pytest.mark.parametrize(("value", "archived"), [("True", True), ("true", True), ("FALSE", False), ("false", False)])
def test_boolean_queries_ignore_case(shared, value, archived):
    simulator, client = shared
    workspace = simulator.world.workspaces[0]
    listed = client.get(
        "/projects", params={"workspace": workspace, "archived": value, "opt_fields": "archived"}
    ).json()["data"]
    assert listed and all(project["archived"] is archived for project in listed)


def test_bad_boolean_is_400(shared):
    simulator, client = shared
    assert (
        client.get("/projects", params={"workspace": simulator.world.workspaces[0], "archived": "maybe"}).status_code
        == 400
    )


def test_task_listing_filters(shared):
    simulator, client = shared
    world, project = simulator.world, _project(simulator)
    tasks = [world.objects[gid] for gid in world.project_tasks(project)]

    def listed(**params):
        return {t["gid"] for t in _walk(client, "/tasks", {"limit": 100, **params})[0]}

    assert listed(project=project.gid, completed_since="now") == {t.gid for t in tasks if not t.completed}
    cutoff = sorted(t.completed_at for t in tasks if t.completed)[len(tasks) // 4]
    assert listed(project=project.gid, completed_since=cutoff) == {
        t.gid for t in tasks if not t.completed or t.completed_at >= cutoff
    }
    since = sorted(t.modified_at for t in tasks)[len(tasks) // 2]
    assert listed(project=project.gid, modified_since=since) == {t.gid for t in tasks if t.modified_at >= since}
    user = next(t.assignee for t in tasks if t.assignee)
    assert listed(assignee=user, workspace=project.workspace) == {
        t.gid for t in world.tasks_assigned_to(user, project.workspace)
    }
    section = world.objects[project.sections[1]]
    assert listed(section=section.gid) == set(section.tasks)
    assert client.get("/tasks").json()["errors"][0]["message"] == "workspace: Missing input"
    assert client.get("/tasks", params={"assignee": user}).status_code == 400
    assert client.get("/tasks", params={"project": project.gid, "modified_since": "yesterday"}).status_code == 400


def test_workspace_users_are_alphabetical(shared):
    simulator, client = shared
    body = client.get(f"/workspaces/{simulator.world.workspaces[0]}/users", params={"limit": 5}).json()
    names = [u["name"] for u in body["data"]]
    assert names == sorted(names) and len(names) > 5 and "next_page" not in body


# ---------------------------------------------------------------------- visibility
def _multi_homed():
    """A task in a public project and in a private one, moved between the private one's sections,
    with a comment; Pat is in no private project, the robot is a service account on Enterprise."""
    w = World(now=NOW)
    ws = w.add_workspace("Acme", ["acme.example"])
    pat, gil = w.add_user("Pat", "pat@acme.example"), w.add_user("Gil", "gil@acme.example")
    for user in (pat, gil):
        w.add_workspace_membership(user, ws)
    robot = w.add_service_account(ws, "Robot", "robot@acme.example")
    helpdesk, salaries = w.add_project(ws, "Helpdesk"), w.add_project(ws, "Salaries", privacy_setting="private")
    w.add_project_membership(salaries, gil)
    new, (todo, done) = w.add_section(helpdesk, "New"), (w.add_section(salaries, n) for n in ("To do", "Done"))
    task = w.create_task("Printer for payroll", project=helpdesk, actor=gil)
    w.add_task_to_project(task, salaries, section=todo, actor=gil)
    w.move_task_to_section(task, done, actor=gil)
    w.add_comment(task, "Fixed", actor=gil)
    tokens = {"pat-token": pat.gid, "robot-token": robot.gid}
    return w, tokens, {"helpdesk": helpdesk, "salaries": salaries, "new": new, "done": done, "task": task, "gil": gil}


def test_a_task_shows_only_the_projects_the_token_may_read():
    """Asana does not reveal what a user cannot access: a person's token is shown the task's public
    membership only, and none of the private project's stories (adding to it, moving between its
    sections: their text names it) or events; the service account is shown everything. Edge: once
    Pat joins the private project, Pat is shown it too. Expectations are written by hand."""
    w, tokens, o = _multi_homed()
    task = o["task"]
    public = [{"project": o["helpdesk"].gid, "section": o["new"].gid}]
    both = public + [{"project": o["salaries"].gid, "section": o["done"].gid}]
    with Simulator(w, SimulatorConfig(tokens=tokens)) as simulator, httpx.Client(base_url=simulator.base_url) as client:
        def read(token, path, **params):
            response = client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, (path, response.text)
            return response.json()["data"]

        def places(record):
            return [{k: m[k]["gid"] for k in ("project", "section")} for m in record["memberships"]]

        fields = "memberships.project,memberships.section,projects"
        for token, expected in (("pat-token", public), ("robot-token", both)):
            projects = [m["project"] for m in expected]
            listed = read(token, f"/projects/{o['helpdesk'].gid}/tasks", opt_fields=fields)
            assert [places(t) for t in listed] == [expected], token
            assert [[p["gid"] for p in t["projects"]] for t in listed] == [projects], token
            full = read(token, f"/tasks/{task.gid}")
            assert places(full) == expected and [p["gid"] for p in full["projects"]] == projects, token
            assert [p["gid"] for p in read(token, f"/tasks/{task.gid}/projects")] == projects, token
            in_section = read(token, "/tasks", section=o["new"].gid, opt_fields="memberships.project.name")
            assert [[m["project"]["name"] for m in t["memberships"]] for t in in_section] == [
                ["Helpdesk", "Salaries"][: len(expected)]], token

        stories = {token: [s["resource_subtype"] for s in read(token, f"/tasks/{task.gid}/stories")]
                   for token in tokens}
        assert stories == {"pat-token": ["comment_added"],
                           "robot-token": ["added_to_project", "section_changed", "comment_added"]}
        hidden = [g for g in task.stories if w.objects[g].resource_subtype != "comment_added"]
        for gid in hidden:
            refused = client.get(f"/stories/{gid}", headers={"Authorization": "Bearer pat-token"})
            assert refused.status_code == 403 and "not visible to this user" in refused.text

        # Events: Pat's feeds of the task and of the public project hold neither the private
        # project's moves nor its stories; the robot's hold them.
        before = {}
        for token in tokens:
            for resource in (task.gid, o["helpdesk"].gid):
                body = client.get("/events", params={"resource": resource},
                                  headers={"Authorization": f"Bearer {token}"}).json()
                before[token, resource] = body["sync"]
        w.move_task_to_section(task, w.objects[o["salaries"].sections[0]], actor=o["gil"])
        w.add_task_to_project(task, w.add_project(w.workspaces[0], "Open"), actor=o["gil"])
        for (token, resource), sync in before.items():
            events = read(token, "/events", resource=resource, sync=sync)
            seen = [(e["type"], e["action"], (e["parent"] or {}).get("resource_type"),
                     w.objects[e["resource"]["gid"]].resource_subtype if e["type"] == "story" else None)
                    for e in events]
            assert seen == ([] if token == "pat-token" else [
                ("story", "added", "task", "section_changed"), ("task", "added", "section", None)]) + [
                ("story", "added", "task", "added_to_project"), ("task", "added", "project", None)], (token, resource)

        w.add_project_membership(o["salaries"], tokens["pat-token"])  # edge: now Pat may read it
        assert [m["project"]["gid"] for m in read("pat-token", f"/tasks/{task.gid}")["memberships"]] == [
            o["helpdesk"].gid, o["salaries"].gid, w.objects[w.workspaces[0]].projects[-1]]
        assert len(read("pat-token", f"/tasks/{task.gid}/stories")) == 5


# ---------------------------------------------------------------------- deletion
def test_direct_reads_of_what_the_token_may_not_see_are_403(fresh):
    """A person's token reads a private project's task, its stories, subtasks, section and feed
    by gid no more than it lists them: 403 (the object exists; a deleted one is a 404). The demo
    token, a service account of an Enterprise organisation, reads them all."""
    simulator, client = fresh()
    world = simulator.world
    outsider = world.add_user("Outsider", "outsider@northwind.example.com")
    world.add_workspace_membership(outsider, world.workspaces[0])
    simulator.config.tokens["outsider-token"] = outsider.gid
    with world.lock:
        hidden = _project(simulator)
        hidden.privacy_setting = "private"  # and the outsider is in none of its teams
        task = world.objects[next(g for g in world.project_tasks(hidden)
                                  if world.objects[g].stories and len(world.objects[g].memberships) == 1)]
        story, section = task.stories[0], hidden.sections[0]
        shown = world.add_project(world.workspaces[0], "Open to all").gid
    paths = [f"/tasks/{task.gid}", f"/tasks/{task.gid}/stories", f"/tasks/{task.gid}/subtasks",
             f"/tasks/{task.gid}/tags", f"/stories/{story}", f"/projects/{hidden.gid}", f"/sections/{section}",
             f"/sections/{section}/tasks", f"/projects/{hidden.gid}/sections", f"/projects/{hidden.gid}/tasks",
             f"/tasks?project={hidden.gid}", f"/memberships?parent={hidden.gid}"]
    as_outsider = {"Authorization": "Bearer outsider-token"}
    for path in paths:
        assert client.get(path).status_code == 200, path  # the service account
        refused = client.get(path, headers=as_outsider)
        assert refused.status_code == 403, path
        assert refused.json()["errors"][0]["message"].endswith("is not visible to this user")
    assert client.get(f"/projects/{shown}", headers=as_outsider).status_code == 200  # no alarm: a public one
    sync = client.get("/events", params={"resource": hidden.gid}).json()["sync"]
    assert client.get("/events", params={"resource": hidden.gid, "sync": sync}, headers=as_outsider).status_code == 403
    # Edge: once the outsider follows the task, that task (not its project) opens to them.
    with world.lock:
        task.followers.append(outsider.gid)
    assert client.get(f"/tasks/{task.gid}/stories", headers=as_outsider).status_code == 200
    assert client.get(f"/projects/{hidden.gid}", headers=as_outsider).status_code == 403
    world.delete_task(task)
    assert client.get(f"/tasks/{task.gid}", headers=as_outsider).status_code == 404  # gone is not hidden


def test_deleted_tasks_vanish_everywhere(fresh):
    simulator, client = fresh()
    world, project = simulator.world, _project(simulator)
    parent = next(world.objects[g] for g in world.project_tasks(project) if world.objects[g].subtasks)
    child, story = parent.subtasks[0], parent.stories[0]
    sync = client.get("/events", params={"resource": project.gid}).json()["sync"]
    response = client.request("DELETE", f"/tasks/{parent.gid}", json={})
    assert response.status_code == 200 and response.json() == {"data": {}}
    for path in (f"/tasks/{parent.gid}", f"/tasks/{child}", f"/stories/{story}", f"/tasks/{parent.gid}/stories"):
        assert client.get(path).status_code == 404, path
    listed = {t["gid"] for t in _walk(client, "/tasks", {"project": project.gid, "limit": 100})[0]}
    assert parent.gid not in listed
    events = client.get("/events", params={"resource": project.gid, "sync": sync}).json()["data"]
    assert {(e["resource"]["gid"], e["action"]) for e in events} >= {(parent.gid, "deleted"), (child, "deleted")}
    assert parent.gid in world.deleted


# ---------------------------------------------------------------------- task counts
TASK_COUNT_FIELDS = ("num_tasks", "num_incomplete_tasks", "num_completed_tasks", "num_milestones",
                     "num_incomplete_milestones", "num_completed_milestones")  # the spec's opt_fields enum


def test_task_counts_follow_the_spec_and_count_what_asana_counts():
    """GET /projects/{gid}/task_counts is a TaskCountResponse: every field opt-in (nothing without
    opt_fields), exactly the fields asked for, no gid, unknown names skipped. It counts every task
    placed in the project: completed ones, milestones (tasks too) and a subtask added to it; not a
    subtask left out of it nor a deleted task. 404, 403 and 400 as for the project itself.
    Expected numbers are counted by hand from the tasks made here."""
    w = World(now=NOW)
    ws = w.add_workspace("Acme", ["acme.example"])
    pat, gil = w.add_user("Pat", "pat@acme.example"), w.add_user("Gil", "gil@acme.example")
    for user in (pat, gil):
        w.add_workspace_membership(user, ws)
    board, secret = w.add_project(ws, "Board"), w.add_project(ws, "Secret", privacy_setting="private")
    w.add_project_membership(secret, gil)
    first = w.create_task("Open", project=board, actor=gil)
    w.create_task("Open too", project=board, actor=gil)
    w.complete_task(w.create_task("Done", project=board, actor=gil), actor=gil)
    w.create_task("Launch", project=board, resource_subtype="milestone", actor=gil)
    w.complete_task(w.create_task("Shipped", project=board, resource_subtype="milestone", actor=gil), actor=gil)
    w.add_task_to_project(w.create_task("Subtask in the board", parent=first, actor=gil), board, actor=gil)
    w.create_task("Subtask left out", parent=first, actor=gil)
    w.delete_task(w.create_task("Deleted", project=board, actor=gil), actor=gil)
    tokens = {"gil-token": gil.gid, "pat-token": pat.gid}
    with (
        Simulator(w, SimulatorConfig(tokens=tokens)) as simulator,
        httpx.Client(base_url=simulator.base_url, headers={"Authorization": "Bearer gil-token"}) as client,
    ):
        path = f"/projects/{board.gid}/task_counts"
        assert client.get(path).json() == {"data": {}}
        every = client.get(path, params={"opt_fields": ",".join(TASK_COUNT_FIELDS)})
        assert every.status_code == 200
        assert every.json() == {"data": {
            "num_tasks": 6, "num_incomplete_tasks": 4, "num_completed_tasks": 2,
            "num_milestones": 2, "num_incomplete_milestones": 1, "num_completed_milestones": 1,
        }}
        assert client.get(path, params={"opt_fields": "num_tasks,gid,no_such_field"}).json() == {
            "data": {"num_tasks": 6}}
        w.create_task("Added", project=board, actor=gil)  # edge: the count follows at once
        assert client.get(path, params={"opt_fields": "num_tasks"}).json() == {"data": {"num_tasks": 7}}

        hidden = f"/projects/{secret.gid}/task_counts"
        assert client.get(hidden, params={"opt_fields": "num_tasks"}).json() == {"data": {"num_tasks": 0}}
        refused = client.get(hidden, params={"opt_fields": "num_tasks"}, headers={"Authorization": "Bearer pat-token"})
        assert refused.status_code == 403 and refused.json()["errors"][0]["message"].endswith("not visible to this user")
        assert client.get("/projects/123/task_counts").status_code == 404
        bad = client.get("/projects/board/task_counts")
        assert bad.status_code == 400 and bad.json()["errors"][0]["message"] == "project: Not a Long: board"


# ---------------------------------------------------------------------- rate limits
def test_quota_answers_429_with_retry_after(fresh):
    simulator, client = fresh(requests_per_minute=5)
    statuses = [client.get("/workspaces").status_code for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    limited = client.get("/workspaces")
    assert limited.json() == {
        "errors": [
            {
                "message": "You've made too many requests and hit a rate limit. Please retry "
                "after the given amount of time.",
                "help": limited.json()["errors"][0]["help"],
            }
        ]
    }
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    simulator.config.tokens["second"] = None
    assert client.get("/workspaces", headers={"Authorization": "Bearer second"}).status_code == 200  # per token


def test_concurrency_caps_reads_and_writes_separately(fresh):
    simulator, _client = fresh(latency_ms=400, max_concurrent_reads=3, max_concurrent_writes=1)
    task = simulator.world.project_tasks(_project(simulator))[0]

    def call(method_path):
        method, path = method_path
        with httpx.Client(base_url=simulator.base_url, headers=AUTH, timeout=10) as own:
            response = own.request(method, path, json={"data": {"text": "hi"}} if method == "POST" else None)
            return method, response.status_code, response.headers.get("Retry-After")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, [("GET", "/workspaces")] * 5 + [("POST", f"/tasks/{task}/stories")]))
    reads = sorted(status for method, status, _ in results if method == "GET")
    assert reads == [200, 200, 200, 429, 429]
    assert all(retry == "1" for method, status, retry in results if status == 429)
    assert [status for method, status, _ in results if method == "POST"] == [201]  # its own pool
    assert simulator.stats.max_in_flight_reads == 3


# ---------------------------------------------------------------------- faults
def test_injected_errors_and_storms(fresh):
    _simulator, client = fresh(
        error_rate=0.3, unavailable_rate=0.2, rate_limit_storm_rate=0.2, storm_retry_after=2, fault_seed=9
    )
    responses = [client.get("/workspaces") for _ in range(60)]
    statuses = {r.status_code for r in responses}
    assert statuses == {200, 429, 500, 503}
    assert all("phrase" in r.json()["errors"][0] for r in responses if r.status_code == 500)
    assert all(r.headers["Retry-After"] == "2" for r in responses if r.status_code == 429)
    _again, again_client = fresh(
        error_rate=0.3, unavailable_rate=0.2, rate_limit_storm_rate=0.2, storm_retry_after=2, fault_seed=9
    )
    assert [again_client.get("/workspaces").status_code for _ in range(60)] == [r.status_code for r in responses]


def test_dropped_connections_and_latency(fresh):
    simulator, client = fresh(drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        client.get("/workspaces")
    assert simulator.stats.dropped == 1
    _slow, slow_client = fresh(latency_ms=150)
    started = time.monotonic()
    assert slow_client.get("/workspaces").status_code == 200
    assert time.monotonic() - started >= 0.15


def test_malformed_records_are_stable_ground_truth(fresh):
    simulator, client = fresh(malformed_rate=0.2, fault_seed=4)
    bad = simulator.malformed_gids()
    tasks = [o for o in simulator.world.objects.values() if o.resource_type == "task"]
    assert 0 < len({t.gid for t in tasks} & bad) < len(tasks)
    for task in tasks[:40]:
        first = client.get(f"/tasks/{task.gid}").json()["data"]
        assert first == client.get(f"/tasks/{task.gid}").json()["data"]  # the same corruption every time
        assert first["gid"] == task.gid
        corrupted = (
            first["created_at"] == "not-a-date"
            or first["completed"] == "sometimes"
            or first["assignee"] == "12345"
            or first["modified_at"] == 17
        )
        assert corrupted == (task.gid in bad)
    story = next(gid for gid in bad if simulator.world.objects[gid].resource_type == "story")
    target = simulator.world.objects[story].target
    listed = {s["gid"]: s for s in client.get(f"/tasks/{target}/stories").json()["data"]}
    assert (
        "not-a-date" in str(listed[story])
        or listed[story].get("created_by") == "12345"
        or listed[story]["resource_subtype"] is None
    )


# ---------------------------------------------------------------------- events
def test_events_412_dance_paging_and_expiry(fresh):
    simulator, client = fresh(sync_token_ttl_seconds=1.0)
    world, project = simulator.world, _project(simulator)
    first = client.get("/events", params={"resource": project.gid})
    assert first.status_code == 412 and first.json()["errors"][0]["message"].startswith("Sync token invalid")
    sync = first.json()["sync"]
    task = world.project_tasks(project)[0]
    for n in range(75):  # two events each: the story added and the task changed
        world.update_task(task, name=f"Rename {n}", actor=world.default_user)
    page = client.get("/events", params={"resource": project.gid, "sync": sync, "limit": 100}).json()
    assert len(page["data"]) == 100 and page["has_more"] is True
    assert (
        client.get("/events", params={"resource": project.gid, "sync": sync}).json()["data"] == page["data"]
    )  # resend
    rest = client.get("/events", params={"resource": project.gid, "sync": page["sync"]}).json()
    assert len(rest["data"]) == 50 and rest["has_more"] is False
    time.sleep(1.1)
    expired = client.get("/events", params={"resource": project.gid, "sync": rest["sync"]})
    assert expired.status_code == 412 and expired.json()["sync"] != rest["sync"]
    fresh_sync = expired.json()["sync"]
    simulator.expire_sync_tokens()
    assert client.get("/events", params={"resource": project.gid, "sync": fresh_sync}).status_code == 412
    assert client.get("/events", params={"resource": project.gid, "sync": "forged"}).status_code == 412


def test_event_shapes_and_bubbling(fresh):
    simulator, client = fresh()
    world, project = simulator.world, _project(simulator)
    parent = next(world.objects[g] for g in world.project_tasks(project) if world.objects[g].subtasks)
    subtask = parent.subtasks[0]
    syncs = {r: client.get("/events", params={"resource": r}).json()["sync"] for r in (project.gid, parent.gid)}
    user = next(u for u in world.users[1:] if u != world.objects[subtask].assignee)
    world.update_task(subtask, assignee=user, actor=world.default_user)
    world.move_task_to_section(parent, project.sections[-1], actor=world.default_user)
    world.complete_task(parent)  # a system change: no actor
    for resource, sync in syncs.items():
        events = client.get("/events", params={"resource": resource, "sync": sync}).json()["data"]
        assigned = next(e for e in events if e["action"] == "changed" and e["resource"]["gid"] == subtask)
        assert assigned["change"] == {
            "field": "assignee",
            "action": "changed",
            "new_value": {"gid": user, "resource_type": "user", "name": world.objects[user].name},
        }
        assert assigned["user"]["gid"] == world.default_user and assigned["parent"] is None
        moved = next(e for e in events if e["action"] == "added" and e["resource"]["gid"] == parent.gid)
        assert moved["parent"]["gid"] == project.sections[-1] and "change" not in moved
        story = next(e for e in events if e["resource"]["resource_type"] == "story")
        assert story["action"] == "added" and story["parent"]["resource_type"] == "task"
        completed = next(e for e in events if e.get("change", {}).get("field") in ("completed", "approval_status"))
        assert completed["user"] is None and completed["type"] == "task"


@pytest.mark.parametrize("naming", ["project_membership", "membership"])
def test_project_membership_events_in_either_naming(fresh, naming):
    simulator, client = fresh(membership_events=naming)
    world, project = simulator.world, _project(simulator)
    sync = client.get("/events", params={"resource": project.gid}).json()["sync"]
    outsider = next(u for u in world.users if u not in {world.objects[m].user for m in project.memberships})
    added = world.add_project_membership(project, outsider, "commenter", actor=world.default_user)
    world.remove_project_membership(added, actor=world.default_user)
    events = client.get("/events", params={"resource": project.gid, "sync": sync}).json()["data"]
    subtype = {"resource_subtype": "project_membership"} if naming == "membership" else {}
    assert [(e["type"], e["resource"], e["action"], e["parent"]["gid"]) for e in events] == [
        (naming, {"gid": added.gid, "resource_type": naming, **subtype}, action, project.gid)
        for action in ("added", "removed")
    ]
    assert world.events[project.gid][-1].resource["resource_type"] == "project_membership"  # stored as it happened


def test_section_events_and_a_removed_section(fresh):
    simulator, client = fresh()
    world, project = simulator.world, _project(simulator)
    sync = client.get("/events", params={"resource": project.gid}).json()["sync"]
    section = world.add_section(project, "Icebox", actor=world.default_user)
    world.rename_section(section, "Later", actor=world.default_user)
    world.remove_section(section, actor=world.default_user)
    events = client.get("/events", params={"resource": project.gid, "sync": sync}).json()["data"]
    assert [(e["resource"], e["action"], e["parent"], e.get("change")) for e in events] == [
        ({"gid": section.gid, "resource_type": "section", "name": "Icebox"}, "added",
         {"gid": project.gid, "resource_type": "project", "name": project.name}, None),
        ({"gid": section.gid, "resource_type": "section", "name": "Later"}, "changed", None,
         {"field": "name", "action": "changed"}),
        ({"gid": section.gid, "resource_type": "section", "name": "Later"}, "deleted", None, None),
    ]
    assert client.get(f"/sections/{section.gid}").status_code == 404
    assert section.gid not in {s["gid"] for s in client.get(f"/projects/{project.gid}/sections").json()["data"]}


# ---------------------------------------------------------------------- writes and stats
def test_write_endpoints(fresh):
    simulator, client = fresh()
    world, project = simulator.world, _project(simulator)
    created = client.post(
        "/tasks",
        json={
            "data": {
                "name": "Rotate keys",
                "memberships": [{"project": project.gid, "section": project.sections[1]}],
                "due_on": "2026-07-01",
            },
            "options": {"fields": ["name", "memberships.section.name"]},
        },
    )
    assert created.status_code == 201 and created.headers["Location"].endswith(
        f"/tasks/{created.json()['data']['gid']}"
    )
    gid = created.json()["data"]["gid"]
    assert created.json()["data"]["memberships"][0]["section"]["gid"] == project.sections[1]
    assert client.post("/tasks", json={"data": {"name": "Nowhere"}}).status_code == 400
    assert client.post("/tasks", content=b"{not json").status_code == 400
    assert client.put(f"/tasks/{gid}", json={"data": {"projects": []}}).status_code == 400
    assert client.put(f"/tasks/{gid}", json={"data": {"approval_status": "approved"}}).status_code == 400
    assert (
        client.put(f"/tasks/{gid}", json={"data": {"assignee": "me", "name": "Rotate all keys"}}).json()["data"]["name"]
        == "Rotate all keys"
    )
    other = world.objects[world.objects[project.workspace].projects[1]]
    assert client.post(f"/tasks/{gid}/addProject", json={"data": {"project": other.gid}}).json() == {"data": {}}
    assert client.post(f"/sections/{project.sections[-1]}/addTask", json={"data": {"task": gid}}).json() == {"data": {}}
    assert client.post(f"/tasks/{gid}/removeProject", json={"data": {"project": other.gid}}).json() == {"data": {}}
    assert client.post(f"/tasks/{gid}/stories", json={"data": {}}).status_code == 400
    subtypes = [world.objects[s].resource_subtype for s in world.objects[gid].stories]
    assert subtypes == ["name_changed", "assigned", "added_to_project", "section_changed", "removed_from_project"]
    assert all(world.objects[s].created_by == world.default_user for s in world.objects[gid].stories)


def test_stats_routes(fresh):
    simulator, client = fresh()
    project = _project(simulator)
    client.get(f"/projects/{project.gid}")
    client.get("/tasks/1")
    stats_url = simulator.base_url.removesuffix("/api/1.0") + "/_simulator/stats"
    stats = httpx.get(stats_url).json()
    assert stats["by_status"] == {"200": 1, "404": 1}
    assert stats["by_route"]["/api/1.0/projects/{project_gid}"] == 1
    assert httpx.post(stats_url + "/reset").json()["total"] == 0
    assert simulator.stats.total == 0


def test_command_line_serves_until_interrupted():
    command = [sys.executable, "-m", "asana_assets.simulator", "--port", "0", "--tasks", "60", "--token", "cli-token"]
    # Started with SIGINT ignored, as a background job is: Ctrl-C (SIGINT) still stops it.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        url = re.search(r"http://\S+/api/1\.0", process.stdout.readline()).group(0)
        assert "cli-token" in process.stdout.readline()
        response = httpx.get(url + "/users/me", headers={"Authorization": "Bearer cli-token"})
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
