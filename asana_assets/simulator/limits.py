"""Per-token rate limiting, fault injection and request statistics."""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import Counter, defaultdict, deque
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from .config import SimulatorConfig

WINDOW_SECONDS = 60.0
_CORRUPTIONS = {  # field -> wrong value, per resource type; a valid gid is always kept
    "task": (("created_at", "not-a-date"), ("completed", "sometimes"), ("assignee", "12345"), ("modified_at", 17)),
    "story": (("created_at", "not-a-date"), ("created_by", "12345"), ("resource_subtype", None)),
}


class Refusal(NamedTuple):
    """Why a call was not admitted (quota, concurrency or cost) and its Retry-After in seconds."""

    cause: str
    retry_after: int


class RateLimiter:
    """The API's limits, per token: a sliding one-minute quota that counts rejected requests too,
    caps on concurrent GETs and concurrent writes (two independent pools), and the optional cost
    limit (``SimulatorConfig.cost_per_minute``)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._in_flight: Counter[tuple[str, bool]] = Counter()
        self._costs: dict[str, tuple[float, float]] = {}  # token -> (balance, when it was last refilled)

    def admit(self, token: str, write: bool, now: float) -> Refusal | None:
        """Count a request; None admits it (now in flight), else why not and the Retry-After."""
        window, quota = self._windows[token], self.config.requests_per_minute
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        window.append(now)
        if len(window) > quota:
            # Admission needs fewer than `quota` requests in the trailing minute.
            return Refusal("quota", max(1, math.ceil(window[len(window) - quota] + WINDOW_SECONDS - now)))
        if (balance := self._balance(token, now)) is not None and balance <= 0:
            per_second = self.config.cost_per_minute / WINDOW_SECONDS
            return Refusal("cost", max(1, math.ceil(-balance / per_second)))  # when it turns positive
        cap = self.config.max_concurrent_writes if write else self.config.max_concurrent_reads
        if self._in_flight[token, write] >= cap:
            return Refusal("concurrency", self.config.concurrency_retry_after)
        self._in_flight[token, write] += 1
        return None

    def release(self, token: str, write: bool) -> None:
        self._in_flight[token, write] -= 1

    def charge(self, token: str, cost: int, now: float) -> None:
        """Charge an answer's cost once it is built (a no-op without a cost limit)."""
        if (balance := self._balance(token, now)) is not None:
            self._costs[token] = (balance - cost, now)

    def _balance(self, token: str, now: float) -> float | None:
        """The token's cost balance refilled up to `now` (full at first); None without a cost limit."""
        limit = self.config.cost_per_minute
        if limit is None:
            return None
        balance, since = self._costs.get(token, (float(limit), now))
        balance = min(float(limit), balance + (now - since) * limit / WINDOW_SECONDS)
        self._costs[token] = (balance, now)
        return balance


def answer_cost(payload: Any) -> int:
    """What building an answer walked, as Asana's cost limit counts it: one link per object in
    it (the envelope, each record, each expanded reference such as a follower or custom field)."""
    count, stack = 0, [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += 1
            stack.extend(value for value in item.values() if isinstance(value, dict | list))
        elif isinstance(item, list):
            stack.extend(value for value in item if isinstance(value, dict | list))
    return count


class Faults:
    """Injected failures, drawn from a seeded generator so a run can be reproduced."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._rng = random.Random(config.fault_seed)
        self._jitter = random.Random(config.fault_seed + 1)  # latency never shifts the fault sequence

    def draw(self) -> str | None:
        """'drop', '500', '503', '429' or None, in the configured shares."""
        c = self.config
        shares = (
            ("drop", c.drop_rate),
            ("500", c.error_rate),
            ("503", c.unavailable_rate),
            ("429", c.rate_limit_storm_rate),
        )
        if not any(share for _name, share in shares):
            return None
        roll = self._rng.random()
        for name, share in shares:
            if roll < share:
                return name
            roll -= share
        return None

    def refusal(self, path: str, query: Mapping[str, str]) -> int | None:
        """The status a configured refusal answers this call with (``SimulatorConfig.refusals``), or None."""
        for rule, status in self.config.refusals.items():
            route, _, params = rule.partition("?")
            if route == path and all(query.get(name) == value for name, value in parse_qsl(params)):
                return status
        return None

    def delay(self) -> float:
        """Seconds to hold a request in flight before answering."""
        jitter = self.config.latency_jitter_ms
        return (self.config.latency_ms + (self._jitter.uniform(0, jitter) if jitter else 0.0)) / 1000

    def phrase(self) -> str:
        """A support phrase for 500s, like the real API's."""
        words = (
            ("sad", "brave", "sleepy", "quick"),
            ("squid", "otter", "llama", "heron"),
            ("snuggle", "dance", "wander", "sing"),
            ("softly", "loudly", "quietly", "gladly"),
        )
        return " ".join([str(self._rng.randint(2, 9))] + [self._rng.choice(group) for group in words])

    def is_malformed(self, gid: str) -> bool:
        rate = self.config.malformed_rate
        return rate > 0 and self._hash(gid) < rate

    def corrupt(self, rtype: str, record: dict[str, Any]) -> None:
        """Break one field of a malformed record in place (the same field on every request)."""
        choices = _CORRUPTIONS[rtype]
        field, bad = choices[int(self._hash(record["gid"], salt="field") * len(choices))]
        record[field] = bad

    def _hash(self, gid: str, salt: str = "") -> float:
        digest = hashlib.blake2b(f"{self.config.fault_seed}:{salt}:{gid}".encode(), digest_size=8).digest()
        return int.from_bytes(digest) / 2**64


class Refused(NamedTuple):
    """One 429: when (epoch seconds), why (quota, concurrency, cost or storm) and whose token."""

    at: float
    cause: str
    token: str


class Stats:
    """Request counts by status and route template, the peak of concurrent GETs, and the latest
    429s (in memory only: they name the token)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.by_status: Counter[int] = Counter()
        self.by_route: Counter[str] = Counter()
        self.limited: Counter[str] = Counter()  # 429s by cause: quota, concurrency, cost, storm
        self.refusals: deque[Refused] = deque(maxlen=1000)
        self.cost = 0  # charged under a cost limit
        self.dropped = 0
        self.in_flight_reads = 0
        self.max_in_flight_reads = 0

    def enter(self, write: bool) -> None:
        if not write:
            self.in_flight_reads += 1
            self.max_in_flight_reads = max(self.max_in_flight_reads, self.in_flight_reads)

    def leave(self, write: bool) -> None:
        if not write:
            self.in_flight_reads -= 1

    def refuse(self, cause: str, token: str) -> None:
        self.limited[cause] += 1
        self.refusals.append(Refused(time.time(), cause, token))

    def record(self, route: str, status: int | None) -> None:
        """Count one answered request; status None means the connection was dropped."""
        self.by_route[route] += 1
        if status is None:
            self.dropped += 1
        else:
            self.by_status[status] += 1

    @property
    def total(self) -> int:
        return sum(self.by_route.values())

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_status": {str(code): n for code, n in sorted(self.by_status.items())},
            "by_route": dict(self.by_route.most_common()),
            "rate_limited_by": dict(self.limited.most_common()),
            "cost": self.cost,
            "dropped": self.dropped,
            "max_in_flight_reads": self.max_in_flight_reads,
        }
