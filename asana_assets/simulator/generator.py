"""Deterministic generation of a realistic Asana organisation, scaled by task count.

History is consistent by construction: each task's life (assign, moves through sections,
approvals, completion, reopening, renames, date changes, comments) is replayed through the
world's own mutations on a backdated clock, so a task's state is exactly what its stories say.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from .models import Project, Task, User
from .world import World

# fmt: off
FIRST_NAMES = (
    "Avery Blake Casey Dana Eli Farah Gabriel Hana Ivan Jonas Kira Liam Maya Noah Olivia Priya Quinn Rosa Sami Tariq "
    "Uma Victor Wen Ximena Yusuf Zoe Amara Bruno Chen Diego Elena Femi Greta Hiro Ines Jamal Keiko Lars Mateo "
    "Nadia Oskar Pavel Rania Sofia Tomas Ulla Vera Wanda Yara Zane Aiko Bilal Carmen Dmitri Esther Felix"
).split()
LAST_NAMES = (
    "Adams Baker Chowdhury Dubois Eriksen Fischer Garcia Haddad Ito Jensen Kowalski Lopez Murphy Nakamura Okafor Patel "
    "Quintero Rossi Schmidt Tanaka Usman Varga Weber Xu Yilmaz Zhang Alvarez Becker Costa Novak Moreau Lindqvist "
    "Mensah Park Silva Horvat Kim Reyes Andersen Petrov"
).split()
COMPANIES = (("Northwind Labs", "northwind.example.com"), ("Globex Systems", "globex.example.com"),
             ("Initrode Health", "initrode.example.com"), ("Umbrella Freight", "umbrella.example.com"))
GUEST_DOMAINS = ("contractors.example.net", "auditfirm.example.org", "agency.example.net")
SYSTEMS = (
    "api-gateway", "billing-service", "auth-service", "payments", "data-warehouse", "Okta", "GitHub", "AWS prod",
    "the Kubernetes cluster", "the Postgres primary", "the CI pipeline", "search-service", "the mobile app",
    "Salesforce", "the VPN", "Snowflake", "Datadog", "the admin console",
)
VENDORS = ("Acme Analytics", "Globex Payroll", "Initech Cloud", "Hooli Mail", "Stark Logistics", "Wayne Hosting",
           "Cyberdyne AI", "Tyrell Data", "Vandelay Imports", "Soylent Catering")
FEATURES = (
    "SSO login", "audit log export", "usage-based billing", "webhooks v2", "team permissions", "CSV import",
    "2FA recovery codes", "saved search filters", "push notifications", "data retention settings",
    "invoice PDFs", "SCIM provisioning", "dark mode", "rate limit dashboard",
)
COMMENTS = (
    "LGTM.", "Can you attach the test evidence?", "Deployed to staging, monitoring for an hour.",
    "Rollback plan reviewed.", "Waiting on the vendor to confirm.", "Approved in today's CAB meeting.",
    "Blocked on the firewall change, will pick up tomorrow.", "Screenshots attached.", "Reopening: saw errors again.",
    "Customer confirmed the fix.", "Moving this to next sprint.", "Who owns this now?", "Done on my side.",
)
SUBTASKS = ("Write rollback plan", "Update the runbook", "Notify stakeholders", "Verify in staging", "Peer review",
            "Update documentation", "Add monitoring", "Run smoke tests", "Collect evidence")
TAGS = ("urgent", "security", "customer-reported", "tech-debt", "compliance", "sox", "gdpr", "pci",
        "standard-change", "emergency-change", "p1", "p2", "p3")
COLORS = ("dark-pink", "dark-green", "dark-blue", "dark-red", "dark-teal", "dark-orange", "dark-purple",
          "light-blue", "light-green", "light-orange", "light-purple", "light-warm-gray", "none")
SUFFIXES = ("EU", "US", "APAC", "Platform", "Payments", "Mobile", "Internal Tools", "Data")

# Project kinds: (sections in workflow order: intake first, done last; side sections; task names).
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "change": (("Triage", "To Do", "In Progress", "In Review", "Approved", "Released to prod"), ("Blocked",),
               ("CHG-{n}: Rotate TLS certificates on {system}", "CHG-{n}: Upgrade {system}",
                "CHG-{n}: Patch CVE-2026-{n} in {system}", "CHG-{n}: Update firewall rules for {system}",
                "CHG-{n}: Deploy hotfix to {system}", "CHG-{n}: Migrate {system} database")),
    "release": (("Backlog", "To Do", "In Progress", "QA", "Released to prod"), ("Blocked",),
                ("Ship {feature}", "Release notes for {feature}", "QA sign-off: {feature}")),
    "sprint": (("Backlog", "To Do", "In Progress", "In Review", "Done"), ("Blocked",),
               ("Implement {feature}", "Refactor the {system} client", "Add tests for {feature}",
                "Fix flaky {system} test")),
    "bugs": (("Triage", "To Do", "In Progress", "QA", "Done"), ("Blocked",),
             ("BUG-{n}: {system} returns 500 on {feature}", "BUG-{n}: {feature} broken for some users")),
    "roadmap": (("Ideas", "Planned", "In Progress", "Shipped"), (), ("{feature}", "Research: {feature}")),
    "review": (("Requested", "In Review", "Approved", "Done"), ("Changes Requested",),
               ("Security review: {vendor}", "Threat model: {feature}", "Pen test findings: {system}")),
    "access": (("New Requests", "Awaiting Approval", "Provisioning", "Done"), ("Blocked",),
               ("Access request: {system} for {person}", "Revoke {system} access for {person}")),
    "incident": (("Open", "Investigating", "Mitigated", "Postmortem", "Closed"), (),
                 ("INC-{n}: {system} outage", "INC-{n}: elevated error rate in {system}")),
    "helpdesk": (("New", "In Progress", "Done"), ("Waiting on vendor",),
                 ("Reset MFA for {person}", "New laptop for {person}", "VPN not connecting for {person}")),
    "vendor": (("Intake", "Security Review", "Contracting", "Onboarded"), ("Waiting on vendor",),
               ("Onboard {vendor}", "Security questionnaire: {vendor}", "DPA review: {vendor}")),
}
APPROVAL_KINDS = frozenset({"change", "access", "review", "vendor"})
# Teams in the order projects are dealt to them, each with the projects it runs.
TEAMS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Engineering", (("Change Management", "change"), ("Release {year}.{n}", "release"), ("Deployments", "change"),
                     ("Sprint Board", "sprint"), ("Bug Triage", "bugs"))),
    ("Security", (("Security Reviews", "review"), ("Incident Response", "incident"), ("Access Requests", "access"))),
    ("IT", (("IT Helpdesk", "helpdesk"), ("Access Requests", "access"), ("Employee Offboarding", "access"))),
    ("Product", (("Product Roadmap", "roadmap"), ("Feature Requests", "sprint"))),
    ("Operations", (("Vendor Onboarding", "vendor"), ("Procurement", "vendor"))),
    ("Data Platform", (("Data Platform Sprint", "sprint"), ("Data Incidents", "incident"))),
    ("Customer Support", (("Escalations", "bugs"),)),
    ("Finance", (("Vendor Payments", "vendor"),)),
)
# fmt: on
Step = tuple[str, dict[str, Any]]  # a World mutation's name and its keyword arguments
LONG_THREAD_EVERY = 15_000  # besides the first two, one top-level task in this many gets 100+ stories


def generate_world(seed: int = 1, tasks: int = 300, now: datetime | None = None, workspaces: int = 1) -> World:
    """Build an organisation of about ``tasks`` tasks (subtasks included), deterministic per arguments."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    rng = random.Random(seed)
    world = World(now=now)
    world.record_events = False  # events become visible only after a sync token is taken
    for index in range(workspaces):
        _Organisation(world, rng, now, index).build(tasks // workspaces + (index < tasks % workspaces))
    world.record_events = True
    return world


class _Organisation:
    """Builds one workspace: people, teams, projects, then every task's replayed life."""

    def __init__(self, world: World, rng: random.Random, now: datetime, index: int) -> None:
        self.world, self.rng, self.now = world, rng, now
        name, domain = COMPANIES[index % len(COMPANIES)]
        suffix = "" if index < len(COMPANIES) else f" {index // len(COMPANIES) + 1}"
        self.workspace = world.add_workspace(name + suffix, [domain])
        self.domain = domain
        self.counter = 1000  # ticket numbers
        self.top_level = 0
        self.members: dict[str, list[str]] = {}  # project -> users who can work on it
        self.forced: dict[str, str] = {}  # project -> the leaver whose open task it will hold

    def build(self, task_budget: int) -> None:
        users = self._people(max(12, task_budget // 40))
        teams = self._teams(users, max(5, round(task_budget / 100) // 6))
        projects = self._projects(teams, max(3, round(task_budget / 100)))
        leaver = self._plan_deactivation(users)
        for position, (project, kind) in enumerate(projects):
            share = task_budget // len(projects) + (position < task_budget % len(projects))
            self._fill(project, kind, share, [p for p, _k in projects if not p.archived and p is not project])
        self.world.deactivate_user(leaver, self.workspace)

    # ------------------------------------------------------------------ people and structure
    def _people(self, count: int) -> list[User]:
        rng, world = self.rng, self.world
        admins = 2 + (count >= 40)
        guests = max(2, count // 25)
        taken: set[str] = set()
        users = []
        for i in range(count):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            guest = i >= count - guests
            base, n = f"{first}.{last}".lower(), 1
            while (local := base if n == 1 else f"{base}{n}") in taken:  # namesakes get numbered addresses
                n += 1
            taken.add(local)
            domain = rng.choice(GUEST_DOMAINS) if guest else self.domain
            user = world.add_user(f"{first} {last}", f"{local}@{domain}")
            joined = self.now - timedelta(days=rng.uniform(760, 1500))
            world.add_workspace_membership(user, self.workspace, is_admin=i < admins, is_guest=guest, at=joined)
            users.append(user)
        if world.default_user is None:
            world.default_user = users[0].gid
        else:  # the demo token's owner administers every workspace
            world.add_workspace_membership(
                world.default_user, self.workspace, is_admin=True, at=self.now - timedelta(days=800)
            )
        return users

    def _teams(self, users: list[User], count: int) -> list[tuple[Any, tuple[tuple[str, str], ...]]]:
        rng, world = self.rng, self.world
        teams = []
        for i in range(count):
            name, templates = TEAMS[i % len(TEAMS)]
            name = name if i < len(TEAMS) else f"{name} {i // len(TEAMS) + 1}"
            visibility = rng.choice(("public", "request_to_join", "request_to_join", "secret"))
            teams.append(
                (
                    world.add_team(self.workspace, name, description=f"The {name} team.", visibility=visibility),
                    templates,
                )
            )
        admins_wanted = {team.gid: rng.choice((1, 2)) for team, _templates in teams}
        for i, user in enumerate(users):
            guest = _is_guest(user)
            chosen = [teams[i % count][0]] + ([] if guest or rng.random() < 0.5 else [rng.choice(teams)[0]])
            for team in dict.fromkeys(chosen):
                admin = not guest and admins_wanted[team.gid] > 0  # each team's first regular members run it
                admins_wanted[team.gid] -= admin
                limited = not guest and not admin and rng.random() < 0.03
                world.add_team_membership(team, user, is_admin=admin, is_guest=guest, is_limited_access=limited)
        return teams

    def _projects(self, teams: list, count: int) -> list[tuple[Project, str]]:
        rng, world = self.rng, self.world
        projects, seen = [], {}
        for i in range(count):
            team, templates = teams[i % len(teams)]
            template, kind = templates[(i // len(teams)) % len(templates)]
            created = self.now - timedelta(days=rng.uniform(60, 720))
            name = self._project_name(template, created, seen)
            memberships = [world.objects[gid] for gid in team.memberships]
            members = [m.user for m in memberships if not m.is_guest]
            owner = rng.choice(members)
            project = world.add_project(
                self.workspace,
                name,
                team=team,
                owner=owner,
                at=created,
                notes=f"{name}: tracked by {team.name}.",
                archived=i == 3 or (i > 3 and rng.random() < 0.1),  # the first three stay active
                color=rng.choice(COLORS),
                privacy_setting=rng.choices(("public_to_workspace", "private", "private_to_team"), (12, 7, 1))[0],
                default_access_level=rng.choices(("editor", "commenter", "viewer", "admin"), (12, 4, 3, 1))[0],
                default_view=rng.choice(("list", "board")),
            )
            guests = [m.user for m in memberships if m.is_guest and rng.random() < 0.5]
            self._staff(project, owner, members, guests, created)
            sections, side = KINDS[kind][0], KINDS[kind][1]
            for offset, section in enumerate(sections + side):
                world.add_section(project, section, at=created + timedelta(minutes=offset))
            projects.append((project, kind))
        return projects

    def _project_name(self, template: str, created: datetime, seen: dict[str, int]) -> str:
        if "{n}" in template:
            seen[template] = seen.get(template, 0) + 1
            return template.format(year=created.year, n=seen[template])
        repeat = seen[template] = seen.get(template, -1) + 1
        if repeat == 0:
            return template
        return f"{template} ({SUFFIXES[repeat - 1]})" if repeat <= len(SUFFIXES) else f"{template} #{repeat + 1}"

    def _staff(self, project: Project, owner: str, members: list[str], guests: list[str], created: datetime) -> None:
        """Project memberships: the owner as admin, a sample of the team at mixed levels, guests."""
        rng = self.rng
        others = [m for m in dict.fromkeys(members) if m != owner]
        staff = (
            [(owner, "admin")]
            + [
                (user, rng.choices(("editor", "commenter", "viewer", "admin"), (12, 4, 2, 2))[0])
                for user in rng.sample(others, min(len(others), rng.randint(3, 12)))
            ]
            + [(guest, "commenter") for guest in guests]
        )
        for user, level in staff:
            self.world.add_project_membership(project, user, level, at=created)
        workers = [user for user, level in staff if level in ("admin", "editor")]
        self.members[project.gid] = workers

    def _plan_deactivation(self, users: list[User]) -> User:
        """Pick a regular user to deprovision who keeps a team, a project and an open task."""
        regular = [u for u in users[3:] if not _is_guest(u)]
        leaver = regular[len(regular) // 2]
        home = next(
            (
                gid
                for gid, workers in self.members.items()
                if leaver.gid in workers and not self.world.objects[gid].archived
            ),
            None,
        )
        if home is None:
            home = next(gid for gid in self.members if not self.world.objects[gid].archived)
            self.world.add_project_membership(home, leaver, "editor")
            self.members[home].append(leaver.gid)
        self.forced[home] = leaver.gid
        return leaver

    # ------------------------------------------------------------------ tasks
    def _fill(self, project: Project, kind: str, budget: int, elsewhere: list[Project]) -> None:
        sections = [self.world.objects[gid] for gid in project.sections]
        flow = sections[: len(KINDS[kind][0])]
        side = sections[len(flow) :]
        while budget > 0:
            task, end = self._top_level(project, kind, flow, side, elsewhere, self.forced.pop(project.gid, None))
            budget -= 1 + self._subtasks(task, kind, end, budget - 1)

    def _top_level(
        self, project: Project, kind: str, flow: list, side: list, elsewhere: list, forced: str | None
    ) -> tuple[Task, datetime]:
        rng, world = self.rng, self.world
        workers = self.members[project.gid]
        opened = datetime.fromisoformat(project.created_at)
        last_start = opened + timedelta(days=40) if project.archived else self.now - timedelta(hours=2)
        created = self._between(opened + timedelta(hours=1), last_start)
        end = min(created + timedelta(days=rng.uniform(0.5, 45)), self.now - timedelta(minutes=1))
        subtype = self._subtype(kind)
        name = self._task_name(kind) if subtype != "milestone" else f"Milestone: {rng.choice(FEATURES)} GA"
        task = world.create_task(
            name,
            actor=rng.choice(workers),
            project=project,
            section=flow[0],
            resource_subtype=subtype,
            notes=self._notes(kind),
            due_on=self._due(created) if rng.random() < 0.5 else None,
            at=created,
            tags=tuple(rng.sample(self._tags(), rng.choice((1, 1, 2)))) if rng.random() < 0.3 else (),
        )
        done = not forced and (
            project.archived or rng.random() < (0.8 if end < self.now - timedelta(days=30) else 0.45)
        )
        steps = self._life(task, workers, flow, side, done, forced)
        if rng.random() < 0.03 and elsewhere:
            other = rng.choice(elsewhere)
            self._float(steps, ("add_task_to_project", {"project": other, "actor": rng.choice(workers)}))
        self.top_level += 1
        if self.top_level <= 2 or self.top_level % LONG_THREAD_EVERY == 0:
            for _ in range(rng.randint(100, 140)):
                self._float(steps, ("add_comment", {"text": rng.choice(COMMENTS), "actor": rng.choice(workers)}))
        self._replay(task, steps, created, end)
        return task, end

    def _subtype(self, kind: str) -> str:
        if self.rng.random() < 0.03:
            return "milestone"
        return "approval" if kind in APPROVAL_KINDS and self.rng.random() < 0.08 else "default_task"

    def _life(
        self, task: Task, workers: list[str], flow: list, side: list, done: bool, forced: str | None
    ) -> list[Step]:
        """The ordered mutations of a task's life; floating ones are dropped in at random points."""
        rng = self.rng
        actor = rng.choice(workers)
        assignee = forced or (rng.choice(workers) if rng.random() < 0.88 else None)
        steps: list[Step] = []
        if assignee:
            steps.append(("update_task", {"assignee": assignee, "actor": actor}))
            actor = assignee
        middle = flow[1:-1]
        path = sorted(rng.sample(range(len(middle)), rng.randint(0 if not done else 1, len(middle))))
        if not done and path and rng.random() < 0.4:
            path = path[: rng.randint(0, len(path))]
        for position in path:
            steps.append(("move_task_to_section", {"section": middle[position], "actor": actor}))
            if side and rng.random() < 0.1:
                steps.append(("move_task_to_section", {"section": rng.choice(side), "actor": actor}))
                steps.append(("move_task_to_section", {"section": middle[position], "actor": actor}))
        if done:
            steps.append(("move_task_to_section", {"section": flow[-1], "actor": actor}))
            steps.extend(self._completion(task, actor))
        for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 2, 3, 4))):
            self._float(steps, ("add_comment", {"text": rng.choice(COMMENTS), "actor": rng.choice(workers)}))
        if rng.random() < 0.08:
            self._float(steps, ("update_task", {"name": task.name + " (updated)", "actor": actor}))
        if rng.random() < 0.08:
            self._float(steps, ("update_task", {"notes": task.notes + "\nUpdated scope.", "actor": actor}))
        if rng.random() < 0.15:
            self._float(
                steps, ("update_task", {"due_on": self._due(datetime.fromisoformat(task.created_at)), "actor": actor})
            )
        if not forced and assignee and rng.random() < 0.1:
            self._float(steps, ("update_task", {"assignee": rng.choice((None, rng.choice(workers))), "actor": actor}))
        return steps

    def _completion(self, task: Task, actor: str) -> list[Step]:
        rng = self.rng
        if task.resource_subtype == "approval":
            return self._approval_steps(actor, decided=True)
        steps = [("complete_task", {"actor": actor})]
        if rng.random() < 0.05:
            steps.append(("reopen_task", {"actor": actor}))
            if rng.random() < 0.6:
                steps.append(("complete_task", {"actor": actor}))
        return steps

    def _approval_steps(self, approver: str, decided: bool) -> list[Step]:
        rng = self.rng
        statuses = ["changes_requested"] if rng.random() < 0.2 else []
        if decided:
            statuses.append("rejected" if rng.random() < 0.1 else "approved")
        elif rng.random() < 0.3:
            statuses.append("changes_requested")
        return [("set_approval_status", {"status": s, "actor": approver}) for s in dict.fromkeys(statuses)]

    def _subtasks(self, parent: Task, kind: str, end: datetime, budget: int) -> int:
        """Create the parent's subtasks (an approval for most tickets); return how many."""
        rng = self.rng
        approvable = kind in APPROVAL_KINDS and parent.resource_subtype == "default_task"
        approval = approvable and rng.random() < 0.3
        wanted = approval + (0 if rng.random() < 0.9 else rng.randint(1, 3))
        made = 0
        for i in range(wanted):
            if made >= budget:
                break
            self._subtask(parent, end, approval and i == 0)
            made += 1
            if made < budget and rng.random() < 0.1:  # a few subtasks have their own subtask
                self._subtask(self.world.objects[parent.subtasks[-1]], end, False)
                made += 1
        return made

    def _subtask(self, parent: Task, end: datetime, approval: bool) -> None:
        rng, world = self.rng, self.world
        start = datetime.fromisoformat(parent.created_at) + timedelta(minutes=5)
        created = self._between(start, max(start + timedelta(minutes=1), end - timedelta(minutes=30)))
        creator = parent.assignee or parent.created_by
        name = f"Approval: {parent.name}" if approval else rng.choice(SUBTASKS)
        task = world.create_task(
            name, actor=creator, parent=parent, at=created, resource_subtype="approval" if approval else "default_task"
        )
        workers = [u for u in (parent.assignee, parent.created_by) if u]
        owner = rng.choice(workers)
        steps: list[Step] = [("update_task", {"assignee": owner, "actor": creator})]
        if approval:
            steps += self._approval_steps(owner, decided=parent.completed)
        elif parent.completed or rng.random() < 0.3:
            steps.append(("complete_task", {"actor": owner}))
        if rng.random() < 0.3:
            self._float(steps, ("add_comment", {"text": rng.choice(COMMENTS), "actor": owner}))
        self._replay(task, steps, created, max(created + timedelta(minutes=len(steps) + 1), end))

    # ------------------------------------------------------------------ helpers
    def _replay(self, task: Task, steps: list[Step], start: datetime, end: datetime) -> None:
        """Apply the steps in order at sorted random times between start and end."""
        span = max((end - start).total_seconds(), len(steps) + 1.0)
        times = sorted(self.rng.uniform(1, span) for _ in steps)
        for (method, kwargs), offset in zip(steps, times):
            getattr(self.world, method)(task, at=start + timedelta(seconds=offset), **kwargs)

    def _float(self, steps: list[Step], step: Step) -> None:
        """Insert a step anywhere after the first (the initial assignment stays first)."""
        steps.insert(self.rng.randint(min(1, len(steps)), len(steps)), step)

    def _between(self, start: datetime, end: datetime) -> datetime:
        return start + timedelta(seconds=self.rng.uniform(0, max(0.0, (end - start).total_seconds())))

    def _due(self, created: datetime) -> str:
        return (created + timedelta(days=self.rng.randint(2, 40))).date().isoformat()

    def _tags(self) -> list[str]:
        if not self.workspace.tags:
            for name in TAGS:
                self.world.add_tag(
                    self.workspace, name, color=self.rng.choice(COLORS[:-1]), at=self.now - timedelta(days=700)
                )
        return self.workspace.tags

    def _task_name(self, kind: str) -> str:
        rng = self.rng
        self.counter += 1
        person = self.world.objects[rng.choice(self.workspace.memberships)].user
        return rng.choice(KINDS[kind][2]).format(
            n=self.counter,
            system=rng.choice(SYSTEMS),
            feature=rng.choice(FEATURES),
            vendor=rng.choice(VENDORS),
            person=self.world.objects[person].name,
        )

    def _notes(self, kind: str) -> str:
        if kind == "change":
            risk = self.rng.choice(("low", "medium", "high"))
            return f"Risk: {risk}. Rollback: redeploy the previous version. Test plan: smoke tests in staging."
        return self.rng.choice(
            ("", "See the linked doc for details.", "Reported via the support queue.", "Needs sign-off before closing.")
        )


def _is_guest(user: User) -> bool:
    return user.email.rsplit("@", 1)[1] in GUEST_DOMAINS
