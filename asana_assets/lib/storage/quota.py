"""One request budget per Asana token, shared by every process that uses the token.

Asana counts its quota (requests a minute, reads in flight) per token, but each run, each poll of
the events sensor and each ``asana-connections sync`` is a process with a client of its own. They
share the token's budget here: one small record per token, named by the sha256 of the token
(never the token), kept in Postgres or in a file and changed under a lock. A client takes request
slots a second's worth at a time (see `AsanaClient`), so the record costs a round trip a batch,
not a request.

The record holds, per pool (the events sensor's, the runs'), the time its slots are taken up to:
slots are spaced by the pool's interval and never granted in the past, so the pool's processes
together keep its pace. It also holds each live client's lease of reads in flight (renewed while
the client is open, lapsing when its process dies), and the pause that a 429's Retry-After sets
for every process of the token.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import adbc_driver_postgresql.dbapi as adbc

from asana_assets.lib.asana.client import Grant, Pool, SharedBudget
from asana_assets.lib.storage.locks import exclusive
from asana_assets.lib.storage.postgres import ident, libpq_url

# A pool's clock further ahead than this is a wall clock that went back: it starts again from now.
MAX_AHEAD = 120.0
# Seconds Postgres may take to connect, or to answer (waiting for the lock included), before the
# budget counts as out of reach: a sync never hangs on it.
POSTGRES_TIMEOUT = 5
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
    leases = {m: held for m, held in state.get("leases", {}).items() if held["expires"] > now and m != member}
    in_pool = [held["reads"] for held in leases.values() if held["pool"] == pool.name]
    part = max(1, pool.concurrency // (len(in_pool) + 1))
    free = min(pool.concurrency - sum(in_pool), pool.total_concurrency - sum(h["reads"] for h in leases.values()))
    granted = max(0, min(reads, part, free))
    leases[member] = {"pool": pool.name, "reads": max(granted, in_flight), "expires": now + lease}
    state["leases"] = leases

    clocks = state.setdefault("clocks", {})
    resume = max(now, paused_until)
    start = clocks.get(pool.name, 0.0)
    start = resume if start < resume or start > resume + MAX_AHEAD else start
    if slots:
        clocks[pool.name] = start + slots * pool.interval
    return Grant(start=start - now, slots=slots, reads=granted, paused=max(0.0, paused_until - now))


def pause(state: State, now: float, seconds: float) -> None:
    state["paused_until"] = max(state.get("paused_until", 0.0), now + seconds)


def leave(state: State, member: str) -> None:
    state.get("leases", {}).pop(member, None)


class _Budget:
    """A `SharedBudget` over a store of records, one per token, each changed under a lock; one
    exchange at a time (a client calls it from worker threads)."""

    where: str

    def __init__(self, token_fingerprint: str) -> None:
        self.fingerprint = token_fingerprint
        self._lock = threading.Lock()

    def take(self, member: str, pool: Pool, slots: int, reads: int, in_flight: int, lease: float) -> Grant:
        return self._change(lambda state, now: settle(state, now, member, pool, slots, reads, in_flight, lease))

    def pause(self, seconds: float) -> None:
        self._change(lambda state, now: pause(state, now, seconds))

    def leave(self, member: str) -> None:
        self._change(lambda state, _now: leave(state, member))

    def close(self) -> None:
        pass

    def _change(self, change: Callable[[State, float], T]) -> T:
        with self._lock:
            return self._exchange(change)

    def _exchange(self, change: Callable[[State, float], T]) -> T:
        """Read the token's record under its lock, apply ``change(state, now)``, write it back."""
        raise NotImplementedError


class FileBudget(_Budget):
    """Records in a folder, a file per token fingerprint, changed under ``flock``: for processes
    of one machine (or of a filesystem with working ``flock``). The wall clock is the budget's."""

    def __init__(self, folder: str | os.PathLike[str], token_fingerprint: str) -> None:
        super().__init__(token_fingerprint)
        self.folder = Path(folder)
        self.where = str(self.folder)
        self._path = self.folder / f"{token_fingerprint}.json"

    def _exchange(self, change: Callable[[State, float], T]) -> T:
        with exclusive(self.folder / f"{self.fingerprint}.lock"):
            try:
                state = json.loads(self._path.read_text())
            except (FileNotFoundError, ValueError):  # none yet (it is replaced whole, never half-written)
                state = {}
            result = change(state, time.time())
            # Written beside, then renamed over: a reader never sees half a record.
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".budget-")
            try:
                with os.fdopen(fd, "w") as file:
                    json.dump(state, file)
                os.replace(temporary, self._path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            return result


class PostgresBudget(_Budget):
    """Records in Postgres, table ``budgets`` of a schema of its own (``asana_quota``), a row per
    token fingerprint, changed under a transaction-scoped advisory lock on that fingerprint: for
    processes on several machines. The database's clock is the budget's, so the machines' clocks
    need not agree. One connection, opened on first use and kept until `close`."""

    SCHEMA = "asana_quota"

    def __init__(self, url: str, token_fingerprint: str) -> None:
        super().__init__(token_fingerprint)
        self._url = libpq_url(url)
        self.table = f"{ident(self.SCHEMA)}.{ident('budgets')}"
        address = urlsplit(self._url)  # named without its user or password
        self.where = f"Postgres at {address.hostname}:{address.port or 5432}{address.path} (table {self.SCHEMA}.budgets)"
        self._connection: adbc.Connection | None = None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _connect(self) -> adbc.Connection:
        url = self._url if "connect_timeout=" in self._url else (
            f"{self._url}{'&' if '?' in self._url else '?'}connect_timeout={POSTGRES_TIMEOUT}"
        )
        connection = adbc.connect(url)
        try:
            with connection.cursor() as cur:
                cur.execute(f"SET statement_timeout = '{POSTGRES_TIMEOUT}s'")
                # One process at a time creates the table (CREATE ... IF NOT EXISTS races otherwise).
                cur.execute("SELECT pg_advisory_xact_lock(hashtext($1))", (f"{self.table} setup",))
                cur.fetchall()
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(self.SCHEMA)}")
                cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table} "
                            "(fingerprint text PRIMARY KEY, state jsonb NOT NULL)")
            connection.commit()
        except BaseException:
            connection.close()
            raise
        return connection

    def _exchange(self, change: Callable[[State, float], T]) -> T:
        if self._connection is None:
            self._connection = self._connect()
        connection = self._connection
        try:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", (f"asana_quota {self.fingerprint}",))
                cur.fetchall()
                cur.execute(
                    f"SELECT extract(epoch FROM clock_timestamp())::float8, "
                    f"(SELECT state::text FROM {self.table} WHERE fingerprint = $1)", (self.fingerprint,),
                )
                now, text = cur.fetchone()
                state = json.loads(text) if text else {}
                result = change(state, now)
                cur.execute(
                    f"INSERT INTO {self.table} VALUES ($1, $2::jsonb) "
                    "ON CONFLICT (fingerprint) DO UPDATE SET state = excluded.state",
                    (self.fingerprint, json.dumps(state)),
                )
            connection.commit()
        except BaseException:
            self._connection = None  # a broken connection is not used again
            connection.close()
            raise
        return result


def open_budget(location: str, token: str) -> SharedBudget:
    """The budget of ``token`` kept at ``location``: a ``postgresql://`` URL, else a folder.
    Opening reaches nothing: the first exchange does (and a client falls back if it fails)."""
    if re.match(r"^postgres(?:ql)?(?:\+\w+)?://", location):
        return PostgresBudget(location, fingerprint(token))
    return FileBudget(location, fingerprint(token))
