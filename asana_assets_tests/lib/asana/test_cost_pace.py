"""The client's pace under Asana's cost limit, learned from 429s (pacing.CostPace), on a clock the
test moves; and a crawl through the simulator's cost model."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from asana_assets.lib.asana import pacing
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.crawl import crawl
from asana_assets.lib.asana.pacing import CostPace, Ticket
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world, limits
from asana_assets_tests.support.truth import assert_matches_truth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(pacing, "monotonic", clock)
    return clock


def answers(pace: CostPace, clock: Clock, costs: list[int], every: float) -> None:
    """Answers of these costs, one each `every` seconds, to requests sent just before."""
    for cost in costs:
        clock.now += every
        pace.answered(Ticket(clock.now, 0.0), cost, None)


def test_nothing_is_paced_by_cost_before_a_429(clock):
    pace = CostPace(concurrency=50, requests_per_minute=60)
    answers(pace, clock, [1000] * 100, every=0.01)
    ticket = asyncio.run(pace.enter())
    assert pace.per_minute is None and ticket == Ticket(clock.now, 0.0)


def test_a_429_cuts_to_a_share_of_the_cost_reached_and_halves_reads_in_flight(clock):
    pace = CostPace(concurrency=50, requests_per_minute=60)
    answers(pace, clock, [100] * 21, every=1.0)  # 2,100 objects, 20 s from the first to the last: 6,300 a minute
    assert pace.answered(Ticket(clock.now, 100.0), 1, retry_after=3.0)
    assert pace.per_minute == pytest.approx(0.7 * 6300)
    assert pace.limiter.limit == 25


def test_a_429_early_in_a_run_reads_the_cost_over_at_least_a_step(clock):
    pace = CostPace(concurrency=50, requests_per_minute=60)
    answers(pace, clock, [100] * 5, every=1.0)  # 500 objects in 4 s: read over 15 s, 2,000 a minute
    pace.answered(Ticket(clock.now, 0.0), 1, retry_after=1.0)
    assert pace.per_minute == pytest.approx(0.7 * 2000)


def test_429s_to_requests_sent_before_the_cut_cut_nothing_more(clock):
    pace = CostPace(concurrency=50, requests_per_minute=60)
    answers(pace, clock, [100] * 21, every=1.0)  # cut to 4,410 a minute, as above
    sent_before = Ticket(clock.now - 0.5, 100.0)
    assert pace.answered(Ticket(clock.now, 100.0), 1, retry_after=3.0)
    assert not pace.answered(sent_before, 1, retry_after=3.0)
    assert pace.per_minute == pytest.approx(4410) and pace.limiter.limit == 25
    clock.now += 1
    assert pace.answered(Ticket(clock.now, 100.0), 1, retry_after=3.0)  # sent after the cut
    assert pace.per_minute == pytest.approx(0.7 * 4410) and pace.limiter.limit == 12


def test_a_cut_never_goes_below_a_fifth_of_the_request_pace_at_the_mean_cost(clock):
    pace = CostPace(concurrency=50, requests_per_minute=1500)
    answers(pace, clock, [20], every=1.0)  # 80 a minute reached; mean cost 20: the floor is 300 answers of 20
    pace.answered(Ticket(clock.now, 0.0), 1, retry_after=1.0)
    assert pace.per_minute == pytest.approx(0.7 * 80) and pace.pace == 6000


def test_each_quiet_step_raises_the_estimate_and_reads_in_flight(clock):
    pace = CostPace(concurrency=50, requests_per_minute=60)
    answers(pace, clock, [100] * 21, every=1.0)  # cut to 4,410 a minute, as above
    pace.answered(Ticket(clock.now, 100.0), 1, retry_after=3.0)
    answers(pace, clock, [100] * 14, every=1.0)  # 14 s: not yet a step
    assert pace.per_minute == pytest.approx(4410) and pace.limiter.limit == 25
    answers(pace, clock, [100], every=1.0)  # 15 s without a 429
    assert pace.per_minute == pytest.approx(4410 * 1.25) and pace.limiter.limit == 31
    answers(pace, clock, [100] * 14, every=1.0)
    assert pace.per_minute == pytest.approx(4410 * 1.25)


def test_once_cut_requests_wait_out_the_retry_after_then_go_at_the_estimated_pace(clock, monkeypatch):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(pacing.asyncio, "sleep", sleep)
    pace = CostPace(concurrency=50, requests_per_minute=60)
    answers(pace, clock, [100] * 21, every=1.0)  # mean cost 100
    pace.answered(Ticket(clock.now, 100.0), 1, retry_after=3.0)  # 4,410 a minute: 100 every 60/44.1 s

    async def three() -> list[Ticket]:
        return [await pace.enter() for _ in range(3)]

    tickets = asyncio.run(three())
    gap = 100 * 60 / 4410
    assert slept == pytest.approx([3.0, gap, gap])
    assert [t.reserved for t in tickets] == [100.0] * 3


def test_a_crawl_under_the_cost_limit_meets_429s_adapts_and_loses_nothing(monkeypatch):
    """The simulator's cost model over a minute of 12 s (the client's too), and a budget of 2,000 where
    the crawl costs about 3,000: 429s come, the client cuts its pace, and the tables equal the truth."""
    monkeypatch.setattr(limits, "WINDOW_SECONDS", 12.0)
    monkeypatch.setattr(pacing, "QUOTA_WINDOW", 12.0)
    world = generate_world(seed=4, tasks=60, now=datetime(2026, 6, 1, tzinfo=UTC))

    async def sync(base_url: str):
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=1500) as client:
            return await crawl(client)

    with Simulator(world, SimulatorConfig(cost_per_minute=2000, latency_ms=5)) as sim:
        result = asyncio.run(sync(sim.base_url))
        limited = sim.stats.limited
    assert set(limited) == {"cost"} and limited["cost"] == result.client_stats["rate_limited"] > 0
    assert result.client_stats["cost_cuts"] >= 1
    assert result.tables["quarantine"].num_rows == 0
    assert_matches_truth(result.tables, world.ground_truth())
