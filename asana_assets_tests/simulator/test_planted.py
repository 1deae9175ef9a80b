"""Planted violations and state timelines: the generated world breaks the compliance rules exactly
where ``World.planted`` says (and leaves them undecidable exactly where it says so), and each
task's timeline is its true history.

``findings`` re-derives every monitor's alarms and unknowns by brute force from the rules,
reading only the world's full records and task timelines (never its stories), so it checks the
generator independently of how the pipeline reads history.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from asana_assets.lib.compliance.review import read_markers
from asana_assets.simulator import generate_world, plant_membership_changes
from asana_assets.simulator.clock import iso
from asana_assets.simulator.generator import (
    ARCHIVE,
    CHANGE_PROJECT,
    DOWNGRADED,
    INCIDENT_TICKETS,
    INCIDENTS,
    OFFBOARDING,
    OFFBOARDING_DAYS,
    PLANT_SECTIONS,
    REVIEWS,
    SECTION_MEANING,
    SEVERITIES,
    SEVERITY,
    SLA_DAYS,
    SLA_DEFAULT_DAYS,
    planted_statuses,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CHANGE_TYPES = {"Change"}  # the ticket types of a change among the generator's (see CHANGE_TICKET_TYPES)
WORK_STAGES = ("IN_PROGRESS", "IN_REVIEW", "DONE")  # entering a section of these starts the work (or ends it)
STATE_STORIES = {
    "assigned", "unassigned", "section_changed", "added_to_project", "removed_from_project", "marked_complete",
    "marked_incomplete", "marked_approved", "marked_rejected", "marked_changes_requested",
}
# A campaign member's marker line, as the documentation gives it: campaign, resource, due day, member.
REVIEW_ITEM = re.compile(r"(?m)^asana-assets access review: (\S+) (team|project)/(\d+) due (\d{4}-\d{2}-\d{2}) "
                         r"member (\d+)=\w+$")


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


def _stays(timeline):
    """[time, actor, section, moved, left] each time the task entered a section of a project, in
    order: ``moved`` when it came from another section of that project (a section story), not
    placed there; ``left`` (time, the section it went to, None when taken out of the project)
    when it next left that section, else None."""
    stays, staying, previous = [], {}, {}
    for state in timeline:
        now = state["memberships"]
        for project, stay in list(staying.items()):
            if now.get(project) != stay[2]:
                stay[4] = (state["at"], now.get(project))
                del staying[project]
        for project, section in now.items():
            if project not in staying:
                staying[project] = [state["at"], state["actor"], section, project in previous, None]
                stays.append(staying[project])
        previous = now
    return stays


def findings(world) -> dict[str, dict[str, str]]:
    """Every monitor's alarms and unknowns on the world as of its generation (``world.now``), by
    the rules alone: monitor -> {resource gid: "alarm" or "unknown"}."""
    truth = world.ground_truth()
    day_ago = iso(world.now - timedelta(hours=24))
    stage = {s["gid"]: SECTION_MEANING[s["name"]][0] for s in truth["sections"]}
    state = {s["gid"]: SECTION_MEANING[s["name"]][1] for s in truth["sections"]}
    changes = {p["gid"] for p in truth["projects"] if CHANGE_PROJECT.search(p["name"])}
    incidents = {p["gid"] for p in truth["projects"] if p["name"] == INCIDENTS}
    reviews = {p["gid"] for p in truth["projects"] if p["name"] == REVIEWS}
    membership = {(_gid(m["user"]), _gid(m["workspace"])): m for m in truth["workspace_memberships"]}
    children = defaultdict(list)
    for task in truth["tasks"]:
        if task["parent"]:
            children[task["parent"]["gid"]].append(task)
    found: dict[str, dict[str, str]] = defaultdict(dict)

    for task in truth["tasks"]:
        gid, timeline = task["gid"], world.timeline(task["gid"])
        flips = list(_changes(timeline, "completed"))[1:]
        completions = [s["at"] for s, _was in flips if s["completed"]]
        reopenings = [s["at"] for s, _was in flips if not s["completed"]]
        assignments = _assignees(timeline)
        assignee = _gid(task["assignee"])
        at_completion, known = assignee, True
        if task["completed"]:  # the last assignment up to the first completion; none at all: the current one
            before = [who for at, who in assignments if at <= completions[0]]
            at_completion, known = before[-1] if before else assignee, bool(before) or not assignments

        if task["resource_subtype"] != "milestone":
            active = membership.get((assignee, _gid(task["workspace"])), {}).get("is_active")
            if task["completed"]:
                status = "unknown" if not known else "alarm" if at_completion is None else None
            else:
                status = "alarm" if task["created_at"] < day_ago and not active else None
            if status:
                found["tickets_assigned"][gid] = status

        stays = _stays(timeline)
        start = min([at for at, _actor, section, _moved, _left in stays if stage[section] in WORK_STAGES][:1]
                    + completions[:1], default=None)
        unmapped = next((at for at, _actor, section, _moved, _left in stays if stage[section] == "UNKNOWN"), None)
        # (time, approver, when it was cancelled, in doubt): moves into an APPROVED section, cancelled
        # by leaving it for a section that starts no work (or the project); approval subtasks
        # approving, cancelled by their next change away from approved. In doubt: no approver is
        # known, or the ticket left the approved section for one of no known stage before starting.
        approvals = []
        for at, actor, section, moved, left in stays:
            if moved and stage[section] == "APPROVED":
                to = stage[left[1]] if left and left[1] else None
                unsure = left is not None and to == "UNKNOWN" and (start is None or left[0] < start)
                cancel = left[0] if left and to not in WORK_STAGES and not unsure else None
                approvals.append((at, actor, cancel, unsure))
        for sub in children[gid]:
            if sub["resource_subtype"] == "approval":
                decisions = _decisions(world.timeline(sub["gid"]))
                for index, (at, actor, status) in enumerate(decisions):
                    if status == "approved":
                        cancel = next((later for later, _actor, s in decisions[index + 1 :] if s != "approved"), None)
                        # A decision without an author is the subtask's completer's, if it is its standing status.
                        last = index == len(decisions) - 1 and sub["approval_status"] == status
                        approver = actor or (_gid(sub["completed_by"]) if last else None)
                        approvals.append((at, approver, cancel, approver is None))
        standing = [
            (unsure, at, approver)
            for at, approver, cancel, unsure in approvals
            if cancel is None or (start is not None and cancel >= start)
        ]
        counted = min(standing, key=lambda a: a[:2], default=None)  # the first, preferring one not in doubt
        in_change = [s["at"] for s in timeline if changes & set(s["memberships"])]
        typed = any(f["name"] == "Ticket type" and f["display_value"] in CHANGE_TYPES for f in task["custom_fields"])
        scoped = bool(in_change) and (start is None or in_change[0] <= start)  # in a change project by its start
        change = not task["parent"] and task["resource_subtype"] != "approval" and (scoped or typed)
        if change and start is None and unmapped:
            found["changes_approved"][gid] = "unknown"
        elif change and start and (counted is None or counted[1] > start):
            found["changes_approved"][gid] = "alarm"
        elif change and start and (counted[0] or (unmapped and unmapped < counted[1])):
            found["changes_approved"][gid] = "unknown"
        people = {_gid(task["created_by"]), at_completion, _gid(task["completed_by"])} - {None}
        # Every ticket judged, change or not (stricter), but an access review's: its reviewer, assigned
        # to it, decides its members' approval subtasks by design.
        if counted and counted[2] in people and not reviews & set(timeline[-1]["memberships"]):
            found["approval_segregation"][gid] = "alarm"
        elif change and counted and counted[0]:
            found["approval_segregation"][gid] = "unknown"

        drift = set()
        for section in timeline[-1]["memberships"].values():
            if state[section] == "UNKNOWN":  # agrees or disagrees with completion: nobody can tell
                drift.add("unknown")
                continue
            entered = max(at for at, _actor, s, _moved, _left in stays if s == section)
            if task["completed"] != (state[section] == "CLOSED"):
                since = max([entered, task["completed_at"]] if task["completed"] else [entered, *reopenings])
                if since < day_ago:
                    drift.add("alarm")
        if drift:
            found["workflow_consistent"][gid] = "alarm" if "alarm" in drift else "unknown"

        # The demo's SLA category: an incident's days by the strictest severity it held (the one it
        # was filed with and each its work set, as the generator's spec lists them; else the one it
        # has), from its creation to its completion (or now), less its time in a BLOCKED section;
        # late by a millisecond is late.
        if incidents & {project for state in timeline for project in state["memberships"]}:
            severity = next((f["display_value"] for f in task["custom_fields"] if f["name"] == SEVERITY), None)
            filed, work = next(((s, w) for title, s, _age, w in (*INCIDENT_TICKETS, DOWNGRADED)
                                if title == task["name"]), (severity, ()))
            days = min(SLA_DAYS.get(held, SLA_DEFAULT_DAYS)
                       for held in (filed, *(step for _after, step in work if step in SEVERITIES)))
            end = datetime.fromisoformat(task["completed_at"] or iso(world.now))
            blocked = sum((min(datetime.fromisoformat(left[0]) if left else end, end) - datetime.fromisoformat(at)
                           for at, _actor, section, _moved, left in stays if stage[section] == "BLOCKED"), timedelta())
            worked = end - datetime.fromisoformat(task["created_at"]) - blocked
            if worked > timedelta(days=days):
                found["ticket_sla"][gid] = "alarm"

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
    # Access review campaigns: an approval subtask whose notes carry a member's marker line is an
    # item; rejected while the member still holds the access (a membership or, for a project, its
    # ownership) alarms, and so does one undecided once its due day (UTC) is over, and one decided
    # after its due day or by the member themself.
    holders = {(_gid(m["member"]), "project", _gid(m["parent"])) for m in truth["project_memberships"]}
    holders |= {(_gid(p["owner"]), "project", p["gid"]) for p in truth["projects"] if p["owner"]}
    holders |= {(_gid(m["user"]), "team", _gid(m["team"])) for m in truth["team_memberships"]}
    for task in truth["tasks"]:
        item = REVIEW_ITEM.search(task["notes"] or "")
        if task["resource_subtype"] != "approval" or item is None:
            continue
        campaign, kind, resource, due, user = item.groups()
        over = world.now >= datetime.fromisoformat(due).replace(tzinfo=UTC) + timedelta(days=1)
        status = task["approval_status"]
        decided = status in ("approved", "rejected")
        last = _decisions(world.timeline(task["gid"]))[-1:]
        late = any(datetime.fromisoformat(at) >= datetime.fromisoformat(due).replace(tzinfo=UTC) + timedelta(days=1)
                   for at, _, _ in last)
        own = any(actor == user for _, actor, _ in last)
        if (status == "rejected" and (user, kind, resource) in holders) or (not decided and over) or (
                decided and (late or own)):
            found["access_review_completed"][f"{campaign}/{kind}/{resource}/{user}"] = "alarm"
    offboarding = {p["gid"] for p in truth["projects"] if p["name"] == OFFBOARDING}
    users = {u["gid"]: u for u in truth["users"]}
    # When each offboarding ticket naming a user (assignee, people field, or name or email in its title) was
    # completed (None: open).
    closed = defaultdict(list)
    for t in truth["tasks"]:
        if offboarding & {_gid(m["project"]) for m in t["memberships"]}:
            title = t["name"].casefold()
            named = {u for u, user in users.items() if user["email"].casefold() in title}
            named |= {_gid(t["assignee"])} | {p["gid"] for f in t["custom_fields"] for p in f.get("people_value") or ()}
            for user in named - {None}:
                closed[user].append(t["completed_at"])
    for (user, workspace), m in membership.items():
        if not m["is_active"] and held[user, workspace]:
            found["offboarding_access_removed"][user] = "alarm"
        if m["is_active"] and m["is_admin"] and m["is_guest"]:
            found["admin_access_restricted"][user] = "alarm"
        # A deactivated user's own audit event after their last deprovisioning there alarms; with
        # no audit log (not Enterprise), what they did after leaving is unknown.
        if not m["is_active"] and not world.enterprise:
            found["activity_after_deactivation"][user] = "unknown"
        elif not m["is_active"]:
            log = [e for e in world.audit_log if e["workspace"] == workspace]
            left = max(e["created_at"] for e in log
                       if e["event_type"] == "user_deprovisioned" and e["resource"]["gid"] == user)
            if any(e["actor"].get("gid") == user and e["created_at"] > left for e in log):
                found["activity_after_deactivation"][user] = "alarm"
        # Its offboarding ticket is due OFFBOARDING_DAYS after the deprovisioning; with no audit log the
        # deactivation lies anywhere before the first snapshot (now), so that cannot be told.
        if not m["is_active"] and not world.enterprise:
            found["offboarding_ticket"][user] = "unknown"
        elif not m["is_active"]:
            due = iso(datetime.fromisoformat(left) + timedelta(days=OFFBOARDING_DAYS))
            if iso(world.now) > due and not any(at and left <= at <= due for at in closed[user]):
                found["offboarding_ticket"][user] = "alarm"
    return dict(found)


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=1, tasks=1500, now=NOW)


@pytest.mark.parametrize(
    ("seed", "tasks", "workspaces", "enterprise"),
    [(1, 1, 1, False), (4, 80, 1, False), (1, 300, 1, False), (2, 400, 1, False), (3, 1500, 1, False),
     (5, 900, 2, False), (1, 300, 1, True), (6, 300, 2, True)],
)
def test_the_rules_alarm_exactly_on_the_plants(seed, tasks, workspaces, enterprise):
    generated = generate_world(seed=seed, tasks=tasks, now=NOW - timedelta(days=seed), workspaces=workspaces,
                               enterprise=enterprise)
    assert findings(generated) == planted_statuses(generated)


@pytest.mark.parametrize(("seed", "tasks"), [(1, 300), (2, 300), (6, 400), (7, 2000)])
def test_every_monitor_has_plants(seed, tasks):
    generated = generate_world(seed=seed, tasks=tasks, now=NOW)
    counts = {key: len(resources) for key, resources in generated.planted.items()}
    assert counts == {
        "tickets_assigned": 4,
        "changes_approved": 7,
        "changes_approved:unknown": 2,
        "approval_segregation": 3,
        "approval_segregation:unknown": 1,
        "workflow_consistent": 2,
        "workflow_consistent:unknown": 1,
        "offboarding_access_removed": 1,
        "admin_access_restricted": 1,
        # No audit log: the leaver and the alumnus, both deactivated, may have acted since, and
        # when they left cannot be placed against their offboarding tickets' deadline.
        "activity_after_deactivation:unknown": 2,
        "offboarding_ticket:unknown": 2,
        "ticket_sla": 3,  # an incident open past its SLA, one closed after it, one lowered after it
        # a revoke still held, an item undecided past its due day, an owner's self-review
        "access_review_completed": 3,
    }
    descriptions = [text for resources in generated.planted.values() for text in resources.values()]
    assert all(text and "\n" not in text and "{" not in text for text in descriptions)
    (leaver,) = generated.planted["offboarding_access_removed"]
    assigned = {generated.objects[gid].assignee for gid in generated.planted["tickets_assigned"]}
    assert leaver in assigned and None in assigned


def test_an_enterprise_world_plants_a_sign_in_after_deactivation():
    generated = generate_world(seed=2, tasks=300, now=NOW, enterprise=True)
    (leaver,) = generated.planted["offboarding_access_removed"]
    assert generated.planted["activity_after_deactivation"] == {
        leaver: f"{generated.objects[leaver].name} signed in after being deactivated"}
    assert "activity_after_deactivation:unknown" not in generated.planted
    # With the audit log dating it, the leaver's open offboarding ticket is overdue.
    assert generated.planted["offboarding_ticket"] == {
        leaver: f"{generated.objects[leaver].name}'s offboarding ticket is still open"}
    # Deprovisioned two days before now, signed in one day before now (Asana's wire format).
    assert [(e["event_type"], e["created_at"]) for e in generated.audit_log if e["resource"].get("gid") == leaver
            and e["event_type"] != "user_invited"] == [
        ("user_deprovisioned", "2026-05-30T00:00:00.000Z"), ("user_login_succeeded", "2026-05-31T00:00:00.000Z")]


def test_the_incidents_breaching_their_sla_are_planted(world):
    """Of the seven incidents, SEC-1 (Critical, open three days), SEC-3 (Critical, closed after a
    day and two hours) and SEC-7 (Critical, lowered to Low on its second day, closed on its third)
    breach the demo's SLA; SEC-4 (High, five days open) is within it only by its three days in
    Blocked."""
    truth = {t["gid"]: t for t in world.ground_truth()["tasks"]}
    assert sorted((truth[gid]["name"][:5], text) for gid, text in world.planted["ticket_sla"].items()) == [
        ("SEC-1", "SEC-1 was open past its 1-day SLA (Critical)"),
        ("SEC-3", "SEC-3 was closed after its 1-day SLA (Critical)"),
        ("SEC-7", "SEC-7 was closed after its 1-day SLA (Critical), its severity lowered to Low after the breach")]
    [sec7] = [t for t in truth.values() if t["name"].startswith("SEC-7")]
    assert [f["display_value"] for f in sec7["custom_fields"] if f["name"] == SEVERITY] == ["Low"]
    assert sec7["completed_at"] == iso(NOW - timedelta(days=3) + timedelta(milliseconds=1))
    [sec4] = [t for t in truth.values() if t["name"].startswith("SEC-4")]
    assert not sec4["completed"] and iso(NOW - timedelta(days=5)) == sec4["created_at"]


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


def test_the_plants_of_the_new_rules_are_what_they_say(world):
    """Spot checks of the plants that misleading section names, history and missing approvers
    make: each took the path its description says, and only they entered the plant sections."""
    truth = world.ground_truth()
    tasks = {t["gid"]: t for t in truth["tasks"]}
    names = {s["gid"]: s["name"] for s in truth["sections"]}
    projects = {p["gid"]: p["name"] for p in truth["projects"]}
    to_be_approved, deployed, parking = PLANT_SECTIONS

    def planted_as(key: str, words: str) -> str:
        (gid,) = [gid for gid, text in world.planted[key].items() if words in text]
        return gid

    def path(gid: str) -> list[str]:
        return [names[section] for _at, _actor, section, _moved, _left in _stays(world.timeline(gid))]

    def stage(name: str) -> str:
        return SECTION_MEANING[name][0]

    waited, implemented = planted_as("changes_approved", to_be_approved), planted_as("changes_approved", deployed)
    archived, parked = planted_as("changes_approved", ARCHIVE), planted_as("changes_approved:unknown", parking)
    nobody = planted_as("approval_segregation:unknown", "no person")
    entered = {gid for gid in tasks if set(path(gid)) & set(PLANT_SECTIONS)}
    assert entered == {waited, implemented, parked}
    approvals = {t["parent"]["gid"] for t in tasks.values() if t["resource_subtype"] == "approval" and t["parent"]}
    for gid in (waited, implemented, archived, parked):  # never approved, in any way
        assert "Approved" not in path(gid) and gid not in approvals
    steps = path(waited)
    assert steps.index(to_be_approved) < min(i for i, name in enumerate(steps) if stage(name) == "IN_PROGRESS")
    assert tasks[implemented]["completed"] and path(implemented)[-1] == deployed
    assert not any(stage(name) in ("IN_PROGRESS", "IN_REVIEW") for name in path(implemented))
    ((now,),) = [[names[m["section"]["gid"]] for m in tasks[parked]["memberships"]]]
    assert now == parking and stage(parking) == "UNKNOWN" and not tasks[parked]["completed"]
    assert all(stage(name) not in WORK_STAGES for name in path(parked))
    # Completed in a change project, then moved to the archive, which no change project is; untyped.
    assert [projects[m["project"]["gid"]] for m in tasks[archived]["memberships"]] == [ARCHIVE]
    assert not CHANGE_PROJECT.search(ARCHIVE) and not any(f["display_value"] for f in tasks[archived]["custom_fields"])
    done = next(s for s in world.timeline(archived) if s["completed"])
    assert any(CHANGE_PROJECT.search(projects[project]) for project in done["memberships"])
    # Approved by a system change (no story author, no completer), before the work started.
    (sub,) = [t for t in tasks.values() if t["parent"] and t["parent"]["gid"] == nobody]
    assert sub["resource_subtype"] == "approval" and sub["approval_status"] == "approved"
    assert sub["completed_by"] is None and sub["assignee"] is not None
    ((at, actor, status),) = _decisions(world.timeline(sub["gid"]))
    assert (actor, status) == (None, "approved")
    (story,) = [s for s in truth["stories"] if s["target"]["gid"] == sub["gid"] and s["resource_subtype"] ==
                "marked_approved"]
    assert story["created_by"] is None
    stays = _stays(world.timeline(nobody))
    assert at < next(when for when, _actor, name, _moved, _left in stays if stage(names[name]) in WORK_STAGES)


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
    moves = (section for t in tasks for _at, _actor, section, moved, _left in _stays(timelines[t["gid"]]) if moved)
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
    before, found_before = _snapshot(generated), findings(generated)
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
    # Nothing else alarms after the changes; the reactivated former employee is no longer deactivated.
    (former,) = back
    del found_before["activity_after_deactivation"][former]
    del found_before["offboarding_ticket"][former]
    assert findings(generated) == found_before
    with pytest.raises(ValueError):
        plant_membership_changes(generated)  # nobody left to reactivate


def test_the_access_review_campaign_is_filed_as_the_command_files_it(world):
    """The review project holds the campaign review-2026-05-29 (due three days before now): a task
    per reviewed project, assigned to its owner and listing its members, and an approval subtask
    per member decided by that owner (the offboarding owner's own by a second reviewer, the
    incidents owner's by that owner); the review module reads every marker line written."""
    truth = world.ground_truth()
    projects = {p["gid"]: p for p in truth["projects"]}
    by_name = {p["name"]: gid for gid, p in projects.items()}  # one workspace: each of these names once
    reviews, offboarding, incidents = by_name[REVIEWS], by_name[OFFBOARDING], by_name[INCIDENTS]
    parents = [world.objects[gid] for gid in world.project_tasks(reviews)]
    assert [t.name for t in parents] == ['Access review review-2026-05-29: project "IT Offboarding"',
                                         'Access review review-2026-05-29: project "Security Incidents"']
    owners = [projects[gid]["owner"]["gid"] for gid in (offboarding, incidents)]
    assert [t.assignee for t in parents] == owners and all(t.due_on == "2026-05-29" for t in parents)
    subtasks = [world.objects[s] for t in parents for s in t.subtasks]
    assert [s.resource_subtype for s in subtasks] == ["approval"] * 5
    parsed = read_markers(pd.Series([t.notes for t in parents + subtasks], dtype=object))
    assert parsed["marked"].all() and (parsed["campaign"] == "review-2026-05-29").all()
    assert (parsed["due"] == "2026-05-29").all() and (parsed["resource_type"] == "project").all()
    assert list(parsed["resource_gid"]) == [offboarding, incidents] + [offboarding] * 3 + [incidents] * 2
    members = parsed["user_gid"][2:]
    # Each project's owner, then its members: in the offboarding project the ticket assignee (editor)
    # and a viewer, in the incidents project the ticket assignee (editor).
    assert list(parsed["role"][2:]) == ["owner", "editor", "viewer", "owner", "editor"]
    assert [members.iloc[0], members.iloc[3]] == owners
    assert list(parsed["members"][:2]) == [
        ",".join(f"{u}={r}" for u, r in zip(members[:3], parsed["role"][2:5], strict=True)),
        ",".join(f"{u}={r}" for u, r in zip(members[3:], parsed["role"][5:], strict=True))]
    # The offboarding owner's own access is kept by the incidents owner (a second reviewer); the
    # offboarding owner leaves the editor's undecided and revokes the viewer's (then removed); the
    # incidents owner keeps their own (a self-review) and revokes the incident assignee's (still held).
    assert [s.approval_status for s in subtasks] == ["approved", "pending", "rejected", "approved", "rejected"]
    assert [[actor for _at, actor, _status in _decisions(world.timeline(s.gid))] for s in subtasks] == [
        [owners[1]], [], [owners[0]], [owners[1]], [owners[1]]]
    held = {(_gid(m["member"]), _gid(m["parent"])) for m in truth["project_memberships"]}
    assert (members.iloc[1], offboarding) in held and (members.iloc[2], offboarding) not in held
    assert (members.iloc[4], incidents) in held
    assert world.planted["access_review_completed"] == {
        f"review-2026-05-29/project/{offboarding}/{members.iloc[1]}":
            f"the editor access of {_person(world, members.iloc[1])} to project \"IT Offboarding\" left undecided "
            "past its due day",
        f"review-2026-05-29/project/{incidents}/{members.iloc[3]}":
            f"the owner access of {_person(world, members.iloc[3])} to project \"Security Incidents\" approved by "
            "the member themself",
        f"review-2026-05-29/project/{incidents}/{members.iloc[4]}":
            f"the editor access of {_person(world, members.iloc[4])} to project \"Security Incidents\" revoked by "
            "the review but still held"}


def _person(world, gid: str) -> str:
    user = world.objects[gid]
    return f"{user.name} <{user.email}>"
