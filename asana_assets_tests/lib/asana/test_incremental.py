"""Incremental sync from the events feed: after changes at the source the merged tables equal the
simulator's ground truth, the requests follow the changes rather than the workspace, and an
expired token is recovered by re-listing without loss."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.crawl import crawl
from asana_assets.lib.asana.incremental import FeedChanges, incremental_sync, record_full_sync
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.schema import RAW_TABLES, primary_key
from asana_assets.lib.storage.warehouse import Warehouse
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World, generate_world
from asana_assets_tests.support.truth import assert_matches_truth
from asana_assets_tests.support.worlds import change_the_world

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUOTA = 1_000_000


def full(base_url):
    async def run():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
            return await crawl(client, track_events=True)

    return asyncio.run(run())


def incremental(base_url, state, tables):
    async def run():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
            return await incremental_sync(client, state, tables)

    return asyncio.run(run())


@pytest.fixture
def world():
    return generate_world(seed=8, tasks=600, now=NOW)


def test_an_incremental_sync_applies_every_change(world, tmp_path):
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = full(sim.base_url)
        state = SyncState()
        record_full_sync(state, first)
        Warehouse(tmp_path, None, "asana").state_store().save(state)
        deleted = change_the_world(world)
        sim.stats.reset()
        state = Warehouse(tmp_path, None, "asana").state_store().load()
        result = incremental(sim.base_url, state, first.tables)
        requests = sim.stats.total
    assert deleted in result.deleted
    assert_matches_truth(result.result.tables, world.ground_truth())
    full_requests = first.client_stats["requests"]
    print(f"full sync: {full_requests} requests; incremental after ~10 changes: {requests}")
    projects = len(world.ground_truth()["projects"])
    # One events poll per project, the workspace listings, and a few reads per change.
    assert requests < projects + 60 < full_requests


def test_an_expired_token_is_recovered_by_relisting(world):
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = full(sim.base_url)
        state = SyncState()
        record_full_sync(state, first)
        change_the_world(world)
        sim.expire_sync_tokens()
        result = incremental(sim.base_url, state, first.tables)
    assert result.relisted == {p["gid"] for p in world.ground_truth()["projects"]}
    assert_matches_truth(result.result.tables, world.ground_truth())


def test_a_token_past_its_life_is_not_trusted(world):
    state = SyncState()
    state.advance({"1": "token"}, ["1"], NOW, full=True)
    assert state.token("1", NOW + timedelta(hours=23)) == "token"
    assert state.token("1", NOW + timedelta(hours=25)) is None


def test_a_crashed_run_is_replayed_from_the_saved_tokens(world, tmp_path):
    """The state is saved only after a successful load: a run that dies keeps the old tokens,
    and the next run, reading the same changes again, ends with the same tables."""
    store = Warehouse(tmp_path, None, "asana").state_store()
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = full(sim.base_url)
        state = SyncState()
        record_full_sync(state, first)
        store.save(state)
        change_the_world(world)
        incremental(sim.base_url, store.load(), first.tables)  # dies before saving its state
        replayed = incremental(sim.base_url, store.load(), first.tables)
    assert_matches_truth(replayed.result.tables, world.ground_truth())


def test_a_run_for_the_changed_projects_polls_only_them(world):
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first = full(sim.base_url)
        state = SyncState()
        record_full_sync(state, first)
        task = next(t for t in world.ground_truth()["tasks"] if t["memberships"] and not t["parent"])
        project = task["memberships"][0]["project"]["gid"]
        world.update_task(task["gid"], name="Changed in one project", actor=world.default_user)
        sim.stats.reset()

        async def run():
            async with AsanaClient(sim.base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
                return await incremental_sync(client, state, first.tables, projects=[project])

        result = asyncio.run(run())
        polls = sim.stats.by_route["/api/1.0/events"]
    assert polls == 1
    assert_matches_truth(result.result.tables, world.ground_truth())
    assert result.result.tables["projects"]["synced_at"].null_count == 0  # the others keep theirs


# -- events in every form, and full and incremental syncs that agree ----------------------
def comparable(tables) -> dict[str, list]:
    """Each table's rows in key order, without the columns that say when a sync ran."""
    out = {}
    for name in RAW_TABLES:
        rows = [{k: v for k, v in row.items() if k not in ("synced_at", "observed_at", "tasks_counted_at")}
                for row in tables[name].to_pylist()]
        key = primary_key(name) or ("table", "gid", "error")
        out[name] = sorted(rows, key=lambda row: tuple(str(row[k]) for k in key))
    return out


def assert_same_as_a_full_sync(tables, base_url):
    again = full(base_url)
    ours, theirs = comparable(tables), comparable(again.tables)
    for name in ours:
        assert ours[name] == theirs[name], f"{name} differs from a full sync's"


def synced(world, config=None):
    """A simulator over ``world`` (left running) with a full sync's tables and state."""
    sim = Simulator(world, config or SimulatorConfig(requests_per_minute=QUOTA))
    sim.start()
    first = full(sim.base_url)
    state = SyncState()
    record_full_sync(state, first)
    return sim, first, state


def open_task(world):
    """An open top-level task and the project it sits in first (from the simulator's records)."""
    task = next(t for t in world.ground_truth()["tasks"] if t["memberships"] and not t["parent"] and not t["completed"])
    return task["gid"], task["memberships"][0]["project"]["gid"]


def place(truth, task, project):
    """The section the simulator says ``task`` sits in within ``project``."""
    record = next(t for t in truth["tasks"] if t["gid"] == task)
    return next(m["section"]["gid"] for m in record["memberships"] if m["project"]["gid"] == project)


@pytest.mark.parametrize("event_lost", [False, True])
def test_a_new_section_and_a_task_moved_into_it(world, event_lost):
    """The reproduced problem: sections lacked the new section while task_memberships pointed at it.
    With its section-added event lost (delivery is at most once), the task's place still brings it in."""
    sim, first, state = synced(world)
    with sim:
        task, project = open_task(world)
        section = world.add_section(project, "Waiting on vendor", actor=world.default_user)
        world.move_task_to_section(task, section, actor=world.default_user)
        if event_lost:
            world.events[project] = [e for e in world.events[project] if e.resource["gid"] != section.gid]
        result = incremental(sim.base_url, state, first.tables).result.tables
        assert_same_as_a_full_sync(result, sim.base_url)
    truth = world.ground_truth()
    assert place(truth, task, project) == section.gid
    assert_matches_truth(result, truth)  # sections and task_memberships included
    assert section.gid in result["sections"]["gid"].to_pylist()
    assert result["quarantine"].num_rows == 0


@pytest.mark.parametrize("naming", ["project_membership", "membership"])
def test_a_new_project_member_is_synced_whatever_the_event_names_it(world, naming):
    """``membership`` with resource_subtype project_membership was ignored: the member was missed."""
    sim, first, state = synced(world, SimulatorConfig(requests_per_minute=QUOTA, membership_events=naming))
    with sim:
        truth = world.ground_truth()
        project = truth["projects"][0]["gid"]
        members = {m["member"]["gid"] for m in truth["project_memberships"] if m["parent"]["gid"] == project}
        outsiders = [u["gid"] for u in truth["users"] if u["gid"] not in members]
        leaving = next(m["gid"] for m in truth["project_memberships"] if m["parent"]["gid"] == project)
        added = world.add_project_membership(project, outsiders[0], "editor", actor=world.default_user)
        brief = world.add_project_membership(project, outsiders[1], "viewer", actor=world.default_user)
        world.remove_project_membership(brief, actor=world.default_user)  # added then removed: absent
        world.remove_project_membership(leaving, actor=world.default_user)
        result = incremental(sim.base_url, state, first.tables).result.tables
        assert_same_as_a_full_sync(result, sim.base_url)
    rows = {r["gid"]: r for r in result["project_memberships"].to_pylist()}
    assert (rows[added.gid]["project_gid"], rows[added.gid]["member_gid"]) == (project, outsiders[0])
    assert brief.gid not in rows and leaving not in rows
    assert_matches_truth(result, world.ground_truth())


def test_a_task_deleted_then_restored_is_present(world):
    """The last action on a task wins: deleted then restored in one window is present; deleted
    last is absent; restored in a later window comes back with its subtasks and stories."""
    sim, first, state = synced(world)
    admin = world.default_user
    with sim:
        truth = world.ground_truth()
        parents = [t["gid"] for t in truth["tasks"] if t["num_subtasks"] and not t["parent"] and t["memberships"]]
        restored, gone, later, kept = parents[:4]
        leaf = next(t["gid"] for t in truth["tasks"] if t["parent"] and t["parent"]["gid"] == kept)
        world.delete_task(restored, actor=admin)
        world.undelete_task(restored, actor=admin)
        world.delete_task(gone, actor=admin)
        world.delete_task(later, actor=admin)
        world.delete_task(leaf, actor=admin)  # a subtask: its parent counts one fewer
        result = incremental(sim.base_url, state, first.tables)
        tables = result.result.tables
        tasks = set(tables["tasks"]["gid"].to_pylist())
        assert restored in tasks and not {gone, later, leaf} & tasks
        assert {gone, later, leaf} <= result.deleted and restored not in result.deleted
        assert_matches_truth(tables, world.ground_truth())  # the num_subtasks of the leaf's parent included

        world.undelete_task(later, actor=admin)
        world.undelete_task(leaf, actor=admin)  # its parent counts it again
        second = incremental(sim.base_url, state, tables).result.tables
        assert_same_as_a_full_sync(second, sim.base_url)
    truth = world.ground_truth()
    assert_matches_truth(second, truth)
    stories = {s["gid"] for s in truth["stories"] if s["target"]["gid"] == later}
    assert stories and stories <= set(second["stories"]["gid"].to_pylist())


def test_a_section_renamed_and_one_removed(world):
    """Both reach sections; the stories of moves through the removed section stay and are
    named in the quarantine, as a full sync names them."""
    admin = world.default_user
    task, project = open_task(world)
    home = place(world.ground_truth(), task, project)
    passage = world.add_section(project, "Temporary", actor=admin)
    world.move_task_to_section(task, passage, actor=admin)
    world.move_task_to_section(task, home, actor=admin)
    sim, first, state = synced(world)
    with sim:
        world.rename_section(home, "Done and dusted", actor=admin)
        world.remove_section(passage, actor=admin)
        result = incremental(sim.base_url, state, first.tables).result.tables
        again = incremental(sim.base_url, state, result).result.tables  # nothing new: nothing changes
        assert_same_as_a_full_sync(again, sim.base_url)
    truth = world.ground_truth()
    assert_matches_truth(result, truth)
    names = {r["gid"]: r["name"] for r in result["sections"].to_pylist()}
    assert names[home] == "Done and dusted" and passage.gid not in names
    through = {s["gid"] for s in truth["stories"]
               if passage.gid in ((s.get("old_section") or {}).get("gid"), (s.get("new_section") or {}).get("gid"))}
    assert len(through) == 2
    assert {(r["table"], r["gid"]) for r in result["quarantine"].to_pylist()} == {("stories", g) for g in through}
    assert comparable(again)["quarantine"] == comparable(result)["quarantine"]


def test_an_edited_comment_is_read_though_its_event_names_no_task(world):
    task, _project = open_task(world)
    comment = world.add_comment(task, "First words", actor=world.default_user)
    sim, first, state = synced(world)
    with sim:
        world.edit_comment(comment, "Second thoughts", actor=world.default_user)
        result = incremental(sim.base_url, state, first.tables).result.tables
        assert_same_as_a_full_sync(result, sim.base_url)
    truth = next(s for s in world.ground_truth()["stories"] if s["gid"] == comment.gid)
    rows = {r["gid"]: r for r in result["stories"].to_pylist()}
    assert rows[comment.gid]["text"] == truth["text"] == "Second thoughts"


def test_refused_records_are_not_repeated_by_incremental_syncs():
    """Under malformed records, repeated incremental syncs keep one quarantine row per refusal,
    the rows a full sync gives."""
    world = generate_world(seed=8, tasks=300, now=NOW)
    sim, first, state = synced(world, SimulatorConfig(requests_per_minute=QUOTA, malformed_rate=0.05))
    with sim:
        assert first.tables["quarantine"].num_rows
        change_the_world(world)
        tables = first.tables
        for _ in range(2):
            tables = incremental(sim.base_url, state, tables).result.tables
        assert_same_as_a_full_sync(tables, sim.base_url)


# -- reading events: hand-built feeds -------------------------------------------------------
def ev(action, resource, parent=None, **extra):
    return {"action": action, "resource": resource, "parent": parent, **extra}


TASK = {"gid": "10", "resource_type": "task", "resource_subtype": "default_task"}
SUBTASK = {"gid": "11", "resource_type": "task"}
STORY = {"gid": "20", "resource_type": "story", "resource_subtype": "comment_added"}
PROJECT = {"gid": "1", "resource_type": "project"}
SECTION = {"gid": "30", "resource_type": "section"}


@pytest.mark.parametrize("events, tasks, deleted, stories, containers", [
    # a task named by resource_type, by the deprecated type, or only by its resource_subtype
    ([ev("changed", TASK, change={"field": "name", "action": "changed"})], {"10"}, set(), set(), False),
    ([ev("changed", {"gid": "10"}, type="task")], {"10"}, set(), set(), False),
    ([ev("added", {"gid": "10", "resource_subtype": "milestone"}, PROJECT)], {"10"}, set(), set(), False),
    # the last action wins
    ([ev("deleted", TASK), ev("undeleted", TASK)], {"10"}, set(), set(), False),
    ([ev("undeleted", TASK), ev("deleted", TASK)], set(), {"10"}, set(), False),
    ([ev("added", TASK, PROJECT), ev("removed", TASK, PROJECT)], {"10"}, set(), set(), False),
    # a subtask added to or removed from a task: both are read (the parent's subtask count)
    ([ev("added", SUBTASK, TASK)], {"10", "11"}, set(), set(), False),
    ([ev("removed", SUBTASK, TASK), ev("deleted", TASK)], {"11"}, {"10"}, set(), False),
    # a task moved into a section
    ([ev("added", TASK, SECTION)], {"10"}, set(), set(), False),
    # stories: with their task as parent, or without (an edited comment)
    ([ev("added", STORY, TASK)], {"10"}, set(), set(), False),
    ([ev("changed", STORY, change={"field": "text", "action": "changed"})], set(), set(), {"20"}, False),
    # what the project holds: sections, memberships however named, the project, the unknown
    ([ev("added", SECTION, PROJECT)], set(), set(), set(), True),
    ([ev("changed", SECTION, change={"field": "name", "action": "changed"})], set(), set(), set(), True),
    ([ev("deleted", SECTION)], set(), set(), set(), True),
    ([ev("added", {"gid": "40", "resource_type": "project_membership"}, PROJECT)], set(), set(), set(), True),
    ([ev("added", {"gid": "40", "resource_type": "membership", "resource_subtype": "project_membership"},
         PROJECT)], set(), set(), set(), True),
    ([ev("removed", {"gid": "40", "resource_type": "membership"}, PROJECT)], set(), set(), set(), True),
    ([ev("changed", PROJECT, change={"field": "name", "action": "changed"})], set(), set(), set(), True),
    ([ev("added", {"gid": "50", "resource_type": "attachment"}, TASK)], {"10"}, set(), set(), True),
    ([ev("added", {"gid": "50", "resource_subtype": "comment_added"}, TASK)], {"10"}, set(), set(), True),
    ([ev("added", STORY, PROJECT)], set(), set(), set(), True),
])
def test_events_in_every_form(events, tasks, deleted, stories, containers):
    changes = FeedChanges().read(events)
    assert (changes.reread, changes.deleted, changes.stories, changes.containers, changes.unreadable) == (
        tasks, deleted, stories, containers, False)


@pytest.mark.parametrize("event", [{}, ev("added", None), ev("changed", {"resource_type": "task"}),
                                   ev("changed", {"gid": "not-a-gid", "resource_type": "task"}), "garbage"])
def test_an_event_without_a_usable_resource_has_its_project_reconciled(event):
    changes = FeedChanges().read([event, ev("changed", TASK)])
    assert changes.unreadable and changes.reread == {"10"}


def helpdesk_and_salaries():
    """Acme: Pat and Gil, the public project Helpdesk and the private Salaries, which Gil is in."""
    w = World(now=NOW - timedelta(days=5))
    ws = w.add_workspace("Acme", ["acme.example"])
    pat, gil = w.add_user("Pat", "pat@acme.example"), w.add_user("Gil", "gil@acme.example")
    for user in (pat, gil):
        w.add_workspace_membership(user, ws)
    helpdesk = w.add_project(ws, "Helpdesk")
    w.add_section(helpdesk, "New")
    salaries = w.add_project(ws, "Salaries", privacy_setting="private")
    w.add_section(salaries, "New")
    w.add_project_membership(salaries, gil)
    return w, pat, gil, helpdesk, salaries


def test_a_task_moved_out_of_the_tokens_view_is_left_out_not_deleted():
    """A person's token (Pat) syncs Helpdesk; Gil moves one ticket into a private project Pat is
    not in, renames another and deletes a third. The moved ticket answers 403: it leaves the
    tables as it would leave a full sync's, reported as out of view, never as deleted. Of its
    subtasks, the one in no project of its own leaves with it (403 too); the one that is a
    Helpdesk ticket itself stays, as a full sync lists it."""
    w, pat, gil, helpdesk, salaries = helpdesk_and_salaries()
    moved, renamed, deleted = (w.create_task(n, project=helpdesk, actor=gil) for n in ("Raise", "Printer", "Spam"))
    check = w.create_task("Check budget", parent=moved, actor=gil)
    approve = w.create_task("Approve budget", parent=moved, actor=gil)
    w.add_task_to_project(approve, helpdesk, actor=gil)
    w.default_user = pat.gid  # the demo token acts for Pat
    sim, first, state = synced(w)
    try:
        assert moved.gid in first.tables["tasks"]["gid"].to_pylist()
        w.add_task_to_project(moved, salaries, actor=gil)
        w.remove_task_from_project(moved, helpdesk, actor=gil)
        w.update_task(renamed, name="Printer on fire", actor=gil)  # no alarm: still in view, re-read
        w.delete_task(deleted, actor=gil)  # the edge: gone, which is not hidden
        result = incremental(sim.base_url, state, first.tables)
        assert result.hidden == {moved.gid, check.gid} and result.deleted == {deleted.gid}
        names = dict(zip(*(result.result.tables["tasks"][c].to_pylist() for c in ("gid", "name"))))
        assert names == {renamed.gid: "Printer on fire", approve.gid: "Approve budget"}
        assert_same_as_a_full_sync(result.result.tables, sim.base_url)
    finally:
        sim.stop()


def test_the_tasks_of_a_project_that_left_the_tokens_view_leave_the_tables():
    """Pat's token syncs Helpdesk and the private Salaries, then Pat is removed from Salaries: its
    listing no longer names it and no feed of it is read, so its tasks are read again: 403, out of
    view, with their subtask, as a full sync has them. Helpdesk's ticket stays (the edge)."""
    w, pat, gil, helpdesk, salaries = helpdesk_and_salaries()
    printer = w.create_task("Printer", project=helpdesk, actor=gil)
    pats = w.add_project_membership(salaries, pat)
    raise_ = w.create_task("Raise for Pat", project=salaries, actor=gil)
    check = w.create_task("Check budget", parent=raise_, actor=gil)
    w.default_user = pat.gid  # the demo token acts for Pat
    sim, first, state = synced(w)
    try:
        assert {printer.gid, raise_.gid, check.gid} <= set(first.tables["tasks"]["gid"].to_pylist())
        w.remove_project_membership(pats, actor=gil)
        result = incremental(sim.base_url, state, first.tables)
        assert result.hidden == {raise_.gid, check.gid}
        assert result.result.tables["tasks"]["gid"].to_pylist() == [printer.gid]
        assert_same_as_a_full_sync(result.result.tables, sim.base_url)
    finally:
        sim.stop()
