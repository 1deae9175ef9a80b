"""Deterministic generation of a realistic Asana organisation, scaled by task count.

History is consistent by construction: each task's life (assign, moves through sections,
approvals, completion, reopening, renames, date changes, comments) is replayed through the
world's own mutations on a backdated clock, so a task's state is exactly what its stories say.

Lives are compliant by construction too, by the rules the compliance monitors apply (section
meaning is ``SECTION_MEANING``): every ticket is assigned while open (a ticket under
a day old may wait) and at completion, a change is approved by a third person before work
starts, and a ticket sits in a done section exactly while it is completed, in each of its
projects. The exceptions are planted on purpose and listed in ``World.planted``: as alarms, or
where the data cannot decide as unknowns (see ``planted_statuses``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .models import CustomField, Project, Section, Task, User
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
PROJECT_TASKS = 100  # about how many tasks a project holds, unless asked otherwise

# Project kinds: (sections in workflow order: intake first, done last; side sections; task names).
# The last workflow section is the only one whose stage is DONE; a change is approved before work.
# A ticket's life passes through the workflow and now and then a side section (of stage BLOCKED).
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "change": (("Triage", "To Do", "Approved", "In Progress", "In Review", "Released to prod"), ("Blocked",),
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
    "vendor": (("Intake", "Security Review", "Contracting", "Onboarding complete"), ("Waiting on vendor",),
               ("Onboard {vendor}", "Security questionnaire: {vendor}", "DPA review: {vendor}")),
}
APPROVAL_KINDS = frozenset({"change", "access", "review", "vendor"})
# Side sections of the "change" projects that only planted tickets enter: a name that waits for an
# approval, one that says the work is done in words the workflow does not use, one of no known stage.
TO_BE_APPROVED, DEPLOYED_WAITING, PARKING_LOT = PLANT_SECTIONS = (
    "To be approved", "Deployed - waiting for verification", "Parking lot")
ARCHIVE = "Archive"  # the project a planted change is moved to after its work: no change project by name
# The project offboarding tickets are filed in (the compliance setting offboarding_projects names it),
# made after the rest of the organisation: the alumnus's ticket completed half a day after they left,
# the leaver's still open.
OFFBOARDING = "IT Offboarding"
OFFBOARDED_IN = timedelta(hours=12)
OFFBOARDING_DAYS = 1  # the deadline the demo sets (offboarding_days): the leaver's, two days on, has passed
# The project security incidents are filed in, with their Severity (an enum field of its own), made
# after the offboarding tickets: the SLA category the demo sets (sla_categories) takes its tickets,
# allowing SLA_DAYS per severity, else SLA_DEFAULT_DAYS, with time in its Blocked section paused.
INCIDENTS, SEVERITY = "Security Incidents", "Severity"
SEVERITIES = ("Critical", "High", "Medium", "Low")
SLA_DAYS = {"Critical": 1, "High": 3, "Medium": 7}
SLA_DEFAULT_DAYS = 14
SLA_CATEGORY = {"name": "Security incidents", "projects": [INCIDENTS], "priority_field": SEVERITY, "days": SLA_DAYS,
                "default_days": SLA_DEFAULT_DAYS, "pause_blocked": True}
INCIDENT_SECTIONS = ("Triage", "Investigating", "Blocked", "Closed")
# Its tickets: (title, severity or None, filed this long before now, the work as (time after filing,
# section entered) in order; entering Closed completes it). Two breach their SLA: the first is open
# past it, the third was closed late; the fourth would without its three days Blocked.
INCIDENT_TICKETS: tuple[tuple[str, str | None, timedelta, tuple[tuple[timedelta, str], ...]], ...] = (
    ("SEC-1: Leaked API key in a public repository", "Critical", timedelta(days=3),
     ((timedelta(hours=1), "Investigating"),)),
    ("SEC-2: Phishing report from Finance", "High", timedelta(days=10),
     ((timedelta(hours=1), "Investigating"), (timedelta(days=2), "Closed"))),
    ("SEC-3: Unpatched OpenSSL on the VPN gateway", "Critical", timedelta(days=8),
     ((timedelta(hours=1), "Investigating"), (timedelta(days=1, hours=2), "Closed"))),
    ("SEC-4: Suspicious sign-ins from a new country", "High", timedelta(days=5),
     ((timedelta(hours=1), "Investigating"), (timedelta(days=1), "Blocked"), (timedelta(days=4), "Investigating"))),
    ("SEC-5: Lost laptop reported by Sales", None, timedelta(days=2), ()),
    ("SEC-6: Malware alert on a build agent", "Low", timedelta(days=20),
     ((timedelta(hours=2), "Investigating"), (timedelta(days=5), "Closed"))),
)
SLA_BREACHES = {"SEC-1": "open past its 1-day SLA (Critical)", "SEC-3": "closed after its 1-day SLA (Critical)",
                "SEC-7": "closed after its 1-day SLA (Critical), its severity lowered to Low after the breach"}
# One more incident, made after all the others (so theirs keep their gids): filed Critical, lowered
# to Low once past its day, then closed within Low's default days, a breach only its history shows.
# A step of its work naming a severity sets it.
DOWNGRADED = ("SEC-7: Ransomware note on a file server", "Critical", timedelta(days=6),
              ((timedelta(hours=1), "Investigating"), (timedelta(days=2), "Low"), (timedelta(days=3), "Closed")))
# The project access review campaigns are filed in (the compliance setting review_project names
# it), made last of all with one campaign as `asana-connections review start` files it: a task per
# reviewed project, assigned to its owner, and an approval subtask per member, each ending with the
# documented marker line. It reviews the OFFBOARDING and INCIDENTS projects (their owners review),
# whose ticket assignees (and, in the offboarding project, one more of the staff as viewer) are made
# members first. Filed CAMPAIGN_FILED ago, due CAMPAIGN_DUE ago (a day now over), decided
# CAMPAIGN_DECIDED ago; the revoked access of one member is removed CAMPAIGN_REMOVED ago.
REVIEWS, REVIEW_SECTION = "Access Reviews", "To Do"
REVIEW_MARKER = "asana-assets access review"
CAMPAIGN_FILED, CAMPAIGN_DUE = timedelta(days=10), timedelta(days=3)
CAMPAIGN_DECIDED, CAMPAIGN_REMOVED = timedelta(days=8), timedelta(days=6)
# What each section name above means to the compliance rules, (stage, state): the simulator's
# ground truth, written out so that it does not lean on the classifier it is used to test.
# UNKNOWN: no word of the name says a stage, so nobody can tell whether the work started there.
SECTION_MEANING = {
    "Triage": ("BACKLOG", "OPEN"),
    "Backlog": ("BACKLOG", "OPEN"),
    "Ideas": ("BACKLOG", "OPEN"),
    "New Requests": ("BACKLOG", "OPEN"),
    "New": ("BACKLOG", "OPEN"),
    "Intake": ("BACKLOG", "OPEN"),
    "To Do": ("TODO", "OPEN"),
    "Planned": ("TODO", "OPEN"),
    "Requested": ("TODO", "OPEN"),
    "Open": ("TODO", "OPEN"),
    "Approved": ("APPROVED", "OPEN"),
    "In Progress": ("IN_PROGRESS", "IN_PROGRESS"),
    "Provisioning": ("IN_PROGRESS", "IN_PROGRESS"),
    "Investigating": ("IN_PROGRESS", "IN_PROGRESS"),
    "Mitigated": ("IN_PROGRESS", "IN_PROGRESS"),
    "Contracting": ("IN_PROGRESS", "IN_PROGRESS"),
    "In Review": ("IN_REVIEW", "IN_PROGRESS"),
    "QA": ("IN_REVIEW", "IN_PROGRESS"),
    "Security Review": ("IN_REVIEW", "IN_PROGRESS"),
    "Postmortem": ("IN_REVIEW", "IN_PROGRESS"),
    "Blocked": ("BLOCKED", "ON_HOLD"),
    TO_BE_APPROVED: ("BLOCKED", "ON_HOLD"),
    "Changes Requested": ("BLOCKED", "ON_HOLD"),
    "Awaiting Approval": ("BLOCKED", "ON_HOLD"),
    "Waiting on vendor": ("BLOCKED", "ON_HOLD"),
    "Released to prod": ("DONE", "CLOSED"),
    "Done": ("DONE", "CLOSED"),
    "Shipped": ("DONE", "CLOSED"),
    "Closed": ("DONE", "CLOSED"),
    "Onboarding complete": ("DONE", "CLOSED"),
    DEPLOYED_WAITING: ("DONE", "CLOSED"),
    PARKING_LOT: ("UNKNOWN", "UNKNOWN"),
}
# Change projects by name, as the compliance layer's default pattern finds them: Change
# Management, Deployments and the Release projects.
CHANGE_PROJECT = re.compile(r"\b(?:change|release|deploy)", re.IGNORECASE)
# Custom fields of each workspace: (name, type, enum options). The ticket-type field is the
# first enum with "type" in its name, as the compliance layer finds it.
FIELDS = (
    ("Ticket type", "enum", ("Change", "Bug", "Task", "Incident", "Request")),
    ("Priority", "enum", ("P1", "P2", "P3", "P4")),
    ("Estimate (h)", "number", ()),
    ("Target date", "date", ()),
    ("External ref", "text", ()),
    ("Reviewers", "people", ()),
    ("Affected systems", "multi_enum", ("API", "Database", "Web", "Mobile", "Infrastructure")),
)
# The fields each project kind uses, and the ticket types its tickets take: "Change" only in
# change projects, so typing adds no change the project would not already make (and the
# planted ground truth stays whole).
KIND_FIELDS = {
    "change": ("Ticket type", "Priority", "Estimate (h)", "Target date", "External ref", "Reviewers",
               "Affected systems"),
    "bugs": ("Ticket type", "Priority", "Affected systems"),
    "sprint": ("Ticket type", "Priority", "Estimate (h)"),
    "incident": ("Ticket type", "Priority", "Affected systems", "External ref"),
    "helpdesk": ("Priority",),
    "release": ("Target date",),
}
KIND_TYPES = {"change": ("Change",), "bugs": ("Bug",), "sprint": ("Task", "Task", "Bug"), "incident": ("Incident",)}
VALUED_SHARE = 0.6  # of a project's tickets, those whose fields are filled in
RETYPED_SHARE = 0.1  # of those, the ones whose priority or estimate changes later
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
Step = tuple[str, dict[str, Any]]  # a World mutation's name and keyword arguments; "task" redirects it
Moment = list[Step]  # steps that happen together, a millisecond apart
LONG_THREAD_EVERY = 15_000  # besides the first two, one top-level task in this many gets 100+ stories
MS = timedelta(milliseconds=1)
RECENT = timedelta(hours=23)  # an open ticket this young may be unassigned: the monitor allows a day
PLANT_AGE = timedelta(days=4)  # planted tickets start at least this long ago and settle by half of it
# Access history at fixed times before now, so an Enterprise world's audit log is deterministic too:
# teams formed after everyone joined (760 days ago or earlier), the alumnus left a year ago, the
# leaver two days ago, and the leaver signed in again a day later.
TEAMS_FORMED, ALUMNUS_LEFT = timedelta(days=750), timedelta(days=365)
LEAVER_LEFT, SIGNED_IN = PLANT_AGE / 2, PLANT_AGE / 4
# Planted violations, (monitor, plant, description), taken in this order by the next top-level
# ticket of a project that fits (see _take_plant): the monitor alarms on the ticket, unless the
# plant is UNDECIDABLE.
PLANTS = (
    ("tickets_assigned", "leaver", "open and assigned to {assignee}, who was deactivated"),
    ("changes_approved", "no_approval", "implemented without any approval"),
    ("changes_approved", "no_approval", "implemented without any approval"),
    ("changes_approved", "late_approval", "approved by {approver} only after implementation started"),
    ("changes_approved", "withdrawn_approval", "{approver} approved it, then requested changes before work started"),
    ("changes_approved", "to_be_approved", f'moved to "{TO_BE_APPROVED}", then implemented without any approval'),
    ("changes_approved", "implemented_section", 'moved into "{section}" without any approval'),
    ("changes_approved", "archived", f"implemented and completed without any approval, then moved to {ARCHIVE}"),
    ("changes_approved", "parked", 'left unapproved in "{section}", a section of no known stage'),
    ("changes_approved", "unattributed_approval", "approved before work started, by no person on record"),
    ("approval_segregation", "creator_approves", "approved by its creator, {approver}"),
    ("approval_segregation", "assignee_approves", "approved by its assignee, {approver}"),
    ("approval_segregation", "completer_approves", "approved by {approver}, who also completed it"),
    ("tickets_assigned", "unassigned", "open for days and never assigned"),
    ("tickets_assigned", "unassigned", "open for days and never assigned"),
    ("tickets_assigned", "completed_unassigned", "unassigned before {completer} completed it"),
    ("workflow_consistent", "completed_in_progress", "completed days ago but left in {section}"),
    ("workflow_consistent", "reopened_in_done", "reopened days ago but left in {section}"),
)
# The plants the data cannot decide, with the monitors that must say unknown (and not alarm) on them:
# a change that entered a section of no known stage unstarted, and an approval subtask approved by
# a system change (its story has no author, the subtask no completed_by).
UNDECIDABLE = {
    "parked": ("changes_approved", "workflow_consistent"),
    "unattributed_approval": ("changes_approved", "approval_segregation"),
}
UNKNOWN = ":unknown"  # after a monitor's id, the key of World.planted for what it must find unknown
CHANGE_PLANTS = frozenset(p for monitor, p, _text in PLANTS if monitor in ("changes_approved", "approval_segregation"))
UNAPPROVED_PLANTS = frozenset(("no_approval", "to_be_approved", "implemented_section", "archived", "parked"))
SECTION_PLANTS = frozenset(("to_be_approved", "implemented_section", "parked"))  # need PLANT_SECTIONS
UNSTARTED_PLANTS = frozenset(("implemented_section", "parked"))  # never enter the workflow's work sections
DONE_PLANTS = frozenset(
    ("creator_approves", "assignee_approves", "completer_approves", "completed_unassigned", "completed_in_progress",
     "reopened_in_done", "implemented_section", "archived")
)
# A change about to start ends approved, at times after changes were requested, a rejection, or a
# first approval that was withdrawn (weights).
APPROVED_PATHS = {
    ("approved",): 14, ("changes_requested", "approved"): 3, ("rejected", "approved"): 1,
    ("approved", "changes_requested", "approved"): 2,
}


def generate_world(seed: int = 1, tasks: int = 300, now: datetime | None = None, workspaces: int = 1,
                   enterprise: bool = False, sizes: Sequence[int] | None = None,
                   project_tasks: int = PROJECT_TASKS) -> World:
    """Build an organisation of about ``tasks`` tasks (subtasks included), deterministic per arguments.

    ``sizes``: the task budget of each workspace in turn, for workspaces of different sizes (it
    replaces ``tasks`` and ``workspaces``); otherwise ``tasks`` is split evenly among them.

    ``project_tasks``: about how many tasks a project holds (at least three projects a workspace),
    for organisations whose projects run to thousands of tasks.

    ``enterprise``: the organisation is on Enterprise+ from the start, so its audit log records the
    access history generated (and a deactivated user's sign-in after leaving is planted in it);
    otherwise it has no audit log (402), and what deactivated users did after leaving is unknown."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    rng = random.Random(seed)
    world = World(now=now)
    world.enterprise = enterprise
    world.record_events = False  # events become visible only after a sync token is taken
    if sizes is None:
        sizes = [tasks // workspaces + (index < tasks % workspaces) for index in range(workspaces)]
    organisations = []
    for index, budget in enumerate(sizes):
        # Field values draw from a stream of their own, so the rest of the world is as without them.
        fields = random.Random(f"custom-fields:{seed}:{index}")
        organisations.append(_Organisation(world, rng, now, index, fields))
        organisations[-1].build(budget, project_tasks)
    for organisation in organisations:  # last, so every other object keeps its gid
        organisation.offboarding_tickets()
    for organisation in organisations:  # after them, so theirs keep their gids too
        organisation.incident_tickets()
    for organisation in organisations:  # after every other incident, for the same reason
        organisation.downgraded_incident()
    for organisation in organisations:  # last of all, so every object above keeps its gid
        organisation.access_review()
    world.record_events = True
    return world


def plant_membership_changes(world: World) -> dict[str, str]:
    """Change access in the first workspace the way an admin would between two syncs.

    A regular member is made an admin, a contractor joins as a guest, and a former employee,
    deactivated long ago with no access left, is reactivated. Returns the alarms a comparison of
    the snapshots before and after should raise, by user gid; ``world.planted`` gets them too.
    """
    with world.lock:
        workspace = world.objects[world.workspaces[0]]
        memberships = [world.objects[gid] for gid in workspace.memberships]
        member = next(m for m in memberships if m.is_active and not m.is_admin and not m.is_guest)
        former = next((m for m in memberships if not m.is_active and not world.objects[m.user].team_memberships), None)
        if former is None:
            raise ValueError("no deactivated user without access is left to reactivate")
        world.set_workspace_admin(member.user, workspace)
        world.reactivate_user(former.user, workspace)
        guest = world.add_user("Robin Meyer", f"robin.meyer@{GUEST_DOMAINS[0]}")
        world.add_workspace_membership(guest, workspace, is_guest=True)
        changes = {member.user: "granted workspace admin", guest.gid: "joined as a guest", former.user: "reactivated"}
        world.planted["membership_changes"] = changes
        return dict(changes)


def planted_statuses(world: World) -> dict[str, dict[str, str]]:
    """What each monitor must find on the world's planted resources, by monitor and resource gid:
    "alarm" for those ``World.planted`` lists under the monitor's id, "unknown" for those under
    the id followed by ``UNKNOWN``."""
    found: dict[str, dict[str, str]] = {}
    for key, resources in world.planted.items():
        status = "unknown" if key.endswith(UNKNOWN) else "alarm"
        found.setdefault(key.removesuffix(UNKNOWN), {}).update(dict.fromkeys(resources, status))
    return found


class _Organisation:
    """Builds one workspace: people, teams, projects, then every task's replayed life."""

    def __init__(self, world: World, rng: random.Random, now: datetime, index: int, fields: random.Random) -> None:
        self.world, self.rng, self.now, self.fields_rng = world, rng, now, fields
        self.fields: dict[str, CustomField] = {}  # by name, defined with the first project that uses one
        name, domain = COMPANIES[index % len(COMPANIES)]
        suffix = "" if index < len(COMPANIES) else f" {index // len(COMPANIES) + 1}"
        self.workspace = world.add_workspace(name + suffix, [domain])
        self.domain = domain
        self.counter = 1000  # ticket numbers
        self.top_level = 0
        self.members: dict[str, list[str]] = {}  # project -> users who can work on it
        self.kinds: dict[str, str] = {}  # project -> its kind
        self.flows: dict[str, tuple[list[Section], list[Section]]] = {}  # project -> (workflow, side sections)
        self.plant_sections: dict[str, dict[str, Section]] = {}  # change project -> PLANT_SECTIONS by name
        self.archive: Section | None = None  # the ARCHIVE project's one section, once a plant needs it
        self.staff: list[str] = []  # active regular users, for roles a project's own workers cannot fill
        self.leaver = self.leaver_home = ""  # the user to deprovision, and the project of their open ticket
        self.alumnus = ""  # the user deactivated long ago
        self.plants = list(PLANTS)  # the violations still to plant

    def build(self, task_budget: int, project_tasks: int) -> None:
        users = self._people(max(12, task_budget // 40))
        regular = [u for u in users[3:] if not _is_guest(u)]
        alumnus = regular.pop()  # left long ago: deactivated, every access already removed
        teams = self._teams([u for u in users if u is not alumnus], max(5, round(task_budget / 100) // 6))
        projects = self._projects(teams, max(3, round(task_budget / project_tasks)))
        leaver = self._plan_deactivation(regular)
        self.staff = [u.gid for u in users if not _is_guest(u) and u not in (alumnus, leaver)]
        for position, project in enumerate(projects):
            share = task_budget // len(projects) + (position < task_budget % len(projects))
            self._fill(project, share, [p for p in projects if not p.archived and p is not project])
        for user, left in ((leaver, LEAVER_LEFT), (alumnus, ALUMNUS_LEFT)):
            self.world.deactivate_user(user, self.workspace, at=self.now - left)
        self._plant_access(leaver, users[-1])
        self._plant_activity(leaver, alumnus)
        self.alumnus = alumnus.gid

    def _plant_access(self, leaver: User, guest: User) -> None:
        """The leaver keeps their access; a guest is made a workspace admin."""
        self.world.set_workspace_admin(guest, self.workspace, at=self.now - PLANT_AGE)
        ticket = all(plant != "leaver" for _monitor, plant, _text in self.plants)  # their ticket was planted
        kept = "team and project memberships" + (" and an open ticket" if ticket else "")
        self._plant("offboarding_access_removed", leaver.gid, f"{leaver.name} was deactivated but keeps {kept}")
        self._plant("admin_access_restricted", guest.gid, f"the guest {guest.email} is a workspace admin")

    def _plant_activity(self, leaver: User, alumnus: User) -> None:
        """The leaver signs in after being deprovisioned, which an Enterprise audit log shows;
        without one, what either deactivated user did after leaving cannot be told."""
        if self.world.enterprise:
            self.world.log_in(leaver, self.workspace, at=self.now - SIGNED_IN)
            self._plant("activity_after_deactivation", leaver.gid, f"{leaver.name} signed in after being deactivated")
            return
        for user in (leaver, alumnus):
            self._plant("activity_after_deactivation", user.gid,
                        f"no audit log shows what {user.name} did after being deactivated", unknown=True)

    def offboarding_tickets(self) -> None:
        """The OFFBOARDING project, owned by one of the active staff, with a ticket per deactivated
        user naming them in its title (name and email), assigned to another: the alumnus's completed
        OFFBOARDED_IN after they left, the leaver's still open. With the audit log dating both
        deactivations, the leaver's alarms once OFFBOARDING_DAYS have passed and the alumnus's is
        ok; without one each deactivation lies anywhere before the first snapshot, so neither
        ticket can be placed against its deadline: unknown."""
        world, (owner, assignee) = self.world, self.staff[:2]
        leaver, alumnus = world.objects[self.leaver], world.objects[self.alumnus]
        opened = self.now - ALUMNUS_LEFT - timedelta(days=30)
        project = world.add_project(self.workspace, OFFBOARDING, team=self.workspace.teams[0], owner=owner,
                                    at=opened, notes="One ticket per leaver: accounts, access, devices.")
        self.offboarding = project
        todo, done = (world.add_section(project, name, at=opened + timedelta(minutes=i))
                      for i, name in enumerate(("To Do", "Done")))
        for user, left in ((alumnus, ALUMNUS_LEFT), (leaver, LEAVER_LEFT)):
            filed = self.now - left - timedelta(hours=1)  # as they leave
            task = world.create_task(f"Offboard {user.name} ({user.email})", actor=owner, project=project,
                                     section=todo, at=filed)
            world.update_task(task, assignee=assignee, actor=owner, at=filed + MS)
            if user is alumnus:
                finished = self.now - left + OFFBOARDED_IN
                world.move_task_to_section(task, done, actor=assignee, at=finished)
                world.complete_task(task, actor=assignee, at=finished + MS)
        if world.enterprise:
            self._plant("offboarding_ticket", leaver.gid, f"{leaver.name}'s offboarding ticket is still open")
            return
        for user in (leaver, alumnus):
            self._plant("offboarding_ticket", user.gid,
                        f"no audit log dates when {user.name} was deactivated, against the ticket's deadline",
                        unknown=True)

    def incident_tickets(self) -> None:
        """The INCIDENTS project and its Severity field, with the INCIDENT_TICKETS filed by one of
        the active staff and worked by another, as each one's work says: its two breaches of the
        SLA category the demo sets are planted (every organisation has them, configured or not)."""
        world, owner = self.world, self.staff[2]
        opened = self.now - timedelta(days=60)
        project = world.add_project(self.workspace, INCIDENTS, team=self.workspace.teams[0], owner=owner, at=opened,
                                    notes="Security incidents, triaged by severity.")
        sections = {name: world.add_section(project, name, at=opened + timedelta(minutes=i))
                    for i, name in enumerate(INCIDENT_SECTIONS)}
        field = world.add_custom_field(self.workspace, SEVERITY, "enum", enum_options=list(SEVERITIES),
                                       description="Severity of the incident.")
        world.add_custom_field_setting(project, field, is_important=True)
        self.incidents = project, sections, field
        for incident in INCIDENT_TICKETS:
            self._incident(*incident)

    def downgraded_incident(self) -> None:
        """DOWNGRADED, filed in INCIDENTS and lowered to Low after its SLA passed."""
        self._incident(*DOWNGRADED)

    def access_review(self) -> None:
        """The REVIEWS project and its one campaign over the OFFBOARDING and INCIDENTS projects.

        Their owners decide: the offboarding owner leaves the ticket assignee's access undecided
        past the due day (alarm) and revokes the viewer's, whose membership is then removed (ok),
        and has the incidents owner approve their own (ok: a second reviewer); the incidents owner
        approves their own access (alarm: a self-review) and revokes the ticket assignee's, who
        still holds it (alarm)."""
        world, staff = self.world, self.staff
        filed = self.now - CAMPAIGN_FILED
        due = (self.now - CAMPAIGN_DUE).date().isoformat()
        campaign = f"review-{due}"  # the command's default campaign id
        incidents = self.incidents[0]
        for project, members in ((self.offboarding, ((staff[1], "editor"), (staff[4], "viewer"))),
                                 (incidents, ((staff[3], "editor"),))):
            for user, level in members:
                world.add_project_membership(project, user, level, at=datetime.fromisoformat(project.created_at))
        reviews = world.add_project(self.workspace, REVIEWS, team=self.workspace.teams[0], owner=staff[0],
                                    at=filed - timedelta(days=1), notes="Periodic access review campaigns.")
        section = world.add_section(reviews, REVIEW_SECTION, at=filed - timedelta(days=1))
        # What each member is decided: approved, rejected (then removed) or left undecided.
        fate = {(self.offboarding.gid, staff[0]): "approved", (self.offboarding.gid, staff[1]): "undecided",
                (self.offboarding.gid, staff[4]): "removed", (incidents.gid, staff[2]): "self-approved",
                (incidents.gid, staff[3]): "rejected"}
        second = {self.offboarding.gid: incidents.owner}  # who decides the owner's own access there
        at = filed
        for project in sorted((self.offboarding, incidents), key=lambda p: p.gid):
            reviewer = project.owner
            label = f'project "{project.name}"'
            roles = {world.objects[m].user: world.objects[m].access_level for m in project.memberships}
            roles[reviewer] = "owner"  # the owner's access is the strongest they hold
            members = sorted(roles.items())
            people = {user: self._person(user) for user, _role in members}
            listing = "\n".join(f"- {people[user]}: {role}" for user, role in members)
            marker = _review_marker(campaign, project.gid, due, "members " + ",".join(f"{u}={r}" for u, r in members))
            task = world.create_task(
                f"Access review {campaign}: {label}"[:250], actor=world.default_user, project=reviews,
                section=section, assignee=reviewer, due_on=due, at=at,
                notes=(f"Access review {campaign} of {label}: for each member below, approve its subtask to keep the "
                       f"access or reject it to revoke it, by {due}.\n{listing}\n\n{marker}"))
            for user, role in members:
                at += MS
                who = people[user]
                subtask = world.create_task(
                    f"Keep {role} access of {who} to {label}?"[:250], actor=world.default_user, parent=task,
                    resource_subtype="approval", assignee=reviewer, due_on=due, at=at,
                    notes=(f"Approve to keep the {role} access of {who} to {label}; reject to revoke it.\n\n"
                           + _review_marker(campaign, project.gid, due, f"member {user}={role}")))
                decided = self.now - CAMPAIGN_DECIDED + (at - filed)  # in the order they were filed
                self._decide(subtask, fate[project.gid, user], decided, user, project,
                             f"{campaign}/project/{project.gid}/{user}", f"the {role} access of {who} to {label}",
                             second.get(project.gid) if user == reviewer else reviewer)
            at += timedelta(minutes=1)

    def _decide(self, subtask: Task, fate: str, at: datetime, user: str, project: Project, item: str,
                access: str, reviewer: str | None) -> None:
        """Decide a campaign item at ``at`` as ``fate`` says, by ``reviewer`` (the member themself
        where the fate is self-approved; a removal follows CAMPAIGN_REMOVED before now), and record
        the alarms it must raise."""
        world = self.world
        if fate == "undecided":
            self._plant("access_review_completed", item, f"{access} left undecided past its due day")
            return
        if fate == "self-approved":
            reviewer = user
            self._plant("access_review_completed", item, f"{access} approved by the member themself")
        world.set_approval_status(subtask, "rejected" if fate in ("removed", "rejected") else "approved",
                                  actor=reviewer, at=at)
        if fate == "removed":
            (membership,) = [m for m in project.memberships if world.objects[m].user == user]
            world.remove_project_membership(membership, actor=reviewer, at=self.now - CAMPAIGN_REMOVED)
        elif fate == "rejected":
            self._plant("access_review_completed", item, f"{access} revoked by the review but still held")

    def _person(self, user: str) -> str:
        """A user as the review's task notes name them: ``Name <email>``."""
        person = self.world.objects[user]
        return f"{person.name} <{person.email}>"

    def _incident(self, title: str, severity: str | None, age: timedelta,
                  work: tuple[tuple[timedelta, str], ...]) -> None:
        """One incident, filed ``age`` ago by one of the staff and worked by another as ``work``
        says (a section entered, or a severity set); its breach, if SLA_BREACHES lists it, is
        planted."""
        (world, (owner, assignee)), (project, sections, field) = (self.world, self.staff[2:4]), self.incidents
        filed = self.now - age
        task = world.create_task(title, actor=owner, project=project, section=sections["Triage"], at=filed)
        world.update_task(task, assignee=assignee, actor=owner, at=filed + MS)
        if severity:
            world.set_custom_field(task, field, severity, actor=owner, at=filed + 2 * MS)
        for after, name in work:
            if name in SEVERITIES:
                world.set_custom_field(task, field, name, actor=assignee, at=filed + after)
                continue
            world.move_task_to_section(task, sections[name], actor=assignee, at=filed + after)
            if name == "Closed":
                world.complete_task(task, actor=assignee, at=filed + after + MS)
        if breach := SLA_BREACHES.get(title.split(":")[0]):
            self._plant("ticket_sla", task.gid, f"{title.split(':')[0]} was {breach}")

    def _plant(self, monitor: str, gid: str, description: str, unknown: bool = False) -> None:
        key = monitor + UNKNOWN if unknown else monitor
        self.world.planted.setdefault(key, {})[gid] = description

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
            world.service_accounts.add(users[0].gid)  # the demo token reads everything, as a service account
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
                world.add_team_membership(team, user, is_admin=admin, is_guest=guest, is_limited_access=limited,
                                          at=self.now - TEAMS_FORMED)
        return teams

    def _projects(self, teams: list, count: int) -> list[Project]:
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
            flow, side = KINDS[kind][0], KINDS[kind][1]
            extra = PLANT_SECTIONS if kind == "change" else ()
            sections = [
                world.add_section(project, section, at=created + timedelta(minutes=offset))
                for offset, section in enumerate(flow + side + extra)
            ]
            self.kinds[project.gid] = kind
            self.flows[project.gid] = (sections[: len(flow)], sections[len(flow) : len(flow) + len(side)])
            if extra:
                self.plant_sections[project.gid] = {s.name: s for s in sections[len(flow) + len(side) :]}
            for field in KIND_FIELDS.get(kind, ()):
                world.add_custom_field_setting(project, self._field(field), is_important=field == "Ticket type")
            projects.append(project)
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

    def _plan_deactivation(self, regular: list[User]) -> User:
        """Pick a regular user to deprovision who keeps a team, a project and an open task."""
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
        self.leaver, self.leaver_home = leaver.gid, home
        return leaver

    # ------------------------------------------------------------------ tasks
    def _fill(self, project: Project, budget: int, elsewhere: list[Project]) -> None:
        while budget > 0:
            budget -= self._ticket(project, budget, elsewhere)

    def _take_plant(self, project: Project, budget: int) -> tuple[str, str, str] | None:
        """The planted violation the project's next ticket carries, if one still to plant fits it."""
        if project.archived or budget < 2:  # a plant may need room for an approval subtask
            return None
        change = _is_change(project)
        can_start = _first_state(self.flows[project.gid][0][1:-1], "IN_PROGRESS") is not None
        for i, (_monitor, plant, _text) in enumerate(self.plants):
            if plant == "leaver":
                fits = project.gid == self.leaver_home
            elif plant in CHANGE_PLANTS:
                fits = change and can_start and (plant not in SECTION_PLANTS or project.gid in self.plant_sections)
            else:
                fits = not change and (can_start or plant != "completed_in_progress")
            if fits:
                return self.plants.pop(i)
        return None

    def _ticket(self, project: Project, budget: int, elsewhere: list[Project]) -> int:
        """Create a top-level task, its approval and subtasks, and replay its life; return the tasks made.

        The life is compliant unless the ticket carries a plant, which breaks one rule on purpose.
        """
        rng, world = self.rng, self.world
        kind, (flow, side), workers = self.kinds[project.gid], self.flows[project.gid], self.members[project.gid]
        middle = flow[1:-1]
        planted = self._take_plant(project, budget)
        plant = planted[1] if planted else None
        opened = datetime.fromisoformat(project.created_at)
        if project.archived:
            last_start = opened + timedelta(days=40)
        else:  # a plant's violation must be over a day old
            last_start = self.now - (PLANT_AGE if plant else timedelta(hours=2))
        created = self._between(opened + timedelta(hours=1), last_start)
        settled = self.now - (PLANT_AGE / 2 if plant else timedelta(minutes=1))
        end = min(created + timedelta(days=rng.uniform(0.5, 45)), settled)
        subtype = "default_task" if plant else self._subtype(kind)
        creator = rng.choice(workers)
        task = world.create_task(
            self._task_name(kind) if subtype != "milestone" else f"Milestone: {rng.choice(FEATURES)} GA",
            actor=creator,
            project=project,
            section=flow[0],
            resource_subtype=subtype,
            notes=self._notes(kind),
            due_on=self._due(created) if rng.random() < 0.5 else None,
            at=created,
            tags=tuple(rng.sample(self._tags(), rng.choice((1, 1, 2)))) if rng.random() < 0.3 else (),
        )
        # Untyped, the archived plant is a change by its history alone (a "Change" type would make it one).
        typable = subtype == "default_task" and plant != "archived"
        valued = typable and self._fill_fields(task, project, creator, created)
        other = rng.choice(elsewhere) if not plant and elsewhere and rng.random() < 0.03 else None
        projects = [project] + ([other] if other else [])
        change = subtype != "approval" and any(map(_is_change, projects))

        # How it is approved and how far it goes; who takes it on depends on whether it ends open.
        implement = _first_state(middle, "IN_PROGRESS")
        approved = next((s for s in middle if _stage(s) == "APPROVED"), None)
        by_section = approved is not None and (implement is None or middle.index(approved) < middle.index(implement))
        room = budget > 1 and subtype != "approval"
        if plant in UNAPPROVED_PLANTS:
            approval = None
        elif plant in CHANGE_PLANTS:  # the assignee approves by a move where the workflow has Approved
            approval = "section" if plant == "assignee_approves" and by_section else "subtask"
        elif change:
            approval = "section" if by_section and (not room or rng.random() < 0.5) else "subtask" if room else None
        else:
            approval = "subtask" if room and kind in APPROVAL_KINDS and rng.random() < 0.3 else None
        unapproved = change and approval is None and plant not in CHANGE_PLANTS  # so it must not start
        if plant in ("leaver", "unassigned", "parked") or unapproved:
            done = False
        elif plant:
            done = plant in DONE_PLANTS or rng.random() < 0.5
        else:
            done = project.archived or rng.random() < (0.8 if end < self.now - timedelta(days=30) else 0.45)
        include: set[Section | None] = set()
        exclude: set[Section | None] = set()
        if plant in CHANGE_PLANTS - UNSTARTED_PLANTS or plant == "completed_in_progress":
            include.add(implement)
        if approval == "section":
            include.add(approved)
        elif plant in CHANGE_PLANTS:
            exclude.add(approved)  # approved only the planted way
        if unapproved or plant in UNSTARTED_PLANTS:
            exclude.update(s for s in middle if _state(s) == "IN_PROGRESS")
        if plant == "completed_in_progress":
            exclude.update(middle[middle.index(implement) + 1 :])
        path = self._path(middle, done, include, exclude)
        if plant == "to_be_approved":  # waits there for an approval that never comes, then starts
            path.insert(path.index(implement), self.plant_sections[project.gid][TO_BE_APPROVED])
        elif plant == "parked":
            path.append(self.plant_sections[project.gid][PARKING_LOT])
        reopen = plant == "reopened_in_done" or (not plant and done and subtype != "approval" and rng.random() < 0.05)
        ends_open = not done or (reopen and (plant is not None or rng.random() < 0.4))

        # Who: an open ticket's assignee is active; the approver is none of its other people.
        avoid = {self.leaver} if ends_open else set()
        if plant == "leaver":
            assignee = self.leaver
        elif plant == "unassigned" or (
            (subtype == "milestone" or ends_open and created > self.now - RECENT) and rng.random() < 0.12
        ):
            assignee = None
        else:
            assignee = self._pick(workers, avoid | ({creator} if plant else set()))
        reassignee = self._pick(workers, avoid | {assignee}) if assignee and not plant and rng.random() < 0.1 else None
        actor = assignee or creator  # who moves it along
        completer = self._pick(workers, {creator, actor}) if plant == "completer_approves" else actor
        self_approver = {"creator_approves": creator, "assignee_approves": assignee, "completer_approves": completer}
        approver = self_approver.get(plant) or self._pick(
            workers, {creator, assignee, reassignee, completer, self.leaver}
        )

        moments: list[Moment] = [[("update_task", {"assignee": assignee, "actor": creator})]] if assignee else []
        started = 0  # where implementation starts: the index after the first in-progress move
        for section in path:
            mover = approver if _stage(section) == "APPROVED" else actor
            moments.append([_move(section, mover)])
            if not started and _state(section) == "IN_PROGRESS":
                started = len(moments)
            if side and rng.random() < 0.1:
                moments += [[_move(rng.choice(side), actor)], [_move(section, mover)]]
        if approval == "subtask":
            # Requested as the ticket is created, before its replayed steps (a second later at least).
            request = world.create_task(
                f"Approval: {task.name}",
                actor=creator,
                parent=task,
                resource_subtype="approval",
                assignee=approver,
                at=created + timedelta(seconds=0.5),
            )
            if plant == "withdrawn_approval":
                statuses: tuple[str, ...] = ("approved", "changes_requested")
            elif plant:
                statuses = ("approved",)
            else:
                statuses = self._statuses(decided=done, approve=change and (done or started > 0))
            at = started if plant == "late_approval" else int(assignee is not None)  # after the assignment
            decider = None if plant == "unattributed_approval" else approver  # None: a system change
            moments[at:at] = [
                [("set_approval_status", {"task": request, "status": status, "actor": decider})] for status in statuses
            ]
        if other:
            self._float(moments, ("add_task_to_project", {"project": other, "actor": actor}))
        close = [_move(self.flows[p.gid][0][-1], completer) for p in projects]  # into done, everywhere
        if done:
            left = [] if plant == "completed_in_progress" else close
            if plant == "implemented_section":
                left = [_move(self.plant_sections[project.gid][DEPLOYED_WAITING], completer)]
            if subtype == "approval":
                first, *rest = self._statuses(decided=True)
                moments.append(left + [("set_approval_status", {"status": first, "actor": completer})])
                moments += [[("set_approval_status", {"status": s, "actor": completer})] for s in rest]
            else:
                moments.append(left + [("complete_task", {"actor": completer})])
        if plant == "archived":
            archive = self._archive(project)
            moments.append([
                ("add_task_to_project", {"project": archive.project, "section": archive, "actor": actor}),
                ("remove_task_from_project", {"project": project, "actor": actor}),
            ])
        if plant == "completed_unassigned":
            moments.insert(rng.randint(1, len(moments) - 1), [("update_task", {"assignee": None, "actor": creator})])
        if reopen:
            back = [] if plant else [_move(_back(self.flows[p.gid][0]), actor) for p in projects]
            moments.append([("reopen_task", {"actor": actor})] + back)
            if not ends_open:
                moments.append(close + [("complete_task", {"actor": completer})])
        for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 2, 3, 4))):
            self._float(moments, ("add_comment", {"text": rng.choice(COMMENTS), "actor": rng.choice(workers)}))
        if rng.random() < 0.08:
            self._float(moments, ("update_task", {"name": task.name + " (updated)", "actor": actor}))
        if rng.random() < 0.08:
            self._float(moments, ("update_task", {"notes": task.notes + "\nUpdated scope.", "actor": actor}))
        if rng.random() < 0.15:
            self._float(moments, ("update_task", {"due_on": self._due(created), "actor": actor}))
        if reassignee:
            self._float(moments, ("update_task", {"assignee": reassignee, "actor": actor}))
        self.top_level += 1
        if self.top_level <= 2 or self.top_level % LONG_THREAD_EVERY == 0:
            for _ in range(rng.randint(100, 140)):
                self._float(moments, ("add_comment", {"text": rng.choice(COMMENTS), "actor": rng.choice(workers)}))
        self._replay(task, moments, created, end)
        if valued:
            self._change_fields(task, project, actor, end)
        if planted:
            monitor, _plant, text = planted
            people = (("assignee", assignee), ("approver", approver), ("completer", completer))
            names = {role: world.objects[gid].name for role, gid in people if gid}
            section = world.objects[task.memberships[0][1]].name  # plants are in one project
            description = text.format(section=section, **names)
            for undecided in UNDECIDABLE.get(plant, ()):
                self._plant(undecided, task.gid, description, unknown=True)
            if plant not in UNDECIDABLE:
                self._plant(monitor, task.gid, description)
        made = 1 + (approval == "subtask")
        return made + self._subtasks(task, end, budget - made)

    def _archive(self, project: Project) -> Section:
        """The one section of the workspace's ARCHIVE project, made as first needed (as old as
        ``project``, with its team and owner)."""
        if self.archive is None:
            at = datetime.fromisoformat(project.created_at)
            archive = self.world.add_project(
                self.workspace, ARCHIVE, team=project.team, owner=project.owner, at=at,
                notes="Finished work, moved out of the active projects.",
            )
            self.archive = self.world.add_section(archive, "Done", at=at)
        return self.archive

    # ------------------------------------------------------------------ custom fields
    def _field(self, name: str) -> CustomField:
        if name not in self.fields:
            kind, options = next((kind, options) for field, kind, options in FIELDS if field == name)
            self.fields[name] = self.world.add_custom_field(
                self.workspace, name, kind, enum_options=list(options), description=f"{name} of the ticket."
            )
        return self.fields[name]

    def _fill_fields(self, task: Task, project: Project, creator: str, created: datetime) -> bool:
        """Fill in a share of a ticket's fields as it is filed (before its life's first step, a
        second in); returns whether it was. Milestones and approvals are left untyped."""
        rng, kind = self.fields_rng, self.kinds[project.gid]
        if kind not in KIND_FIELDS or rng.random() >= VALUED_SHARE:
            return False
        at = created + timedelta(seconds=0.1)
        for name in KIND_FIELDS[kind]:
            field = self.fields[name]
            value = self._value(field, kind)
            if value == "Change" and not _is_change(project):  # typed a change only where it is one
                value = "Task"
            if value is not None:
                self.world.set_custom_field(task, field, value, actor=creator, at=at)
                at += MS
        return True

    def _value(self, field: CustomField, kind: str) -> Any:
        rng = self.fields_rng
        if field.name == "Ticket type":
            return rng.choice(KIND_TYPES[kind])
        if field.resource_subtype == "enum":
            return rng.choice([option["name"] for option in field.enum_options])
        if rng.random() < 0.3:  # the optional fields are often left empty
            return None
        if field.resource_subtype == "number":
            return rng.choice((1, 2, 3, 5, 8, 13))
        if field.resource_subtype == "date":  # a day; one in five with a time too (the value's date_time)
            day = (self.now + timedelta(days=rng.randint(-60, 60))).date()
            return f"{day.isoformat()}T17:00:00Z" if day.day % 5 == 0 else day.isoformat()
        if field.resource_subtype == "text":
            return f"{kind.upper()}-{rng.randint(100, 9999)}"
        if field.resource_subtype == "people":
            return rng.sample(self.staff, min(len(self.staff), rng.choice((1, 1, 2))))
        return rng.sample([option["name"] for option in field.enum_options], rng.choice((1, 1, 2)))

    def _change_fields(self, task: Task, project: Project, actor: str, end: datetime) -> None:
        """Now and then, a later change of priority (or estimate): after the life's last story,
        within its span, so stories stay in order."""
        rng = self.fields_rng
        if rng.random() >= RETYPED_SHARE:
            return
        last = datetime.fromisoformat(self.world.objects[task.stories[-1]].created_at) if task.stories else end
        if last + timedelta(minutes=2) >= end:
            return
        name = "Estimate (h)" if "Estimate (h)" in KIND_FIELDS[self.kinds[project.gid]] and rng.random() < 0.5 else (
            "Priority")
        field = self.fields[name]
        value = self._value(field, self.kinds[project.gid]) if name == "Priority" else rng.choice((2, 3, 5, 8, 13, 21))
        start = last + timedelta(minutes=1)
        at = start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
        self.world.set_custom_field(task, field, value, actor=actor, at=at)

    def _path(self, middle: list[Section], done: bool, include: set, exclude: set) -> list[Section]:
        """The workflow sections a ticket passes through between intake and done, in order."""
        rng = self.rng
        picks = sorted(rng.sample(range(len(middle)), rng.randint(0 if not done else 1, len(middle))))
        if not done and picks and rng.random() < 0.4:
            picks = picks[: rng.randint(0, len(picks))]
        chosen = {middle[i] for i in picks} - exclude | include
        return [section for section in middle if section in chosen]

    def _subtype(self, kind: str) -> str:
        if self.rng.random() < 0.03:
            return "milestone"
        return "approval" if kind in APPROVAL_KINDS and self.rng.random() < 0.08 else "default_task"

    def _statuses(self, decided: bool, approve: bool = False) -> tuple[str, ...]:
        """An approval's successive statuses; ``approve``: it must end approved."""
        rng = self.rng
        if approve:
            return rng.choices(list(APPROVED_PATHS), list(APPROVED_PATHS.values()))[0]
        statuses = ["changes_requested"] if rng.random() < 0.2 else []
        if decided:
            statuses.append("rejected" if rng.random() < 0.1 else "approved")
        elif rng.random() < 0.3:
            statuses.append("changes_requested")
        return tuple(dict.fromkeys(statuses))

    def _subtasks(self, parent: Task, end: datetime, budget: int) -> int:
        """Create a few ordinary subtasks under one ticket in ten, some with their own; return how many."""
        rng = self.rng
        wanted = 0 if rng.random() < 0.9 else rng.randint(1, 3)
        made = 0
        for _ in range(wanted):
            if made >= budget:
                break
            self._subtask(parent, end)
            made += 1
            if made < budget and rng.random() < 0.1:  # a few subtasks have their own subtask
                self._subtask(self.world.objects[parent.subtasks[-1]], end)
                made += 1
        return made

    def _subtask(self, parent: Task, end: datetime) -> None:
        rng, world = self.rng, self.world
        start = datetime.fromisoformat(parent.created_at) + timedelta(minutes=5)
        created = self._between(start, max(start + timedelta(minutes=1), end - timedelta(minutes=30)))
        creator = parent.assignee or parent.created_by
        task = world.create_task(rng.choice(SUBTASKS), actor=creator, parent=parent, at=created)
        done = parent.completed or rng.random() < 0.3
        owners = [u for u in (parent.assignee, parent.created_by) if u and (done or u != self.leaver)]
        owner = rng.choice(owners or self.staff)
        moments: list[Moment] = [[("update_task", {"assignee": owner, "actor": creator})]]
        if done:
            moments.append([("complete_task", {"actor": owner})])
        if rng.random() < 0.3:
            self._float(moments, ("add_comment", {"text": rng.choice(COMMENTS), "actor": owner}))
        self._replay(task, moments, created, max(created + timedelta(minutes=len(moments) + 1), end))

    # ------------------------------------------------------------------ helpers
    def _replay(self, task: Task, moments: list[Moment], start: datetime, end: datetime) -> None:
        """Apply the moments in order at sorted random times between start and end.

        Every mutation gets its own millisecond, so stories never tie and a moment's mutations
        (a move into done and the completion) happen together. A step's "task" keyword makes it
        act on that task instead (the ticket's approval subtask).
        """
        span = max((end - start).total_seconds(), len(moments) + 1.0)
        times = sorted(self.rng.uniform(1, span) for _ in moments)
        at = start
        for moment, offset in zip(moments, times):
            at = max(at, start + timedelta(seconds=offset))
            for method, kwargs in moment:
                options = dict(kwargs)
                getattr(self.world, method)(options.pop("task", task), at=at, **options)
                at += MS

    def _float(self, moments: list[Moment], step: Step) -> None:
        """Insert a step anywhere after the first moment (the initial assignment stays first)."""
        moments.insert(self.rng.randint(min(1, len(moments)), len(moments)), [step])

    def _pick(self, pool: list[str], avoid: set[str | None]) -> str:
        """Someone from ``pool`` who is not in ``avoid``; failing that, from the active regular staff."""
        return self.rng.choice([u for u in pool if u not in avoid] or [u for u in self.staff if u not in avoid])

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


def _review_marker(campaign: str, project: str, due: str, who: str) -> str:
    """A campaign task's marker line, in the documented format: ``who`` is ``members <user>=<role>,...``
    (a reviewed project's task) or ``member <user>=<role>`` (a member's approval subtask)."""
    return f"{REVIEW_MARKER}: {campaign} project/{project} due {due} {who}"


def _is_guest(user: User) -> bool:
    return user.email.rsplit("@", 1)[1] in GUEST_DOMAINS


def _is_change(project: Project) -> bool:
    return CHANGE_PROJECT.search(project.name) is not None


def _stage(section: Section) -> str:
    return SECTION_MEANING[section.name][0]


def _state(section: Section) -> str:
    return SECTION_MEANING[section.name][1]


def _first_state(sections: list[Section], state: str) -> Section | None:
    return next((section for section in sections if _state(section) == state), None)


def _back(flow: list[Section]) -> Section:
    """Where a reopened ticket goes: back to work, else to the step before done."""
    return _first_state(flow[1:-1], "IN_PROGRESS") or flow[-2]


def _move(section: Section, actor: str) -> Step:
    return ("move_task_to_section", {"section": section, "actor": actor})
