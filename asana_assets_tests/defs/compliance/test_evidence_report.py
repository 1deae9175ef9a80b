"""What an auditor and an analyst see, through the Dagster job on a small hand-built workspace
synced twice: findings that name tickets, projects and people with links, the evidence report
(self-contained, escaped, stating the connection's coverage beside the verdicts it affects),
users.csv, names beside gids in the populations, the manifest's checksums, and the alarm counts
as numeric metadata. Every expected value is written here by hand for this world."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import dagster as dg
import pandas as pd
import pytest

from asana_assets.lib.compliance.monitors import MONITORS
from asana_assets.simulator import World
from asana_assets_tests.support.pipeline import results_of, run_pipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FIRST, SECOND = T0 + timedelta(days=5), T0 + timedelta(days=7)  # the two runs
SCRIPT = "<script>alert(1)</script>"
PROFILE = "https://app.asana.com/0/profile/"


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def task_link(task) -> str:
    return f"https://app.asana.com/0/0/{task.gid}"  # the simulator's task permalinks


class Org:
    """Acme: an admin, Alice (requests), Bob (implements), Carol (approves) and Lee (leaves
    between the runs with an open ticket); Gina joins as a guest between the runs."""

    def __init__(self) -> None:
        w = self.world = World(now=T0 - timedelta(days=10))
        self.ws = w.add_workspace("Acme", ["acme.example"])
        self.admin, self.alice, self.bob, self.carol, self.lee = (
            w.add_user(name, f"{name.lower()}@acme.example") for name in ("Admin", "Alice", "Bob", "Carol", "Lee"))
        for user in (self.admin, self.alice, self.bob, self.carol, self.lee):
            w.add_workspace_membership(user, self.ws, is_admin=user is self.admin)
        w.default_user = self.admin.gid
        self.change = w.add_project(self.ws, "Change Management", owner=self.admin)
        todo, self.doing = w.add_section(self.change, "To Do"), w.add_section(self.change, "In Progress")
        helpdesk = w.add_project(self.ws, "IT Helpdesk", owner=self.admin)
        new = w.add_section(helpdesk, "New")

        def ticket(name: str):
            return w.create_task(name, actor=self.alice, project=self.change, section=todo, assignee=self.bob,
                                 at=hours(0))

        # Started without any approval; its name is markup that must stay text.
        self.script = ticket(SCRIPT)
        w.move_task_to_section(self.script, self.doing, actor=self.bob, at=hours(2))
        # Approved by Bob, its own assignee.
        self.self_approved = ticket("CHG-2 self-approved")
        self.approve(self.self_approved, self.bob, hours(1))
        w.move_task_to_section(self.self_approved, self.doing, actor=self.bob, at=hours(2))
        # Approved by Carol, then completed but left In Progress.
        self.drifted = ticket("CHG-3 drifted")
        self.approve(self.drifted, self.carol, hours(1))
        w.move_task_to_section(self.drifted, self.doing, actor=self.bob, at=hours(2))
        w.complete_task(self.drifted, actor=self.bob, at=hours(3))
        self.rotate = w.create_task("Rotate keys", actor=self.admin, project=helpdesk, section=new,
                                    assignee=self.lee, at=hours(0))

    def approve(self, ticket, approver, at: datetime) -> None:
        task = self.world.create_task(f"Approve {ticket.name}", actor=self.alice, parent=ticket,
                                      resource_subtype="approval", assignee=self.carol, at=at - timedelta(minutes=5))
        self.world.set_approval_status(task, "approved", actor=approver, at=at)

    def between_the_runs(self) -> None:
        self.world.deactivate_user(self.lee, self.ws)
        self.gina = self.world.add_user("Gina", "gina@contractor.example")
        self.world.add_workspace_membership(self.gina, self.ws, is_guest=True)


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """The two runs on one warehouse and instance: (org, directory, second run)."""
    directory = tmp_path_factory.mktemp("warehouse")
    org, instance = Org(), dg.DagsterInstance.ephemeral()
    assert run_pipeline(org.world, directory, FIRST, instance=instance).success
    org.between_the_runs()
    second = run_pipeline(org.world, directory, SECOND, instance=instance)
    assert second.success
    return org, directory, second


def pack_of(run, directory):
    [pack] = (directory / "evidence").glob(f"*_{run.run_id}")
    return pack


# -- named findings -------------------------------------------------------------------------
def test_each_monitors_findings_name_the_ticket_project_and_people_with_links(synced):
    org, directory, run = synced
    results = results_of(run, directory)
    alarms = results[results["status"] == "alarm"]
    found = {(r.monitor_id, r.resource_gid): (r.reason, r.resource_url) for r in alarms.itertuples()}
    lee_in_acme = f"{org.lee.gid}/{org.ws.gid}"
    assert found == {
        ("changes_approved", org.script.gid): (
            (f'Ticket "{SCRIPT}" (Change Management): implementation started at 2026-03-02 11:00 UTC without an '
            "approval."), task_link(org.script)),
        ("approval_segregation", org.self_approved.gid): (
            ('Ticket "CHG-2 self-approved" (Change Management): the approver Bob <bob@acme.example> is also its '
            "assignee."), task_link(org.self_approved)),
        ("workflow_consistent", org.drifted.gid): (
            ('Ticket "CHG-3 drifted" (Change Management): drift past the grace: completed but in a section whose '
            'state is IN_PROGRESS in project "Change Management" since 2026-03-02 12:00 UTC.'), task_link(org.drifted)),
        ("tickets_assigned", org.rotate.gid): (
            ('Ticket "Rotate keys" (IT Helpdesk): open and assigned to Lee <lee@acme.example>, whose workspace '
            "membership is inactive or gone (created 2026-03-02 09:00 UTC)."), task_link(org.rotate)),
        # Deactivated after the first run, the last to see Lee active, and at or before the second.
        ("offboarding_access_removed", lee_in_acme): (
            ('Lee <lee@acme.example> in workspace "Acme": deactivated some time between 2026-03-07 09:00 UTC '
            '(last seen active) and 2026-03-09 09:00 UTC; still assignee of ticket "Rotate keys"'),
            PROFILE + org.lee.gid),
        ("membership_changes", _change_id(results, "membership_changes")): (
            ('Gina <gina@contractor.example>: guest added on workspace "Acme" (no access -> guest), between '
            "2026-03-07 09:00 UTC and 2026-03-09 09:00 UTC; not acknowledged yet"), PROFILE + org.gina.gid),
    }
    admin = results[results["monitor_id"] == "admin_access_restricted"].set_index("resource_gid")
    assert admin.loc[org.admin.gid, "reason"] == (
        'Admin <admin@acme.example>, admin of workspace "Acme", cannot be judged: no approved admin list is '
        'configured (set approved_admins of the compliance resource)')
    assert admin.loc[org.admin.gid, "resource_url"] == PROFILE + org.admin.gid
    synced_rows = results[results["monitor_id"] == "tickets_synced"].set_index("resource_gid")
    assert synced_rows.loc[org.change.gid, "reason"].startswith('Project "Change Management": last synced at ')
    project_link = f"https://app.asana.com/0/{org.change.gid}/{org.change.gid}"  # the simulator's permalink
    assert synced_rows.loc[org.change.gid, "resource_url"] == project_link
    # Every link is an https URL or null: never the text "nan".
    links = results["resource_url"].dropna()
    assert links.str.startswith("https://app.asana.com/0/").all()
    users = results[results["resource_type"].isin(["user", "user_in_workspace"])]
    assert users["resource_url"].notna().all()


def _change_id(results: pd.DataFrame, monitor_id: str) -> str:
    [gid] = results.loc[(results["monitor_id"] == monitor_id) & (results["status"] == "alarm"), "resource_gid"]
    return gid


def test_the_monitor_csvs_carry_the_names(synced):
    org, directory, run = synced
    csv = pd.read_csv(pack_of(run, directory) / "monitors" / "approval_segregation.csv", dtype=str)
    row = csv.set_index("resource_gid").loc[org.self_approved.gid]
    assert (row["name"], row["project"]) == ("CHG-2 self-approved", "Change Management")
    assert row["people"] == ("approver: Bob <bob@acme.example>; creator: Alice <alice@acme.example>; "
                             "assignee: Bob <bob@acme.example>")


# -- the report -----------------------------------------------------------------------------
class Page(HTMLParser):
    """Tags with their attributes, the text, and each table's rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self.links: list[tuple[str, str]] = []  # (href, text)
        self._cell: list[str] | None = None
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._href is not None:
            self.links.append((self._href, data))
            self._href = None


@pytest.fixture(scope="module")
def page(synced):
    _, directory, run = synced
    parser = Page()
    parser.feed((pack_of(run, directory) / "report.html").read_text(encoding="utf-8"))
    return parser


def test_the_report_states_its_scope(synced, page):
    org, _, run = synced
    scope = {row[0]: row[1] for row in page.rows if len(row) == 2 and row[0] in
             ("Connection", "Workspaces", "Period covered", "As of", "Run", "Coverage", "Account kind", "Plan",
              "Private projects", "Audit log", "Listings refused")}
    assert scope["Connection"] == "default"
    # A bare token on a plan without the audit log (402): who it acts for is unknown, so private
    # projects it is not in may be missing; every project of this world is public and none refused.
    acme = f"Acme ({org.ws.gid})"
    assert scope["Coverage"] == ("PARTIAL: it may miss tickets and memberships of private projects the connection is "
                                 f"not a member of; the audit log of {acme}")
    assert scope["Account kind"] == "unknown (the audit log answered 402, which does not say who the token acts for)"
    assert scope["Plan"] == "unknown (the API does not say)"
    assert scope["Private projects"] == (
        "0 private project(s) read; it is not confirmed to read the private projects it is not a member of (fix: "
        "connect with a service account on an Enterprise organisation)")
    assert scope["Audit log"] == f"not read in {acme} (HTTP 402: the audit log needs Enterprise+ and a service account)"
    assert scope["Listings refused"] == "none"
    assert scope["Workspaces"] == f"Acme ({org.ws.gid})"
    # The earliest ticket was created at T0; the evidence ends at the second run's as_of.
    assert scope["Period covered"].startswith("2026-03-02 09:00 UTC to 2026-03-09 09:00 UTC (")
    assert "2 access snapshot(s)" in scope["Period covered"] and "2 monitor run(s)" in scope["Period covered"]
    assert scope["As of"] == "2026-03-09T09:00:00+00:00 (set by the as_of parameter)"
    assert scope["Run"] == run.run_id


def test_the_report_has_a_table_per_control_with_the_verdicts(page):
    headings = [t.strip() for t in page.text if t.strip().startswith(("SOC2:", "ISO27001:"))]
    assert headings[:3] == [
        "SOC2:CC8.1: Changes are authorized, approved and tracked before implementation",
        ("SOC2:CC6.2: Access is registered and authorized before it is granted, and removed when no longer "
        "authorized"),
        "SOC2:CC6.3: Access is modified and removed following least privilege and segregation of duties",
    ]
    verdict_of = {row[0]: row[3].split("Partial coverage")[0] for row in page.rows
                  if len(row) == 8 and row[0] in MONITORS}  # the verdict, without the coverage notes beneath
    assert verdict_of == {
        "tickets_synced": "PASS", "tickets_assigned": "FAIL", "changes_approved": "FAIL",
        "approval_segregation": "FAIL", "workflow_consistent": "FAIL", "offboarding_access_removed": "FAIL",
        "admin_access_restricted": "INCOMPLETE", "membership_changes": "FAIL",  # no approved_admins configured
        "activity_after_deactivation": "INCOMPLETE",  # Lee left, and the plan has no audit log to show since
        "offboarding_ticket": "NOT EVALUATED",  # no offboarding project configured
        "ticket_sla": "NOT EVALUATED",  # no SLA category configured
        "access_review_completed": "NOT EVALUATED",  # no review project configured
    }


def test_partial_coverage_is_noted_beneath_the_verdicts_it_affects(synced, page):
    org, _, _ = synced
    cell = {row[0]: row[3] for row in page.rows if len(row) == 8 and row[0] in MONITORS}
    assert cell["tickets_synced"] == (
        "PASSPartial coverage: the connection (unknown) is not confirmed to read the private projects it is not a "
        "member of, so what they hold may not be judged.")
    assert cell["activity_after_deactivation"] == (
        f"INCOMPLETEPartial coverage: the audit log of Acme ({org.ws.gid}) was not read, so whether a deactivated "
        "user acted there cannot be seen.")
    assert cell["admin_access_restricted"] == "INCOMPLETE"  # workspace admins: whatever projects the token sees


def test_the_report_lists_exceptions_with_names_and_links(synced, page):
    org, _, _ = synced
    rows = [row for row in page.rows if len(row) == 5]
    assert ["Rotate keys", "IT Helpdesk", "assignee: Lee <lee@acme.example>; creator: Admin <admin@acme.example>",
            "open in Asana",
            ('Ticket "Rotate keys" (IT Helpdesk): open and assigned to Lee <lee@acme.example>, whose workspace '
            "membership is inactive or gone (created 2026-03-02 09:00 UTC).")] in rows
    assert (task_link(org.rotate), "open in Asana") in page.links
    # The access review names the leaver and the new guest, with their profiles.
    text = "".join(page.text)
    assert "Leavers with residual access" in text and (PROFILE + org.lee.gid, "profile") in page.links
    assert ["Acme", "Gina", "gina@contractor.example", "guest", "profile"] in page.rows


def test_the_report_is_self_contained_and_escapes_asana_text(synced, page):
    _, directory, run = synced
    raw = (pack_of(run, directory) / "report.html").read_text(encoding="utf-8")
    tags = [tag for tag, _ in page.tags]
    assert tags.count("svg") == 3
    # No script at all (the task named <script> is text), no stylesheet, image or font from elsewhere.
    assert "script" not in tags and "iframe" not in tags
    for tag, attrs in page.tags:
        if tag in ("link", "img", "script", "source", "object", "embed"):
            assert not str(attrs.get("src") or attrs.get("href") or "").startswith(("http", "//")), (tag, attrs)
    assert "@import" not in raw and "url(" not in raw
    assert SCRIPT not in raw and "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert any(SCRIPT in text for text in page.text)  # shown as the task's name


def test_the_report_has_a_blank_sign_off_block(page):
    sign_off = [row for row in page.rows if row and row[0] in ("Reviewer", "Date", "Management response")]
    assert sign_off == [["Reviewer", ""], ["Date", ""], ["Management response", ""]]


def test_the_summary_lists_exceptions_scope_and_sign_off(synced):
    org, directory, run = synced
    summary = (pack_of(run, directory) / "summary.md").read_text()
    assert f"- **Workspaces**: Acme ({org.ws.gid})" in summary
    assert "### `offboarding_access_removed`: 1 exception(s)" in summary
    assert ('| Lee &lt;lee@acme.example&gt; |  | Lee &lt;lee@acme.example&gt; | '
            f"[open in Asana]({PROFILE}{org.lee.gid}) |") in summary
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in summary and SCRIPT not in summary
    assert "## Trend: alarms in the latest 2 run(s) of 2" in summary
    assert "| `changes_approved` | 1 | 1 |" in summary and "| `offboarding_access_removed` | n/e | 1 |" in summary
    assert summary.rstrip().endswith("- **Reviewer**: \n- **Date**: \n- **Management response**:")


def test_the_populations_name_every_gid(synced):
    org, directory, run = synced
    pack = pack_of(run, directory)
    approvals = pd.read_csv(pack / "populations" / "approvals.csv", dtype=str).set_index("ticket_gid")
    row = approvals.loc[org.self_approved.gid]
    assert (row["ticket_name"], row["approver_name"]) == ("CHG-2 self-approved", "Bob <bob@acme.example>")
    stays = pd.read_csv(pack / "populations" / "ticket_section_history.csv", dtype=str)
    drifted = stays[stays["ticket_gid"] == org.drifted.gid]
    # Created in To Do by Alice, moved to In Progress by Bob.
    assert drifted[["ticket_name", "project_name", "section_name", "stage", "entered_by_name"]].values.tolist() == [
        ["CHG-3 drifted", "Change Management", "To Do", "TODO", "Alice <alice@acme.example>"],
        ["CHG-3 drifted", "Change Management", "In Progress", "IN_PROGRESS", "Bob <bob@acme.example>"],
    ]


# -- users.csv and the manifest ----------------------------------------------------------------
def test_users_csv_names_every_person_with_their_memberships(synced):
    org, directory, run = synced
    users = pd.read_csv(pack_of(run, directory) / "users.csv", dtype=str, keep_default_na=False).set_index("gid")
    columns = ["name", "email", "profile_url", "workspaces", "active_in", "admin_in", "guest_in"]
    assert users.loc[org.lee.gid, columns].tolist() == [
        "Lee", "lee@acme.example", PROFILE + org.lee.gid, "Acme", "", "", ""]
    assert users.loc[org.gina.gid, columns].tolist() == [
        "Gina", "gina@contractor.example", PROFILE + org.gina.gid, "Acme", "Acme", "", "Acme"]
    assert users.loc[org.admin.gid, columns].tolist() == [
        "Admin", "admin@acme.example", PROFILE + org.admin.gid, "Acme", "Acme", "Acme", ""]
    assert set(users.index) == {u.gid for u in (org.admin, org.alice, org.bob, org.carol, org.lee, org.gina)}


def test_the_manifest_covers_the_report_and_users_csv(synced):
    _, directory, run = synced
    pack = pack_of(run, directory)
    manifest = json.loads((pack / "manifest.json").read_text())
    for name in ("report.html", "users.csv", "teams.csv", "summary.md", "populations/ticket_section_history.csv"):
        assert manifest["files"][name] == hashlib.sha256((pack / name).read_bytes()).hexdigest()
    assert set(manifest["files"]) == {str(p.relative_to(pack)) for p in pack.rglob("*")
                                      if p.is_file() and p.name != "manifest.json"}
    assert manifest["coverage"]["complete"] is False and manifest["coverage"]["account_kind"] == "unknown"
    assert manifest["monitors"]["admin_access_restricted"]["coverage"] == []
    assert manifest["report"]["html"] == "report.html" and manifest["report"]["pdf"] is None
    assert manifest["report"]["note"].startswith("report.pdf not written")


# -- Dagster metadata ---------------------------------------------------------------------------
def test_alarm_counts_are_numeric_metadata_and_checks_link_the_report(synced):
    org, directory, run = synced
    [materialization] = [m for m in run.get_asset_materialization_events()
                         if m.asset_key.path[-1] == "monitor_results"]
    metadata = materialization.materialization.metadata
    hand_counted = {"tickets_synced": 0, "tickets_assigned": 1, "changes_approved": 1, "approval_segregation": 1,
                    "workflow_consistent": 1, "offboarding_access_removed": 1, "admin_access_restricted": 0,
                    "membership_changes": 1, "activity_after_deactivation": 0}
    # offboarding_ticket, ticket_sla and access_review_completed, NOT EVALUATED (no offboarding project, no SLA
    # category, no review project configured), have no count: a gap in the plot.
    unset = ("offboarding_ticket", "ticket_sla", "access_review_completed")
    counted = [m for m in MONITORS if m not in unset]
    for m in unset:
        assert f"alarms/{m}" not in metadata
        assert metadata[f"verdict/{m}"].value == "NOT EVALUATED"
    assert {m: metadata[f"alarms/{m}"].value for m in counted} == hand_counted
    assert all(isinstance(metadata[f"alarms/{m}"], dg.IntMetadataValue) for m in counted)
    assert metadata["verdict/changes_approved"].value == "FAIL"
    assert metadata["verdict/admin_access_restricted"].value == "INCOMPLETE"
    report = str(pack_of(run, directory) / "report.html")
    checks = {e.check_name: e for e in run.get_asset_check_evaluations() if e.check_name in MONITORS}
    assert {name: check.metadata["evidence_report"].value for name, check in checks.items()} == {
        m: report for m in MONITORS}
    table = checks["offboarding_access_removed"].metadata["first_failures"].value
    assert table.splitlines()[0] == "| resource | project | people | link | reason |"
    assert (f"| Lee &lt;lee@acme.example&gt; |  | Lee &lt;lee@acme.example&gt; | "
            f"[open in Asana]({PROFILE}{org.lee.gid}) |") in table
