"""A long crawl says how it is going: what it read, its pace, and the time left when the last
full crawl's size is known."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from asana_assets.lib.asana import crawl as crawl_module
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.client import run as run_async
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def crawl_with(sim, expected):
    async def go():
        async with AsanaClient(sim.base_url, DEMO_TOKEN, requests_per_minute=10**6) as client:
            return await crawl_module.crawl(client, track_events=True, expected_requests=expected)

    return run_async(go())


def test_a_crawl_reports_its_progress_and_the_time_left(monkeypatch, caplog):
    monkeypatch.setattr(crawl_module, "PROGRESS_SECONDS", 0.3)
    world = generate_world(seed=41, tasks=120, now=NOW)
    with Simulator(world, SimulatorConfig(requests_per_minute=10**6, latency_ms=60)) as sim:
        with caplog.at_level(logging.INFO, logger="asana_assets"):
            result = crawl_with(sim, expected=10**5)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Crawling:")]
    assert lines, "no progress line in a crawl of several seconds"
    shape = re.compile(r"Crawling: \d+ tasks and \d+ stories read, \d+ requests in \d+ s \(\d+\.\d/s\), about \d+ s left")
    assert all(shape.fullmatch(line) for line in lines), lines
    assert result.client_stats["requests"] > 0


def test_a_short_crawl_prints_nothing_and_no_guess_without_a_size(monkeypatch, caplog):
    world = generate_world(seed=41, tasks=40, now=NOW)
    with Simulator(world, SimulatorConfig(requests_per_minute=10**6)) as sim:
        with caplog.at_level(logging.INFO, logger="asana_assets"):
            crawl_with(sim, expected=None)  # done well within PROGRESS_SECONDS
    assert not [r for r in caplog.records if r.getMessage().startswith("Crawling:")]
    monkeypatch.setattr(crawl_module, "PROGRESS_SECONDS", 0.2)
    with Simulator(world, SimulatorConfig(requests_per_minute=10**6, latency_ms=60)) as sim:
        with caplog.at_level(logging.INFO, logger="asana_assets"):
            crawl_with(sim, expected=None)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Crawling:")]
    assert lines and not any("left" in line for line in lines)
