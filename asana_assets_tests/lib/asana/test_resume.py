"""A full crawl stopped before its sync commits is resumed from its checkpoint: the projects it
kept are not read again, the tables equal the simulator's ground truth and an uninterrupted
crawl's, and changes made between the stop and the rerun end right (the listing drops a deleted
project, the events tokens kept with the checkpoint bring the edits)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from asana_assets.lib.asana import client as client_module
from asana_assets.lib.asana import crawl as crawl_module
from asana_assets.lib.asana.checkpoint import FOLDER, PART_MANIFEST, PARTS, Checkpoint
from asana_assets.lib.asana.client import AsanaClient, ForbiddenError
from asana_assets.lib.asana.crawl import _Turns, crawl
from asana_assets.lib.asana.incremental import incremental_sync, record_full_sync
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.schema import RAW_TABLES, primary_key
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World, generate_world
from asana_assets_tests.support.truth import assert_matches_truth

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUOTA = 1_000_000
SEED, TASKS = 31, 600  # nine projects
# Columns that say when a crawl ran, not what it read: they differ between any two crawls.
RUN_TIMES = {"projects": {"synced_at", "tasks_counted_at"}, "quarantine": {"observed_at"}}


class Stopped(Exception):
    """The crawl's process dies: it sends nothing more."""


def crawl_once(base_url: str, root: Path | None, stop_when: Callable[[set[str]], bool] | None = None,
               sent: list[tuple[str, dict]] | None = None,
               before_sending: Callable[[str, dict], None] = lambda path, params: None,
               answered: Callable[[str, dict, dict], dict] = lambda path, params, body: body):
    """A whole crawl (with a checkpoint under ``root``), stopped before the first request that
    finds ``stop_when`` true of the projects kept; ``sent`` gets every request's path and
    parameters, ``before_sending`` each path and its parameters before it is sent, and
    ``answered`` each answer's body, to change it."""
    async def run():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
            get = client.get

            async def watched(path, params=None):
                if stop_when is not None and stop_when(kept(root)):
                    raise Stopped
                before_sending(path, dict(params or {}))
                if sent is not None:
                    sent.append((path, dict(params or {})))
                return answered(path, dict(params or {}), await get(path, params))

            client.get = watched
            return await crawl(client, track_events=True, checkpoint=None if root is None else Checkpoint(root))

    return asyncio.run(run())


def kept(root: Path) -> set[str]:
    """The projects the checkpoint holds whole: a folder named by the project's gid."""
    return {p.name for p in (root / FOLDER).glob("*/*") if p.name.isdigit()}


def parts_of(root: Path) -> dict[str, list[Path]]:
    """The parts the checkpoint holds, by project: a folder under the project's in ``parts``."""
    found: dict[str, list[Path]] = {}
    for part in (root / FOLDER).glob(f"*/{PARTS}/*/*"):
        if not part.name.startswith("."):
            found.setdefault(part.parent.name, []).append(part)
    return found


def held(part: Path) -> list[str]:
    """The listed tasks a part holds whole, as its manifest names them."""
    return orjson.loads((part / PART_MANIFEST).read_bytes())["read"]["tasks"]


def naming(sent: list[tuple[str, dict]], gids: set[str]) -> list[tuple[str, dict]]:
    """The requests whose path or parameters name one of ``gids``."""
    return [(path, params) for path, params in sent
            if set(path.split("/")) & gids or set(map(str, params.values())) & gids]


def sorted_rows(table: str, data: pa.Table) -> pa.Table:
    data = data.drop_columns(sorted(RUN_TIMES.get(table, set())))
    key = list(primary_key(table)) or data.column_names
    return data.sort_by([(column, "ascending") for column in key])


def assert_same_tables(resumed, whole):
    """The resumed crawl's tables are the uninterrupted crawl's, row for row (in any order), the
    times the crawls ran aside: the owner's definition of a correct resume."""
    for table in RAW_TABLES:
        assert sorted_rows(table, resumed.tables[table]).equals(sorted_rows(table, whole.tables[table])), table


def fast() -> SimulatorConfig:
    return SimulatorConfig(requests_per_minute=QUOTA)


def test_a_crawl_stopped_after_some_projects_resumes_without_reading_them_again(tmp_path):
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    truth = world.ground_truth()
    projects = {p["gid"] for p in truth["projects"]}
    sent: list[tuple[str, dict]] = []
    with Simulator(world, fast()) as sim:
        whole = crawl_once(sim.base_url, None)
        with pytest.raises(Stopped):
            crawl_once(sim.base_url, tmp_path, stop_when=lambda done: len(done) >= 3)
        done = kept(tmp_path)
        partly = set(parts_of(tmp_path)) - done  # a project in flight may have a part of its read kept
        resumed = crawl_once(sim.base_url, tmp_path, sent=sent)
    assert 3 <= len(done) < len(projects)  # several may be whole at the same moment
    assert set(resumed.resumed) == done | partly
    assert_matches_truth(resumed.tables, truth)
    assert_same_tables(resumed, whole)
    # Nothing a kept project holds is asked for again: its listings, count and events token...
    assert naming(sent, done) == []
    # ...nor the stories and subtasks of a task only kept projects hold.
    only_kept = {t["gid"] for t in truth["tasks"]
                 if t["memberships"] and {m["project"]["gid"] for m in t["memberships"]} <= done}
    assert only_kept and naming(sent, only_kept) == []
    # Each of those tasks cost the whole crawl its stories' request at least.
    assert len(sent) == resumed.client_stats["requests"] < whole.client_stats["requests"] - len(only_kept)


@pytest.fixture
def small_parts(monkeypatch):
    """Pages of ten tasks, a part a page: the projects of a small world are read in several parts."""
    monkeypatch.setattr(client_module, "PAGE_SIZE", 10)
    monkeypatch.setattr(crawl_module, "PART_PAGES", 1)


def stop_in_first_project(world: World, base_url: str, root: Path) -> tuple[str, list[Path]]:
    """Crawl until the checkpoint holds two parts of the first project's read; that project, and
    its parts kept then."""
    first = world.objects[world.workspaces[0]].projects[0]
    with pytest.raises(Stopped):
        crawl_once(base_url, root, stop_when=lambda _done: len(parts_of(root).get(first, [])) >= 2)
    assert first not in kept(root)  # stopped in the middle of its read
    return first, parts_of(root)[first]


def test_a_crawl_stopped_in_the_middle_of_a_project_resumes_from_the_parts_it_kept(tmp_path, small_parts):
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    truth = world.ground_truth()
    sent: list[tuple[str, dict]] = []
    with Simulator(world, fast()) as sim:
        whole = crawl_once(sim.base_url, None)
        first, parts = stop_in_first_project(world, sim.base_url, tmp_path)
        tasks = {task for part in parts for task in held(part)}
        first_read = orjson.loads((parts[0] / PART_MANIFEST).read_bytes())["read"]
        resumed = crawl_once(sim.base_url, tmp_path, sent=sent)
        again: list[tuple[str, dict]] = []  # a third crawl, as after a kill once the project was whole
        third = crawl_once(sim.base_url, tmp_path, sent=again)
    listed = {t["gid"] for t in truth["tasks"]
              if not t["parent"] and first in {m["project"]["gid"] for m in t["memberships"]}}
    assert tasks < listed and len(tasks) >= 10  # two parts of ten listed tasks, the ones crawled there
    assert first in resumed.resumed and resumed.resumed_parts >= 2
    assert_matches_truth(resumed.tables, truth)
    assert_same_tables(resumed, whole)
    # The parts' tasks are listed again, but neither they nor their stories and subtasks are read
    # (a task in another project too may be crawled with that project's read before the parts
    # are taken: read twice, kept once)...
    alone = {t["gid"] for t in truth["tasks"] if t["gid"] in tasks and len(t["memberships"]) == 1}
    assert len(alone) >= 10 and naming(sent, alone) == []
    # ...the project's listing and own listings are, with the events token taken before the parts.
    assert any(path == "/tasks" and params.get("project") == first for path, params in sent)
    tokens_asked = {params.get("resource") for path, params in sent if path == "/events"}
    assert first not in tokens_asked and len(tokens_asked) == len(truth["projects"]) - len(resumed.resumed)
    assert len(sent) < whole.client_stats["requests"] - len(tasks)
    # The resumed crawl kept the project whole, with the parts of both reads: a third crawl takes
    # it as it is, with the events token taken before the first parts were read.
    assert resumed.tokens[first] == first_read["token"]
    assert resumed.resumed[first] == datetime.fromisoformat(first_read["read_at"])
    assert naming(again, {first}) == [] and third.tokens[first] == first_read["token"]
    assert_same_tables(third, whole)


def test_a_part_whose_task_is_gone_is_read_again_and_a_new_task_is_read(tmp_path, small_parts):
    """Between the stop and the rerun a task one kept part holds is deleted, and a task is added to
    the project: that part is dropped and its other tasks read again, each by itself; the other
    parts are taken; the new task is read with the listing."""
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    sent: list[tuple[str, dict]] = []
    with Simulator(world, fast()) as sim:
        first, parts = stop_in_first_project(world, sim.base_url, tmp_path)
        dropped, *taken = sorted(parts, key=lambda part: len(held(part)), reverse=True)
        deleted, *others = held(dropped)
        world.delete_task(deleted, actor=world.default_user)
        added = world.create_task("Added after the stop", actor=world.default_user, project=first).gid
        resumed = crawl_once(sim.base_url, tmp_path, sent=sent)
        truth = world.ground_truth()
    assert others and resumed.resumed_parts >= len(taken)
    # Whole now, the project is kept with the parts taken and not the one dropped.
    [manifest] = (tmp_path / FOLDER).glob(f"*/{first}/project.json")
    names = orjson.loads(manifest.read_bytes())["read"]["parts"]
    assert {part.name for part in taken} <= set(names) and dropped.name not in names and not dropped.exists()
    assert_matches_truth(resumed.tables, truth)
    by_itself = [path for path, _params in sent if path.startswith("/tasks/") and path.count("/") == 2]
    # A task in another project too may have been crawled with that project's read first.
    alone = {f"/tasks/{t['gid']}" for t in truth["tasks"] if t["gid"] in others and len(t["memberships"]) == 1}
    assert alone and alone <= set(by_itself) <= {f"/tasks/{task}" for task in others}
    assert len(by_itself) == len(set(by_itself))
    kept_alone = {t["gid"] for t in truth["tasks"] if len(t["memberships"]) == 1} & {
        task for part in taken for task in held(part)}
    assert kept_alone and naming(sent, kept_alone) == []
    assert f"/tasks/{added}/stories" in [path for path, _params in sent]


def single_homed_task(world: World, project: str, start: int = 0) -> str:
    """A top-level task of ``project`` in no other project, from its ``start``-th task on."""
    alone = {t["gid"] for t in world.ground_truth()["tasks"] if not t["parent"] and len(t["memberships"]) == 1}
    return next(gid for gid in world.project_tasks(project)[start:] if gid in alone)


def stop_once_held(world: World, base_url: str, root: Path, project: str, *tasks: str,
                   before_sending: Callable[[str, dict], None] = lambda path, params: None) -> None:
    """Crawl until the checkpoint's parts of ``project`` hold every one of ``tasks``, that project
    not yet whole."""
    def stop(_done) -> bool:
        holding = {task for part in parts_of(root).get(project, []) for task in held(part)}
        return holding.issuperset(tasks)

    with pytest.raises(Stopped):
        crawl_once(base_url, root, stop_when=stop, before_sending=before_sending)
    assert project not in kept(root)


def test_a_subtask_a_kept_part_met_elsewhere_is_read_when_that_place_is_gone(tmp_path, small_parts):
    """Subtask S of T is listed in T's project too, a page before T: S's part crawls it, T's part
    meets it crawled. S then leaves the project: its part is dropped, T's taken, and S, held by no
    read, is read by itself."""
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    project = world.objects[world.workspaces[0]].projects[0]
    parent = single_homed_task(world, project, start=40)
    sub = world.create_task("Subtask also listed in the project", actor=world.default_user, parent=parent).gid
    world.add_task_to_project(sub, project, actor=world.default_user)
    assert world.project_tasks(project).index(sub) < world.project_tasks(project).index(parent) - 10
    sent: list[tuple[str, dict]] = []
    with Simulator(world, fast()) as sim:
        stop_once_held(world, sim.base_url, tmp_path, project, sub, parent)
        world.remove_task_from_project(sub, project, actor=world.default_user)
        whole = crawl_once(sim.base_url, None)
        resumed = crawl_once(sim.base_url, tmp_path, sent=sent)
    assert sub in resumed.tables["tasks"]["gid"].to_pylist()
    assert (f"/tasks/{sub}", {"opt_fields": ",".join(crawl_module.TASK_FIELDS)}) in sent
    assert_same_tables(resumed, whole)


def test_a_rerun_that_fails_leaves_the_parts_it_was_offered_to_the_next(tmp_path, small_parts):
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    sent = 0

    def fail_after_40_requests(_path: str, _params: dict) -> None:
        nonlocal sent
        sent += 1
        if sent > 40:
            raise Stopped

    with Simulator(world, fast()) as sim:
        first, parts = stop_in_first_project(world, sim.base_url, tmp_path)
        with pytest.raises(Stopped):
            crawl_once(sim.base_url, tmp_path, before_sending=fail_after_40_requests)
    assert {p.name for p in parts} <= {p.name for p in parts_of(tmp_path)[first]}


def test_a_task_a_kept_part_holds_is_not_crawled_by_another_project_meanwhile(tmp_path, small_parts):
    """T, held by a part of the first project, is also the first task the second project lists,
    and has a membership the tables cannot place (quarantined once per read of it): the rerun
    takes it from the part alone, and quarantines it once, as an uninterrupted crawl does."""
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    first, second = world.objects[world.workspaces[0]].projects[:2]
    task = single_homed_task(world, first)
    column = world.objects[second].sections[0]
    world.add_task_to_project(task, second, section=column, actor=world.default_user)
    world.objects[column].tasks.remove(task)
    world.objects[column].tasks.insert(0, task)
    world.add_unplaced_membership(task, world.objects[first].sections[0])
    sent: list[tuple[str, dict]] = []
    with Simulator(world, fast()) as sim:
        whole = crawl_once(sim.base_url, None)
        stop_once_held(world, sim.base_url, tmp_path, first, task)
        resumed = crawl_once(sim.base_url, tmp_path, sent=sent)
    assert naming(sent, {task}) == []
    assert [row["gid"] for row in resumed.tables["quarantine"].to_pylist()].count(task) == 1
    assert_same_tables(resumed, whole)


def test_a_kept_part_s_place_in_a_project_deleted_since_is_read_again(tmp_path, small_parts):
    """T, held by a part of the first project, is also in the last project, deleted before the
    rerun: the part's row placing it there is dropped and T's places read again, in the rerun and
    in a third crawl that takes the project whole (its part's file still holds the row). T also
    has a membership the tables cannot place: quarantined once, as by an uninterrupted crawl.
    (The story of its removal comes with the next incremental sync, from the events token kept
    with the part.)"""
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    projects = world.objects[world.workspaces[0]].projects
    first, last = projects[0], projects[-1]
    task = single_homed_task(world, first)
    world.add_task_to_project(task, last, actor=world.default_user)
    world.add_unplaced_membership(task, world.objects[first].sections[0])
    sent: list[tuple[str, dict]] = []
    with Simulator(world, fast()) as sim:
        stop_once_held(world, sim.base_url, tmp_path, first, task)
        delete_project(world, last)
        whole = crawl_once(sim.base_url, None)
        resumed = crawl_once(sim.base_url, tmp_path, sent=sent)
        third = crawl_once(sim.base_url, tmp_path)
    assert ("/tasks/" + task, {"opt_fields": ",".join(crawl_module.TASK_FIELDS)}) in sent
    assert first in third.resumed and not third.resumed_parts  # taken whole
    for result in (resumed, third):
        for table in ("tasks", "task_memberships"):
            assert sorted_rows(table, result.tables[table]).equals(sorted_rows(table, whole.tables[table])), table
        assert [row["gid"] for row in result.tables["quarantine"].to_pylist()].count(task) == 1


def test_a_listing_refused_part_way_keeps_the_tasks_it_named(tmp_path, small_parts):
    """The first project's listing is refused (403) after the first page a kept part holds, in the
    uninterrupted crawl and in the rerun alike: the tasks the pages before named stand, from the
    parts holding them or read again; the parts holding tasks it did not reach are dropped."""
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)

    def refuse_after(project: str, pages: int) -> Callable[[str, dict], None]:
        listed = 0

        def refuse(path: str, params: dict) -> None:
            nonlocal listed
            if path == "/tasks" and params.get("project") == project:
                listed += 1
                if listed > pages:
                    raise ForbiddenError("GET", path, 403)
        return refuse

    with Simulator(world, fast()) as sim:
        first, parts = stop_in_first_project(world, sim.base_url, tmp_path)
        holding = {task for part in parts for task in held(part)}
        order = world.project_tasks(first)  # the listing's order, ten a page
        pages = min(order.index(task) for task in holding) // 10 + 1
        whole = crawl_once(sim.base_url, None, before_sending=refuse_after(first, pages))
        resumed = crawl_once(sim.base_url, tmp_path, before_sending=refuse_after(first, pages))
    reached = set(order[:10 * pages])
    assert reached <= set(whole.tables["tasks"]["gid"].to_pylist())
    assert reached & holding and holding - reached  # kept parts held some of them, and tasks not reached
    assert_same_tables(resumed, whole)


def test_a_listed_record_without_a_gid_is_quarantined_once_by_a_resumed_crawl(tmp_path, small_parts):
    """No part can name it, so it is kept with its project, whose listing meets it again."""
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    first = world.objects[world.workspaces[0]].projects[0]

    def with_a_record_without_gid(path: str, params: dict, body: dict) -> dict:
        if path == "/tasks" and params.get("project") == first and "offset" not in params:
            return {**body, "data": [*body["data"], {"name": "A record without its gid"}]}
        return body

    def without_gid(result) -> list[dict]:
        return [row for row in result.tables["quarantine"].to_pylist()
                if row["gid"] is None and row["table"] == "tasks"]

    with Simulator(world, fast()) as sim:
        whole = crawl_once(sim.base_url, None, answered=with_a_record_without_gid)
        with pytest.raises(Stopped):
            crawl_once(sim.base_url, tmp_path, answered=with_a_record_without_gid,
                       stop_when=lambda _done: len(parts_of(tmp_path).get(first, [])) >= 2)
        assert first not in kept(tmp_path)
        resumed = crawl_once(sim.base_url, tmp_path, answered=with_a_record_without_gid)
        third = crawl_once(sim.base_url, tmp_path, answered=with_a_record_without_gid)  # the project taken whole
    assert len(without_gid(whole)) == len(without_gid(resumed)) == len(without_gid(third)) == 1
    assert_same_tables(resumed, whole)


def test_a_part_holding_a_task_deleted_while_it_was_read_is_taken(tmp_path, small_parts):
    """Its 404, kept with the part, stands for the listing's not naming it again: the part is
    taken, its other tasks not read again, and the deleted task stays out."""
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    first = world.objects[world.workspaces[0]].projects[0]
    deleted = single_homed_task(world, first, start=15)

    def delete_as_its_stories_are_asked_for(path: str, _params: dict) -> None:
        if path == f"/tasks/{deleted}/stories":
            world.delete_task(deleted, actor=world.default_user)

    sent: list[tuple[str, dict]] = []
    with Simulator(world, fast()) as sim:
        stop_once_held(world, sim.base_url, tmp_path, first, deleted,
                       before_sending=delete_as_its_stories_are_asked_for)
        [part] = [part for part in parts_of(tmp_path)[first] if deleted in held(part)]
        others = set(held(part)) - {deleted}
        resumed = crawl_once(sim.base_url, tmp_path, sent=sent)
        truth = world.ground_truth()
    assert others and naming(sent, others) == []
    assert deleted not in resumed.tables["tasks"]["gid"].to_pylist()
    assert_matches_truth(resumed.tables, truth)


def test_a_task_deleted_while_its_kept_project_was_read_stays_out(tmp_path):
    """Its 404, met by the stopped crawl and kept with its project's read, still drops its rows."""
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    first = world.objects[world.workspaces[0]].projects[0]
    deleted = next(t["gid"] for t in world.ground_truth()["tasks"] if not t["parent"] and not t["num_subtasks"]
                   and [m["project"]["gid"] for m in t["memberships"]] == [first])

    def delete_as_its_stories_are_asked_for(path: str, _params: dict) -> None:
        if path == f"/tasks/{deleted}/stories":
            world.delete_task(deleted, actor=world.default_user)

    with Simulator(world, fast()) as sim:
        with pytest.raises(Stopped):
            crawl_once(sim.base_url, tmp_path, stop_when=lambda done: first in done,
                       before_sending=delete_as_its_stories_are_asked_for)
        resumed = crawl_once(sim.base_url, tmp_path)
    assert first in resumed.resumed
    assert deleted not in resumed.tables["tasks"]["gid"].to_pylist()
    assert_matches_truth(resumed.tables, world.ground_truth())


def pages(n: int) -> int:
    return max(1, math.ceil(n / 100))


def test_a_crawl_whose_every_project_was_kept_reads_only_the_workspace_s_own_listings(tmp_path):
    """A run killed after its crawl (deriving or publishing) is resumed from a whole checkpoint."""
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    truth = world.ground_truth()
    sent: list[tuple[str, dict]] = []
    with Simulator(world, fast()) as sim:
        crawl_once(sim.base_url, tmp_path)
        resumed = crawl_once(sim.base_url, tmp_path, sent=sent)
    per_team = Counter(m["team"]["gid"] for m in truth["team_memberships"])
    listings = (1 + pages(len(truth["workspace_memberships"])) + pages(len(truth["users"]))
                + pages(len(truth["teams"])) + sum(pages(per_team[t["gid"]]) for t in truth["teams"])
                + pages(len(truth["tags"])) + pages(len(truth["projects"])))
    assert len(sent) == listings
    assert set(resumed.resumed) == {p["gid"] for p in truth["projects"]}
    assert_matches_truth(resumed.tables, truth)


def delete_project(world: World, gid: str) -> None:
    """Delete a project as a crawl sees it: the workspace no longer lists it, a task of it in
    another project leaves it, its other tasks go (their subtasks and stories too). The simulator
    deletes no project: its object stays, so the stories naming it still render, and
    ``without_project`` takes it out of the ground truth."""
    with world.lock:
        project = world.objects[gid]
        tasks = world.project_tasks(gid)
    for task in tasks:
        if len(world.objects[task].memberships) > 1:
            world.remove_task_from_project(task, gid, actor=world.default_user)
        else:
            world.delete_task(task, actor=world.default_user)
    with world.lock:
        world.objects[project.workspace].projects.remove(gid)
        if project.team:
            world.objects[project.team].projects.remove(gid)


def without_project(truth: dict[str, list[dict]], gid: str) -> dict[str, list[dict]]:
    """The ground truth without a deleted project's own records: itself, its sections and members."""
    def other(record: dict) -> bool:
        return gid not in (record["gid"], (record.get("project") or {}).get("gid"), (record.get("parent") or {}).get("gid"))

    return {
        collection: [r for r in records if other(r)] if collection in ("projects", "sections", "project_memberships")
        else records
        for collection, records in truth.items()
    }


def as_read(after: dict[str, list[dict]], before: dict[str, list[dict]], read: set[str],
            gone: str) -> dict[str, list[dict]]:
    """The ground truth ``after`` a change, but for the tasks of ``read`` (crawled by a kept read)
    and their stories, which are as ``before`` it: as that read found them, their place in
    ``gone`` dropped with that project."""
    def of_read(record: dict) -> bool:
        return record["gid"] in read or (record.get("target") or {}).get("gid") in read

    tasks = [{**t, "memberships": [m for m in t["memberships"] if m["project"]["gid"] != gone]}
             for t in before["tasks"] if of_read(t)]
    stories = [s for s in before["stories"] if of_read(s)]
    return {**after, "tasks": [*(t for t in after["tasks"] if not of_read(t)), *tasks],
            "stories": [*(s for s in after["stories"] if not of_read(s)), *stories]}


@pytest.mark.parametrize("deleted", ["the project that crawled it", "the other"])
def test_changes_between_the_stop_and_the_rerun_end_right(tmp_path, deleted):
    """A task sits in the two projects read first, both kept; one of them is deleted before the
    rerun, and a task of the other renamed. The rerun drops the deleted project; the shared task
    is read again by itself when the deleted project's read held it, else keeps its kept rows,
    its places read again without the one in the deleted project; the rename, made after the kept read, comes with
    the next incremental sync from the events token taken before that read."""
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    truth = world.ground_truth()
    first, second = world.objects[world.workspaces[0]].projects[:2]  # the two projects listed first
    alone = {project: [t["gid"] for t in truth["tasks"]
                       if not t["parent"] and [m["project"]["gid"] for m in t["memberships"]] == [project]]
             for project in (first, second)}
    shared = alone[second][0]
    world.add_task_to_project(shared, first, actor=world.default_user)  # crawled by one of the two
    sent: list[tuple[str, dict]] = []
    with Simulator(world, fast()) as sim:
        with pytest.raises(Stopped):
            crawl_once(sim.base_url, tmp_path, stop_when=lambda done: {first, second} <= done)
        checkpoint = Checkpoint(tmp_path)
        checkpoint.open("*", *crawl_module.PROJECT_READ)
        reads = checkpoint.reads()
        crawler, lister = (first, second) if shared in reads[first].claimed else (second, first)
        assert shared in reads[lister].shared  # listed there, crawled once
        gone, survivor = (crawler, lister) if deleted == "the project that crawled it" else (lister, crawler)
        edited = alone[survivor][1]
        before = world.ground_truth()
        world.update_task(edited, name="Renamed after the stop", actor=world.default_user)
        delete_project(world, gone)

        resumed = crawl_once(sim.base_url, tmp_path, sent=sent)
        truth = without_project(world.ground_truth(), gone)
        read = {task for project, kept_read in reads.items() if project != gone for task in kept_read.claimed}
        assert edited in read and (shared in read) is (survivor == crawler)
        assert_matches_truth(resumed.tables, as_read(truth, before, read, gone))
        assert gone not in resumed.resumed and survivor in resumed.resumed
        # Read by itself: in full when the survivor listed it and the gone project crawled it; its
        # record, for its places, when the survivor crawled it and placed it in the gone project.
        read_alone = ("/tasks/" + shared, {"opt_fields": ",".join(crawl_module.TASK_FIELDS)})
        assert sent.count(read_alone) == 1
        assert (("/tasks/" + shared + "/stories", {"opt_fields": ",".join(crawl_module.STORY_FIELDS)}) in [
            (path, {"opt_fields": params.get("opt_fields")}) for path, params in sent]) is (survivor == lister)
        # The survivor's token is the one taken before its read: its feed holds the rename.
        async def feed():
            async with AsanaClient(sim.base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
                return await client.events(survivor, resumed.tokens[survivor])

        events, _sync, _more = asyncio.run(feed())
        assert edited in {event["resource"]["gid"] for event in events}

        state = SyncState()
        record_full_sync(state, resumed)
        state.resumed(resumed.resumed, None)

        async def incremental():
            async with AsanaClient(sim.base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
                return await incremental_sync(client, state, resumed.tables)

        changes = asyncio.run(incremental())
    assert survivor not in changes.relisted  # its events, not a re-listing, brought the changes
    assert_matches_truth(changes.result.tables, truth)


def test_turns_go_to_the_earliest_project_and_part_then_in_order_and_a_cancelled_waiter_passes_its_slot_on():
    async def run():
        turns, served = _Turns(1), []

        async def fetch(rank, name):
            await turns.take(rank)
            served.append(name)
            await asyncio.sleep(0)
            turns.give()

        await turns.take((0, -1))  # the one slot is busy while the others queue
        waiting = [asyncio.create_task(fetch(rank, name)) for rank, name in [
            ((3, -1), "c"), ((1, 2), "a part 2"), ((1, 1), "a part 1"), ((1, -1), "a1"), ((2, -1), "b"),
            ((1, -1), "a2"), ((1, 1), "a part 1, spawned last"), ((2, -1), "cancelled"),
        ]]
        await asyncio.sleep(0)
        waiting[-1].cancel()
        turns.give()
        await asyncio.gather(*waiting, return_exceptions=True)
        return served, turns.free

    assert asyncio.run(run()) == (["a1", "a2", "a part 1", "a part 1, spawned last", "a part 2", "b", "c"], 1)


def test_a_task_deleted_during_the_killed_run_and_restored_before_the_rerun_is_read_again(tmp_path, small_parts):
    # The killed run keeps a part with the task's 404; restored from the trash, the rerun's listing
    # names it again, so that part is not taken (its gone list would drop a live task) but read again.
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    first = world.objects[world.workspaces[0]].projects[0]
    deleted = single_homed_task(world, first, start=15)

    def delete_as_its_stories_are_asked_for(path: str, _params: dict) -> None:
        if path == f"/tasks/{deleted}/stories" and deleted not in world.deleted:
            world.delete_task(deleted, actor=world.default_user)

    with Simulator(world, fast()) as sim:
        stop_once_held(world, sim.base_url, tmp_path, first, deleted,
                       before_sending=delete_as_its_stories_are_asked_for)
        assert any(deleted in orjson.loads((part / PART_MANIFEST).read_bytes())["read"]["gone"]
                   for part in parts_of(tmp_path)[first])
        world.undelete_task(deleted, actor=world.default_user)
        whole = crawl_once(sim.base_url, None)
        resumed = crawl_once(sim.base_url, tmp_path)
        truth = world.ground_truth()
    assert deleted in resumed.tables["tasks"]["gid"].to_pylist()
    assert_matches_truth(resumed.tables, truth)
    assert_same_tables(resumed, whole)


def test_a_part_holding_a_task_a_project_kept_whole_since_holds_is_read_again(tmp_path, small_parts):
    # Task X in projects A and B. Run 1 keeps a part of A holding X; X is renamed. In run 2, A is out
    # of the projects listing's view: B reads X anew and is kept whole. In run 3 A is back: its old
    # part must not bring back the old copy of X (nor a second quarantine row for its unplaced place).
    world = generate_world(seed=SEED, tasks=TASKS, now=NOW)
    first, second = world.objects[world.workspaces[0]].projects[:2]
    task = single_homed_task(world, first)
    world.add_task_to_project(task, second, actor=world.default_user)
    world.add_unplaced_membership(task, world.objects[first].sections[0])
    hidden = {"on": False}

    def hide_first(path, _params, body):
        if hidden["on"] and path == "/projects":
            return {**body, "data": [p for p in body["data"] if p.get("gid") != first]}
        return body

    with Simulator(world, fast()) as sim:
        stop_once_held(world, sim.base_url, tmp_path, first, task)
        world.update_task(task, name="Renamed after the first run", actor=world.default_user)
        hidden["on"] = True
        with pytest.raises(Stopped):
            crawl_once(sim.base_url, tmp_path, stop_when=lambda done: second in done, answered=hide_first)
        hidden["on"] = False
        whole = crawl_once(sim.base_url, None)
        resumed = crawl_once(sim.base_url, tmp_path)
    names = {row["gid"]: row["name"] for row in resumed.tables["tasks"].to_pylist()}
    assert names[task] == "Renamed after the first run"
    quarantined = [row["gid"] for row in resumed.tables["quarantine"].to_pylist()].count(task)
    assert quarantined == [row["gid"] for row in whole.tables["quarantine"].to_pylist()].count(task) == 1
    assert_same_tables(resumed, whole)
