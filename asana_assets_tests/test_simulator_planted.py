"""Planted violations and state timelines: the generated world breaks the compliance rules exactly
where ``World.planted`` says, and each task's timeline is its true history.

``alarms`` re-derives every monitor's verdict by brute force from the monitor rules, reading only
the world's full records and timelines (never its stories), so it checks the generator
independently of how the pipeline parses history.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from asana_assets.simulator import generate_world, plant_membership_changes
from asana_assets.simulator.clock import iso
from asana_assets.workflow import CHANGE_PROJECT_PATTERN, STATE_OF_STAGE, classify

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TICKET_MONITORS = ("tickets_assigned", "changes_approved", "approval_segregation", "workflow_consistent")
MONITORS = (*TICKET_MONITORS, "offboarding_access_removed", "admin_access_restricted")


def _gid(ref) -> str | None:
    return ref["gid"] if ref else None


def _changes(timeline, key):
    """(snapshot, previous value) for every snapshot where ``key`` changed, creation included."""
    previous = None
    for state in timeline:
        if state[key] != previous:
            yield state, previous
        previous = state[key]


def _entries(timeline):
    """(time, actor, section, moved) each time the task entered a section of any project; ``moved``
    when it came from another section of that project (a section story), not placed there."""
    previous: dict[str, str] = {}
    for state in timeline:
        for project, section in state["memberships"].items():
            if previous.get(project) != section:
                yield state["at"], state["actor"], section, project in previous
        previous = state["memberships"]


def alarms(world) -> dict[str, set[str]]:
    """Every monitor's alarms on the world as of its generation, by the rules alone."""
    truth = world.ground_truth()
    day_ago = iso(world.now - timedelta(hours=24))
    stage = {s["gid"]: classify(s["name"])[0] for s in truth["sections"]}
    state = {gid: STATE_OF_STAGE[value] for gid, value in stage.items()}
    changes = {p["gid"] for p in truth["projects"] if re.search(CHANGE_PROJECT_PATTERN, p["name"], re.I)}
    membership = {(_gid(m["user"]), _gid(m["workspace"])): m for m in truth["workspace_memberships"]}
    children = defaultdict(list)
    for task in truth["tasks"]:
        if task["parent"]:
            children[task["parent"]["gid"]].append(task)
    found: dict[str, set[str]] = defaultdict(set)

    for task in truth["tasks"]:
        gid, timeline = task["gid"], world.timeline(task["gid"])
        completions = [s["at"] for s, was in _changes(timeline, "completed") if s["completed"]]
        reopenings = [s["at"] for s, was in _changes(timeline, "completed") if was and not s["completed"]]
        assignments = [(s["at"], s["assignee"]) for s, _was in _changes(timeline, "assignee")][1:]  # not creation
        assignee = _gid(task["assignee"])
        if task["completed"]:
            before = [who for at, who in assignments if at <= completions[0]]
            at_completion = before[-1] if before else assignee if not assignments else "unknown"
        else:
            at_completion = assignee

        if task["resource_subtype"] != "milestone":
            if task["completed"]:
                if at_completion is None:
                    found["tickets_assigned"].add(gid)
            elif task["created_at"] < day_ago:
                active = membership.get((assignee, _gid(task["workspace"])), {}).get("is_active")
                if not active:
                    found["tickets_assigned"].add(gid)

        entries = list(_entries(timeline))
        starts = [at for at, _actor, section, _moved in entries if state[section] == "IN_PROGRESS"]
        start = starts[0] if starts else completions[0] if completions else None
        # Approvals: (time, approver, times it was cancelled), by a move or an approval subtask.
        approvals = [(at, actor, []) for at, actor, section, moved in entries if moved and stage[section] == "APPROVED"]
        for sub in children[gid]:
            if sub["resource_subtype"] == "approval":
                decisions = [(s["at"], s["actor"], s["approval_status"]) for s, _was in _changes(world.timeline(sub["gid"]), "approval_status")]
                cancels = [at for at, _actor, status in decisions if status in ("rejected", "changes_requested")]
                approvals += [(at, actor, cancels) for at, actor, status in decisions if status == "approved"]
        standing = sorted(
            (at, actor)
            for at, actor, cancels in approvals
            if not any(at < cancel and (start is None or cancel < start) for cancel in cancels)
        )
        change = (
            not task["parent"]
            and task["resource_subtype"] != "approval"
            and {_gid(m["project"]) for m in task["memberships"]} & changes
        )
        if change and start and not (standing and standing[0][0] <= start):
            found["changes_approved"].add(gid)
        if standing:  # judged on every ticket, change or not: the world is clean either way
            people = {_gid(task["created_by"]), at_completion, _gid(task["completed_by"])}
            if standing[0][1] in people:
                found["approval_segregation"].add(gid)

        for project, section in timeline[-1]["memberships"].items():
            entered = max(at for at, _actor, s, _moved in entries if s == section)
            closed = state[section] == "CLOSED"
            if task["completed"] and not closed:
                since = max(entered, task["completed_at"])
            elif not task["completed"] and closed:
                since = max([entered, *reopenings])
            else:
                continue
            if since < day_ago:
                found["workflow_consistent"].add(gid)

    team_workspace = {t["gid"]: _gid(t["organization"]) for t in truth["teams"]}
    project_workspace = {p["gid"]: _gid(p["workspace"]) for p in truth["projects"]}
    access = defaultdict(set)  # (user, workspace) -> what they still hold
    for m in truth["team_memberships"]:
        access[_gid(m["user"]), team_workspace[_gid(m["team"])]].add("team")
    for m in truth["project_memberships"]:
        access[_gid(m["member"]), project_workspace[_gid(m["parent"])]].add("project")
    for p in truth["projects"]:
        if p["owner"] and not p["archived"]:
            access[_gid(p["owner"]), _gid(p["workspace"])].add("owner")
    for t in truth["tasks"]:
        if t["assignee"] and not t["completed"]:
            access[_gid(t["assignee"]), _gid(t["workspace"])].add("ticket")
    for (user, workspace), m in membership.items():
        if not m["is_active"] and access[user, workspace]:
            found["offboarding_access_removed"].add(user)
        if m["is_active"] and m["is_admin"] and m["is_guest"]:
            found["admin_access_restricted"].add(user)
    return dict(found)


def planted(world) -> dict[str, set[str]]:
    return {monitor: set(resources) for monitor, resources in world.planted.items() if resources}


@pytest.mark.parametrize(
    ("seed", "tasks", "workspaces"), [(1, 1, 1), (4, 80, 1), (1, 300, 1), (2, 400, 1), (3, 1500, 1), (5, 900, 2)]
)
def test_the_rules_alarm_exactly_on_the_plants(seed, tasks, workspaces):
    world = generate_world(seed=seed, tasks=tasks, now=NOW, workspaces=workspaces)
    assert alarms(world) == planted(world)
