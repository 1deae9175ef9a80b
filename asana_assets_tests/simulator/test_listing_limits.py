"""Listings the real API refuses: a result set truncated past its size (400 on the page reaching
past it), a large domain's whole project listing timing out (504) while listing by team works,
and configured refusals (401, 402, 403) of one call."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world
from asana_assets.simulator.__main__ import _parser

NOW = datetime(2026, 6, 1, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {DEMO_TOKEN}"}


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=3, tasks=120, now=NOW)


@pytest.fixture()
def serve(world):
    """A simulator over the module's world with the given configuration, and an HTTP client."""
    running: list[tuple[Simulator, httpx.Client]] = []

    def start(**config) -> httpx.Client:
        simulator = Simulator(world, SimulatorConfig(**config))
        simulator.start()
        running.append((simulator, httpx.Client(base_url=simulator.base_url, headers=AUTH)))
        return running[-1][1]

    yield start
    for simulator, client in running:
        client.close()
        simulator.stop()


def walk(client: httpx.Client, path: str, params: dict) -> tuple[list[str], httpx.Response | None]:
    """The gids of every page served in order, and the refusal that ended the walk (None: none)."""
    gids: list[str] = []
    offset = None
    while True:
        response = client.get(path, params={**params, **({"offset": offset} if offset else {})})
        if response.status_code != 200:
            return gids, response
        body = response.json()
        gids += [record["gid"] for record in body["data"]]
        if body["next_page"] is None:
            return gids, None
        offset = body["next_page"]["offset"]


def largest_project(world):
    projects = [world.objects[gid] for gid in world.objects[world.workspaces[0]].projects]
    return max(projects, key=lambda p: len(world.project_tasks(p)))


def test_a_listing_exactly_at_the_limit_is_served_whole(world, serve):
    project = largest_project(world)
    size = len(world.project_tasks(project))
    client = serve(max_listing_results=size)
    gids, refused = walk(client, "/tasks", {"project": project.gid, "limit": 7})
    assert refused is None and gids == world.project_tasks(project)


def test_the_page_reaching_past_the_limit_is_a_400(world, serve):
    project = largest_project(world)
    tasks = world.project_tasks(project)
    client = serve(max_listing_results=len(tasks) - 1)
    gids, refused = walk(client, "/tasks", {"project": project.gid, "limit": 7})
    assert refused is not None and refused.status_code == 400
    assert "truncated" in refused.json()["errors"][0]["message"]
    # Every page before the one reaching past the limit was served, in order.
    assert gids == tasks[: (len(tasks) - 1) // 7 * 7]
    # A smaller listing of the same tasks is served whole: one section's.
    section = max(project.sections, key=lambda s: len(world.objects[s].tasks))
    in_section, refused = walk(client, f"/sections/{section}/tasks", {"limit": 7})
    assert refused is None and in_section == list(world.objects[section].tasks)


def test_a_large_domain_lists_its_projects_by_team_only(world, serve):
    workspace = world.objects[world.workspaces[0]]
    client = serve(large_domain_projects=len(workspace.projects) - 1)
    for path, params in (("/projects", {"workspace": workspace.gid}), (f"/workspaces/{workspace.gid}/projects", {})):
        response = client.get(path, params={**params, "limit": 100})
        assert response.status_code == 504, path
    by_team = []
    for team in workspace.teams:
        listed, refused = walk(client, f"/teams/{team}/projects", {"limit": 100})
        assert refused is None
        also, refused = walk(client, "/projects", {"team": team, "workspace": workspace.gid, "limit": 100})
        assert refused is None and also == listed
        by_team += listed
    assert sorted(by_team) == sorted(workspace.projects)


def test_a_domain_at_the_size_lists_its_projects_whole(world, serve):
    workspace = world.objects[world.workspaces[0]]
    client = serve(large_domain_projects=len(workspace.projects))
    listed, refused = walk(client, "/projects", {"workspace": workspace.gid, "limit": 100})
    assert refused is None and listed == workspace.projects


def test_configured_refusals_answer_one_call(world, serve):
    first, second = world.objects[world.workspaces[0]].projects[:2]
    client = serve(refusals={
        f"/projects/{first}/custom_field_settings": 402,
        f"/memberships?parent={first}": 403,
        f"/projects/{first}/sections": 401,
    })
    refused = client.get(f"/projects/{first}/custom_field_settings")
    assert refused.status_code == 402 and "premium" in refused.json()["errors"][0]["message"]
    assert client.get("/memberships", params={"parent": first, "limit": 10}).status_code == 403
    assert client.get(f"/projects/{first}/sections").status_code == 401
    # The same calls about another project, and other calls about this one, are served.
    assert client.get(f"/projects/{second}/custom_field_settings").status_code == 200
    assert client.get("/memberships", params={"parent": second}).status_code == 200
    assert client.get(f"/projects/{first}").status_code == 200
    # A token the API does not know is a 401 before anything else.
    assert httpx.get(str(client.base_url) + f"/projects/{first}/custom_field_settings",
                     headers={"Authorization": "Bearer nobody"}).status_code == 401


def test_the_command_line_takes_the_limits_and_refusals():
    args = _parser().parse_args([
        "--max-listing-results", "20000", "--large-domain-projects", "5000",
        "--refuse", "/memberships?parent=1=403", "--refuse", "/projects/1/custom_field_settings=402",
    ])
    assert (args.max_listing_results, args.large_domain_projects) == (20000, 5000)
    assert dict(args.refuse) == {"/memberships?parent=1": 403, "/projects/1/custom_field_settings": 402}
    with pytest.raises(SystemExit):
        _parser().parse_args(["--refuse", "/projects/1/custom_field_settings=404"])


def test_every_limit_is_off_by_default():
    config = SimulatorConfig()
    assert (config.max_listing_results, config.large_domain_projects, config.refusals) == (None, None, {})
