"""The evidence report and pack on small hand-built results: hostile Asana text stays text,
links are only http(s), an empty run still gets its charts and sign-off, and the people
directory names users the sync no longer lists from an earlier pack."""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser

import pandas as pd

from asana_assets.lib.compliance import evidence
from asana_assets.lib.compliance.monitors import MONITORS
from asana_assets.lib.compliance.names import Directory
from asana_assets.lib.compliance.report import Evidence, render_html

AS_OF = pd.Timestamp("2026-03-10 09:00", tz="UTC")
HOSTILE = '<img src=x onerror="alert(1)"> & <script>alert(2)</script>'


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.data: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.data.append(data)


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
