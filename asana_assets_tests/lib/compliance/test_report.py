"""The evidence report and pack on small hand-built results: hostile Asana text stays text,
links are only http(s), an empty run still gets its charts and sign-off, the people directory
names users the sync no longer lists from an earlier pack, an INCOMPLETE monitor and its unknown
rows show wherever verdicts and exceptions do, a run in which a monitor judged nothing is a gap
in its own chart, not 0 alarms, the connection's coverage is stated and noted beside every
verdict it affects, time in state is charted by stage and section, every gid in a CSV has its
name beside it, and the demo's links are marked."""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser

import pandas as pd

from asana_assets.lib.compliance import evidence, report
from asana_assets.lib.compliance.monitors import MONITORS
from asana_assets.lib.compliance.names import Directory
from asana_assets.lib.compliance.report import COUNTED, Evidence, RunCoverage, alarm_counts, render_html

AS_OF = pd.Timestamp("2026-03-10 09:00", tz="UTC")
NO_REFUSAL = pd.DataFrame(columns=["project_gid", "listing", "error"])
# A service account of an Enterprise organisation: the audit log read in its one workspace, no listing refused.
COMPLETE = RunCoverage("service account", "it reads the audit log", {"w1": None}, 0, NO_REFUSAL)
HOSTILE = '<img src=x onerror="alert(1)"> & <script>alert(2)</script>'


class Tags(HTMLParser):
    """Tags with their attributes, the text, and each table's rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.data: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.data.append(data)
        if self._cell is not None:
            self._cell.append(data)


class Elements(HTMLParser):
    """Each element as [tag, attributes, its own text (not its children's)]."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[list] = []
        self._open: list[int] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append([tag, dict(attrs), ""])
        self._open.append(len(self.elements) - 1)

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        if self._open:
            self.elements[self._open[-1]][2] += data


def elements(html: str) -> list[list]:
    parsed = Elements()
    parsed.feed(html)
    return parsed.elements


def panel(chart: str, monitor_id: str):
    """A monitor's panel of the alarms chart: its baseline's y, its lines' and points' (x, y), and
    the x of each run marked n/e."""
    found = elements(chart.split(f'data-monitor="{monitor_id}">')[1].split("</g>")[0])
    [base] = [float(a["y1"]) for t, a, _ in found if t == "line" and a.get("stroke") == "#444"]
    lines = [[tuple(map(float, xy.split(","))) for xy in a["points"].split()] for t, a, _ in found if t == "polyline"]
    points = [(float(a["cx"]), float(a["cy"])) for t, a, _ in found if t == "circle"]
    gaps = [float(a["x"]) for t, a, text in found if t == "text" and a.get("class") == "gap" and text == "n/e"]
    return base, lines, points, gaps


def run_labels(chart: str) -> list[str]:
    """The runs named under the alarms chart's axis."""
    return [text for t, a, text in elements(chart) if t == "text" and a.get("class") == "run"]


def result(monitor_id: str, gid: str, status: str, reason: str, url=None, **named) -> dict:
    return {"run_id": "r2", "evaluated_at": AS_OF, "monitor_id": monitor_id, "resource_type": "ticket",
            "resource_gid": gid, "status": status, "reason": reason, "severity": "ERROR", "control_refs": [],
            "resource_url": url, "name": named.get("name"), "project": named.get("project"),
            "people": named.get("people")}


def test_asana_text_is_escaped_everywhere_and_only_web_links_are_links():
    results = pd.DataFrame([
        result("changes_approved", "t1", "alarm", f"Ticket {HOSTILE}: no approval.", "javascript:alert(3)",
               name=HOSTILE, project=HOSTILE, people=f"approver: {HOSTILE}"),
        result("tickets_assigned", "t2", "alarm", "Ticket x: unassigned.", "https://app.asana.com/0/0/t2",
               name="x", project="P"),
    ])
    populations = {
        "workspaces": pd.DataFrame({"gid": ["w1"], "name": [HOSTILE], "is_organization": [True]}),
        "workspace_memberships": pd.DataFrame({"workspace_gid": ["w1"], "user_gid": ["u1"], "is_active": [True],
                                               "is_admin": [True], "is_guest": [True]}),
        "users": pd.DataFrame({"gid": ["u1"], "name": [HOSTILE], "email": ["a@b.example"],
                               "profile_url": ["https://app.asana.com/0/profile/u1"]}),
    }
    page = render_html(Evidence("r2", AS_OF, ["w1"], {"connection": HOSTILE}, results, populations))
    parsed = Tags()
    parsed.feed(page)
    tags = {tag for tag, _ in parsed.tags}
    assert not tags & {"img", "script", "iframe", "object", "embed", "link"}
    hrefs = [attrs["href"] for tag, attrs in parsed.tags if tag == "a"]
    assert hrefs == ["https://app.asana.com/0/0/t2", "https://app.asana.com/0/profile/u1",
                     "https://app.asana.com/0/profile/u1"]  # the exception's own link, the admin, the guest
    text = "".join(parsed.data)
    assert f"Workspaces{HOSTILE} (w1)" in text  # the scope row: label cell, then the value
    assert text.count(HOSTILE) >= 6  # scope, connection, exception name, project, people, admin, guest


def test_an_empty_run_still_has_its_charts_verdicts_and_sign_off(tmp_path):
    results = pd.DataFrame([result("membership_changes", "baseline", "skip", "Baseline snapshot")])
    pack = evidence.write_evidence_pack(tmp_path, "r1", AS_OF, [], {}, results, {
        "membership_changes": pd.DataFrame(columns=["change_id", "user_gid"]),
        "users": pd.DataFrame(columns=["gid", "name", "email", "profile_url"]),
    })
    page = (pack / "report.html").read_text()
    parsed = Tags()
    parsed.feed(page)
    assert [tag for tag, _ in parsed.tags].count("svg") == 3  # the alarms per monitor, time by stage and by section
    assert page.count("NOT EVALUATED</span>") == sum(len(m.control_refs) for m in MONITORS.values())
    assert "PASS</span>" not in page and "Reviewer" in page and "No exception in this run." in page
    manifest = json.loads((pack / "manifest.json").read_text())
    assert {"report.html", "users.csv", "summary.md"} <= set(manifest["files"])
    assert set(manifest["verdicts"].values()) == {"NOT EVALUATED"}


def test_a_user_the_sync_no_longer_lists_is_named_from_the_earlier_pack(tmp_path):
    earlier = tmp_path / "evidence" / "20260301T090000Z_r0"
    earlier.mkdir(parents=True)
    pd.DataFrame({"gid": ["gone", "kept"], "name": ["Lee", "Old name"], "email": ["lee@acme.example", ""]}).to_csv(
        earlier / "users.csv", index=False)
    later = tmp_path / "evidence" / "20260320T090000Z_r9"  # after this run: not read
    later.mkdir()
    pd.DataFrame({"gid": ["gone"], "name": ["Wrong"], "email": [""]}).to_csv(later / "users.csv", index=False)
    former = evidence.former_people(tmp_path, "r1", AS_OF)
    names = Directory({"users": pd.DataFrame({"gid": ["kept"], "name": ["Kim"], "email": ["kim@acme.example"]})},
                      former)
    assert names.person(pd.Series(["gone", "kept", "nobody"])).tolist() == [
        "Lee <lee@acme.example>", "Kim <kim@acme.example>", "user nobody"]
    people = names.people(pd.DataFrame({"gid": ["kept"]}), pd.DataFrame(
        columns=["workspace_gid", "user_gid", "is_active", "is_admin", "is_guest"]), [pd.Series(["gone"])])
    assert people.set_index("gid")["in_users_table"].to_dict() == {"gone": False, "kept": True}
    assert evidence.former_people(tmp_path / "elsewhere", "r1", AS_OF) is None


def test_pack_csvs_write_times_in_iso_8601_utc_as_precise_as_they_are(tmp_path):
    # Hand-written times: whole second, milliseconds, microseconds, a null; lists joined by ";",
    # an empty text quoted apart from a null.
    at = pd.Series(pd.to_datetime(["2026-03-04 09:00:00", "2026-03-04 09:00:00.250", "2026-03-04 09:00:00.250001",
                                   None], utc=True, format="ISO8601"))
    stays = pd.DataFrame({"ticket_gid": ["t1", "t2", "t3", "t4"], "entered_at": at,
                          "note": ["", None, "a", "b"], "tags": [["x", "y"], [], ["z"], ["w"]]})
    results = pd.DataFrame([result("tickets_assigned", "t1", "ok", "Ticket x: assigned.")])
    pack = evidence.write_evidence_pack(tmp_path, "r1", AS_OF, [], {}, results, {
        "ticket_status_history": stays, "membership_changes": pd.DataFrame(columns=["change_id", "user_gid"]),
        "users": pd.DataFrame(columns=["gid", "name", "email", "profile_url"])})
    # No ticket is named in this pack: the name beside each gid is null.
    assert (pack / "populations" / "ticket_status_history.csv").read_text().splitlines() == [
        '"ticket_gid","ticket_name","entered_at","note","tags"',
        '"t1",,"2026-03-04T09:00:00Z","","x;y"',
        '"t2",,"2026-03-04T09:00:00.250Z",,""',
        '"t3",,"2026-03-04T09:00:00.250001Z","a","z"',
        '"t4",,,"b","w"',
    ]
    assert '"r2","2026-03-10T09:00:00Z","tickets_assigned"' in (pack / "monitors" / "tickets_assigned.csv").read_text()
    manifest = json.loads((pack / "manifest.json").read_text())
    assert manifest["files"]["populations/ticket_status_history.csv"] == hashlib.sha256(
        (pack / "populations" / "ticket_status_history.csv").read_bytes()).hexdigest()


NO_POPULATIONS = {"membership_changes": pd.DataFrame(columns=["change_id", "user_gid"]),
                  "users": pd.DataFrame(columns=["gid", "name", "email", "profile_url"])}
UNMAPPED = 'Ticket "Deploy": section "Review" is mapped to no workflow state: map it'


def test_an_undecided_monitor_is_incomplete_in_the_report_summary_and_manifest(tmp_path):
    results = pd.DataFrame([
        result("workflow_consistent", "t1", "ok", "Ticket x: consistent."),
        result("workflow_consistent", "t2", "unknown", UNMAPPED, "https://app.asana.com/0/0/t2", name="Deploy",
               project="Change Management"),
        result("changes_approved", "t3", "alarm", "Ticket y: no approval.", name="y"),
    ])
    pack = evidence.write_evidence_pack(tmp_path, "r2", AS_OF, [], {}, results, NO_POPULATIONS, coverage=COMPLETE)
    manifest = json.loads((pack / "manifest.json").read_text())
    assert manifest["verdicts"]["workflow_consistent"] == "INCOMPLETE"
    assert manifest["monitors"]["workflow_consistent"]["verdict"] == "INCOMPLETE"
    assert manifest["monitors"]["workflow_consistent"]["statuses"] == {
        "alarm": 0, "error": 0, "unknown": 1, "info": 0, "ok": 1, "skip": 0}
    assert UNMAPPED in manifest["monitors"]["workflow_consistent"]["why"]  # the fix, from the row's reason
    assert manifest["verdict_meanings"]["INCOMPLETE"].startswith(
        "the data could not decide some resources; not passed")

    page = Tags()
    page.feed((pack / "report.html").read_text())
    # A table per control: workflow_consistent evidences SOC2:CC8.1 and ISO27001:2022:8.32.
    assert [attrs["class"] for tag, attrs in page.tags if tag == "span" and "incomplete" in attrs.get("class", "")
            ] == ["verdict incomplete", "verdict incomplete"]
    [row, _] = [r for r in page.rows if r and r[0] == "workflow_consistent"]
    assert row[:7] == ["workflow_consistent", "Completion and workflow section agree", "WARN", "INCOMPLETE",
                       "0", "1", "2"]  # alarms, unknown, judged
    assert UNMAPPED in row[7]
    assert ["monitor", "checks that", "severity", "verdict", "alarms", "unknown", "judged", "why"] in page.rows
    text = "".join(page.data)
    assert "INCOMPLETE = the data could not decide some resources; not passed: fix what each unknown row" in text
    # The unknown row is an exception, under its status, with its reason.
    assert "workflow_consistent: 1 exception(s)" in text
    assert "unknown (1): the data cannot decide it" in text
    assert ["Deploy", "Change Management", "", "open in Asana", UNMAPPED] in page.rows
    assert "changes_approved: 1 exception(s)\nalarm (1): non-compliant" in text

    summary = (pack / "summary.md").read_text(encoding="utf-8")
    assert "| monitor | severity | controls | result | alarm | error | unknown | info | ok | skip | why |" in summary
    assert ("| `workflow_consistent`: Completion and workflow section agree | WARN | SOC2:CC8.1, ISO27001:2022:8.32 | "
            "**INCOMPLETE** | 0 | 0 | 1 | 0 | 1 | 0 | ") in summary
    assert "INCOMPLETE = the data could not decide some resources; not passed: fix what each unknown row" in summary
    assert "unknown = the data cannot decide it (never read as ok; the reason names what is missing)" in summary
    assert ("### `workflow_consistent`: 1 exception(s)\n\n#### unknown (1): the data cannot decide it (never read "
            "as ok; the reason names what is missing)\n\n| resource | project | people | link | reason |\n"
            "|---|---|---|---|---|\n"
            "| Deploy | Change Management |  | [open in Asana](https://app.asana.com/0/0/t2) | "
            'Ticket "Deploy": section "Review" is mapped to no workflow state: map it |') in summary


def test_exceptions_list_alarms_then_errors_then_unknowns():
    results = pd.DataFrame([
        result("changes_approved", "t1", "unknown", "Ticket a: approver unknown.", name="a"),
        result("changes_approved", "t2", "ok", "Ticket b: approved.", name="b"),
        result("changes_approved", "t3", "alarm", "Ticket c: no approval.", name="c"),
        result("changes_approved", "t4", "error", "Ticket d: rule failed.", name="d"),
        result("changes_approved", "t5", "info", "Ticket e: not started.", name="e"),
    ])
    e = Evidence("r2", AS_OF, [], {}, results, {})
    assert e.exceptions("changes_approved")[["name", "status"]].values.tolist() == [
        ["c", "alarm"], ["d", "error"], ["a", "unknown"]]


def counts(run: str, day: int, *counted: tuple[str, str, int]) -> list[dict]:
    at = pd.Timestamp(f"2026-03-{day:02d} 09:00", tz="UTC")
    return [{"run_id": run, "evaluated_at": at, "monitor_id": m, "status": s, "rows": n} for m, s, n in counted]


def test_a_run_in_which_a_monitor_judged_nothing_is_a_gap_in_the_trend_not_zero(tmp_path):
    history = pd.DataFrame([
        *counts("h1", 6, ("changes_approved", "alarm", 2), ("changes_approved", "ok", 5)),
        *counts("h2", 7, ("changes_approved", "alarm", 3), ("workflow_consistent", "unknown", 4)),
        # NOT EVALUATED: every change ticket out of scope (a renamed change project, say).
        *counts("h3", 8, ("changes_approved", "skip", 7), ("workflow_consistent", "info", 1)),
        *counts("h4", 9, ("changes_approved", "ok", 4), ("workflow_consistent", "ok", 2)),
    ], columns=[*COUNTED, "rows"])
    results = pd.DataFrame([result("changes_approved", "t1", "alarm", "Ticket c: no approval."),
                            result("changes_approved", "t2", "ok", "Ticket d: approved.")])
    e = Evidence("r2", AS_OF, [], {}, results, {}, history)
    trend = e.trend
    assert [run for _, run in trend.index] == ["h1", "h2", "h3", "h4", "r2"]
    assert [None if pd.isna(v) else v for v in trend["changes_approved"]] == [2, 3, None, 0, 1]
    # Unknown rows judged (INCOMPLETE): 0 alarms; info only: not evaluated.
    assert [None if pd.isna(v) else v for v in trend["workflow_consistent"]] == [None, 0, None, 0, None]
    assert [None if pd.isna(v) else v for v in trend["tickets_synced"]] == [None] * 5

    chart = render_html(e).split("<h3>Alarms per monitor")[1].split("<h3>Time change tickets")[0]
    # One panel per monitor, each on its own scale over the same runs: x = 220 + 165 * run over five
    # runs. changes_approved peaks at 3 (its axis 0..3, 16 px an alarm), its line breaks at h3, which
    # is marked n/e; workflow_consistent's two lone 0s draw no line (axis 0..1); tickets_synced never
    # judged anything: five n/e marks and no point.
    base, lines, points, gaps = panel(chart, "changes_approved")
    assert lines == [[(220.0, base - 32), (385.0, base - 48)], [(715.0, base), (880.0, base - 16)]]
    assert points == [(220.0, base - 32), (385.0, base - 48), (715.0, base), (880.0, base - 16)]
    assert gaps == [550.0]
    base, lines, points, gaps = panel(chart, "workflow_consistent")
    assert (lines, points, gaps) == ([], [(385.0, base), (715.0, base)], [220.0, 550.0, 880.0])
    base, lines, points, gaps = panel(chart, "tickets_synced")
    assert (lines, points, gaps) == ([], [], [220.0, 385.0, 550.0, 715.0, 880.0])
    assert run_labels(chart) == ["2026-03-06 09:00 · run h1", "2026-03-07 09:00 · run h2", "2026-03-08 09:00 · run h3",
                    "2026-03-09 09:00 · run h4", "2026-03-10 09:00 · run r2"]

    pack = evidence.write_evidence_pack(tmp_path, "r2", AS_OF, [], {}, results, NO_POPULATIONS, history)
    summary = (pack / "summary.md").read_text(encoding="utf-8")
    assert ("| monitor | 2026-03-06 09:00 · run h1 | 2026-03-07 09:00 · run h2 | 2026-03-08 09:00 · run h3 | "
            "2026-03-09 09:00 · run h4 | 2026-03-10 09:00 · run r2 |") in summary
    assert "| `changes_approved` | 2 | 3 | n/e | 0 | 1 |" in summary
    assert "| `workflow_consistent` | n/e | 0 | n/e | 0 | n/e |" in summary
    assert "n/e = not evaluated: the monitor judged no resource in that run; no count, not 0 alarms." in summary


def test_alarm_counts_are_none_for_a_monitor_that_judged_nothing():
    results = pd.DataFrame([
        result("changes_approved", "t1", "alarm", "Ticket c: no approval."),
        result("changes_approved", "t2", "alarm", "Ticket d: no approval."),
        result("changes_approved", "t3", "ok", "Ticket e: approved."),
        result("tickets_assigned", "t1", "info", "Ticket c: new."),
        result("workflow_consistent", "t1", "unknown", UNMAPPED),
        result("tickets_synced", "p1", "error", "Project p: rule failed."),
        result("approval_segregation", "t1", "ok", "Ticket c: segregated."),
        result("admin_access_restricted", "u1", "skip", "not an admin"),
    ])
    assert alarm_counts(results) == {
        "tickets_synced": 0, "tickets_assigned": None, "changes_approved": 2, "approval_segregation": 0,
        "offboarding_access_removed": None, "admin_access_restricted": None, "membership_changes": None,
        "activity_after_deactivation": None, "offboarding_ticket": None, "workflow_consistent": 0,
        "ticket_sla": None, "access_review_completed": None,
    }
    assert alarm_counts(results.iloc[:0]) == dict.fromkeys(MONITORS)


# -- coverage -----------------------------------------------------------------------------------
REFUSED_402 = "listing refused: tasks: HTTP 402: Payment Required"
NO_AUDIT_LOG = "HTTP 402: the audit log needs Enterprise+ and a service account"
PROJECTS = pd.DataFrame({"gid": ["p1", "p2", "p3", "p4"], "privacy_setting": [
    "private", "private_to_team", "public_to_workspace", None]})  # two private; an unknown setting is not counted
NO_QUARANTINE = pd.DataFrame(columns=["table", "gid", "error"])


def test_coverage_is_read_from_the_syncs_records():
    # Both workspaces' audit logs read: a service account of an Enterprise organisation.
    full = report.run_coverage(["w1", "w2"], PROJECTS, NO_QUARANTINE, True, {}, None)
    assert (full.kind, full.kind_basis, full.plan) == ("service account", "it reads the audit log", "Enterprise")
    assert (full.audit_log, full.private_projects_read, full.sees_every_project, full.complete) == (
        {"w1": None, "w2": None}, 2, True, True)
    # The edge: one of the two refused (402): it still reads an audit log, yet not every workspace's.
    one = report.run_coverage(["w1", "w2"], PROJECTS, NO_QUARANTINE, True, {"w2": NO_AUDIT_LOG}, None)
    assert (one.kind, one.unread, one.sees_every_project, one.complete) == (
        "service account", {"w2": NO_AUDIT_LOG}, False, False)
    assert one.plan == "unknown (the API does not say)"
    # A 402 alone says nothing about who the token acts for, unless the connection declares it.
    bare = report.run_coverage(["w1"], PROJECTS, NO_QUARANTINE, True, {"w1": NO_AUDIT_LOG}, None)
    assert (bare.kind, bare.kind_basis) == (
        "unknown", "the audit log answered 402, which does not say who the token acts for")
    declared = report.run_coverage(["w1"], PROJECTS, NO_QUARANTINE, True, {"w1": NO_AUDIT_LOG}, "person")
    assert (declared.kind, declared.kind_basis) == ("person", "declared by the connection")
    # Never read: no answer at all, so nothing is confirmed.
    never = report.run_coverage(["w1"], PROJECTS, NO_QUARANTINE, False, {}, None)
    assert (never.kind, never.kind_basis, never.audit_log, never.sees_every_project) == (
        "unknown", "no sync has read the audit log yet, and the connection declares no kind",
        {"w1": "no sync has read the audit log yet"}, False)
    # A refused listing makes an Enterprise service account's coverage partial too.
    refused = report.run_coverage(["w1"], PROJECTS, pd.DataFrame(
        {"table": ["projects", "tasks"], "gid": ["p9", "t1"], "error": [REFUSED_402, "missing field name"]}),
        True, {}, None)
    assert refused.refused.to_dict("records") == [
        {"project_gid": "p9", "listing": "tasks", "error": "tasks: HTTP 402: Payment Required"}]
    assert (refused.sees_every_project, refused.complete) == (True, False)


PRIVATE = ("Partial coverage: the connection (person) is not confirmed to read the private projects it is not a "
           "member of, so what they hold may not be judged.")
AUDIT = 'Partial coverage: the audit log of "Acme" (w1) was not read, so '
REFUSED = ("Partial coverage: Asana refused 1 listing(s) (tasks) of 1 project(s): their rows are missing and those "
           "projects are judged unknown.")
# A person's token (OAuth) in a workspace without the audit log, one project's tasks refused.
PARTIAL = report.run_coverage(["w1"], PROJECTS, pd.DataFrame({"table": ["projects"], "gid": ["p9"],
                                                              "error": [REFUSED_402]}), True, {"w1": NO_AUDIT_LOG},
                              "person")
COVERED = pd.DataFrame([
    result("tickets_assigned", "t1", "ok", "Ticket a: assigned."),
    result("admin_access_restricted", "u1", "ok", "Ann: an approved admin."),
    result("activity_after_deactivation", "u2/w1", "unknown", "Lee: its audit log was not read."),
])
ACME = {"workspaces": pd.DataFrame({"gid": ["w1"], "name": ['"Acme"'], "is_organization": [True]}),
        "projects": pd.DataFrame({"gid": ["p9"], "name": ["Payroll"]})}


def verdict_cells(page: str) -> dict[str, str]:
    """Each monitor's verdict cell (the verdict, then any note beneath it) in its first control table."""
    parsed = Tags()
    parsed.feed(page)
    cells: dict[str, str] = {}
    for row in parsed.rows:
        if len(row) == 8 and row[0] in MONITORS:
            cells.setdefault(row[0], row[3])
    return cells


def test_partial_coverage_is_noted_beside_every_verdict_it_affects(tmp_path):
    e = Evidence("r2", AS_OF, ["w1"], {}, COVERED, ACME, coverage=PARTIAL)
    notes = e.coverage_notes
    assert notes["tickets_assigned"] == [PRIVATE, REFUSED]  # its tickets come from the projects' task listings
    assert notes["tickets_synced"] == [PRIVATE]  # no refused listing it reads
    assert notes["membership_changes"] == [
        PRIVATE, AUDIT + "a change undone between two access snapshots is not seen there."]
    assert notes["activity_after_deactivation"] == [
        AUDIT + "whether a deactivated user acted there cannot be seen."]
    # Workspace admins are listed whatever projects the token sees, and it reads no audit log: no note.
    assert notes["admin_access_restricted"] == []
    # Every monitor but the workspace-wide ones is taken to read projects, one added later too.
    assert {m for m, n in notes.items() if PRIVATE not in n} == {"admin_access_restricted",
                                                                  "activity_after_deactivation"}
    cells = verdict_cells(render_html(e))
    assert cells["tickets_assigned"] == "PASS" + PRIVATE + REFUSED  # the PASS never stands alone
    assert cells["admin_access_restricted"] == "PASS"
    assert cells["activity_after_deactivation"] == (
        "INCOMPLETE" + AUDIT + "whether a deactivated user acted there cannot be seen.")
    scope = dict(e.scope())
    assert scope["Coverage"] == (
        "PARTIAL: it may miss tickets and memberships of private projects the connection is not a member of; the "
        'audit log of "Acme" (w1); the refused listings (tasks) of 1 project(s)')
    assert scope["Account kind"] == "person (declared by the connection)"
    assert scope["Plan"] == "unknown (the API does not say)"
    assert scope["Private projects"] == (
        "2 private project(s) read; it is not confirmed to read the private projects it is not a member of (fix: "
        "connect with a service account on an Enterprise organisation)")
    assert scope["Audit log"] == f'not read in "Acme" (w1) ({NO_AUDIT_LOG})'
    assert scope["Listings refused"] == (
        '1 listing(s) of 1 project(s): project "Payroll" (p9): tasks: HTTP 402: Payment Required')
    # A project the pack cannot name is named by its gid.
    unnamed = Evidence("r2", AS_OF, ["w1"], {}, COVERED, {}, coverage=PARTIAL)
    assert dict(unnamed.scope())["Listings refused"] == (
        "1 listing(s) of 1 project(s): project p9: tasks: HTTP 402: Payment Required")

    pack = evidence.write_evidence_pack(tmp_path, "r2", AS_OF, ["w1"], {}, COVERED, {**NO_POPULATIONS, **ACME},
                                        coverage=PARTIAL)
    manifest = json.loads((pack / "manifest.json").read_text())
    assert manifest["coverage"] == {
        "complete": False, "account_kind": "person", "account_kind_basis": "declared by the connection",
        "plan": "unknown (the API does not say)", "sees_every_project": False, "private_projects_read": 2,
        "audit_log": {"w1": NO_AUDIT_LOG},
        "listings_refused": [{"project_gid": "p9", "listing": "tasks", "error": "tasks: HTTP 402: Payment Required"}],
        "may_be_missing": ["tickets and memberships of private projects the connection is not a member of",
                           'the audit log of "Acme" (w1)', "the refused listings (tasks) of 1 project(s)"],
    }
    assert manifest["monitors"]["tickets_assigned"]["coverage"] == [PRIVATE, REFUSED]
    assert manifest["monitors"]["admin_access_restricted"]["coverage"] == []
    assert manifest["verdicts"]["tickets_assigned"] == "PASS"  # the verdict itself is the monitor's
    summary = (pack / "summary.md").read_text(encoding="utf-8")
    assert (f"| **PASS** ({PRIVATE} {REFUSED}) | 0 | 0 | 0 | 0 | 1 | 0 |") in summary
    assert "| **PASS** | 0 | 0 | 0 | 0 | 1 | 0 |" in summary  # admin_access_restricted
    assert "- **Account kind**: person (declared by the connection)" in summary


def test_complete_coverage_adds_no_note_and_unrecorded_coverage_qualifies_every_verdict():
    complete = Evidence("r2", AS_OF, ["w1"], {}, COVERED, ACME, coverage=COMPLETE)
    assert all(notes == [] for notes in complete.coverage_notes.values())
    assert dict(complete.scope())["Coverage"] == (
        "complete: the connection sees every project and the audit log of every workspace")
    assert verdict_cells(render_html(complete))["tickets_assigned"] == "PASS"
    unknown = Evidence("r2", AS_OF, ["w1"], {}, COVERED, ACME)
    assert verdict_cells(render_html(unknown))["admin_access_restricted"] == (
        "PASSCoverage not recorded: what the connection could not see is unknown.")
    assert dict(unknown.scope())["Coverage"].startswith("not recorded for this run")


def test_the_scope_table_has_no_empty_header_row():
    page = render_html(Evidence("r2", AS_OF, ["w1"], {}, COVERED, ACME, coverage=COMPLETE))
    scope = page.split('<section id="scope">')[1].split("<h3>Parameters</h3>")[0]
    parsed = Tags()
    parsed.feed(scope)
    assert "th" not in [tag for tag, _ in parsed.tags]
    assert parsed.rows[0] == ["Connection", "unknown"]


# -- time in state ----------------------------------------------------------------------------------
def hours_before(n: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(hours=n)


# Two change tickets of Change Management (To Do, Review, Approved) and a ticket that is no change.
STAYS = pd.DataFrame({
    "ticket_gid": ["t1", "t1", "t1", "t2", "t2", "t3", "t2"],
    "project_gid": ["p1"] * 7,
    "section_gid": ["s1", "s2", "s3", "s1", "s2", "s2", "s4"],
    "stage": ["TODO", "IN_REVIEW", "APPROVED", "TODO", "IN_REVIEW", "IN_REVIEW", "DONE"],
    "state": ["OPEN", "IN_PROGRESS", "OPEN", "OPEN", "IN_PROGRESS", "IN_PROGRESS", "CLOSED"],
    "entered_at": [hours_before(50), hours_before(40), hours_before(10), hours_before(30), hours_before(20),
                   hours_before(90), hours_before(-5)],
    "left_at": [hours_before(40), hours_before(10), None, hours_before(20), hours_before(-2), None, None],
    "entered_by_gid": ["u1"] * 7,
})
SECTIONS = pd.DataFrame({"section_gid": ["s1", "s2", "s3", "s4"], "project_gid": ["p1"] * 4,
                         "name": ["To Do", "Review", "Approved", "Done"], "position": [0, 1, 2, 3],
                         "stage": ["TODO", "IN_REVIEW", "APPROVED", "DONE"]})
CHANGE_POPULATIONS = {
    "ticket_section_history": STAYS, "workflow_states": SECTIONS,
    "change_tickets": pd.DataFrame({"gid": ["t1", "t2"], "name": ["CHG-1", "CHG-2"]}),
    "projects": pd.DataFrame({"gid": ["p1"], "name": ["Change Management"]}),
}


def bars(chart: str) -> list[tuple[str, str]]:
    """(label, value) per bar of a bar chart."""
    texts = [text for t, a, text in elements(chart) if t == "text" and text]
    return [(texts[i - 1], text) for i, text in enumerate(texts) if text.endswith(" h")]  # a value follows its label


def test_time_in_state_is_charted_by_stage_and_by_section():
    # t1: To Do 10 h, Review 30 h, Approved 10 h so far; t2: To Do 10 h, Review 20 h up to as_of (it
    # leaves after). t3 is no change ticket; t2's DONE stay starts after as_of: neither counts.
    e = Evidence("r2", AS_OF, [], {}, COVERED, CHANGE_POPULATIONS, coverage=COMPLETE)
    assert e.time_in_stage().to_dict("index") == {
        "TODO": {"stays": 2, "median_hours": 10.0, "total_hours": 20.0},
        "IN_REVIEW": {"stays": 2, "median_hours": 25.0, "total_hours": 50.0},
        "APPROVED": {"stays": 1, "median_hours": 10.0, "total_hours": 10.0},
    }
    charts = render_html(e).split("<h3>Time change tickets spent in each workflow stage</h3>")[1]
    by_stage, by_section = charts.split("<h3>Time change tickets spent in each section</h3>")
    assert bars(by_stage) == [("TODO (2 stays, 20 h in all)", "10.0 h"), ("IN_REVIEW (2 stays, 50 h in all)", "25.0 h"),
                              ("APPROVED (1 stays, 10 h in all)", "10.0 h")]
    assert bars(by_section) == [("Change Management / To Do (TODO) (2 stays)", "10.0 h"),
                                ("Change Management / Review (IN_REVIEW) (2 stays)", "25.0 h"),
                                ("Change Management / Approved (APPROVED) (1 stays)", "10.0 h")]


# -- names in the CSVs, teams.csv -------------------------------------------------------------------
def test_every_gid_in_the_csvs_has_its_name_beside_it(tmp_path):
    populations = {
        **NO_POPULATIONS,
        "users": pd.DataFrame({"gid": ["u1", "u2"], "name": ["Ann", None], "email": ["ann@acme.example", "b@acme.example"],
                               "profile_url": [None, None]}),
        "workspaces": pd.DataFrame({"gid": ["w1"], "name": ["Acme"], "is_organization": [True]}),
        "teams": pd.DataFrame({"gid": ["tm1"], "workspace_gid": ["w1"], "name": ["Security"]}),
        "projects": pd.DataFrame({"gid": ["p1"], "name": ["Change Management"], "owner_gid": ["u1"]}),
        "tickets": pd.DataFrame({"gid": ["t1"], "name": ["CHG-1"], "assignee_gid": ["u9"], "section_gid": ["s1"],
                                 "section_name": ["To Do"], "created_at": [AS_OF]}),
        "workflow_states": SECTIONS.head(1),
        "approvals": pd.DataFrame({"approval_id": ["a1"], "ticket_gid": ["t1"], "approver_gid": ["u2"]}),
        "user_access_latest": pd.DataFrame({"user_gid": ["u1", "u1", "u1", "u2"],
                                            "resource_type": ["workspace", "team", "project", "project"],
                                            "resource_gid": ["w1", "tm1", "p1", "p7"], "via_team_gid": [None, None,
                                                                                                       "tm1", None]}),
        "project_memberships": pd.DataFrame({"gid": ["m1", "m2"], "project_gid": ["p1", "p1"],
                                             "member_gid": ["u1", "tm1"], "member_type": ["user", "team"]}),
    }
    pack = evidence.write_evidence_pack(tmp_path, "r2", AS_OF, ["w1"], {}, COVERED, populations)

    def rows(name: str) -> list[str]:
        return (pack / name).read_text().splitlines()

    assert rows("teams.csv") == ['"gid","workspace_gid","workspace_name","name"', '"tm1","w1","Acme","Security"']
    # u9 is no user the pack knows: no name; the ticket's section_name is its own.
    assert rows("populations/tickets.csv") == [
        '"gid","name","assignee_gid","assignee_name","section_gid","section_name","created_at"',
        '"t1","CHG-1","u9",,"s1","To Do","2026-03-10T09:00:00Z"']
    assert rows("populations/approvals.csv") == [
        '"approval_id","ticket_gid","ticket_name","approver_gid","approver_name"',
        '"a1","t1","CHG-1","u2","b@acme.example"']  # no name known: the email alone
    assert rows("populations/projects.csv") == [
        '"gid","name","owner_gid","owner_name"', '"p1","Change Management","u1","Ann <ann@acme.example>"']
    assert rows("populations/user_access_latest.csv") == [
        '"user_gid","user_name","resource_type","resource_gid","resource_name","via_team_gid","via_team_name"',
        '"u1","Ann <ann@acme.example>","workspace","w1","Acme",,',
        '"u1","Ann <ann@acme.example>","team","tm1","Security",,',
        '"u1","Ann <ann@acme.example>","project","p1","Change Management","tm1","Security"',
        '"u2","b@acme.example","project","p7",,,',
    ]
    assert rows("populations/project_memberships.csv") == [
        '"gid","project_gid","project_name","member_gid","member_name","member_type"',
        '"m1","p1","Change Management","u1","Ann <ann@acme.example>","user"',
        '"m2","p1","Change Management","tm1","Security","team"',
    ]
    manifest = json.loads((pack / "manifest.json").read_text())
    assert manifest["files"]["teams.csv"] == hashlib.sha256((pack / "teams.csv").read_bytes()).hexdigest()
    assert manifest["row_counts"]["teams.csv"] == 1


# -- the demo's links ----------------------------------------------------------------------------------
def test_the_demos_links_are_marked_as_demo_links(tmp_path):
    results = pd.DataFrame([result("changes_approved", "t1", "alarm", "Ticket y: no approval.",
                                   "https://app.asana.com/0/0/t1", name="y")])
    demo = {"source": {"base_url": "http://127.0.0.1:8000", "demo": True}}
    parsed = Page()
    parsed.feed(render_html(Evidence("r2", AS_OF, [], demo, results, {}, coverage=COMPLETE)))
    assert parsed.links == [("https://app.asana.com/0/0/t1", "demo link (no Asana page)")]
    assert "Demo data from the simulator." in "".join(parsed.data)
    real = Page()
    real.feed(render_html(Evidence("r2", AS_OF, [], {"source": {"base_url": "https://app.asana.com/api/1.0",
                                                                 "demo": False}}, results, {}, coverage=COMPLETE)))
    assert real.links == [("https://app.asana.com/0/0/t1", "open in Asana")]
    assert "Demo data" not in "".join(real.data)
    pack = evidence.write_evidence_pack(tmp_path, "r2", AS_OF, [], demo, results, NO_POPULATIONS, coverage=COMPLETE)
    summary = (pack / "summary.md").read_text(encoding="utf-8")
    assert "[demo link (no Asana page)](https://app.asana.com/0/0/t1)" in summary and "[open in Asana]" not in summary


class Page(Tags):
    """Tags, and each link as (href, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        super().handle_starttag(tag, attrs)
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        super().handle_data(data)
        if self._href is not None:
            self.links.append((self._href, data))
            self._href = None


def test_runs_of_the_same_minute_are_told_apart_by_their_ids():
    at = pd.Timestamp("2026-03-08 09:00:10", tz="UTC")
    runs = pd.MultiIndex.from_tuples([(at, "1a2b3c4d-5e6f"), (at + pd.Timedelta(seconds=30), "9f8e7d6c-5b4a")])
    assert report.run_labels(runs) == ["2026-03-08 09:00 · run 1a2b3c4d", "2026-03-08 09:00 · run 9f8e7d6c"]
    # Eight characters in common: one more for every run.
    runs = pd.MultiIndex.from_tuples([(at, "aaaaaaaa1bc"), (at, "aaaaaaaa2bc"), (at, "b")])
    assert report.run_labels(runs) == ["2026-03-08 09:00 · run aaaaaaaa1", "2026-03-08 09:00 · run aaaaaaaa2",
                                       "2026-03-08 09:00 · run b"]


# -- names beside lists of gids ----------------------------------------------------------------------
LIST_NAMES = evidence.gid_names({
    "users": pd.DataFrame({"gid": ["u1"], "name": ["Ann"], "email": ["ann@acme.example"]}),
    "projects": pd.DataFrame({"gid": ["p1", "p2"], "name": ["Change Management", "Payroll"]}),
    "tickets": pd.DataFrame({"gid": ["t1"], "name": ["CHG-1"]}),
})


def test_a_list_of_gids_has_the_list_of_their_names_beside_it_in_the_same_order(tmp_path):
    tickets = pd.DataFrame({
        "gid": ["t1", "t2", "t3", "t4", "t5"],
        "collection_gids": [
            ["p2", "p1"],  # both projects known: their names, in the list's order (not sorted)
            ["p9", "p1"],  # p9 is no project the pack knows: null in its place, p1 still named
            [],  # in no project: an empty list of names
            None,  # no list: no names
            ["p1", "p1"],  # a repeated gid is named each time
        ],
        "people_gids": [["u1"], [], None, ["u7"], []],  # people by their label; u7 unknown
        "ticket_gids": [["t1"], [], [], [], []],  # <kind>_gids of a gid kind: tasks
        "tag_gids": [["g1"], [], [], [], []],  # no kind: no names column
    })
    named = evidence.with_names(tickets, LIST_NAMES)
    assert named.columns.tolist() == ["gid", "collection_gids", "collection_names", "people_gids", "people_names",
                                      "ticket_gids", "ticket_names", "tag_gids"]
    assert named["collection_names"].tolist() == [
        ["Payroll", "Change Management"], [None, "Change Management"], [], pd.NA, ["Change Management"] * 2]
    assert named["people_names"].tolist() == [["Ann <ann@acme.example>"], [], pd.NA, [None], []]
    assert named["ticket_names"].tolist() == [["CHG-1"], [], [], [], []]
    # The CSV joins the names by ";" as it joins the gids.
    evidence.csv_file(named.loc[[0, 2], ["gid", "collection_gids", "collection_names"]], tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines() == [
        '"gid","collection_gids","collection_names"', '"t1","p2;p1","Payroll;Change Management"', '"t3","",""']


def test_a_names_list_the_frame_has_already_is_kept_and_a_table_read_back_is_named_too():
    # people_names is the frame's own (a custom field's value as Asana named it): not replaced.
    frame = pd.DataFrame({"people_gids": [["u1"]], "people_names": [["Ann A."]]})
    assert evidence.with_names(frame, LIST_NAMES).to_dict("list") == {"people_gids": [["u1"]],
                                                                      "people_names": [["Ann A."]]}
    # As the warehouse gives a list column back (Arrow lists read into pandas).
    import pyarrow as pa

    read = pa.table({"collection_gids": pa.array([["p1"], None], pa.list_(pa.string()))}).to_pandas()
    assert evidence.with_names(read, LIST_NAMES)["collection_names"].tolist() == [["Change Management"], pd.NA]
    # No row at all: the column is there, empty.
    empty = evidence.with_names(pd.DataFrame({"collection_gids": pd.Series([], dtype=object)}), LIST_NAMES)
    assert empty.columns.tolist() == ["collection_gids", "collection_names"] and empty.empty


def test_a_list_joins_its_known_items_around_an_unknown_one_and_a_null_list_stays_null():
    import pyarrow as pa

    from asana_assets.lib.compliance.evidence import joined
    column = pa.chunked_array([pa.array([["Change Management", None, "Ops"], None, [], [None]])])
    assert joined(column).to_pylist() == ["Change Management;;Ops", None, "", ""]
    sliced = pa.chunked_array([pa.array([["a"], ["b", None], ["c"]]).slice(1, 2)])  # offsets not from zero
    assert joined(sliced).to_pylist() == ["b;", "c"]


def test_an_evidence_csv_written_in_slices_has_one_header_and_the_whole_frames_types(tmp_path, monkeypatch):
    """Slices of 2 rows: the header is written once, a column null throughout the first slice is
    still text in the next (quoted, an empty text apart from a null), and the digest is the file's."""
    import hashlib

    monkeypatch.setattr(evidence, "CSV_ROWS", 2)
    frame = pd.DataFrame({
        "gid": ["t1", "t2", "t3", "t4", "t5"],
        "note": [None, None, "x", "", None],
        "gids": [["a", None], None, [], ["b"], ["c", "d"]],
        "at": pd.to_datetime(["2026-03-04T09:00:00Z", None, "2026-03-04T09:00:00.25Z", None, None], utc=True,
                             format="ISO8601"),
    })
    rows, digest = evidence.csv_file(frame, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines() == [
        '"gid","note","gids","at"',
        '"t1",,"a;","2026-03-04T09:00:00Z"',  # a null item is an empty place
        '"t2",,,',  # nulls: nothing
        '"t3","x","","2026-03-04T09:00:00.250Z"',  # an empty list: an empty text
        '"t4","","b",',
        '"t5",,"c;d",',
    ]
    assert rows == 5 and digest == hashlib.sha256((tmp_path / "t.csv").read_bytes()).hexdigest()
