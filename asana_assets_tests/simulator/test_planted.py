"""Planted violations and state timelines: the generated world breaks the compliance rules exactly
where ``World.planted`` says, and each task's timeline is its true history.

``alarms`` re-derives every monitor's verdict by brute force from the rules, reading only the
world's full records and task timelines (never its stories), so it checks the generator
independently of how the pipeline reads history.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from asana_assets.simulator import generate_world, plant_membership_changes
from asana_assets.simulator.clock import iso
from asana_assets.simulator.generator import CHANGE_PROJECT, SECTION_MEANING

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CHANGE_TYPES = {"Change"}  # the ticket types of a change among the generator's (see CHANGE_TICKET_TYPES)
STATE_STORIES = {
    "assigned", "unassigned", "section_changed", "added_to_project", "removed_from_project", "marked_complete",
    "marked_incomplete", "marked_approved", "marked_rejected", "marked_changes_requested",
}


def _gid(ref) -> str | None:
    return ref["gid"] if ref else None


def _changes(timeline, key):
    """(snapshot, previous value) wherever ``key`` changed; the creation snapshot comes first."""
    previous = None
    for index, state in enumerate(timeline):
        if index == 0 or state[key] != previous:
            yield state, previous
        previous = state[key]


def _assignees(timeline):
    """(time, assignee) for each assignment change after creation."""
    return [(s["at"], s["assignee"]) for s, _was in _changes(timeline, "assignee")][1:]


def _decisions(timeline):
    """(time, approver, status) for each approval status change after creation."""
    return [(s["at"], s["actor"], s["approval_status"]) for s, _was in _changes(timeline, "approval_status")][1:]


def _entries(timeline):
    """(time, actor, section, moved) each time the task entered a section of a project; ``moved``
    when it came from another section of that project (a section story), not placed there."""
    previous: dict[str, str] = {}
    for state in timeline:
        for project, section in state["memberships"].items():
            if previous.get(project) != section:
                yield state["at"], state["actor"], section, project in previous
        previous = state["memberships"]


def alarms(world) -> dict[str, set[str]]:
    """Every monitor's alarms on the world as of its generation (``world.now``), by the rules alone."""
    truth = world.ground_truth()
    day_ago = iso(world.now - timedelta(hours=24))
    stage = {s["gid"]: SECTION_MEANING[s["name"]][0] for s in truth["sections"]}
    state = {s["gid"]: SECTION_MEANING[s["name"]][1] for s in truth["sections"]}
    changes = {p["gid"] for p in truth["projects"] if CHANGE_PROJECT.search(p["name"])}
    membership = {(_gid(m["user"]), _gid(m["workspace"])): m for m in truth["workspace_memberships"]}
    children = defaultdict(list)
    for task in truth["tasks"]:
        if task["parent"]:
            children[task["parent"]["gid"]].append(task)
    found: dict[str, set[str]] = defaultdict(set)

    for task in truth["tasks"]:
        gid, timeline = task["gid"], world.timeline(task["gid"])
        flips = list(_changes(timeline, "completed"))[1:]
        completions = [s["at"] for s, _was in flips if s["completed"]]
        reopenings = [s["at"] for s, _was in flips if not s["completed"]]
        assignments = _assignees(timeline)
        assignee = _gid(task["assignee"])
        at_completion = assignee
        if task["completed"]:
            before = [who for at, who in assignments if at <= completions[0]]
            at_completion = before[-1] if before else assignee if not assignments else "unknown"

        if task["resource_subtype"] != "milestone":
            if task["completed"] and at_completion is None:
                found["tickets_assigned"].add(gid)
            active = membership.get((assignee, _gid(task["workspace"])), {}).get("is_active")
            if not task["completed"] and task["created_at"] < day_ago and not active:
                found["tickets_assigned"].add(gid)

        entries = list(_entries(timeline))
        starts = [at for at, _actor, section, _moved in entries if state[section] == "IN_PROGRESS"]
        start = starts[0] if starts else completions[0] if completions else None
        # (time, approver, when it was cancelled): moves into Approved, approval subtasks approving.
        approvals = [(at, actor, []) for at, actor, section, moved in entries if moved and stage[section] == "APPROVED"]
        for sub in children[gid]:
            if sub["resource_subtype"] == "approval":
                decisions = _decisions(world.timeline(sub["gid"]))
                cancels = [at for at, _actor, status in decisions if status in ("rejected", "changes_requested")]
                approvals += [(at, actor, cancels) for at, actor, status in decisions if status == "approved"]
        standing = sorted(
            (at, actor)
            for at, actor, cancels in approvals
            if not any(at < cancel and (start is None or cancel < start) for cancel in cancels)
        )
        projects = {_gid(m["project"]) for m in task["memberships"]}
        typed = any(f["name"] == "Ticket type" and f["display_value"] in CHANGE_TYPES for f in task["custom_fields"])
        change = not task["parent"] and task["resource_subtype"] != "approval" and (projects & changes or typed)
        if change and start and not (standing and standing[0][0] <= start):
            found["changes_approved"].add(gid)
        people = {_gid(task["created_by"]), at_completion, _gid(task["completed_by"])}
        if standing and standing[0][1] in people:  # every ticket judged, change or not: stricter
            found["approval_segregation"].add(gid)

        for section in timeline[-1]["memberships"].values():
            entered = max(at for at, _actor, s, _moved in entries if s == section)
            closed = state[section] == "CLOSED"
            if task["completed"] != closed:
                since = max([entered, task["completed_at"]] if task["completed"] else [entered, *reopenings])
                if since < day_ago:
                    found["workflow_consistent"].add(gid)

    team_workspace = {t["gid"]: _gid(t["organization"]) for t in truth["teams"]}
    project_workspace = {p["gid"]: _gid(p["workspace"]) for p in truth["projects"]}
    held = defaultdict(set)  # (user, workspace) -> the access they hold
    for m in truth["team_memberships"]:
        held[_gid(m["user"]), team_workspace[_gid(m["team"])]].add("team")
    for m in truth["project_memberships"]:
        held[_gid(m["member"]), project_workspace[_gid(m["parent"])]].add("project")
    for p in truth["projects"]:
        if p["owner"] and not p["archived"]:
            held[_gid(p["owner"]), _gid(p["workspace"])].add("owner")
    for t in truth["tasks"]:
        if t["assignee"] and not t["completed"]:
            held[_gid(t["assignee"]), _gid(t["workspace"])].add("ticket")
    for (user, workspace), m in membership.items():
        if not m["is_active"] and held[user, workspace]:
            found["offboarding_access_removed"].add(user)
        if m["is_active"] and m["is_admin"] and m["is_guest"]:
            found["admin_access_restricted"].add(user)
    return dict(found)


def planted(world) -> dict[str, set[str]]:
    return {monitor: set(resources) for monitor, resources in world.planted.items() if resources}


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=1, tasks=1500, now=NOW)


@pytest.mark.parametrize(
    ("seed", "tasks", "workspaces"), [(1, 1, 1), (4, 80, 1), (1, 300, 1), (2, 400, 1), (3, 1500, 1), (5, 900, 2)]
)
def test_the_rules_alarm_exactly_on_the_plants(seed, tasks, workspaces):
    generated = generate_world(seed=seed, tasks=tasks, now=NOW - timedelta(days=seed), workspaces=workspaces)
    assert alarms(generated) == planted(generated)


@pytest.mark.parametrize(("seed", "tasks"), [(1, 300), (2, 300), (6, 400), (7, 2000)])
def test_every_monitor_has_plants(seed, tasks):
    generated = generate_world(seed=seed, tasks=tasks, now=NOW)
    counts = {monitor: len(resources) for monitor, resources in generated.planted.items()}
    assert counts == {
        "tickets_assigned": 4,
        "changes_approved": 4,
        "approval_segregation": 3,
        "workflow_consistent": 2,
        "offboarding_access_removed": 1,
        "admin_access_restricted": 1,
    }
    descriptions = [text for resources in generated.planted.values() for text in resources.values()]
    assert all(text and "\n" not in text and "{" not in text for text in descriptions)
    (leaver,) = generated.planted["offboarding_access_removed"]
    assigned = {generated.objects[gid].assignee for gid in generated.planted["tickets_assigned"]}
    assert leaver in assigned and None in assigned


def test_plants_are_what_they_say(world):
    """Spot checks of each kind of plant against the records and timelines."""
    truth = {t["gid"]: t for t in world.ground_truth()["tasks"]}
    sections = {s["gid"]: s["name"] for s in world.ground_truth()["sections"]}
    tickets = world.planted["tickets_assigned"]
    assert sum(not truth[gid]["completed"] and truth[gid]["assignee"] is None for gid in tickets) == 2
    completed = [gid for gid in tickets if truth[gid]["completed"]]
    assert len(completed) == 1 and next(s for s in world.timeline(completed[0]) if s["completed"])["assignee"] is None
    for gid, text in world.planted["workflow_consistent"].items():
        (section,) = world.timeline(gid)[-1]["memberships"].values()
        assert sections[section] in text
        assert truth[gid]["completed"] == (SECTION_MEANING[sections[section]][0] != "DONE")
    texts = world.planted["approval_segregation"].values()
    assert [sum(role in text for text in texts) for role in ("its creator", "its assignee", "completed it")] == [1, 1, 1]


def test_the_clean_part_stays_realistic(world):
    """Compliance does not flatten history: re-approvals, approvals by moving to Approved,
    reassignments, reopenings, tasks in two projects, subtasks."""
    truth = world.ground_truth()
    tasks = truth["tasks"]
    timelines = {t["gid"]: world.timeline(t["gid"]) for t in tasks}
    decisions = {
        tuple(status for _at, _actor, status in _decisions(timelines[t["gid"]]))
        for t in tasks
        if t["resource_subtype"] == "approval"
    }
    again = {("changes_requested", "approved"), ("rejected", "approved"), ("approved", "changes_requested", "approved")}
    assert again <= decisions
    approved = {s["gid"] for s in truth["sections"] if s["name"] == "Approved"}
    moves = (section for t in tasks for _at, _actor, section, moved in _entries(timelines[t["gid"]]) if moved)
    assert approved & set(moves)
    assert any(len({who for _at, who in _assignees(timelines[t["gid"]]) if who}) > 1 for t in tasks)
    assert any(len(list(_changes(timelines[t["gid"]], "completed"))) > 2 for t in tasks)  # completed, then reopened
    assert sum(len(t["memberships"]) > 1 for t in tasks) > 5
    assert sum(t["parent"] is not None and t["resource_subtype"] != "approval" for t in tasks) > 50


def test_timelines_are_the_final_state_and_pair_with_stories(world):
    truth = world.ground_truth()
    stories = defaultdict(list)
    for story in truth["stories"]:
        if story["resource_subtype"] in STATE_STORIES:
            stories[story["target"]["gid"]].append(story)
    for task in truth["tasks"]:
        timeline = world.timeline(task["gid"])
        first, last = timeline[0], timeline[-1]
        assert (first["at"], first["actor"]) == (task["created_at"], _gid(task["created_by"]))
        assert not first["completed"] and first["assignee"] is None
        assert last == {
            **last,
            "memberships": {_gid(m["project"]): _gid(m["section"]) for m in task["memberships"]},
            "completed": task["completed"],
            "assignee": _gid(task["assignee"]),
            "approval_status": task.get("approval_status"),
        }
        # One snapshot per state-changing story, at its time and by its author.
        changes = [(s["at"], s["actor"]) for s in timeline[1:]]
        assert changes == [(s["created_at"], _gid(s["created_by"])) for s in stories[task["gid"]]], task["gid"]


def test_timelines_follow_mutations_between_syncs():
    generated = generate_world(seed=8, tasks=60, now=NOW)
    generated.clock.set(NOW + timedelta(hours=1))
    project = generated.objects[generated.objects[generated.workspaces[0]].projects[0]]
    task = generated.create_task("New", project=project, actor=generated.default_user, assignee=generated.users[4])
    generated.move_task_to_section(task, project.sections[1], actor=generated.users[4])
    generated.complete_task(task, actor=generated.users[4])
    generated.add_comment(task, "not a state change")
    timeline = generated.timeline(task.gid)
    assert [(s["assignee"], s["memberships"][project.gid], s["completed"]) for s in timeline] == [
        (None, project.sections[0], False),
        (generated.users[4], project.sections[0], False),
        (generated.users[4], project.sections[1], False),
        (generated.users[4], project.sections[1], True),
    ]
    timeline[0]["memberships"].clear()
    assert generated.timeline(task.gid)[0]["memberships"]  # callers get copies


def _snapshot(world) -> dict[str, dict]:
    memberships = world.ground_truth()["workspace_memberships"]
    flags = ("is_active", "is_admin", "is_guest")
    return {m["gid"]: {"user": _gid(m["user"]), **{flag: m[flag] for flag in flags}} for m in memberships}


def test_plant_membership_changes():
    generated = generate_world(seed=3, tasks=400, now=NOW)
    before, alarms_before = _snapshot(generated), alarms(generated)
    expected = plant_membership_changes(generated)
    after = _snapshot(generated)
    granted = {m["user"] for gid, m in after.items() if gid in before and m["is_admin"] and not before[gid]["is_admin"]}
    guests = {m["user"] for gid, m in after.items() if gid not in before and m["is_guest"]}
    back = {m["user"] for gid, m in after.items() if gid in before and m["is_active"] and not before[gid]["is_active"]}
    assert len(granted) == len(guests) == len(back) == 1
    assert set(expected) == granted | guests | back and generated.planted["membership_changes"] == expected
    assert {gid: m for gid, m in after.items() if gid in before and m["user"] not in expected} == {
        gid: m for gid, m in before.items() if m["user"] not in expected
    }
    assert alarms(generated) == alarms_before  # nothing else alarms after the changes
    with pytest.raises(ValueError):
        plant_membership_changes(generated)  # nobody left to reactivate
