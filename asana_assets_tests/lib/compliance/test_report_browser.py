"""The evidence report as a reader sees it, in a real browser (the distribution's Chromium): each
monitor's alarms in a chart of its own, runs of the same minute told apart, NOT EVALUATED a
marked gap, partial coverage printed beneath the PASS it qualifies, time in review and approval
shown, a Scope table without an empty header row, and the demo's links marked. The pack is
written from hand-built results; every expected value is written here."""

from __future__ import annotations

from itertools import pairwise

import pandas as pd
import pytest

from asana_assets.lib.compliance import evidence
from asana_assets.lib.compliance.monitors import MONITORS
from asana_assets.lib.compliance.report import COUNTED, RunCoverage

AS_OF = pd.Timestamp("2026-03-10 09:00", tz="UTC")
RUN = "cccccccc-0003"


def row(monitor_id: str, gid: str, status: str, reason: str, url=None, name=None) -> dict:
    return {"run_id": RUN, "evaluated_at": AS_OF, "monitor_id": monitor_id, "resource_type": "ticket",
            "resource_gid": gid, "status": status, "reason": reason, "severity": "ERROR", "control_refs": [],
            "resource_url": url, "name": name, "project": "Change Management", "people": None}


def counted(run: str, at: str, *rows: tuple[str, str, int]) -> list[dict]:
    return [{"run_id": run, "evaluated_at": pd.Timestamp(at, tz="UTC"), "monitor_id": m, "status": s, "rows": n}
            for m, s, n in rows]


def hours_before(n: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(hours=n)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    results = pd.DataFrame([
        row("changes_approved", "t1", "alarm", 'Ticket "CHG-1": no approval.', "https://app.asana.com/0/0/t1", "CHG-1"),
        row("changes_approved", "t2", "ok", 'Ticket "CHG-2": approved.'),
        row("tickets_assigned", "t1", "alarm", 'Ticket "CHG-1": unassigned.', "https://app.asana.com/0/0/t1", "CHG-1"),
        row("tickets_assigned", "t2", "ok", 'Ticket "CHG-2": assigned.'),
        row("tickets_synced", "p1", "ok", 'Project "Change Management": synced.'),
    ])
    # Two runs in the same minute whose ids share their first eight characters; changes_approved
    # and tickets_assigned count the same alarms in every run; the second run judged no change.
    history = pd.DataFrame([
        *counted("aaaaaaaa-0001", "2026-03-09 09:00:10", ("changes_approved", "alarm", 2),
                 ("tickets_assigned", "alarm", 2)),
        *counted("aaaaaaaa-0002", "2026-03-09 09:00:40", ("changes_approved", "skip", 3),
                 ("tickets_assigned", "alarm", 3)),
    ], columns=[*COUNTED, "rows"])
    stays = pd.DataFrame({
        "ticket_gid": ["t1", "t1", "t1"], "project_gid": ["p1"] * 3, "section_gid": ["s1", "s2", "s3"],
        "stage": ["TODO", "IN_REVIEW", "APPROVED"], "state": ["OPEN", "IN_PROGRESS", "OPEN"],
        "entered_at": [hours_before(50), hours_before(40), hours_before(10)],
        "left_at": [hours_before(40), hours_before(10), None], "entered_by_gid": ["u1"] * 3,
    })
    populations = {
        "users": pd.DataFrame({"gid": ["u1"], "name": ["Ann"], "email": ["ann@acme.example"],
                               "profile_url": ["https://app.asana.com/0/profile/u1"]}),
        "workspaces": pd.DataFrame({"gid": ["w1"], "name": ["Acme"], "is_organization": [True]}),
        "workspace_memberships": pd.DataFrame({"workspace_gid": ["w1"], "user_gid": ["u1"], "is_active": [True],
                                               "is_admin": [True], "is_guest": [False]}),
        "projects": pd.DataFrame({"gid": ["p1"], "name": ["Change Management"]}),
        "workflow_states": pd.DataFrame({"section_gid": ["s1", "s2", "s3"], "project_gid": ["p1"] * 3,
                                         "name": ["To Do", "Review", "Approved"], "position": [0, 1, 2],
                                         "stage": ["TODO", "IN_REVIEW", "APPROVED"]}),
        "change_tickets": pd.DataFrame({"gid": ["t1", "t2"], "name": ["CHG-1", "CHG-2"]}),
        "ticket_section_history": stays,
        "membership_changes": pd.DataFrame(columns=["change_id", "user_gid"]),
    }
    # A person's token on a plan without the audit log.
    coverage = RunCoverage("person", "declared by the connection",
                           {"w1": "HTTP 402: the audit log needs Enterprise+ and a service account"}, 0,
                           pd.DataFrame(columns=["project_gid", "listing", "error"]))
    pack = evidence.write_evidence_pack(
        tmp_path_factory.mktemp("pack"), RUN, AS_OF, ["w1"], {"source": {"base_url": "http://127.0.0.1:8000",
                                                                         "demo": True}},
        results, populations, history, coverage=coverage)
    return pack / evidence.REPORT


def boxes(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(selector, """els => els.map(e => {
        const r = e.getBoundingClientRect();
        return {top: r.top + window.scrollY, bottom: r.bottom + window.scrollY, left: r.left, right: r.right,
                text: e.textContent};
    })""")


def test_each_monitor_has_a_chart_of_its_own_over_runs_told_apart(report, page):
    page.goto(report.as_uri())
    panels = boxes(page, "#charts g.monitor")
    assert len(panels) == len(MONITORS)
    assert all(p["bottom"] > p["top"] for p in panels)
    # Stacked, none over another: equal counts no longer draw one line over the other.
    assert all(upper["bottom"] <= lower["top"] for upper, lower in pairwise(panels))
    [approved] = boxes(page, '#charts g[data-monitor="changes_approved"] circle:first-of-type')
    [assigned] = boxes(page, '#charts g[data-monitor="tickets_assigned"] circle:first-of-type')
    assert assigned["bottom"] <= approved["top"]  # the same 2 alarms in the first run, each in its own chart
    runs = boxes(page, "#charts text.run")
    # The ids are told apart only by their last character: named in full.
    assert [r["text"] for r in runs] == ["2026-03-09 09:00 · run aaaaaaaa-0001", "2026-03-09 09:00 · run aaaaaaaa-0002",
                                         "2026-03-10 09:00 · run cccccccc-0003"]
    assert all(r["right"] > r["left"] for r in runs)
    # changes_approved judged nothing in the second run: a visible n/e there, not a point at 0.
    gaps = boxes(page, '#charts g[data-monitor="changes_approved"] text.gap')
    assert len(gaps) == 1 and gaps[0]["right"] > gaps[0]["left"] and gaps[0]["text"].startswith("n/e")
    assert len(boxes(page, '#charts g[data-monitor="changes_approved"] circle')) == 2


def test_partial_coverage_is_printed_beneath_the_pass_it_qualifies(report, page):
    page.goto(report.as_uri())
    cell = page.locator("#controls tr", has=page.locator("code", has_text="tickets_synced")).first.locator("td").nth(3)
    verdict, caveat = cell.locator(".verdict"), cell.locator(".caveat")
    assert verdict.inner_text() == "PASS" and caveat.is_visible()
    assert caveat.inner_text() == ("Partial coverage: the connection (person) is not confirmed to read the private "
                                   "projects it is not a member of, so what they hold may not be judged.")
    assert caveat.bounding_box()["y"] >= verdict.bounding_box()["y"] + verdict.bounding_box()["height"]
    scope = page.locator("#scope table").first
    assert scope.locator("th").count() == 0  # no empty header row
    assert scope.locator("tr").first.inner_text().split("\t")[0] == "Connection"
    assert scope.locator("tr", has_text="Account kind").inner_text().endswith("person (declared by the connection)")


def test_time_in_review_and_approval_is_visible(report, page):
    page.goto(report.as_uri())
    labels = [b["text"] for b in boxes(page, "#charts svg text") if b["right"] > b["left"]]
    # CHG-1: To Do 10 h, Review 30 h, Approved 10 h up to as_of.
    for label in ("TODO (1 stays, 10 h in all)", "IN_REVIEW (1 stays, 30 h in all)",
                  "APPROVED (1 stays, 10 h in all)", "Change Management / Review (IN_REVIEW) (1 stays)",
                  "Change Management / Approved (APPROVED) (1 stays)"):
        assert label in labels
    assert labels.count("30.0 h") == 2  # the Review stay, by stage and by section


def test_the_demos_links_are_marked(report, page):
    page.goto(report.as_uri())
    assert page.locator("#demo").is_visible()
    links = page.eval_on_selector_all("a[href^='https://app.asana.com/']", "els => els.map(e => e.textContent)")
    assert links == ["demo link (no Asana page)", "demo link (no Asana page)", "profile (demo link (no Asana page))"]
