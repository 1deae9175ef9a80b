"""The reconcile: after changes whose events never arrived, it gives the tables a full sync gives
(the simulator's ground truth), for a small share of the full sync's requests; events still
pending are applied, not dropped; every project leaves with a usable token. A project's sections
and custom field settings are listed again only when its tasks, events or record say they
changed; an empty section changed unseen is left to the weekly full sync."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.crawl import crawl
from asana_assets.lib.asana.incremental import incremental_sync, record_full_sync
from asana_assets.lib.asana.reconcile import reconcile_sync
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.schema import primary_key
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world
from asana_assets_tests.support.truth import assert_matches_truth

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUOTA = 1_000_000
VOLATILE = {"synced_at", "observed_at", "tasks_counted_at"}  # when a row was read, not what it says


def run(base_url, work):
    async def go():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
            return await work(client)

    return asyncio.run(go())


def comparable(tables: dict[str, pa.Table]) -> dict[str, list[dict]]:
    """Every raw table's rows in key order, without the columns that say when they were read."""
    out = {}
    for name, table in tables.items():
        table = table.drop_columns([c for c in table.column_names if c in VOLATILE])
        keys = primary_key(name) if name != "quarantine" else ("table", "gid", "error")
        out[name] = table.sort_by([(k, "ascending") for k in keys]).to_pylist()
    return out


@pytest.fixture
def world():
    world = generate_world(seed=8, tasks=600, now=NOW)
    truth = world.ground_truth()
    project = next(p["gid"] for p in truth["projects"] if not p["archived"])
    world.add_section(project, "Parked (empty)", actor=world.default_user)  # removed later, unseen
    return world


def aged(state: SyncState, hours: float) -> SyncState:
    """The state with its tokens taken ``hours`` earlier: a day on which no events sensor renewed
    them (past 12 hours the reconcile reads the feeds and renews the tokens)."""
    for entry in state.tokens.values():
        entry["taken_at"] = (datetime.fromisoformat(entry["taken_at"]) - timedelta(hours=hours)).isoformat()
    return state


def held(truth: dict) -> dict[str, list[str]]:
    """The tasks each section holds."""
    out: dict[str, list[str]] = {}
    for task in truth["tasks"]:
        for m in task["memberships"]:
            if m["section"]:
                out.setdefault(m["section"]["gid"], []).append(task["gid"])
    return out


def lose_events(world) -> tuple[int, set[str]]:
    """Change, unseen by any events feed, what a busy day changes; returns how many tasks changed
    and the projects whose sections or custom fields changed."""
    truth = world.ground_truth()
    admin = world.default_user
    top = [t for t in truth["tasks"] if t["memberships"] and not t["parent"]]
    leaves = [t for t in top if not t["num_subtasks"] and not t["completed"]]
    parents = [t for t in top if t["num_subtasks"]]
    projects = [p["gid"] for p in truth["projects"] if not p["archived"]]
    sections: dict[str, list[str]] = {}
    for s in truth["sections"]:
        sections.setdefault(s["project"]["gid"], []).append(s["gid"])
    tasks_in = held(truth)
    home = leaves[3]["memberships"][0]["project"]["gid"]
    other = next(p for p in projects if p != home and p not in {m["project"]["gid"] for m in leaves[4]["memberships"]})
    deleted_parent, grown, shrunk = parents[0], parents[1], parents[2]
    subtask = next(t for t in truth["tasks"] if t["parent"] and t["parent"]["gid"] == shrunk["gid"])
    member = next(m for m in truth["project_memberships"] if m["parent"]["gid"] == home)
    outsider = next(u for u in truth["users"] if u["gid"] != admin and u["gid"] not in
                    {m["member"]["gid"] for m in truth["project_memberships"] if m["parent"]["gid"] == home})
    # The smallest section of another project that holds tasks: emptied into its neighbour, then removed.
    emptied = min((s for p in projects if p not in (home, other) for s in sections[p][1:] if s in tasks_in),
                  key=lambda s: len(tasks_in[s]))
    emptied_project = next(p for p, gids in sections.items() if emptied in gids)
    neighbour = next(s for s in sections[emptied_project] if s != emptied)
    # A project given a new field: its tasks carry the field, unset (Asana sends no event for it).
    fielded = next(p for p in projects if p not in (home, emptied_project) and any(
        s in tasks_in for s in sections[p]))
    renamed = next(s for s in sections[home] if s in tasks_in)
    with world.events_lost():
        world.update_task(leaves[0]["gid"], name="Renamed, its event lost", actor=admin)
        world.complete_task(leaves[1]["gid"], actor=admin)
        world.add_comment(leaves[2]["gid"], "Seen only by a listing", actor=admin)
        current = leaves[3]["memberships"][0]["section"]["gid"]
        world.move_task_to_section(leaves[3]["gid"], next(s for s in sections[home] if s != current), actor=admin)
        world.remove_task_from_project(leaves[4]["gid"], leaves[4]["memberships"][0]["project"]["gid"], actor=admin)
        world.add_task_to_project(leaves[4]["gid"], other, actor=admin)
        new = world.create_task("Created, its event lost", project=home, actor=admin)
        world.create_task("Its subtask", parent=new, actor=admin)
        world.delete_task(leaves[5]["gid"], actor=admin)
        world.delete_task(deleted_parent["gid"], actor=admin)  # its subtasks go with it
        world.create_task("A subtask added to a known task", parent=grown["gid"], actor=admin)
        world.delete_task(subtask["gid"], actor=admin)
        world.rename_section(renamed, "Renamed section", actor=admin)
        for gid in tasks_in[emptied]:
            world.move_task_to_section(gid, neighbour, actor=admin)
        world.remove_section(emptied, actor=admin)
        field = world.add_custom_field(truth["workspaces"][0]["gid"], "Risk", "enum", enum_options=["Low", "High"])
        world.add_custom_field_setting(fielded, field)
        world.add_project_membership(home, outsider["gid"], "commenter", actor=admin)
        world.remove_project_membership(member["gid"], actor=admin)
        world.deactivate_user(outsider["gid"])
    # renamed, completed, commented, moved twice, new with its subtask, two deleted, a parent grown
    # with its new subtask, a parent shrunk with its deleted subtask, and the emptied section's tasks
    return 13 + len(tasks_in[emptied]), {home, emptied_project, fielded}


def test_a_reconcile_finds_what_no_event_reported_as_a_full_sync_would(world):
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = run(sim.base_url, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, first)
        changed, containers = lose_events(world)
        sim.stats.reset()
        reconciled = run(sim.base_url, lambda client: reconcile_sync(client, state, first.tables))
        requests = sim.stats.total
        routes = dict(sim.stats.by_route)
        again = run(sim.base_url, lambda client: crawl(client, track_events=True))
    truth = world.ground_truth()
    assert_matches_truth(reconciled.result.tables, truth)
    assert comparable(reconciled.result.tables) == comparable(again.tables)

    # The bound, from the world's size: the workspace's listings (one workspace; its members,
    # teams, tags and projects a page per 100; one team-membership listing per team), then per
    # project its feed, members and a page per 100 tasks it lists, the sections and custom field
    # settings of the projects whose own changed, then at most three requests per changed task
    # (the task, its stories, its subtasks).
    members = len(truth["workspace_memberships"])
    workspace = 1 + math.ceil(members / 100) + 1 + len(truth["teams"]) + 1 + 1
    listed: dict[str, int] = {}
    for task in truth["tasks"]:
        for m in task["memberships"]:
            listed[m["project"]["gid"]] = listed.get(m["project"]["gid"], 0) + 1
    projects = [p["gid"] for p in truth["projects"]]
    per_project = sum(2 + max(1, math.ceil(listed.get(gid, 0) / 100)) for gid in projects)
    bound = workspace + per_project + 2 * len(containers) + 3 * changed
    full = again.client_stats["requests"]
    print(f"reconcile: {requests} requests (bound {bound}); full sync: {full}")
    assert requests <= bound < full / 5
    relisted = routes.get("/api/1.0/projects/{project_gid}/sections", 0)
    relisted += routes.get("/api/1.0/projects/{project_gid}/custom_field_settings", 0)
    assert relisted <= 2 * len(containers)  # no other project's


def test_pending_events_are_applied_not_dropped(world):
    """Changes a listing cannot see (an edit to a subtask, an edited comment) whose events are
    still pending when the reconcile runs: the reconcile reads them, so they are not lost with
    the old tokens."""
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = run(sim.base_url, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, first)
        truth = world.ground_truth()
        subtask = next(t for t in truth["tasks"] if t["parent"] and not t["completed"] and not t["num_subtasks"])
        comment = next(s for s in truth["stories"] if s["resource_subtype"] == "comment_added")
        world.complete_task(subtask["gid"], actor=world.default_user)  # its parent's modified_at stays
        world.edit_comment(comment["gid"], "Edited after the full sync", actor=world.default_user)
        reconciled = run(sim.base_url, lambda client: reconcile_sync(client, aged(state, 13), first.tables))
    assert_matches_truth(reconciled.result.tables, world.ground_truth())
    tasks = reconciled.result.tables["tasks"].to_pandas().set_index("gid")
    assert tasks.loc[subtask["gid"], "completed"]
    stories = reconciled.result.tables["stories"].to_pandas().set_index("gid")
    assert stories.loc[comment["gid"], "text"] == "Edited after the full sync"


def test_every_project_leaves_with_a_token_that_sees_the_next_change(world):
    """Tokens past their life are refused (412) and replaced; the next incremental sync, from the
    reconcile's state, sees a change made after it."""
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = run(sim.base_url, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, first)
        lose_events(world)
        sim.expire_sync_tokens()  # refused sooner than their life says: Asana may, under load
        reconciled = run(sim.base_url, lambda client: reconcile_sync(client, aged(state, 13), first.tables))
        projects = {p["gid"] for p in world.ground_truth()["projects"]}
        assert set(state.tokens) == projects
        assert set(state.archived) == {p["gid"] for p in world.ground_truth()["projects"] if p["archived"]}
        task = next(t for t in world.ground_truth()["tasks"] if t["memberships"] and not t["parent"])
        world.update_task(task["gid"], name="Renamed after the reconcile", actor=world.default_user)
        later = run(sim.base_url, lambda client: incremental_sync(client, state, reconciled.result.tables))
    assert later.relisted == set()  # every token was usable
    assert_matches_truth(later.result.tables, world.ground_truth())


def test_a_reconcile_of_an_unchanged_workspace_reads_no_task_again(world):
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = run(sim.base_url, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, first)
        sim.stats.reset()
        reconciled = run(sim.base_url, lambda client: reconcile_sync(client, state, first.tables))
        routes = dict(sim.stats.by_route)
    assert reconciled.changed == 0 and reconciled.deleted == set()
    assert not [route for route in routes if route.endswith(("/stories", "/subtasks"))]
    # nothing says a project's sections or fields changed: only its members are re-listed
    assert not [route for route in routes if route.endswith(("/sections", "/custom_field_settings"))]
    assert routes["/api/1.0/memberships"] == len(world.ground_truth()["projects"])
    assert comparable(reconciled.result.tables) == comparable(first.tables)


def reconcile_after(world, change, hours: float = 13) -> tuple[dict[str, pa.Table], dict[str, pa.Table], dict[str, int]]:
    """The tables of a full sync, then of a reconcile ``hours`` later after ``change(world)``, and
    its requests by route."""
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = run(sim.base_url, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, first)
        change(world)
        sim.stats.reset()
        reconciled = run(sim.base_url, lambda client: reconcile_sync(client, aged(state, hours), first.tables))
        return first.tables, reconciled.result.tables, dict(sim.stats.by_route)


@pytest.mark.parametrize("hours, feeds_read", [(11.9, False), (12.1, True)])
def test_a_young_token_is_kept_and_its_pending_events_left_to_the_incremental(world, hours, feeds_read):
    """Under 12 hours old (the events sensor renews the tokens of the projects it polls), a
    project's token is kept and its feed not read: a subtask completed since (its parent's
    ``modified_at`` stays) is not seen by the reconcile, and the incremental sync the sensor then
    starts applies it. Past 12 hours the feed is read, the change applied, the token renewed."""
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = run(sim.base_url, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, first)
        aged(state, hours)
        before = {gid: dict(entry) for gid, entry in state.tokens.items()}
        subtask = next(t for t in world.ground_truth()["tasks"]
                       if t["parent"] and not t["completed"] and not t["num_subtasks"])
        world.complete_task(subtask["gid"], actor=world.default_user)
        sim.stats.reset()
        reconciled = run(sim.base_url, lambda client: reconcile_sync(client, state, first.tables))
        events = dict(sim.stats.by_route).get("/api/1.0/events", 0)
        tasks = reconciled.result.tables["tasks"].to_pandas().set_index("gid")
        live = {p["gid"] for p in world.ground_truth()["projects"]}
        if feeds_read:
            assert events >= len(live) and tasks.loc[subtask["gid"], "completed"]
            assert all(state.tokens[gid] != before[gid] for gid in live)
            return
        assert events == 0 and not tasks.loc[subtask["gid"], "completed"]
        assert state.tokens == before
        later = run(sim.base_url, lambda client: incremental_sync(client, state, reconciled.result.tables))
    assert later.result.tables["tasks"].to_pandas().set_index("gid").loc[subtask["gid"], "completed"]
    assert_matches_truth(later.result.tables, world.ground_truth())


def section_rows(tables: dict[str, pa.Table]) -> list[tuple]:
    return sorted(zip(*(tables["sections"][c].to_pylist() for c in ("gid", "name", "position"))))


def parked(world) -> tuple[str, str]:
    """The empty section the fixture added, and its project."""
    section = next(s for s in world.ground_truth()["sections"] if s["name"] == "Parked (empty)")
    return section["gid"], section["project"]["gid"]


def test_an_empty_section_changed_unseen_is_left_to_the_full_sync(world):
    """No task shows a section that holds none: added, renamed or removed with its events lost,
    it stays as the tables had it (the weekly full sync catches it), and nothing is re-listed."""
    def change(world):
        section, project = parked(world)
        with world.events_lost():
            world.rename_section(section, "Parked, renamed unseen", actor=world.default_user)
            world.add_section(project, "Added unseen, empty", actor=world.default_user)

    first, reconciled, routes = reconcile_after(world, change)
    assert section_rows(reconciled) == section_rows(first)
    assert "/api/1.0/projects/{project_gid}/sections" not in routes


def test_an_empty_section_changed_with_its_events_pending_is_re_listed(world):
    """The same changes with their events still in the feed: the feed names sections, so the
    project's sections are listed again."""
    def change(world):
        section, project = parked(world)
        world.rename_section(section, "Parked, renamed", actor=world.default_user)
        world.add_section(project, "Added, empty", actor=world.default_user)

    _, reconciled, routes = reconcile_after(world, change)
    names = set(reconciled["sections"]["name"].to_pylist())
    assert {"Parked, renamed", "Added, empty"} <= names and "Parked (empty)" not in names
    assert routes["/api/1.0/projects/{project_gid}/sections"] == 1  # that project's only
    assert_matches_truth(reconciled, world.ground_truth())


def test_a_section_renamed_unseen_is_re_listed_when_it_holds_a_task(world):
    """A task's section comes with its name: under another name, its project's sections are
    listed again (one project's: the edge against the empty section above)."""
    renamed = {}

    def change(world):
        truth = world.ground_truth()
        section = next(iter(held(truth)))
        renamed["gid"] = section
        with world.events_lost():
            world.rename_section(section, "Renamed unseen", actor=world.default_user)

    _, reconciled, routes = reconcile_after(world, change)
    rows = {gid: name for gid, name, _ in section_rows(reconciled)}
    assert rows[renamed["gid"]] == "Renamed unseen"
    assert routes["/api/1.0/projects/{project_gid}/sections"] == 1
    assert "/api/1.0/projects/{project_gid}/custom_field_settings" not in routes


def test_a_field_renamed_unseen_is_re_listed_once(world):
    """A custom field's name comes with each task's value: renamed (Asana sends no event for
    it), its definition is read again from one project that has it."""
    truth = world.ground_truth()
    field = world.add_custom_field(truth["workspaces"][0]["gid"], "Risk", "enum", enum_options=["Low", "High"])
    for project in truth["projects"][:2]:  # two projects have it: one is enough to read it again
        world.add_custom_field_setting(project["gid"], field)

    def change(world):
        with world.lock:  # the world has no method that renames a field: edit its record
            field.name = "Renamed field"

    _, reconciled, routes = reconcile_after(world, change)
    fields = dict(zip(*(reconciled["custom_fields"][c].to_pylist() for c in ("gid", "name"))))
    assert fields[field.gid] == "Renamed field"
    assert routes["/api/1.0/projects/{project_gid}/custom_field_settings"] == 1
    assert "/api/1.0/projects/{project_gid}/sections" not in routes


def test_a_project_edited_has_its_sections_and_fields_re_listed(world):
    """A project whose ``modified_at`` moved is listed whole again, its sections and fields too."""
    def change(world):
        project = world.ground_truth()["projects"][0]["gid"]
        with world.lock:  # the world has no method that edits a project: move its modified_at
            world.objects[project].modified_at = "2026-06-01T13:00:00.000Z"

    _, reconciled, routes = reconcile_after(world, change)
    assert routes["/api/1.0/projects/{project_gid}/sections"] == 1
    assert routes["/api/1.0/projects/{project_gid}/custom_field_settings"] == 1
    assert_matches_truth(reconciled, world.ground_truth())


@pytest.mark.parametrize("sync", ["incremental", "reconcile"])
def test_the_events_read_before_a_412_on_a_later_page_are_applied(monkeypatch, sync):
    """An approval subtask is rejected (its parent's modified_at stays: no listing shows it), then
    120 comments on another task of its project take the feed to a second page, whose token has
    expired by the time it is asked for (412). The rejection, read on the first page, is applied;
    the run then re-lists the project (incremental) or takes the fresh token (reconcile)."""
    world = generate_world(seed=8, tasks=300, now=NOW)
    truth = world.ground_truth()
    approval = next(t for t in truth["tasks"] if t["resource_subtype"] == "approval" and t["parent"]
                    and t["approval_status"] == "pending")
    project = next(t for t in truth["tasks"] if t["gid"] == approval["parent"]["gid"])["memberships"][0]["project"]
    busy = next(t for t in truth["tasks"] if not t["parent"] and t["gid"] != approval["parent"]["gid"]
                and project["gid"] in {m["project"]["gid"] for m in t["memberships"]})
    real, pages = AsanaClient.events, []

    async def events(self, resource_gid, token):
        answer = await real(self, resource_gid, token)
        if resource_gid == project["gid"] and token is not None:
            pages.append(answer[2])
            if answer[2]:  # more to read: the token it hands out expires before it is used
                sim.expire_sync_tokens()
        return answer

    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = run(sim.base_url, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, first)
        world.set_approval_status(approval["gid"], "rejected", actor=world.default_user)
        for i in range(120):
            world.add_comment(busy["gid"], f"Status update {i}", actor=world.default_user)
        monkeypatch.setattr(AsanaClient, "events", events)
        if sync == "incremental":
            result = run(sim.base_url, lambda client: incremental_sync(client, state, first.tables,
                                                                       projects=[project["gid"]]))
        else:
            result = run(sim.base_url, lambda client: reconcile_sync(client, aged(state, 13), first.tables))
    assert pages[0] is True  # the first page said there was more, and the next one answered 412
    rows = {row["gid"]: row for row in result.result.tables["tasks"].to_pylist()}
    assert rows[approval["gid"]]["approval_status"] == "rejected"
