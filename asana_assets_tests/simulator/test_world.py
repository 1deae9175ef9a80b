"""The world model and generator: realistic shape, determinism, history consistent with state."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from asana_assets.lib.compliance.workflow import CHANGE_PROJECT_PATTERN
from asana_assets.lib.schema import RAW_TABLES
from asana_assets.simulator import UnknownObject, World, generate_world
from asana_assets.simulator.clock import iso

NOW = datetime(2026, 6, 1, tzinfo=UTC)
APPROVAL_SUBTYPES = {"marked_approved", "marked_rejected", "marked_changes_requested"}


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(seed=1, tasks=3000, now=NOW)


@pytest.fixture(scope="module")
def truth(world):
    return world.ground_truth()


@pytest.fixture()
def small() -> World:
    world = generate_world(seed=4, tasks=80, now=NOW)
    world.clock.set(NOW + timedelta(days=1))
    return world


# ---------------------------------------------------------------------- generator
def test_generation_is_deterministic():
    assert (
        generate_world(seed=9, tasks=250, now=NOW).ground_truth()
        == generate_world(seed=9, tasks=250, now=NOW).ground_truth()
    )
    assert (
        generate_world(seed=9, tasks=250, now=NOW).ground_truth()
        != generate_world(seed=10, tasks=250, now=NOW).ground_truth()
    )


@pytest.mark.parametrize("tasks", [1, 300, 1234])
def test_task_count_is_respected(tasks):
    made = sum(o.resource_type == "task" for o in generate_world(seed=2, tasks=tasks, now=NOW).objects.values())
    # and the offboarding tickets of the alumnus and the leaver, seven incidents, and the access review's two
    # project tasks with their five approval subtasks
    assert made == tasks + 2 + 7 + 2 + 5


def test_projects_of_thousands_of_tasks_are_made_on_request():
    """2,000 tasks make 20 projects of about 100 by default, 3 of about 700 at 1,000 a project
    (at least 3); the projects the plants add are the same in both, and so is the task count."""
    def projects_and_tasks(**options):
        world = generate_world(seed=3, tasks=2000, now=NOW, **options)
        kinds = Counter(o.resource_type for o in world.objects.values())
        return kinds["project"], kinds["task"]

    (default, tasks), (large, large_tasks) = projects_and_tasks(), projects_and_tasks(project_tasks=1000)
    assert default - large == 20 - 3 and tasks == large_tasks
    assert projects_and_tasks(project_tasks=100) == (default, tasks)


def test_people_and_access(world, truth):
    users = truth["users"]
    memberships = truth["workspace_memberships"]
    domain = truth["workspaces"][0]["email_domains"][0]
    assert len(users) == 3000 // 40
    assert 2 <= sum(m["is_admin"] and not m["is_guest"] for m in memberships) <= 3
    guests = [m for m in memberships if m["is_guest"]]
    emails = {u["gid"]: u["email"] for u in users}
    assert guests and all(not emails[m["user"]["gid"]].endswith(domain) for m in guests)
    assert any(tm["is_guest"] for tm in truth["team_memberships"]) and any(
        tm["is_admin"] for tm in truth["team_memberships"]
    )
    (leaver,) = world.planted["offboarding_access_removed"]
    assert {m["user"]["gid"] for m in memberships if not m["is_active"]} - {leaver}  # and one who left long ago
    assert any(tm["user"]["gid"] == leaver for tm in truth["team_memberships"])
    assert any(pm["member"]["gid"] == leaver for pm in truth["project_memberships"])
    assert any(t["assignee"] and t["assignee"]["gid"] == leaver and not t["completed"] for t in truth["tasks"])
    assert world.default_user in {m["user"]["gid"] for m in memberships if m["is_admin"]}


def test_projects_sections_and_teams(truth):
    names = {p["name"] for p in truth["projects"]}
    assert {"Change Management", "Security Reviews", "IT Helpdesk", "Access Requests", "Vendor Onboarding"} <= names
    assert any(name.startswith("Release 20") for name in names)
    assert {"Engineering", "Security", "IT", "Product", "Operations"} <= {t["name"] for t in truth["teams"]}
    assert any(p["archived"] for p in truth["projects"]) and not all(p["archived"] for p in truth["projects"])
    assert {p["privacy_setting"] for p in truth["projects"]} >= {"public_to_workspace", "private"}
    assert {m["access_level"] for m in truth["project_memberships"]} == {"admin", "editor", "commenter", "viewer"}
    sections = {s["name"] for s in truth["sections"]}
    assert {
        "Backlog",
        "To Do",
        "In Progress",
        "In Review",
        "Done",
        "Triage",
        "QA",
        "Approved",
        "Blocked",
        "Waiting on vendor",
        "Released to prod",
    } <= sections


def test_task_shape(world, truth):
    tasks = truth["tasks"]
    subtasks = [t for t in tasks if t["parent"]]
    assert 0.18 < len(subtasks) / len(tasks) < 0.33
    by_gid = {t["gid"]: t for t in tasks}
    assert any(by_gid[t["parent"]["gid"]]["parent"] for t in subtasks)  # nested two levels
    subtypes = Counter(t["resource_subtype"] for t in tasks)
    assert subtypes["milestone"] and subtypes["approval"]
    approvals = [t for t in tasks if t["resource_subtype"] == "approval"]
    assert {t["approval_status"] for t in approvals} == {"pending", "approved", "rejected", "changes_requested"}
    assert any(t["parent"] and t["name"].startswith("Approval: CHG-") for t in approvals)
    multi = sum(len(t["memberships"]) > 1 for t in tasks) / len(tasks)
    assert 0.01 < multi < 0.05
    assert any(t["tags"] for t in tasks) and any(t["assignee"] is None for t in tasks)
    assert (
        any(t["due_on"] for t in tasks)
        and any(t["completed"] for t in tasks)
        and not all(t["completed"] for t in tasks)
    )
    per_task = len(truth["stories"]) / len(tasks)
    assert 3 <= per_task <= 8
    assert sum(len(world.objects[t["gid"]].stories) > 100 for t in tasks) >= 2
    assert all(t["created_at"] <= t["modified_at"] <= iso(NOW) for t in tasks)


def test_history_replays_to_the_final_state(truth):
    """Replaying each task's stories (structured fields only) gives its current state."""
    stories = defaultdict(list)
    for story in truth["stories"]:
        stories[story["target"]["gid"]].append(story)
    section_project = {s["gid"]: s["project"]["gid"] for s in truth["sections"]}
    for task in truth["tasks"]:
        state = _replay(task, stories[task["gid"]], section_project)
        current_sections = {m["project"]["gid"]: m["section"]["gid"] for m in task["memberships"]}
        assert state.pop("sections").items() <= current_sections.items(), task["gid"]
        assert state == {
            "assignee": task["assignee"] and task["assignee"]["gid"],
            "completed": task["completed"],
            "completed_at": task["completed_at"],
            "approval_status": task.get("approval_status"),
        }, task["gid"]


def _replay(task, stories, section_project):
    """A consumer's replay: every step must start from the state the previous ones left."""
    state = {
        "assignee": None,
        "completed": False,
        "completed_at": None,
        "sections": {},
        "approval_status": "pending" if task["resource_subtype"] == "approval" else None,
    }
    assert [s["created_at"] for s in stories] == sorted(s["created_at"] for s in stories)
    for story in stories:
        subtype = story["resource_subtype"]
        if "new_approval_status" in story:
            assert story["old_approval_status"] == state["approval_status"]
            state["approval_status"] = story["new_approval_status"]
            _complete(state, story, story["new_approval_status"] != "pending")
        elif subtype in ("marked_complete", "marked_incomplete"):
            _complete(state, story, subtype == "marked_complete")
        elif subtype in ("assigned", "unassigned"):
            state["assignee"] = story.get("assignee", {}).get("gid")
        elif "new_section" in story:
            project = section_project[story["new_section"]["gid"]]
            assert state["sections"].get(project, story["old_section"]["gid"]) == story["old_section"]["gid"]
            state["sections"][project] = story["new_section"]["gid"]
        elif subtype == "removed_from_project":
            state["sections"].pop(story["project"]["gid"], None)
    return state


def _complete(state, story, done):
    state["completed"], state["completed_at"] = done, story["created_at"] if done else None


def test_ground_truth_covers_live_objects(world, truth):
    assert set(truth) <= set(RAW_TABLES)  # each collection is a raw table's truth
    assert set(truth) >= {
        "workspaces",
        "users",
        "workspace_memberships",
        "teams",
        "team_memberships",
        "projects",
        "project_memberships",
        "sections",
        "tasks",
        "stories",
        "tags",
        "custom_fields",
        "custom_field_settings",
    }
    assert sum(map(len, truth.values())) == len(world.objects)
    story = truth["stories"][0]
    assert story["target"]["resource_type"] == "task" and {"type", "text", "created_by", "source"} <= set(story)
    assert {"num_subtasks", "html_notes", "created_by"} <= set(truth["tasks"][0])  # opt-in fields included
    truth["tasks"][0]["memberships"].clear()
    assert world.ground_truth()["tasks"][0]["memberships"]  # callers get copies


def test_a_large_world_has_its_stories():
    """20,000 tasks carry their history (how long generating takes is printed by the scale benchmark)."""
    world = generate_world(seed=1, tasks=20_000, now=NOW)
    assert sum(o.resource_type == "story" for o in world.objects.values()) > 60_000


# ---------------------------------------------------------------------- mutations
def _story(world, task):
    return world.objects[world.objects[task].stories[-1]]


def _task(world):
    project = world.objects[world.objects[world.workspaces[0]].projects[0]]
    return next(world.objects[g] for g in world.project_tasks(project) if not world.objects[g].completed), project


def test_changes_write_stories_events_and_bump_modified_at(small):
    world = small
    task, _project = _task(world)
    actor, user = world.default_user, world.users[5]
    before = task.modified_at
    world.update_task(task, assignee=user, actor=actor)
    story = _story(world, task.gid)
    assert (story.resource_subtype, story.new, story.created_by) == ("assigned", user, actor)
    assert task.modified_at == story.created_at > before
    world.update_task(task, name="Renamed", notes="New notes", due_on="2026-07-04", actor=actor)
    subtypes = [world.objects[s].resource_subtype for s in task.stories[-3:]]
    assert subtypes == ["name_changed", "notes_changed", "due_date_changed"]
    assert _story(world, task.gid).new == {"start_on": None, "due_at": None, "due_on": "2026-07-04"}
    world.update_task(task, assignee=None, actor=actor)
    assert _story(world, task.gid).resource_subtype == "unassigned" and task.assignee is None
    stamp = task.modified_at
    world.add_comment(task, "Looks good", actor=actor)
    assert task.modified_at > stamp and _story(world, task.gid).resource_subtype == "comment_added"
    world.complete_task(task, actor=actor)
    assert task.completed and task.completed_by == actor and task.completed_at == task.modified_at
    world.reopen_task(task, actor=actor)
    assert (
        not task.completed
        and task.completed_at is None
        and _story(world, task.gid).resource_subtype == "marked_incomplete"
    )
    world.update_task(task, name="Renamed")  # unchanged: no story
    assert _story(world, task.gid).resource_subtype == "marked_incomplete"


def test_moves_between_containers_do_not_bump_modified_at(small):
    world = small
    task, project = _task(world)
    other = world.objects[world.objects[world.workspaces[0]].projects[1]]
    stamp = task.modified_at
    target = next(s for s in project.sections if s != dict(task.memberships)[project.gid])
    world.move_task_to_section(task, target, actor=world.default_user)
    assert _story(world, task.gid).resource_subtype == "section_changed" and _story(world, task.gid).new == target
    world.add_task_to_project(task, other, actor=world.default_user)
    assert _story(world, task.gid).new == other.gid and task.gid in world.project_tasks(other)
    world.remove_task_from_project(task, other, actor=world.default_user)
    assert _story(world, task.gid).resource_subtype == "removed_from_project"
    assert task.gid not in world.project_tasks(other)
    assert task.modified_at == stamp


def test_approvals_keep_completed_in_step(small):
    world = small
    parent, _project = _task(world)
    approval = world.create_task(
        "Approval: change", parent=parent, resource_subtype="approval", actor=world.default_user
    )
    assert approval.approval_status == "pending" and not approval.completed
    world.set_approval_status(approval, "changes_requested", actor=world.default_user)
    assert approval.completed and _story(world, approval.gid).resource_subtype == "marked_changes_requested"
    world.reopen_task(approval)
    assert (approval.approval_status, approval.completed) == ("pending", False)
    world.complete_task(approval)
    story = _story(world, approval.gid)
    assert (story.resource_subtype, story.old, story.new) == ("marked_approved", "pending", "approved")
    with pytest.raises(ValueError):
        world.set_approval_status(parent, "approved")
    with pytest.raises(ValueError):
        world.set_approval_status(approval, "maybe")


def test_events_bubble_from_subtasks_to_ancestor_projects(small):
    world = small
    parent, project = _task(world)
    child = world.create_task("Child", parent=parent, actor=world.default_user)
    grandchild = world.create_task("Grandchild", parent=child, actor=world.default_user)
    seen = len(world.events[project.gid])
    world.add_comment(grandchild, "deep", actor=world.default_user)
    new = world.events[project.gid][seen:]
    assert [(e.resource["resource_type"], e.action, e.parent["gid"]) for e in new] == [
        ("story", "added", grandchild.gid)
    ]
    assert world.events[parent.gid][-1] is new[0] and world.events[child.gid][-1] is new[0]


def test_delete_trashes_subtasks_and_stories(small):
    world = small
    parent, project = _task(world)
    child = world.create_task("Child", parent=parent, actor=world.default_user)
    stories = list(parent.stories)
    world.delete_task(parent, actor=world.default_user)
    assert parent.gid not in world.objects and child.gid not in world.objects
    assert not set(stories) & set(world.objects)
    assert parent.gid not in world.project_tasks(project)
    assert set(world.deleted) == {parent.gid, child.gid}
    assert world.events[project.gid][-1].action == "deleted"


def _by_gid(truth):
    return {name: {record["gid"]: record for record in records} for name, records in truth.items()}


def test_section_changes_write_events_on_the_project_feed(small):
    world = small
    task, project = _task(world)
    seen = len(world.events[project.gid])
    added = world.add_section(project, "Waiting on vendor", actor=world.default_user)
    world.rename_section(added, "Blocked by vendor", actor=world.default_user)
    world.rename_section(added, "Blocked by vendor")  # unchanged: no event
    home = dict(task.memberships)[project.gid]
    world.move_task_to_section(task, added, actor=world.default_user)
    with pytest.raises(ValueError, match="not empty"):
        world.remove_section(added)
    world.move_task_to_section(task, home, actor=world.default_user)
    world.remove_section(added, actor=world.default_user)
    section_events = [(e.resource["resource_type"], e.action, e.parent and e.parent["gid"], e.change)
                      for e in world.events[project.gid][seen:] if e.resource["gid"] == added.gid]
    assert section_events == [
        ("section", "added", project.gid, None),
        ("section", "changed", None, {"field": "name", "action": "changed"}),
        ("section", "deleted", None, None),
    ]
    assert added.gid not in world.objects and added.gid not in project.sections
    truth = world.ground_truth()
    assert added.gid not in {s["gid"] for s in truth["sections"]}
    # The two moves keep naming the removed section, by its last name.
    moves = [s for s in truth["stories"] if s["target"]["gid"] == task.gid and s["resource_subtype"] == "section_changed"]
    assert [(m["old_section"]["gid"], m["new_section"]["gid"]) for m in moves[-2:]] == [(home, added.gid), (added.gid, home)]
    assert moves[-1]["old_section"]["name"] == "Blocked by vendor"


def test_the_last_section_of_a_project_cannot_be_removed():
    world = World(now=NOW)
    workspace = world.add_workspace("Acme", ["acme.test"])
    project = world.add_project(workspace, "Only one section")
    only = world.add_section(project, "Untitled section")
    with pytest.raises(ValueError, match="last section"):
        world.remove_section(only)


def test_undelete_restores_a_task_with_its_subtasks_and_stories(small):
    world = small
    parent, project = _task(world)
    child = world.create_task("Child", parent=parent, actor=world.default_user)
    world.add_comment(child, "before the deletion", actor=world.default_user)
    before = _by_gid(world.ground_truth())
    section = dict(parent.memberships)[project.gid]
    world.delete_task(parent, actor=world.default_user)
    assert parent.gid not in world.project_tasks(project) and set(world.deleted) == {parent.gid, child.gid}
    seen = len(world.events[project.gid])
    world.undelete_task(parent.gid, actor=world.default_user)
    assert _by_gid(world.ground_truth()) == before  # everything back where it was
    assert parent.gid in world.objects[section].tasks and not world.deleted
    restored = [(e.resource["gid"], e.action) for e in world.events[project.gid][seen:]]
    assert restored == [(parent.gid, "undeleted"), (child.gid, "undeleted")]
    with pytest.raises(UnknownObject):
        world.undelete_task(parent.gid)  # not in the trash


def test_a_subtask_is_restored_only_after_its_parent(small):
    world = small
    parent, _project = _task(world)
    child = world.create_task("Child", parent=parent, actor=world.default_user)
    world.delete_task(parent, actor=world.default_user)
    with pytest.raises(ValueError, match="first"):
        world.undelete_task(child.gid)
    world.undelete_task(parent.gid)
    assert child.gid in world.objects and world.objects[parent.gid].subtasks == [child.gid]


def test_an_edited_comment_is_a_changed_story_event_without_a_parent(small):
    world = small
    task, project = _task(world)
    comment = world.add_comment(task, "first words", actor=world.default_user)
    world.edit_comment(comment, "second thoughts", actor=world.default_user)
    event = world.events[project.gid][-1]
    assert (event.resource["gid"], event.action, event.parent, event.change) == (
        comment.gid, "changed", None, {"field": "text", "action": "changed"})
    assert world.events[task.gid][-1] is event and comment.text == "second thoughts"
    with pytest.raises(ValueError, match="not a comment"):
        world.edit_comment(world.objects[task.stories[0]], "no")


def test_access_mutations(small):
    world = small
    workspace = world.workspaces[0]
    user = world.users[6]
    membership = world.objects[world.objects[user].workspace_memberships[0]]
    world.set_workspace_admin(user, workspace)
    assert membership.is_admin
    world.deactivate_user(user)
    assert not membership.is_active
    project = world.objects[world.objects[workspace].projects[0]]
    added = world.add_project_membership(project, user, "viewer", actor=world.default_user)
    assert world.events[project.gid][-1].resource["gid"] == added.gid
    world.remove_project_membership(added, actor=world.default_user)
    assert added.gid not in project.memberships and world.events[project.gid][-1].action == "removed"
    team = world.objects[world.objects[workspace].teams[0]]
    joined = world.add_team_membership(team, user, is_admin=True)
    assert joined.gid in team.memberships
    world.remove_team_membership(joined)
    assert joined.gid not in team.memberships and joined.gid not in world.objects


def test_clock_is_strictly_increasing():
    world = World(now=NOW)
    world.clock.set(NOW)
    instants = [world.clock.now() for _ in range(5)]
    assert instants == sorted(set(instants)) and instants[0] > NOW
    world.clock.advance(hours=1)
    assert world.clock.now() >= NOW + timedelta(hours=1)
    real = World()
    assert real.clock.now() > real.now


def test_several_workspaces_share_the_admin():
    world = generate_world(seed=6, tasks=300, now=NOW, workspaces=2)
    assert len(world.workspaces) == 2
    homes = Counter(task.workspace for task in world.objects.values() if task.resource_type == "task")
    # 150 each, two offboarding tickets, seven incidents and the access review's seven tasks
    assert sorted(homes.values()) == [166, 166]
    admin = world.objects[world.default_user]
    assert all(world.objects[m].is_admin for m in admin.workspace_memberships) and len(admin.workspace_memberships) == 2


def test_workspaces_of_different_sizes():
    world = generate_world(seed=6, now=NOW, sizes=[100, 400])
    homes = Counter(task.workspace for task in world.objects.values() if task.resource_type == "task")
    # each its budget, and the same 16 planted tasks as above (offboarding, incidents, access review)
    assert [homes[workspace] for workspace in world.workspaces] == [116, 416]


def test_due_on_and_due_at_exclude_each_other(small):
    task, _project = _task(small)
    small.update_task(task, due_at="2026-07-04T15:00:00.000Z")
    assert (task.due_on, task.due_at) == ("2026-07-04", "2026-07-04T15:00:00.000Z")
    small.update_task(task, due_on="2026-07-10")
    assert (task.due_on, task.due_at) == ("2026-07-10", None)
    small.update_task(task, due_on=None)
    assert _story(small, task.gid).old["due_on"] == "2026-07-10" and _story(small, task.gid).new is None


def test_changes_with_their_events_lost_reach_no_feed_but_change_the_world(small):
    project = small.objects[small.objects[small.workspaces[0]].projects[0]]
    task = small.objects[small.project_tasks(project)[0]]
    feeds = {gid: len(events) for gid, events in small.events.items()}
    before = task.modified_at
    with small.events_lost():
        small.update_task(task, name="Renamed unseen")
        small.add_comment(task, "Said unseen")
    assert {gid: len(events) for gid, events in small.events.items() if events} == {
        gid: n for gid, n in feeds.items() if n
    }
    assert task.name == "Renamed unseen" and task.modified_at > before
    with pytest.raises(ValueError), small.events_lost():
        raise ValueError("a failed change")
    assert small.record_events  # back on, even after a failure
    small.add_comment(task, "Said aloud")
    assert small.events[project.gid][-1].action == "added"


def acme(*names: str):
    """An Enterprise workspace with these people in it and a service account ("Robot")."""
    w = World()
    ws = w.add_workspace("Acme", ["acme.com"])
    people = [w.add_user(name, f"{name}@acme.com") for name in names]
    for user in people:
        w.add_workspace_membership(user, ws)
    return w, ws, people, w.add_service_account(ws, "Robot", "robot@acme.com")


def test_visibility_of_private_projects_and_secret_teams():
    """Who reads what: each case written by hand."""
    w, ws, (member, teammate, outsider), robot = acme("member", "teammate", "outsider")
    team, secret = w.add_team(ws, "Ops"), w.add_team(ws, "Board", visibility="secret")
    w.add_team_membership(team, teammate)
    w.add_team_membership(secret, member)
    public = w.add_project(ws, "Public")
    private = w.add_project(ws, "Private", privacy_setting="private")
    w.add_project_membership(private, member)
    shared = w.add_project(ws, "Shared", privacy_setting="private")
    w.add_project_team(shared, team)
    team_only = w.add_project(ws, "Team only", team=team, privacy_setting="private_to_team")
    seen = {
        user.name: {p.name for p in (public, private, shared, team_only) if w.can_see_project(user.gid, p)}
        for user in (member, teammate, outsider, robot)
    }
    assert seen == {
        "member": {"Public", "Private"},  # a direct member
        "teammate": {"Public", "Shared", "Team only"},  # through the team, and the team's own project
        "outsider": {"Public"},
        "Robot": {"Public", "Private", "Shared", "Team only"},  # a service account on Enterprise
    }
    assert [w.can_see_team(u.gid, secret) for u in (member, teammate, robot)] == [True, False, True]
    assert w.can_see_team(outsider.gid, team)  # not secret: everyone sees it
    ws.plan = "business"  # below Enterprise the service account is like anyone else
    assert not w.can_see_project(robot.gid, private) and not w.can_see_team(robot.gid, secret)


def test_visibility_of_tasks_and_their_stories():
    """A task is read through a visible project or parent, or by its collaborators; by hand."""
    w, ws, (owner, follower, outsider), robot = acme("owner", "follower", "outsider")
    public, private = w.add_project(ws, "Public"), w.add_project(ws, "Private", privacy_setting="private")
    w.add_project_membership(private, owner)
    secret = w.create_task("Salaries", project=private, actor=owner)
    child = w.create_task("Budget", parent=secret, actor=owner)
    story = w.add_comment(secret, "Draft attached", actor=owner)
    both = w.create_task("Shared", project=private, actor=owner)
    w.add_task_to_project(both, public, actor=owner)
    followed = w.create_task("Followed", project=private, actor=owner)
    followed.followers.append(follower.gid)  # a collaborator on one task of the project
    seen = {
        user.name: {o.name if hasattr(o, "name") else "story" for o in (secret, child, story, both, followed)
                    if w.can_see(user.gid, o)}
        for user in (owner, follower, outsider, robot)
    }
    assert seen == {
        "owner": {"Salaries", "Budget", "story", "Shared", "Followed"},
        "follower": {"Shared", "Followed"},  # through the public project, and as a collaborator
        "outsider": {"Shared"},  # multi-homed in a public project
        "Robot": {"Salaries", "Budget", "story", "Shared", "Followed"},
    }


def test_generated_worlds_carry_custom_fields(world):
    """Every field type is defined and used; a share of tickets is filled in (milestones and
    approvals never typed); "Change" only where the project is a change project already, so
    typing plants nothing; and some values change later, with their stories."""
    truth = world.ground_truth()  # afresh: another test edits the shared copy
    assert {f["resource_subtype"] for f in truth["custom_fields"]} == {
        "enum", "number", "date", "text", "people", "multi_enum"}
    changes = {p["gid"] for p in truth["projects"] if re.search(CHANGE_PROJECT_PATTERN, p["name"], re.IGNORECASE)}
    typed = Counter()
    for task in truth["tasks"]:
        kinds = {f["name"]: f["display_value"] for f in task["custom_fields"] if f["display_value"]}
        if "Ticket type" in kinds:
            typed[kinds["Ticket type"]] += 1
            assert task["resource_subtype"] == "default_task" and not task["parent"]
            if kinds["Ticket type"] == "Change":
                assert {m["project"]["gid"] for m in task["memberships"]} & changes, task["gid"]
    assert {"Change", "Bug", "Incident", "Task"} <= set(typed)
    values = [f for t in truth["tasks"] for f in t["custom_fields"]]
    assert 0.2 < sum(bool(f["display_value"]) for f in values) / len(values) < 0.9  # a share, not all
    stories = Counter(s["resource_subtype"] for s in truth["stories"] if s["resource_subtype"].endswith("field_changed"))
    assert set(stories) == {f"{kind}_custom_field_changed" for kind in
                            ("enum", "number", "date", "text", "people", "multi_enum")}
    later = [s for s in truth["stories"] if s["resource_subtype"] == "enum_custom_field_changed"
             and s.get("old_enum_value")]  # a priority changed after it was first set
    assert later
