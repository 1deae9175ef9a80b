"""One quota per token: the processes that share a token's budget (in a folder, or in Postgres)
stay within its requests per window and its reads in flight together.

The simulator counts the quota over a window of WINDOW seconds instead of a minute, and so do
the clients here, so a test spans several windows in seconds. Its 429s are the judge: it
enforces the token's quota and reads in flight exactly as sized in each test.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from asana_assets.lib.asana import client as client_module
from asana_assets.lib.asana import pacing
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.pacing import Pacing, Pool
from asana_assets.lib.storage.quota import leave, open_budget, pause, settle
from asana_assets.simulator import Simulator, SimulatorConfig, generate_world, limits
from asana_assets_tests.support import POSTGRES_URL, REPO

WINDOW = 6.0  # seconds over which the simulator and the clients count the quota


@pytest.fixture
def token() -> str:
    return f"2/1209000000000000/quota-{uuid.uuid4().hex}"


@pytest.fixture
def short_window(monkeypatch):
    monkeypatch.setattr(limits, "WINDOW_SECONDS", WINDOW)
    monkeypatch.setattr(pacing, "QUOTA_WINDOW", WINDOW)


@pytest.fixture(params=["folder", "postgres"])
def store(request, tmp_path, token) -> Iterator[str]:
    if request.param == "folder":
        yield str(tmp_path / "quota")
        return
    server = request.getfixturevalue("server")  # skips without Postgres
    yield POSTGRES_URL
    with server.cursor() as cur:
        cur.execute("DELETE FROM asana_quota.budgets WHERE fingerprint = $1", (sha256(token),))
    server.commit()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def simulator(token: str, requests: int, reads: int, latency_ms: float = 0, *others: str) -> Simulator:
    config = SimulatorConfig(tokens=dict.fromkeys((token, *others)), requests_per_minute=requests,
                             max_concurrent_reads=reads, latency_ms=latency_ms)
    return Simulator(generate_world(seed=1, tasks=20), config)


def workers(base_url: str, token: str, store: str, *runs: list[str]) -> list[dict]:
    """Start one worker process per argument list; once all are ready, let them send at once;
    their reports once all are done."""
    with tempfile.TemporaryDirectory() as folder:
        barrier = Path(folder)
        command = [sys.executable, "-m", "asana_assets_tests.support.quota_worker", base_url, token, store,
                   "--window", str(WINDOW), "--barrier", folder]
        started = [subprocess.Popen(command + args, cwd=REPO, stdout=subprocess.PIPE, text=True) for args in runs]
        deadline = time.monotonic() + 120
        while len(list(barrier.glob("ready-*"))) < len(runs) and time.monotonic() < deadline:
            assert all(process.poll() is None for process in started), "a worker ended before it was ready"
            time.sleep(0.01)
        (barrier / "go").touch()
        reports = [process.communicate(timeout=300)[0] for process in started]
    assert [process.returncode for process in started] == [0] * len(runs)
    return [json.loads(report) for report in reports]


# -- processes sharing a token ----------------------------------------------------------------

# Two runs of one token, 40 requests each: 80 in all, over a quota of 60 a window, so they span
# windows. Each alone would pace at the runs' share, 54 a window and 3 in flight: 108 a window
# and 6 in flight together, which the simulator (60 a window, 4 in flight) answers with 429s.
TWO_RUNS = ["--requests", "40", "--requests-per-minute", "60", "--max-concurrency", "4"]


@pytest.mark.slow
def test_processes_sharing_a_token_stay_within_its_quota_together(short_window, token, store):
    with simulator(token, requests=60, reads=4, latency_ms=200) as sim:
        reports = workers(sim.base_url, token, store, TWO_RUNS, TWO_RUNS)
        by_status = dict(sim.stats.by_status)
    assert by_status == {200: 80}  # every request answered, none refused
    assert [report["responses"] for report in reports] == [{"200": 40}] * 2


@pytest.mark.slow
def test_a_run_and_the_sensor_stay_within_the_quota_together(short_window, token, tmp_path):
    """The sensor's 10% (6 a window, 1 in flight here) and the runs' 90% add up to the quota: a
    run and the sensor's polls at once are never refused."""
    sensor = ["--pool", "sensor", "--share", "0.1", *TWO_RUNS[2:], "--requests", "8"]
    with simulator(token, requests=60, reads=4, latency_ms=200) as sim:
        reports = workers(sim.base_url, token, str(tmp_path / "quota"), TWO_RUNS, sensor)
        by_status = dict(sim.stats.by_status)
    assert by_status == {200: 48}
    assert [report["responses"] for report in reports] == [{"200": 40}, {"200": 8}]


@pytest.mark.slow
def test_the_same_processes_without_a_shared_budget_overdraw_the_quota(short_window, token):
    """The control: the simulator above does refuse two processes that pace themselves alone (with
    a quarter of the requests each: together they still hold more reads in flight than it allows,
    and once refused each slows down for what it takes for Asana's cost limit). Each answer takes
    a second, so each process holds its 3 reads in flight whatever its pace: 6 at once."""
    few = ["--requests", "10", *TWO_RUNS[2:]]
    with simulator(token, requests=60, reads=4, latency_ms=1000) as sim:
        workers(sim.base_url, token, "-", few, few)
        assert sim.stats.by_status[429] > 0


def test_the_budget_is_kept_under_the_tokens_fingerprint_never_the_token(short_window, token, store, request):
    with simulator(token, requests=600, reads=50) as sim:
        workers(sim.base_url, token, store, ["--requests", "5"])
    if store == POSTGRES_URL:
        server = request.getfixturevalue("server")
        with server.cursor() as cur:
            cur.execute("SELECT state::text FROM asana_quota.budgets WHERE fingerprint = $1", (sha256(token),))
            kept = [text for (text,) in cur.fetchall()]
        server.commit()
    else:
        files = sorted(Path(store).iterdir())
        assert [path.name for path in files] == [f"{sha256(token)}.json", f"{sha256(token)}.lock"]
        kept = [path.read_text() for path in files]
    assert len(kept) >= 1
    assert all(token not in text and token.split("/")[-1] not in text for text in kept)


@pytest.mark.slow
def test_a_429_in_one_process_pauses_the_others(short_window, token, store):
    """The sensor overdraws (it is told the quota is 6,000 a window): its third request gets a
    429 whose Retry-After ends when the window frees (6 s after its first). A run started as
    soon as the sensor exits must wait that out: sent earlier, its one request, which may not be
    retried, would be refused too."""
    sensor = ["--pool", "sensor", "--share", "0.1", "--requests-per-minute", "6000", "--max-concurrency", "10",
              "--requests", "3", "--max-retries", "0"]
    run = ["--requests", "1", "--max-retries", "0"]
    with simulator(token, requests=2, reads=50) as sim:
        [overdrawn] = workers(sim.base_url, token, store, sensor)
        [paused] = workers(sim.base_url, token, store, run)
    assert overdrawn["responses"] == {"200": 2, "429": 1}
    assert paused == {"requests": 1, "responses": {"200": 1}, "errors": {}}


# -- the sensor's share -----------------------------------------------------------------------

# A token of 200 requests a window and 10 reads in flight; the sensor's share, 10%, is 20 a
# window and 1 in flight: the simulator allows exactly that.
TOKEN_QUOTA, TOKEN_READS, SHARE = 200, 10, 0.1
SENSOR_QUOTA, SENSOR_READS = 20, 1


async def spend(base_url: str, token: str, store: str, requests: int, pool: str = "sensor",
                share: float = SHARE) -> list:
    async with AsanaClient(base_url, token, requests_per_minute=TOKEN_QUOTA, max_concurrency=TOKEN_READS,
                           max_retries=0, budget=open_budget(store, token), pool=pool, share=share) as client:
        return await asyncio.gather(*(client.get("/users/me") for _ in range(requests)), return_exceptions=True)


class Granted:
    """A budget that notes each grant of slots it gives."""

    def __init__(self, budget) -> None:
        self.budget, self.where, self.grants = budget, budget.where, []

    def take(self, *args):
        grant = self.budget.take(*args)
        if grant.slots:
            self.grants.append(grant)
        return grant

    def __getattr__(self, name):
        return getattr(self.budget, name)


def test_a_client_that_sent_one_request_leaves_the_rest_of_its_second_to_the_next(token, store):
    """At 6,000 a minute a batch holds about 100 slots, a second's worth. The first client sends
    one request and closes; the next client's first slot is due at once, not a second later (as
    when the first held its 99 unused slots until they passed)."""
    async def one_request(budget: Granted) -> None:
        async with AsanaClient("http://asana.test/api/1.0", token, requests_per_minute=6000, budget=budget,
                               transport=httpx.MockTransport(lambda _request: httpx.Response(200, json={"data": {}}))
                               ) as client:
            await client.get("/users/me")

    first, second = Granted(open_budget(store, token)), Granted(open_budget(store, token))
    asyncio.run(one_request(first))
    asyncio.run(one_request(second))
    assert first.grants[0].slots > 50
    assert second.grants[0].start < 0.5


def test_the_sensor_never_takes_more_than_its_share(short_window, token, tmp_path):
    """24 requests at once, more than a window's share: paced, none is refused."""
    with simulator(token, requests=SENSOR_QUOTA, reads=SENSOR_READS, latency_ms=50) as sim:
        outcomes = asyncio.run(spend(sim.base_url, token, str(tmp_path / "quota"), 24))
        assert [o for o in outcomes if isinstance(o, BaseException)] == []
        assert dict(sim.stats.by_status) == {200: 24}


def test_the_runs_share_would_overdraw_the_sensors(short_window, token, tmp_path):
    """The control: the same simulator refuses a client drawing on the runs' share (90%)."""
    with simulator(token, requests=SENSOR_QUOTA, reads=SENSOR_READS, latency_ms=50) as sim:
        outcomes = asyncio.run(spend(sim.base_url, token, str(tmp_path / "quota"), 4, "runs", 1 - SHARE))
    assert any(isinstance(o, client_module.RateLimitedError) for o in outcomes)


# -- a store out of reach ---------------------------------------------------------------------


def test_a_store_out_of_reach_falls_back_to_the_share_alone_and_says_so_once(short_window, token, tmp_path, caplog):
    """Postgres not listening, or a folder that cannot be made: the client paces itself at its
    share alone, and says why once per store. The simulator allows the share, 20 a window and 1
    in flight, and one request more for timing: pacing at the token's 200 and 10 would be refused
    at once. (Alone, a client paces at its share exactly, with no room kept for another process.)"""
    (tmp_path / "file").write_text("")
    unreachable = ["postgresql://postgres@127.0.0.1:9/test", str(tmp_path / "file" / "quota")]
    caplog.set_level(logging.WARNING, logger="asana_assets.lib.asana.client")
    tokens = [f"{token}-{n}" for n in range(4)]  # a quota each, as the clients follow one another
    with simulator(token, SENSOR_QUOTA + 1, SENSOR_READS, 50, *tokens) as sim:
        # Through each store, a client (the first with more requests than the share allows in a
        # window), then a second one that says nothing more.
        clients = zip(tokens, [unreachable[0]] * 2 + [unreachable[1]] * 2, (24, 2, 2, 2), strict=True)
        for client_token, store, requests in clients:
            outcomes = asyncio.run(spend(sim.base_url, client_token, store, requests))
            assert [o for o in outcomes if isinstance(o, BaseException)] == []
        assert dict(sim.stats.by_status) == {200: 30}
    warnings = [r.getMessage() for r in caplog.records if "out of reach" in r.getMessage()]
    assert len(warnings) == 2
    assert "127.0.0.1:9" in warnings[0]
    assert str(tmp_path / "file" / "quota") in warnings[1] and "Not a directory" in warnings[1]
    assert all("20 requests a minute and 1 in flight" in w for w in warnings)
    assert not any(token in r.getMessage() or "postgres@" in r.getMessage() for r in caplog.records)


# -- the record's rules, at hand-picked times -------------------------------------------------

# The token's slots 0.5 s apart. The runs may take all of them and 4 reads in flight of the
# token's 5; the sensor's cap is a slot every 2 s and 1 read in flight.
RUNS = Pool("runs", interval=0.5, token_interval=0.5, burst=1, concurrency=4, total_concurrency=5)
SENSOR = Pool("sensor", interval=2.0, token_interval=0.5, burst=1, concurrency=1, total_concurrency=5)
LEASE = 30.0


def take(state, now, member="a", pool=RUNS, slots=0, reads=4, in_flight=0):
    return settle(state, now, member, pool, slots, reads, in_flight, LEASE)


def test_slots_follow_the_tokens_clock_and_are_never_granted_in_the_past():
    state: dict = {}
    first = take(state, 100.0, "a", slots=4)  # 100.0, 100.5, 101.0, 101.5
    second = take(state, 100.2, "b", slots=2)  # after a's: 102.0, 102.5
    sensor = take(state, 100.2, "s", SENSOR, slots=1)  # the token's next: 103.0
    late = take(state, 110.0, "a", slots=1)  # the clocks were idle: now, not 103.5
    assert (first.start, first.slots) == (0.0, 4)
    assert second.start == pytest.approx(1.8)
    assert sensor.start == pytest.approx(2.8)
    assert late.start == 0.0


def test_the_sensor_keeps_to_its_cap_and_the_runs_take_what_it_leaves():
    state: dict = {}
    assert take(state, 0.0, "s", SENSOR, slots=1).start == 0.0  # token's next at 0.5; sensor's at 2.0
    assert take(state, 0.0, "a", slots=2).start == pytest.approx(0.5)  # 0.5, 1.0: the token's pace
    assert take(state, 0.1, "s", SENSOR, slots=1).start == pytest.approx(1.9)  # its cap: 2.0, not 1.5
    assert take(state, 0.2, "a", slots=1).start == pytest.approx(2.3)  # after the sensor's: 2.5
    # Alone, the runs take every slot of the token: 4 a 0.5 s apart from 3.0.
    assert take(state, 0.3, "a", slots=4).start == pytest.approx(2.7)
    assert state["clocks"] == {"*": 5.0, "runs": 5.0, "sensor": 4.0}


def test_the_pools_a_client_draws_on_the_runs_capped_at_the_whole_quota_the_sensor_at_its_share():
    """At 1,500 a minute and 50 in flight, with the sensor's share 0.1: every slot at the token's
    pace, 60.5 s (the window and SLOT_SLACK) over 1,500 less the token's burst of 50 and one; the
    runs' cap the whole quota less their burst of 45 (their share's) and one; the sensor's its 150
    less its burst of 5 and one. The two bursts add up to the token's. Reads in flight stay each
    pool's share (45 and 5), so the sensor always has its own."""
    stats = SimpleNamespace(retry_after_seconds=0.0)
    runs = Pacing(1500, 50, 0.9, "runs", budget=object(), stats=stats, cap=1.0).pool
    sensor = Pacing(1500, 50, 0.1, "sensor", budget=object(), stats=stats).pool
    assert runs == Pool("runs", interval=60.5 / 1454, token_interval=60.5 / 1449, burst=45, concurrency=45,
                        total_concurrency=50)
    assert sensor == Pool("sensor", interval=60.5 / 144, token_interval=60.5 / 1449, burst=5, concurrency=5,
                          total_concurrency=50)


def test_a_pause_holds_every_process_and_its_slots_start_after_it():
    state: dict = {}
    take(state, 100.0, "a", slots=2)
    pause(state, 100.1, 5.0)  # a 429 with Retry-After: 5 at 100.1
    grant = take(state, 101.1, "b", slots=1)
    assert grant.paused == pytest.approx(4.0)
    assert grant.start == pytest.approx(4.0)  # its slot is due when the pause ends
    pause(state, 101.2, 1.0)  # a shorter pause never shortens the longer one
    assert take(state, 101.3, "b").paused == pytest.approx(3.8)


def test_reads_in_flight_are_shared_equally_within_the_pools_and_the_tokens_caps():
    state: dict = {}
    assert take(state, 0.0, "a", reads=4).reads == 4  # alone: the pool's 4
    assert take(state, 0.1, "b", reads=4).reads == 0  # a holds all 4: b waits
    # a is asked to come down to 2 of 4; with 3 still out it keeps a lease of 3, then 2.
    assert take(state, 0.2, "a", reads=4, in_flight=3).reads == 2
    assert take(state, 0.3, "b", reads=4).reads == 1  # 4 - 3
    assert take(state, 0.4, "a", reads=4, in_flight=2).reads == 2
    assert take(state, 0.5, "b", reads=4).reads == 2  # 4 - 2
    # The sensor's pool has 1 of its own; the token's 5 leave it 1.
    assert take(state, 0.6, "s", SENSOR, reads=1).reads == 1
    leave(state, "a")
    assert take(state, 0.7, "b", reads=4).reads == 4  # a gave its 2 back: b alone again


def test_the_lease_of_a_process_that_died_lapses():
    state: dict = {}
    take(state, 0.0, "dead", reads=4, in_flight=4)
    assert take(state, LEASE - 1, "b", reads=4).reads == 0
    assert take(state, LEASE + 1, "b", reads=4).reads == 4


def test_the_lease_of_a_process_of_this_machine_that_ended_is_given_back_at_once():
    """A killed sync's rerun need not wait for its lease to lapse; another machine's, or a live
    process's, lease is kept until it does."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    here, pid = socket.gethostname(), ended.stdout.strip()
    state: dict = {}
    take(state, 0.0, f"{here}:{pid}:killed", reads=4, in_flight=4)
    take(state, 0.0, f"{here}:{os.getpid()}:alive", SENSOR, reads=1, in_flight=1)
    take(state, 0.0, f"elsewhere-{here}:{pid}:remote", SENSOR, reads=1, in_flight=1)
    assert take(state, 1.0, "b", reads=4).reads == 3  # the ended one's 4 back; the token's 5 less the 2 kept
    assert set(state["leases"]) == {f"{here}:{os.getpid()}:alive", f"elsewhere-{here}:{pid}:remote", "b"}


def test_a_clock_far_ahead_starts_again_from_now():
    """A wall clock that went back an hour must not make every process wait an hour."""
    state = {"clocks": {"*": 3700.0, "runs": 3700.0}}
    assert take(state, 100.0, slots=1).start == 0.0


def test_a_client_leaving_gives_back_the_slots_it_did_not_use_unless_another_grant_followed():
    """A client that took a second's worth of slots and sent one request must not hold the
    token's next second: its unused slots go back, but only while they are the clocks' last."""
    state: dict = {}
    take(state, 100.0, "a", slots=4)  # 100.0 to 101.5; the clocks at 102.0
    leave(state, "a", unused=3)  # sent one: 100.5, 101.0, 101.5 go back
    assert state["clocks"] == {"*": 100.5, "runs": 100.5}
    assert take(state, 100.1, "b", slots=1).start == pytest.approx(0.4)  # the next is a's second: 100.5
    take(state, 100.2, "c", slots=2)  # 101.0, 101.5; the clocks at 102.0
    take(state, 100.3, "s", SENSOR, slots=1)  # the token's 102.0, after c's
    leave(state, "c", unused=2)  # the sensor's grant followed on the token's clock: only the runs' goes back
    assert state["clocks"] == {"*": 102.5, "runs": 101.0, "sensor": 104.0}
    # c's slots went back, so b's grant (its one slot at 100.5, unused) is the runs' last again.
    leave(state, "b", unused=1)
    assert state["clocks"] == {"*": 102.5, "runs": 100.5, "sensor": 104.0}
    take(state, 100.4, "d", slots=1)  # the token's 102.5; the clocks at 103.0
    leave(state, "s", unused=1)  # d's grant followed on the token's clock: only the sensor's own goes back
    assert state["clocks"] == {"*": 103.0, "runs": 103.0, "sensor": 102.0}
    assert "a" not in state["leases"] and "c" not in state["leases"]


def test_a_lease_renewal_keeps_what_its_last_grant_may_give_back():
    state: dict = {}
    take(state, 0.0, "a", slots=4)  # the clocks at 2.0
    take(state, 1.0, "a", slots=0)  # a renewal, no slot
    leave(state, "a", unused=2)
    assert state["clocks"] == {"*": 1.0, "runs": 1.0}
