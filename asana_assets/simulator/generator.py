"""Deterministic generation of a realistic Asana organisation, scaled by task count.

History is consistent by construction: each task's life (assign, moves through sections,
approvals, completion, reopening, renames, date changes, comments) is replayed through the
world's own mutations on a backdated clock, so a task's state is exactly what its stories say.

Lives are compliant by construction too, by the rules the compliance monitors apply (section
meaning comes from ``asana_assets.workflow``): every ticket is assigned while open (a ticket under
a day old may wait) and at completion, a change is approved by a third person before work
starts, and a ticket sits in a done section exactly while it is completed, in each of its
projects. The exceptions are planted on purpose and listed in ``World.planted``.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ..workflow import CHANGE_PROJECT_PATTERN, STATE_OF_STAGE, classify
from .models import Project, Section, Task, User
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
# The last workflow section is the only one whose stage is DONE; a change is approved before work.
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
