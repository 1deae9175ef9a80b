"""What a person sees, in a real browser: the Dagster UI on the demo's instance after a sync,
and the run's evidence report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from asana_assets.simulator import generate_world
from asana_assets_tests.support import REPO, free_port

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo synced on an instance of its own, and the UI serving it."""
    root = tmp_path_factory.mktemp("ui")
    (root / "home").mkdir()
    (root / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASANA_", "DAGSTER_"))}
    env |= {"DAGSTER_HOME": str(root / "home"), "ASANA_WAREHOUSE_DIR": str(root / "wh"), "ASANA_DEMO": "1"}
    synced = subprocess.run([str(BIN / "asana-connections"), "sync"], env=env, capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert synced.returncode == 0, synced.stderr[-3000:]
    port = free_port()
    web = subprocess.Popen([str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                           env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        state = json.loads((root / "wh" / "state" / "demo.json").read_text())
        # The demo's own world.
        world = generate_world(seed=1, tasks=400, now=datetime.fromisoformat(state["now"]), enterprise=True)
        pack = max((root / "wh" / "evidence").iterdir())
        yield {"url": url, "world": world, "pack": pack}
    finally:
        web.terminate()
        web.wait(timeout=60)


def open_page(page, url: str) -> None:
    page.goto(url)
    skip = page.get_by_role("button", name="Skip")  # the UI's first-visit invitation
    try:
        skip.click(timeout=5000)
    except Exception:  # noqa: BLE001 - not shown on every visit
        pass


def test_the_catalog_lists_the_asset_groups(demo, page):
    open_page(page, f"{demo['url']}/assets")
    for group in ("asana_raw", "asana_compliance"):
        page.get_by_text(group).first.wait_for(timeout=60_000)


def test_the_freshness_check_is_evaluated(demo, page):
    open_page(page, f"{demo['url']}/assets/asana/workspaces?view=checks")
    row = page.get_by_text("connections_fresh").first
    row.wait_for(timeout=60_000)
    row.click()
    page.get_by_text("Evaluation result").wait_for(timeout=30_000)
    body = page.inner_text("body")
    assert "Not evaluated" not in body.split("connections_fresh", 1)[1][:200]


def test_a_failing_monitor_check_shows_a_named_finding(demo, page):
    planted = demo["world"].planted["changes_approved"]  # the simulator's record of what it planted
    names = {t["gid"]: t["name"] for t in demo["world"].ground_truth()["tasks"] if t["gid"] in planted}
    open_page(page, f"{demo['url']}/assets/asana/approvals?view=checks")
    page.get_by_text("changes_approved").first.click(timeout=60_000)
    page.get_by_text("Failed").first.wait_for(timeout=30_000)
    page.get_by_text("[Show Markdown]").first.click(timeout=30_000)
    shown = page.get_by_role("dialog").inner_text(timeout=30_000)
    assert any(name in shown for name in names.values()), shown[:2000]


def test_the_evidence_report_states_scope_exceptions_and_charts(demo, page):
    report = demo["pack"] / "report.html"
    page.goto(report.as_uri())
    text = page.inner_text("body")
    workspace = demo["world"].ground_truth()["workspaces"][0]["name"]
    assert "Scope" in text and workspace in text and "(the demo simulator)" in text
    planted = demo["world"].planted["changes_approved"]
    names = [t["name"] for t in demo["world"].ground_truth()["tasks"] if t["gid"] in planted]
    assert any(name in text for name in names)
    links = page.eval_on_selector_all("a[href^='https://app.asana.com/']", "els => els.length")
    assert links > 0
    charts = page.eval_on_selector_all(
        "svg", "els => els.map(e => { const r = e.getBoundingClientRect(); return r.width * r.height; })")
    assert len(charts) >= 2 and all(area > 0 for area in charts[:2])
    assert "Sign-off" in text or "sign-off" in text.lower()
