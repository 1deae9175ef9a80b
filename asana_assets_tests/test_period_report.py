"""The period report end to end, on the demo: ``asana-connections evidence`` after a demo sync,
for the last 90 days and for a period with no run and no change; the same seed draws the same
sample; the report read in a real browser (the distribution's Chromium) and its PDF read with
pdftotext (poppler-utils)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asana_assets_tests.support import REPO

BIN = Path(sys.executable).parent
TODAY = datetime.now(UTC).date()
LAST_90 = (str(TODAY - timedelta(days=89)), str(TODAY))
EMPTY = ("2020-01-01", "2020-03-31")  # years before the demo's first run and its tickets


def evidence(env, first, last, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "asana-connections"), "evidence", "--from", first, "--to", last, *extra],
                          env=env, capture_output=True, text=True, timeout=300, cwd=REPO, check=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo synced once; the reports are written into its warehouse."""
    root = tmp_path_factory.mktemp("period")
    (root / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASANA_", "DAGSTER_"))}
    env |= {"DAGSTER_HOME": str(root / "home"), "ASANA_WAREHOUSE_DIR": str(root / "wh"), "ASANA_DEMO": "1"}
    synced = subprocess.run([str(BIN / "asana-connections"), "sync"], env=env, capture_output=True, text=True,
                            timeout=600, cwd=REPO, check=False)
    assert synced.returncode == 0, synced.stderr[-3000:]
    return env, root / "wh" / "evidence"


@pytest.fixture(scope="module")
def last_90(demo):
    env, packs = demo
    done = evidence(env, *LAST_90)
    assert done.returncode == 0, done.stderr[-3000:]
    return packs / f"period_{LAST_90[0]}_{LAST_90[1]}", done.stdout


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_the_last_90_days_say_what_they_cover(last_90):
    folder, stdout = last_90
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["period"] == {"from": LAST_90[0], "to": LAST_90[1], "start": f"{LAST_90[0]}T00:00:00+00:00",
                                  "end_exclusive": f"{TODAY + timedelta(days=1)}T00:00:00+00:00"}
    # the demo's one run was made today: the period starts before it, so no control passes unqualified
    assert len(manifest["evidence_kept"]["runs_in_period"]) == 1
    assert "PASS" not in {m["verdict"] for m in manifest["monitors"].values()}
    assert "before the first monitor run kept" in stdout
    assert manifest["coverage"]["complete"] is True  # the demo's service account reads everything
    assert manifest["report"] == {"html": "report.html", "pdf": "report.pdf", "note": None}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert {"report.html", "report.pdf", "sample.csv", "populations/changes.csv"} <= set(manifest["files"])
    changes = {r["gid"] for r in rows(folder / "populations" / "changes.csv")}
    sampled = [r["id"] for r in rows(folder / "sample.csv") if r["population"] == "changes"]
    assert changes and set(sampled) <= changes and len(sampled) == len(set(sampled))
    assert sampled == manifest["sample"]["items"]["changes"] and manifest["sample"]["seed"] == 1
    # the demo's planted campaign (due three days ago) with its five items: a revoke still held, an
    # item left undecided past the due day and an owner's self-review alarm; an approval by a second
    # reviewer and a revoke carried out are ok
    campaigns = (folder / "report.html").read_text().split('<section id="campaigns">')[1].split("</section>")[0]
    assert campaigns.count("<td>alarm</td>") == 3 and campaigns.count("<td>ok</td>") == 2


@pytest.mark.slow
def test_the_same_seed_draws_the_same_sample(demo, last_90):
    env, _ = demo
    folder, _ = last_90
    first = (folder / "sample.csv").read_bytes()
    again = evidence(env, *LAST_90, "--seed", "1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (folder / "sample.csv").read_bytes() == first
    other = evidence(env, *LAST_90, "--seed", "2", "--sample-sizes", "1:1,*:3")  # 3 of the changes
    assert other.returncode == 0, other.stderr[-3000:]
    assert len([r for r in rows(folder / "sample.csv") if r["population"] == "changes"]) == 3
    restored = evidence(env, *LAST_90)  # the default seed again, for the tests that read the folder
    assert restored.returncode == 0 and (folder / "sample.csv").read_bytes() == first


@pytest.mark.slow
def test_a_period_with_no_run_and_no_change_evaluates_nothing(demo):
    env, packs = demo
    done = evidence(env, *EMPTY)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = packs / f"period_{EMPTY[0]}_{EMPTY[1]}"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {m["verdict"] for m in manifest["monitors"].values()} == {"NOT EVALUATED"}
    assert manifest["populations"] == {"changes": 0, "access_changes": 0, "leavers": 0, "changes_start_unknown": 0}
    assert manifest["sample"]["items"] == {"changes": [], "access_changes": [], "leavers": []}
    text = pdf_text(folder / "report.pdf")
    assert "No change started implementation in the period." in text
    flat = " ".join(text.split())
    assert "none, so no control is evaluated" in flat and "before the first monitor run kept" in flat


@pytest.mark.slow
def test_a_bad_period_is_refused_with_its_reason(demo):
    env, _ = demo
    done = evidence(env, "2026-06-30", "2026-01-01")
    assert done.returncode == 1 and "ends (2026-01-01) before it starts (2026-06-30)" in done.stderr


def pdf_text(path: Path, page: int | None = None) -> str:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext is missing (apt-get install poppler-utils)")
    pages = ["-f", str(page), "-l", str(page)] if page else []
    return subprocess.run(["pdftotext", "-layout", *pages, str(path), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def page_count(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True, timeout=60).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


@pytest.mark.slow
def test_the_pdf_gives_each_sampled_change_a_page_of_its_own(last_90):
    folder, _ = last_90
    sampled = [r for r in rows(folder / "populations" / "changes.csv")
               if r["gid"] in {s["id"] for s in rows(folder / "sample.csv") if s["population"] == "changes"}]
    pdf = folder / "report.pdf"
    pages = page_count(pdf)
    starts = [n for n in range(1, pages + 1) if pdf_text(pdf, n).lstrip().startswith("Sampled change:")]
    # scope to sample on the first pages, then one page (or more) per sampled change, then the sign-off's
    assert len(starts) == len(sampled) and pages >= len(sampled) + 2
    assert pdf_text(pdf, pages).lstrip().startswith("Sign-off") or "Sign-off" in pdf_text(pdf, pages)
    whole = pdf_text(pdf)
    for change in sampled:
        assert f"Sampled change: {change['name']}" in " ".join(whole.split())
    assert "Scope and coverage" in pdf_text(pdf, 1) and "file://" not in whole  # no header or footer


def test_the_scope_and_a_sampled_change_in_a_browser(last_90, page):
    folder, _ = last_90
    page.goto((folder / "report.html").as_uri())
    scope = page.locator("#scope")
    for label in ("Connection", "Workspaces", "Period", "Monitor runs in the period", "Evidence kept", "Coverage",
                  "Account kind", "Plan", "Private projects", "Audit log", "What may be missing", "Sample"):
        assert scope.locator("th, td b", has_text=label).first.is_visible(), label
    assert "before the first monitor run kept" in scope.inner_text()
    assert page.locator("#seed").inner_text() == "1"
    change = page.locator("section.change[id^=change-]").first
    text = change.inner_text()
    for fact in ("Ticket", "Type", "Projects", "Approval", "Implementation start", "Completed",
                 "Timeline of sections", "moved there by", "Approval decisions", "changes_approved in the period"):
        assert fact in text, fact
    assert change.evaluate("e => getComputedStyle(e).breakBefore") == "page"
