"""One request budget per Asana token, shared by every process that uses the token.

Asana counts its quota (requests a minute, reads in flight) per token, but each run, each poll of
the events sensor and each ``asana-connections sync`` is a process with a client of its own. They
share the token's budget here: one small record per token, named by the sha256 of the token
(never the token), kept in Postgres or in a file and changed under a lock. A client takes request
slots a second's worth at a time (see `AsanaClient`), so the record costs a round trip a batch,
not a request.

The record holds the time the token's slots are taken up to, whatever their pool, and per pool
(the events sensor's, the runs') the time its cap allows its next slots from: slots are granted
from the later of the two, never in the past, the token's spaced at the whole quota's pace and a
pool's at its cap's. So every process of the token together keeps the quota's pace, the sensor
keeps to its share, and the runs take whatever the sensor leaves. It also holds each live
client's lease of reads in flight (renewed while the client is open, lapsing when its process
dies, at once when that was on the same machine), and the pause that a 429's Retry-After sets for
every process of the token.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from asana_assets.lib.asana.pacing import Grant, Pool, SharedBudget
from asana_assets.lib.storage.documents import Documents, Table, open_documents

# A clock further ahead than this is a wall clock that went back: it starts again from now.
MAX_AHEAD = 120.0
TOKEN_CLOCK = "*"  # the clock of the token's slots, whatever their pool (a pool's own is its cap's)
# Seconds Postgres may take to connect, or to answer (waiting for the lock included), before the
# budget counts as out of reach: a sync never hangs on it.
POSTGRES_TIMEOUT = 5
# The layout deployments hold: a row per token fingerprint, no updated_at.
BUDGETS = Table("asana_quota", "budgets", key="fingerprint", stamped=False)
T = TypeVar("T")
State = dict[str, Any]


def fingerprint(token: str) -> str:
    """The name a token's budget is kept under: the sha256 of the token, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def settle(state: State, now: float, member: str, pool: Pool, slots: int, reads: int, in_flight: int,
           lease: float) -> Grant:
    """Renew ``member``'s lease and take ``slots`` of ``pool`` in ``state`` (changed in place), at
    ``now`` (seconds, the store's clock).

    Reads in flight: each live client of a pool is offered an equal part of the pool's cap, within
    what the token's other clients leave free; one that holds more than its part gives the rest
    back as its requests end (it keeps a lease of at least what it has out)."""
    paused_until = state.get("paused_until", 0.0)
    leases = {m: held for m, held in state.get("leases", {}).items()
              if held["expires"] > now and m != member and not _gone(m)}
    in_pool = [held["reads"] for held in leases.values() if held["pool"] == pool.name]
    part = max(1, pool.concurrency // (len(in_pool) + 1))
    free = min(pool.concurrency - sum(in_pool), pool.total_concurrency - sum(h["reads"] for h in leases.values()))
    granted = max(0, min(reads, part, free))
    held = {"pool": pool.name, "reads": max(granted, in_flight), "expires": now + lease}
    if "ends" in (earlier := state.get("leases", {}).get(member, {})):
        held["ends"] = earlier["ends"]
    leases[member] = held
    state["leases"] = leases

    clocks = state.setdefault("clocks", {})
    resume = max(now, paused_until)

    def due(clock: str) -> float:
        start = clocks.get(clock, 0.0)
        return resume if start < resume or start > resume + MAX_AHEAD else start

    start = max(due(TOKEN_CLOCK), due(pool.name))
    if slots:
        clocks[TOKEN_CLOCK] = start + slots * pool.token_interval
        clocks[pool.name] = start + slots * pool.interval
        # Where this grant left each clock, and its spacing there: what `leave` may give back.
        held["ends"] = {TOKEN_CLOCK: [clocks[TOKEN_CLOCK], pool.token_interval],
                        pool.name: [clocks[pool.name], pool.interval]}
    return Grant(start=start - now, slots=slots, reads=granted, paused=max(0.0, paused_until - now))


def _gone(member: str) -> bool:
    """Whether a lease's holder (``host:pid:id``, see `Pacing`) is a process of this machine that
    no longer runs: its reads are given back at once, not when the lease lapses (a killed sync's
    rerun starts at once). Another machine's, or one that cannot be told, is kept."""
    host, _, rest = member.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: it runs
        return False
    return False


def pause(state: State, now: float, seconds: float) -> None:
    state["paused_until"] = max(state.get("paused_until", 0.0), now + seconds)


def leave(state: State, member: str, unused: int = 0) -> None:
    """Drop ``member``'s lease, and move each clock its latest grant left back by its ``unused``
    last slots, unless another grant has taken that clock on since (those slots are no longer
    the clock's last)."""
    held = state.get("leases", {}).pop(member, None) or {}
    clocks = state.get("clocks", {})
    for clock, (end, interval) in held.get("ends", {}).items() if unused > 0 else ():
        if clocks.get(clock) == end:
            clocks[clock] = end - unused * interval


class Budget:
    """A `SharedBudget` over a store of documents, one per token fingerprint, each changed under
    the store's lock (``flock`` in a folder, for processes of one machine or of a filesystem with
    working ``flock``; an advisory lock in Postgres, on the database's clock, for processes on
    several machines). One exchange at a time: a client calls it from worker threads."""

    def __init__(self, documents: Documents, token_fingerprint: str) -> None:
        self.documents, self.fingerprint = documents, token_fingerprint
        self.where = documents.where
        self._lock = threading.Lock()

    def take(self, member: str, pool: Pool, slots: int, reads: int, in_flight: int, lease: float) -> Grant:
        return self._change(lambda state, now: settle(state, now, member, pool, slots, reads, in_flight, lease))

    def pause(self, seconds: float) -> None:
        self._change(lambda state, now: pause(state, now, seconds))

    def leave(self, member: str, unused: int = 0) -> None:
        self._change(lambda state, _now: leave(state, member, unused))

    def close(self) -> None:
        with self._lock:
            self.documents.close()

    def _change(self, change: Callable[[State, float], T]) -> T:
        with self._lock:
            return self.documents.change(self.fingerprint, change)


def open_budget(location: str, token: str) -> SharedBudget:
    """The budget of ``token`` kept at ``location``: a ``postgresql://`` URL (table
    ``asana_quota.budgets``, one connection kept open, never waiting on it more than
    POSTGRES_TIMEOUT), else a folder (a file per token). Opening reaches nothing: the first
    exchange does (and a client falls back if it fails)."""
    return Budget(open_documents(location, BUDGETS, timeout=POSTGRES_TIMEOUT, persistent=True), fingerprint(token))
