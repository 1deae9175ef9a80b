"""When a client's requests may start: its pace under the token's request quota, its reads in
flight, Retry-After pauses, and (with a `SharedBudget`) the share it draws of a quota the token's
other processes use too. Asana's cost limit, which no header reports, is learned from 429s
(`CostPace`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from time import monotonic
from typing import Any, Protocol

RESUME_JITTER = 0.2  # seconds over which paused requests resume, so they do not all fire at once
QUOTA_WINDOW = 60.0  # seconds over which Asana counts requests_per_minute (a sliding minute)

# A budget shared with the token's other processes (see `SharedBudget`):
BATCH_SECONDS = 1.0  # request slots are taken a second's worth at a time: a round trip a batch, not a request
SLOT_SLACK = 0.5  # seconds a slot stays usable after it is due (event-loop lag); the pace leaves room for it
LEASE_SECONDS = 30.0  # a client's reads in flight are given back this long after its last renewal (a dead process)
RENEW_SECONDS = LEASE_SECONDS / 3  # an open client renews its lease at least this often
STARVED_RETRY = 0.25  # seconds between two asks while the token's other clients hold every read in flight

# Asana's cost limit, learned from its 429s (see `CostPace`); its times are shares of the minute
# (QUOTA_WINDOW), over which Asana refills it:
COST_CUT = 0.7  # a 429 leaves this share of the cost a minute the client had reached
COST_STEP = 0.25  # a minute's share without a 429 between two raises; the shortest span cost is read over
COST_RAISE = 1.25  # each raise's factor: a cut is made up within two steps, a mistaken one within minutes
COST_FLOOR = 0.2  # the estimate never falls below what this share of the request pace costs at the mean
COST_BURST = 1 / 6  # a minute's share of the estimated rate that may be spent at once after a quiet spell
MIN_IN_FLIGHT = 2  # a cut halves the reads in flight down to this

log = logging.getLogger(__name__)


class _TokenBucket:
    """Paces request starts to `per_second` with bursts of `burst` (a token bucket, GCRA form).

    Each caller reserves the next free slot and sleeps once until it is due: no polling, and no
    lock, since the reservation happens without an await.
    """

    __slots__ = ("_interval", "_next_slot", "_tolerance")

    def __init__(self, per_second: float, burst: int) -> None:
        self._interval = 1.0 / per_second
        self._tolerance = (burst - 1) * self._interval
        self._next_slot = 0.0

    async def acquire(self) -> None:
        now = monotonic()
        slot = max(self._next_slot, now)
        self._next_slot = slot + self._interval
        wait = slot - self._tolerance - now
        if wait > 0:
            await asyncio.sleep(wait)


class _Limiter:
    """A cap on requests in flight that may change while requests wait for it (asyncio's
    Semaphore cannot shrink)."""

    __slots__ = ("_waiters", "in_flight", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while self.in_flight >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # the room it was woken for goes to the next in line
                raise
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        room = self.limit - self.in_flight
        while room > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1


@dataclass(frozen=True, slots=True)
class Pool:
    """A part of one token's quota, drawn on by some of its processes (the events sensor's
    polls, or the runs): its cap, `interval` seconds between two of its request slots on
    average; `token_interval` seconds between two of the token's slots, whatever their pool (the
    whole quota's pace, at which a grant's slots are spaced); `burst` slots that may start at
    once; and its cap on reads in flight (`concurrency`) within the token's (`total_concurrency`)."""

    name: str
    interval: float
    token_interval: float
    burst: int
    concurrency: int
    total_concurrency: int


@dataclass(frozen=True, slots=True)
class Grant:
    """A shared budget's answer: `slots` request slots of the pool, the first due `start`
    seconds from now and each next one `Pool.token_interval` later; the reads in flight the client
    may have; and the seconds every process of the token stays paused by a Retry-After."""

    start: float
    slots: int
    reads: int
    paused: float


class SharedBudget(Protocol):
    """One token's budget, shared by every process that uses the token (lib/storage/quota.py).

    Each call is one round trip to where the budget is kept, and raises when that is out of
    reach. `where` names it for logs (never the token, never a password)."""

    where: str

    def take(self, member: str, pool: Pool, slots: int, reads: int, in_flight: int, lease: float) -> Grant:
        """Take `slots` request slots of `pool` (0: none) and renew `member`'s lease of reads in
        flight for `lease` seconds: it wants `reads` and has `in_flight` out now."""
        ...

    def pause(self, seconds: float) -> None:
        """Pause every process of the token for `seconds` (a 429's Retry-After)."""
        ...

    def leave(self, member: str, unused: int = 0) -> None:
        """Give `member`'s reads in flight back, and the last `unused` slots of its latest grant
        where no other grant has followed it (a client that sent one request of a second's worth
        must not hold the token's next second)."""
        ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _Batch:
    """Request slots granted by a shared budget, `interval` apart: the first may be used from
    `due` (local monotonic time) and no later than `stale`, and so on."""

    due: float = 0.0
    stale: float = 0.0
    interval: float = 1.0
    count: int = 0
    taken: int = 0

    def take(self, now: float) -> tuple[float, float] | None:
        """The next slot still usable at `now` as (due, stale), skipping those gone stale."""
        index = self.taken
        if now > self.stale:
            index = max(index, math.ceil((now - self.stale) / self.interval))
        self.taken = min(index + 1, self.count)
        if index >= self.count:
            return None
        return self.due + index * self.interval, self.stale + index * self.interval

    @property
    def unused(self) -> int:
        """The slots at the batch's end never handed out (none went stale before them)."""
        return self.count - self.taken


class PauseLog(Protocol):
    """Where pacing adds the time it held requests for a Retry-After (the client's stats)."""

    retry_after_seconds: float


@dataclass(frozen=True, slots=True)
class Ticket:
    """A request let through: when, and the cost reserved for its answer."""

    sent: float
    reserved: float


class CostPace:
    """Asana's cost limit, learned.

    Asana also limits a token by cost: roughly the graph links its answers walk (tasks times
    expanded fields such as followers and custom fields), charged once an answer is built and
    refilled each minute. The limit is not published and no header reports the balance: a 429 is
    the only sign. So the client counts the objects in each answer it receives (its view of the
    cost), and after a 429 paces the expected cost of its requests at COST_CUT of the cost a
    minute it had reached, with half the reads in flight (each may take the balance further
    below zero before the next check). While no 429 comes it raises both, step by step, until a
    429 finds the limit again. Until a first 429 nothing is paced by cost: most clients never
    meet it. A 429 cuts once: those answering requests sent before the cut add nothing. Asana
    names no cause in a 429, so one from elsewhere cuts too; COST_FLOOR bounds what that costs.
    `requests_per_minute` is the client's request pace."""

    def __init__(self, concurrency: int, requests_per_minute: float) -> None:
        self.per_minute: float | None = None  # the estimated limit; None until a 429
        self.limiter = _Limiter(concurrency)
        self._floor = COST_FLOOR * requests_per_minute
        self._concurrency = concurrency
        self._answers: deque[tuple[float, int]] = deque()  # (when, cost) of the last minute's answers
        self._spent = 0  # their costs' sum
        self._first: float | None = None  # when the first answer came
        self._mean = 1.0  # an answer's mean cost so far
        self._count = 0
        self._next = 0.0  # when the cost reserved so far is paid for (GCRA)
        self._changed = -math.inf  # when the estimate was last cut or raised

    @property
    def pace(self) -> float:
        """The cost a minute paced at once cut: the estimate, or the floor at the mean cost so far
        (the mean grows from what a 429 that came before any answer could know)."""
        return max(self.per_minute or 0.0, self._floor * self._mean)

    async def enter(self) -> Ticket:
        """Wait for room in flight and for the expected cost to be paid for; `limiter.release` after."""
        await self.limiter.acquire()
        now = monotonic()
        if self.per_minute is None:
            return Ticket(now, 0.0)
        slot = max(self._next, now - COST_BURST * QUOTA_WINDOW)
        self._next = slot + self._mean * QUOTA_WINDOW / self.pace
        if slot > now:
            try:
                await asyncio.sleep(slot - now)
            except BaseException:
                self.limiter.release()
                raise
        return Ticket(monotonic(), self._mean)

    def answered(self, ticket: Ticket, cost: int, retry_after: float | None) -> bool:
        """Count an answer of `cost` objects; `retry_after` for a 429. True when this cut the pace."""
        now = monotonic()
        while self._answers and self._answers[0][0] <= now - QUOTA_WINDOW:
            self._spent -= self._answers.popleft()[1]
        if retry_after is not None:
            if ticket.sent < self._changed:
                return False
            span = min(QUOTA_WINDOW, max(now - (now if self._first is None else self._first), COST_STEP * QUOTA_WINDOW))
            reached = self._spent * QUOTA_WINDOW / span
            self.per_minute = COST_CUT * min(reached, self.pace if self.per_minute else math.inf)
            self.limiter.resize(max(MIN_IN_FLIGHT, self.limiter.limit // 2))
            self._next = now + retry_after  # nothing was earned while Asana's balance refilled
            self._changed = now
            return True
        if self._first is None:
            self._first = now
        self._answers.append((now, cost))
        self._spent += cost
        self._count += 1
        self._mean += (cost - self._mean) / self._count
        if self.per_minute is not None:
            self._next += (cost - ticket.reserved) * QUOTA_WINDOW / self.pace
            if now - self._changed >= COST_STEP * QUOTA_WINDOW:
                self.per_minute = self.pace * COST_RAISE
                self.limiter.resize(min(self._concurrency, self.limiter.limit + max(1, self.limiter.limit // 4)))
                self._changed = now
        return False


_warned_budgets: set[str] = set()  # shared budgets found out of reach, each logged once per process


class Pacing:
    """When a client's requests may start: its cap on reads in flight, its request slots and
    the Retry-After pauses; either its own, or drawn with the token's other processes from a
    `SharedBudget`.

    The client draws on `share` of the token's quota and reads in flight. Alone (no budget, or
    one out of reach) it paces itself at that share. With a budget it takes its slots from the
    token's shared clock, a second's worth at a time, up to its pool's cap (`cap` of the quota;
    by default its share; its reads in flight are its share's), and uses each between `burst` slots before it is
    due and SLOT_SLACK after: so any window of QUOTA_WINDOW seconds holds fewer of the token's
    requests than its quota, and fewer of a pool's than its cap, whatever the number of
    processes. The runs' cap is the whole quota: what the events sensor leaves unused, they take.
    Under that, the cost limit's pace (`cost`), learned by this process alone."""

    def __init__(self, requests_per_minute: int, max_concurrency: int, share: float, pool: str,
                 budget: SharedBudget | None, stats: PauseLog, cap: float | None = None) -> None:
        self.requests_per_minute = requests_per_minute * share
        self.concurrency = _part(max_concurrency, share)
        burst = _burst(self.concurrency, self.requests_per_minute)
        # The quota is counted over a sliding window: the burst plus a window of pacing fit in it.
        self._bucket = _TokenBucket(max(self.requests_per_minute - burst, 1) / QUOTA_WINDOW, burst=burst)
        self._limiter = _Limiter(self.concurrency if budget is None else 0)
        self.cost = CostPace(self.concurrency, self.requests_per_minute)
        self._stats = stats
        self._paused_until = 0.0
        self._budget = budget
        self._closing: SharedBudget | None = budget  # closed with the client, even once abandoned
        # With the budget, every pool's slots are the token's, at the whole quota's pace (room kept
        # for every pool's burst: each pool's is its share's), and a pool takes them up to its cap:
        # what one pool leaves unused, the others may take. Reads in flight stay each pool's share:
        # the sensor always has its own, and the runs' share of 50 is far more than the quota needs.
        token_burst = _burst(max_concurrency, requests_per_minute)
        pace, capped = (requests_per_minute - token_burst - 1, requests_per_minute * (cap or share) - burst - 1)
        self.pool = Pool(pool, (QUOTA_WINDOW + SLOT_SLACK) / max(capped, 1), (QUOTA_WINDOW + SLOT_SLACK) / max(pace, 1),
                         burst, self.concurrency, max_concurrency)
        self._member = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._batch = _Batch()
        self._exchange: asyncio.Future[None] | None = None
        self._last_exchange = -math.inf
        self._background: set[asyncio.Task] = set()
        self._renewer: asyncio.Task | None = None

    async def enter(self) -> Ticket:
        """Wait for the cost's pace, room in flight, a request slot and the end of any pause;
        `leave` after."""
        ticket = await self.cost.enter()
        try:
            if self._budget is not None and self._limiter.limit == 0:
                await self._until_leased()
            await self._limiter.acquire()
        except BaseException:
            self.cost.limiter.release()
            raise
        try:
            await self._throttle()
        except BaseException:
            self.leave()
            raise
        return ticket

    def leave(self) -> None:
        self._limiter.release()
        self.cost.limiter.release()

    def pause(self, seconds: float) -> None:
        """Hold every request for `seconds`: Asana's limits are per token, so a shared budget
        holds every process of the token too."""
        self._hold(monotonic() + seconds)
        if self._budget is not None:
            self._spawn(self._record_pause(self._budget, seconds))

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._closing is None:
            return
        # Closing never fails a sync: a lease not given back lapses on its own.
        with contextlib.suppress(Exception):
            if self._budget is not None and self._last_exchange > -math.inf:
                unused, self._batch = self._batch.unused, _Batch()  # given back: never used after
                await asyncio.to_thread(self._budget.leave, self._member, unused)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._closing.close)

    async def _throttle(self) -> None:
        """Wait for a request slot, then for any Retry-After pause (which may begin meanwhile)."""
        if self._budget is None:
            await self._bucket.acquire()
            while (delay := self._paused_until - monotonic()) > 0:
                await asyncio.sleep(delay + random.uniform(0, RESUME_JITTER))
            return
        while True:  # a shared slot must be used when due: a pause first, then the slot
            while (delay := self._paused_until - monotonic()) > 0:
                await asyncio.sleep(delay + random.uniform(0, RESUME_JITTER))
            if not await self._shared_slot():
                await self._bucket.acquire()  # the budget went out of reach meanwhile
            if self._paused_until <= monotonic():
                return

    async def _shared_slot(self) -> bool:
        """Wait for a slot of the shared budget; False when it went out of reach meanwhile."""
        while self._budget is not None:
            now = monotonic()
            slot = self._batch.take(now)
            if slot is None:
                await self._renew(slots=True)
                continue
            due, stale = slot
            if due > now:
                await asyncio.sleep(due - now)
            if monotonic() <= stale:
                return True
        return False

    async def _until_leased(self) -> None:
        """Wait until the budget leaves this client a read in flight, asking again at most every
        STARVED_RETRY seconds."""
        while self._budget is not None and self._limiter.limit == 0:
            wait = self._last_exchange + STARVED_RETRY - monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                await self._renew()

    async def _renew(self, slots: bool = False) -> None:
        """One exchange with the budget at a time: whoever needs one meanwhile waits for it."""
        if self._exchange is None:
            self._exchange = asyncio.ensure_future(self._exchange_once(slots))
        await asyncio.shield(self._exchange)

    async def _exchange_once(self, slots: bool) -> None:
        budget = self._budget
        try:
            if budget is None:
                return
            pool = self.pool
            wanted = max(1, round(BATCH_SECONDS / pool.interval)) if slots else 0
            sent = monotonic()
            try:
                grant = await asyncio.to_thread(
                    budget.take, self._member, pool, wanted, self.concurrency, self._limiter.in_flight, LEASE_SECONDS
                )
            except Exception as error:  # noqa: BLE001 - whatever keeps the budget out of reach, the sync goes on
                self._fall_back(budget, type(error).__name__ + _os_reason(error))
                return
            received = monotonic()
            if self._budget is not budget:
                return
            self._last_exchange = received
            self._limiter.resize(grant.reads)
            if grant.paused > 0:
                self._hold(received + grant.paused)
            if grant.slots:
                # Never before a slot is due, never after it went stale, whenever the budget
                # answered between `sent` and `received`.
                tolerance = (pool.burst - 1) * pool.token_interval
                self._batch = _Batch(received + grant.start - tolerance, sent + grant.start + SLOT_SLACK,
                                     pool.token_interval, grant.slots)
                if received - sent > SLOT_SLACK + tolerance:  # every slot stale on arrival
                    self._fall_back(budget, f"it took {received - sent:.2f} s to answer")
                    return
            if self._renewer is None:
                self._renewer = self._spawn(self._renew_while_open())
        finally:
            self._exchange = None

    async def _renew_while_open(self) -> None:
        """Keep this client's lease while it is open, so the token's other processes never take
        reads it still has in flight."""
        while self._budget is not None:
            await asyncio.sleep(RENEW_SECONDS / 2)
            if monotonic() - self._last_exchange >= RENEW_SECONDS / 2:
                await self._renew()

    async def _record_pause(self, budget: SharedBudget, seconds: float) -> None:
        try:
            await asyncio.to_thread(budget.pause, seconds)
        except Exception as error:  # noqa: BLE001 - as in _exchange_once
            self._fall_back(budget, type(error).__name__ + _os_reason(error))

    def _fall_back(self, budget: SharedBudget, reason: str) -> None:
        """Pace this client alone, at its share, from now on; say why once per process."""
        if self._budget is not budget:
            return
        self._budget = None
        if budget.where not in _warned_budgets:
            _warned_budgets.add(budget.where)
            log.warning(
                "the shared request budget in %s is out of reach (%s): this process paces itself alone, at its "
                "share of %g requests a minute and %d in flight", budget.where, reason,
                self.requests_per_minute, self.concurrency,
            )
        self._limiter.resize(self.concurrency)
        if self._renewer is not None:
            self._renewer.cancel()

    def _hold(self, until: float) -> None:
        now = monotonic()
        if until > self._paused_until:
            self._stats.retry_after_seconds += until - max(self._paused_until, now)
            self._paused_until = until

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def _part(total: int, share: float) -> int:
    """A share of reads in flight: at least one."""
    return max(1, int(round(total * share, 9)))


def _burst(concurrency: int, requests_per_minute: float) -> int:
    """Slots that may start at once: at most the reads in flight, and a thirtieth of the pace."""
    return max(1, min(concurrency, int(requests_per_minute) // 30))


def _os_reason(error: Exception) -> str:
    """An OS error's reason (never a driver's message, which may quote a connection string)."""
    return f": {error.strerror}" if isinstance(error, OSError) and error.strerror else ""

