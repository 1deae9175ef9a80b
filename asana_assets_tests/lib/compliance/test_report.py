"""The evidence report and pack on small hand-built results: hostile Asana text stays text,
links are only http(s), an empty run still gets its charts and sign-off, the people directory
names users the sync no longer lists from an earlier pack, an INCOMPLETE monitor and its unknown
rows show wherever verdicts and exceptions do, and a run in which a monitor judged nothing is a
gap in the trend, not 0 alarms."""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser

import pandas as pd

from asana_assets.lib.compliance import evidence
from asana_assets.lib.compliance.monitors import MONITORS
from asana_assets.lib.compliance.names import Directory
from asana_assets.lib.compliance.report import COUNTED, Evidence, alarm_counts, render_html

AS_OF = pd.Timestamp("2026-03-10 09:00", tz="UTC")
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
    assert [tag for tag, _ in parsed.tags].count("svg") == 2
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
    assert (pack / "populations" / "ticket_status_history.csv").read_text().splitlines() == [
        '"ticket_gid","entered_at","note","tags"',
        '"t1","2026-03-04T09:00:00Z","","x;y"',
        '"t2","2026-03-04T09:00:00.250Z",,""',
        '"t3","2026-03-04T09:00:00.250001Z","a","z"',
        '"t4",,"b","w"',
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
    pack = evidence.write_evidence_pack(tmp_path, "r2", AS_OF, [], {}, results, NO_POPULATIONS)
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

    page = render_html(e)
    chart = page[page.index("<h3>Alarms per monitor"):page.index("<h3>Time change tickets")]
    parsed = Tags()
    parsed.feed(chart)
    # x: 130 + 135 * run over five runs; y: 260 - 80 * alarms on the axis 0..3. changes_approved's
    # line breaks at h3; workflow_consistent's two lone points draw no line.
    assert [attrs["points"] for tag, attrs in parsed.tags if tag == "polyline"] == [
        "130.0,100.0 265.0,20.0", "535.0,260.0 670.0,180.0"]
    assert [(attrs["cx"], attrs["cy"]) for tag, attrs in parsed.tags if tag == "circle"] == [
        ("130.0", "100.0"), ("265.0", "20.0"), ("535.0", "260.0"), ("670.0", "180.0"),  # changes_approved
        ("265.0", "260.0"), ("535.0", "260.0")]  # workflow_consistent

    pack = evidence.write_evidence_pack(tmp_path, "r2", AS_OF, [], {}, results, NO_POPULATIONS, history)
    summary = (pack / "summary.md").read_text(encoding="utf-8")
    assert "| monitor | 2026-03-06 09:00 | 2026-03-07 09:00 | 2026-03-08 09:00 | 2026-03-09 09:00 | " \
           "2026-03-10 09:00 |" in summary
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
    }
    assert alarm_counts(results.iloc[:0]) == dict.fromkeys(MONITORS)
