"""Asana's cost limit as the simulator models it: an answer costs the objects it holds, charged once
it is built; at a balance of zero or below every call gets a 429 whose Retry-After says when the
balance, refilled continuously at `cost_per_minute` a minute, turns positive again."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world
from asana_assets.simulator.__main__ import _parser
from asana_assets.simulator.limits import RateLimiter, Refusal, answer_cost

TOKEN = "2/1/cost"


def limiter(cost_per_minute: int | None) -> RateLimiter:
    return RateLimiter(SimulatorConfig(requests_per_minute=10**6, cost_per_minute=cost_per_minute))


def call(limits: RateLimiter, now: float, cost: int = 0) -> Refusal | None:
    """One GET at `now`; admitted ones are charged `cost` and leave at once."""
    refusal = limits.admit(TOKEN, False, now)
    if refusal is None:
        limits.charge(TOKEN, cost, now)
        limits.release(TOKEN, False)
    return refusal


def test_the_call_that_takes_the_balance_negative_succeeds_and_the_next_waits_until_it_is_positive():
    limits = limiter(600)  # 10 a second
    assert call(limits, 0.0, cost=650) is None  # a full balance of 600 admits it; 50 below zero after
    assert call(limits, 0.0) == Refusal("cost", 5)  # 50 at 10 a second
    assert call(limits, 4.99) == Refusal("cost", 1)  # 0.1 below zero
    assert call(limits, 5.0) == Refusal("cost", 1)  # at zero: still refused
    assert call(limits, 5.1) is None  # 1 above zero


def test_the_balance_refills_to_the_limit_and_no_further():
    limits = limiter(600)
    assert call(limits, 0.0, cost=0) is None
    assert call(limits, 1000.0, cost=600) is None  # idle for long: the balance is 600, not more
    assert call(limits, 1000.0) == Refusal("cost", 1)  # exactly zero left


def test_without_a_cost_limit_nothing_is_refused_for_cost():
    limits = limiter(None)
    assert call(limits, 0.0, cost=10**9) is None
    assert call(limits, 0.0) is None


def test_a_token_is_charged_alone():
    limits = limiter(60)
    assert call(limits, 0.0, cost=61) is None
    assert limits.admit("2/1/other", False, 0.0) is None


def test_an_answers_cost_counts_its_objects():
    answer = {
        "data": [
            {"gid": "1", "followers": [{"gid": "2"}, {"gid": "3"}], "assignee": None, "tags": []},
            {"gid": "4", "custom_fields": [{"gid": "5", "enum_value": {"gid": "6"}}]},
        ],
        "next_page": {"offset": "x"},
    }
    # envelope 1, two records, two followers, a custom field and its enum value, next_page 1
    assert answer_cost(answer) == 8
    assert answer_cost({"data": []}) == 1


def test_served_answers_are_charged_and_the_429_says_when_to_come_back():
    world = generate_world(seed=2, tasks=20, now=datetime(2026, 6, 1, tzinfo=UTC))
    with (
        Simulator(world, SimulatorConfig(cost_per_minute=1)) as sim,
        httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {DEMO_TOKEN}"}) as client,
    ):
        first = client.get("/workspaces")  # the envelope and one workspace: 2, from a balance of 1
        second = client.get("/workspaces")
        stats_page = client.get(sim.base_url.replace("/api/1.0", "/_simulator/stats"))
        refusals = list(sim.stats.refusals)
    stats = stats_page.json()
    assert first.status_code == 200 and len(first.json()["data"]) == 1
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "60"  # 1 below zero, refilled at 1 a minute
    assert stats["rate_limited_by"] == {"cost": 1} and stats["cost"] == 2
    # The refusal is kept in memory with its cause and token (a benchmark tells whose it was);
    # the stats page never shows a token.
    assert [(cause, token) for _at, cause, token in refusals] == [("cost", DEMO_TOKEN)]
    assert DEMO_TOKEN not in stats_page.text


def test_the_command_line_sets_the_cost_limit():
    assert _parser().parse_args(["--cost-per-minute", "20000"]).cost_per_minute == 20000
    assert _parser().parse_args([]).cost_per_minute is None
