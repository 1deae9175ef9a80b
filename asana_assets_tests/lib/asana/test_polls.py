"""The poll schedule: active projects at every tick, quiet ones backing off, the polls of a tick
within the budget, oldest due first, and every project polled within the stated bound; and the
look at the events feeds: what was answered in time counts, a quiet feed's token is renewed."""

from __future__ import annotations

import asyncio
import random
import time
from itertools import pairwise

import httpx
import pytest

from asana_assets.lib.asana.client import AsanaClient, RateLimitedError, run
from asana_assets.lib.asana.polls import LOOK_CLIENT, PollPolicy, PollSchedule, look_at_feeds
from asana_assets.lib.asana.state import SyncState
from asana_assets.simulator import Simulator, SimulatorConfig, generate_world

POLICY = PollPolicy(every=1, budget=10, active_for=10, max_factor=64, slack=0.5)
TOKEN = "2/1209000000000000/polls"


def ticks(schedule: PollSchedule, policy: PollPolicy, tracked, pending, minutes: int) -> dict[str, list[int]]:
    """Run one tick a minute; ``pending(gid, minute)`` says whether a poll finds events.
    Returns the minutes each project was polled."""
    polls: dict[str, list[int]] = {gid: [] for gid in tracked}
    for minute in range(minutes):
        due, _ = schedule.due(tracked, policy, minute * 60.0)
        assert len(due) <= policy.budget
        schedule.polled({gid: pending(gid, minute) for gid in due}, policy, minute * 60.0)
        for gid in due:
            polls[gid].append(minute)
    return polls


def test_active_projects_every_tick_quiet_ones_backing_off():
    # "1" always has events pending; "2" never; "3" has events pending from minute 50 to 74
    # (a run consumes them at 75).
    pending = {"1": lambda m: True, "2": lambda m: False, "3": lambda m: 50 <= m < 75}
    polls = ticks(PollSchedule(), POLICY, ["1", "2", "3"], lambda gid, m: pending[gid](m), 201)
    assert polls["1"] == list(range(201))
    # New: active for 10 minutes; then the interval doubles with each quiet poll up to 64.
    assert polls["2"] == [*range(11), 12, 16, 24, 40, 72, 136, 200]
    # Its events, pending from 50, are seen at its next poll (72); it is then polled at every
    # tick while they are pending and for 10 minutes after the last poll that found them (74),
    # then backs off again from 2 minutes.
    assert polls["3"] == [*range(11), 12, 16, 24, 40, *range(72, 85), 86, 90, 98, 114, 146]


def test_a_tick_polls_at_most_its_budget_oldest_due_first():
    tracked = [str(100 + i) for i in range(25)]
    schedule = PollSchedule()
    first, waiting = schedule.due(tracked, POLICY, 0.0)
    assert first == tracked[:10] and waiting == 15  # all due at once: by gid
    schedule.polled(dict.fromkeys(first, False), POLICY, 0.0)
    second, waiting = schedule.due(tracked, POLICY, 60.0)
    assert second == tracked[10:20] and waiting == 15  # never polled, due since 0, before those polled at 0
    schedule.polled(dict.fromkeys(second, False), POLICY, 60.0)
    third, _ = schedule.due(tracked, POLICY, 120.0)
    assert third == tracked[20:] + tracked[:5]


def test_untracked_projects_are_forgotten_and_unreadable_schedules_start_over():
    schedule = PollSchedule()
    schedule.due(["1", "2"], POLICY, 0.0)
    schedule.due(["2"], POLICY, 60.0)  # "1" was archived or deleted
    assert set(schedule.projects) == {"2"}
    saved = PollSchedule.from_json(schedule.to_json())
    assert saved.projects == schedule.projects
    for garbage in (None, {}, {"projects": []}, {"projects": {"1": "x"}}, {"projects": {"1": [None, "0", 1]}}):
        assert PollSchedule.from_json(garbage).projects == {}


def test_the_bound_with_5000_projects_at_1500_requests_a_minute():
    """75 polls a tick (the sensor's 10% of 1,500 a minute, for the tick's 30 s): a project due is
    polled within ceil(5000 / 75) = 67 ticks, so an active one within 1 + 66 minutes of its last
    poll, a quiet one (interval at most 64) within 64 + 66, however many projects are active."""
    policy = PollPolicy(every=1, budget=75)
    assert policy.bound(5000) == (67, 130)
    tracked = [str(10_000 + i) for i in range(5000)]
    for active_count in (50, 400):  # within what a tick holds, and far beyond it
        active = set(random.Random(active_count).sample(tracked, active_count))
        polls = ticks(PollSchedule(), policy, tracked, lambda gid, m, active=active: gid in active, 300)
        gaps = {gid: max(b - a for a, b in pairwise(minutes)) for gid, minutes in polls.items()}
        assert all(minutes and minutes[0] < 67 for minutes in polls.values())  # the first sweep
        assert max(gaps[gid] for gid in active) <= 67
        assert max(gaps[gid] for gid in set(tracked) - active) <= 130


def test_renewed_tokens_are_kept_and_only_younger_ones_replace_a_states():
    """The schedule keeps the tokens polls were handed (and forgets untracked projects'); a state
    takes one only where it is younger than its own, and only for a project it tracks."""
    schedule = PollSchedule()
    schedule.due(["1", "2", "3"], POLICY, 0.0)
    schedule.renewed({"1": "polled-1", "2": "polled-2", "9": "polled-9"}, "2026-06-01T12:30:00+00:00")
    schedule.due(["1", "2"], POLICY, 60.0)  # "3" archived, "9" never tracked
    saved = PollSchedule.from_json(schedule.to_json())
    assert saved.tokens == {"1": {"sync": "polled-1", "taken_at": "2026-06-01T12:30:00+00:00"},
                            "2": {"sync": "polled-2", "taken_at": "2026-06-01T12:30:00+00:00"}}
    state = SyncState(tokens={
        "1": {"sync": "run-1", "taken_at": "2026-06-01T12:00:00+00:00"},  # older: replaced
        "2": {"sync": "run-2", "taken_at": "2026-06-01T12:30:00+00:00"},  # as old: kept
        "3": {"sync": "run-3", "taken_at": "2026-06-01T11:00:00+00:00"},  # nothing renewed
    })
    state.renew(saved.tokens | {"4": {"sync": "polled-4", "taken_at": "2026-06-01T13:00:00+00:00"}})
    assert {gid: entry["sync"] for gid, entry in state.tokens.items()} == {"1": "polled-1", "2": "run-2", "3": "run-3"}
    garbage = {"projects": {}, "tokens": {"1": "x", "2": {"sync": 3, "taken_at": "t"}, "3": {"sync": "s"}}}
    assert PollSchedule.from_json(garbage).tokens == {}


def look(base_url: str, state: SyncState, projects=None, **options) -> dict:
    async def looking():
        async with AsanaClient(base_url, TOKEN, **LOOK_CLIENT) as client:
            return await look_at_feeds(client, state, projects, **options)

    return run(looking())


def test_a_look_keeps_what_was_answered_in_time_and_leaves_the_rest_due(monkeypatch):
    """Feeds still unanswered `within` the tick's time are left out (so they stay due), and the
    looks answered are returned, not lost with the late ones."""
    world = generate_world(seed=1, tasks=20)
    projects = [p["gid"] for p in world.ground_truth()["projects"]][:3]
    slow = projects[0]
    events = AsanaClient.events

    async def answering(self, project_gid, token):
        if project_gid == slow:
            await asyncio.sleep(30)  # far past the look's time
        return await events(self, project_gid, token)

    monkeypatch.setattr(AsanaClient, "events", answering)
    with Simulator(world, SimulatorConfig(tokens={TOKEN: None}, requests_per_minute=10**6)) as sim:
        state = SyncState(tokens={gid: {"sync": "not-a-token", "taken_at": "2999-01-01T00:00:00+00:00"}
                                  for gid in projects})
        started = time.monotonic()
        looked = look(sim.base_url, state, projects, within=2.0)
    assert set(looked) == set(projects[1:])  # invalid tokens: both answered as changed
    assert time.monotonic() - started < 10


def test_a_429_ends_the_look_at_once_rather_than_waiting_out_its_retry_after():
    """Every answer a 429 with Retry-After 60: the looks still queued behind the first (more
    projects than reads in flight) are dropped at once, and the rate limit is what the look says."""
    world = generate_world(seed=1, tasks=20)
    projects = [str(1_300_000_000_000_000 + i) for i in range(120)]  # more than the 50 reads in flight
    config = SimulatorConfig(tokens={TOKEN: None}, requests_per_minute=10**6, rate_limit_storm_rate=1.0,
                             storm_retry_after=60)
    with Simulator(world, config) as sim:
        state = SyncState(tokens={gid: {"sync": "any", "taken_at": "2999-01-01T00:00:00+00:00"} for gid in projects})
        started = time.monotonic()
        with pytest.raises(RateLimitedError):
            look(sim.base_url, state, projects, within=30.0)
    assert time.monotonic() - started < 10


def test_a_look_finding_nothing_pending_renews_the_token_and_one_with_events_does_not():
    """The sensor keeps the token a quiet feed hands out (so a quiet project's token stays young);
    a feed with events pending keeps its old token, from which the run will read them."""
    world = generate_world(seed=1, tasks=20)
    quiet, busy = [p["gid"] for p in world.ground_truth()["projects"] if not p["archived"]][:2]
    task = next(t["gid"] for t in world.ground_truth()["tasks"]
                if any(m["project"]["gid"] == busy for m in t["memberships"]))
    with Simulator(world, SimulatorConfig(tokens={TOKEN: None}, requests_per_minute=10**6)) as sim:
        first = {gid: httpx.get(f"{sim.base_url}/events", params={"resource": gid},
                                headers={"Authorization": f"Bearer {TOKEN}"}).json()["sync"] for gid in (quiet, busy)}
        world.update_task(task, name="Renamed", actor=world.default_user)
        state = SyncState(tokens={gid: {"sync": sync, "taken_at": "2999-01-01T00:00:00+00:00"}
                                  for gid, sync in first.items()})
        renewed: dict[str, str] = {}
        looked = look(sim.base_url, state, [quiet, busy], renewed=renewed)
    assert looked[quiet] is None and looked[busy] is not None
    assert set(renewed) == {quiet} and renewed[quiet] not in (first[quiet], first[busy])
