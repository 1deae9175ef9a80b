"""Which projects' events feeds the events sensor looks at in a tick, and the look itself: polls
follow activity, not the number of projects.

The rules (active and quiet projects, one tick's request budget, the bound on a project's wait,
the young tokens a quiet poll keeps, where the schedule is kept) are stated once, for users and
for this code, in docs/operations.md ("The events sensor"); ``PollPolicy`` holds their numbers.
A look reads a project's pending events without consuming them (one request a project), neither
retries nor waits out a rate limit, and is waited for a bounded time, so one slow, throttled or
refused connection never holds up the others' polls.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asana_assets.lib.asana.client import AsanaClient, RateLimitedError, SyncTokenExpiredError
from asana_assets.lib.asana.state import SyncState

MINUTE = 60.0
LOOK_TIMEOUT = 20.0  # seconds a look may wait for one response
# How a look's client is opened: it neither retries nor waits out a rate limit (the next tick looks again).
LOOK_CLIENT = {"max_retries": 0, "timeout": LOOK_TIMEOUT}


@dataclass(frozen=True)
class PollPolicy:
    """How often projects are polled, and how many in one tick."""

    every: float  # minutes: the connection's poll interval, an active project's
    budget: int  # polls (one request each) per tick
    active_for: float = 10.0  # minutes a project stays active after events were seen or it was first tracked
    max_factor: int = 64  # a quiet project's interval grows up to every x this
    slack: float = 0.5  # minutes: ticks drift, so a project due a little after the tick is polled in it

    def bound(self, projects: int) -> tuple[float, float]:
        """Minutes within which an active and a quiet project are polled again, whatever the load."""
        queue = (math.ceil(projects / self.budget) - 1) * self.every
        return self.every + queue, self.every * self.max_factor + queue


@dataclass
class PollSchedule:
    """Per project: [last poll, last activity, interval]: epoch seconds (the last poll None
    before the first), and minutes. Small enough to keep for thousands of projects."""

    projects: dict[str, list] = field(default_factory=dict)
    # Per project, the token a poll that found nothing pending was handed: {"sync", "taken_at"}.
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def due(self, tracked: Iterable[str], policy: PollPolicy, now: float) -> tuple[list[str], int]:
        """The projects to poll this tick, and how many more are due but wait for the next.

        ``tracked`` are the projects to poll at all (untracked ones are forgotten, new ones are
        due at once and active for a while).
        """
        tracked = set(tracked)
        self.projects = {gid: entry for gid, entry in self.projects.items() if gid in tracked}
        self.tokens = {gid: entry for gid, entry in self.tokens.items() if gid in tracked}
        for gid in tracked - self.projects.keys():
            self.projects[gid] = [None, now, policy.every]
        ready = []
        for gid, (polled, active, every) in self.projects.items():
            due_at = active if polled is None else polled + every * MINUTE
            if now - active < policy.active_for * MINUTE or due_at <= now + policy.slack * MINUTE:
                ready.append((due_at, gid))
        ready.sort()
        return [gid for _, gid in ready[: policy.budget]], max(0, len(ready) - policy.budget)

    def polled(self, found: dict[str, bool], policy: PollPolicy, now: float) -> None:
        """Record a tick's polls: per project, whether events were pending."""
        for gid, pending in found.items():
            _, active, every = self.projects.get(gid, [None, now, policy.every])
            if pending:
                active, every = now, policy.every
            elif now - active < policy.active_for * MINUTE:
                every = policy.every
            else:
                every = min(every * 2, policy.every * policy.max_factor)
            self.projects[gid] = [now, active, every]

    def renewed(self, tokens: dict[str, str], taken_at: str) -> None:
        """Keep the tokens that polls finding nothing pending were handed; ``taken_at`` (ISO, UTC)
        is the time the polls were sent, so a token never looks younger than it is."""
        self.tokens.update({gid: {"sync": sync, "taken_at": taken_at} for gid, sync in tokens.items()})

    def to_json(self) -> dict:
        return {"projects": self.projects, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict | None) -> PollSchedule:
        """A schedule saved before; anything unreadable counts as none (every project is due)."""
        projects, tokens = (data or {}).get("projects"), (data or {}).get("tokens")
        if not isinstance(projects, dict):
            return cls()
        tokens = tokens if isinstance(tokens, dict) else {}
        return cls({gid: entry for gid, entry in projects.items() if _valid(entry)},
                   {gid: entry for gid, entry in tokens.items() if _valid_token(entry)})


async def look_at_feeds(client: AsanaClient, state: SyncState, projects: Iterable[str] | None = None,
                        within: float | None = None, renewed: dict[str, str] | None = None) -> dict[str, str | None]:
    """Look at the events feeds of ``projects`` (default: every project with a token in
    ``state``), with a client opened with LOOK_CLIENT: per project looked at, a digest of what is
    pending, or None when nothing is; an expired token counts as pending. A project whose look
    failed, or is still unanswered ``within`` seconds, is left out, to be looked at again; when
    every look failed, the first failure is raised. A 429 ends the looks at once: those still
    waiting would only wait out its Retry-After. A look finding nothing pending puts the feed's
    next token in ``renewed``, when given."""

    async def peek(gid: str, token: str) -> str | None:
        try:
            events, sync, more = await client.events(gid, token)
        except SyncTokenExpiredError:
            return f"{token}:expired"
        if not events and renewed is not None:
            renewed[gid] = sync
        last = events[-1] if events else None
        return last and f"{token}:{len(events)}:{more}:{last.get('created_at')}:{last['resource']['gid']}"

    now = datetime.now(UTC)
    gids = [gid for gid in (state.tokens if projects is None else projects) if gid in state.tokens]
    tasks = {asyncio.ensure_future(peek(gid, state.token(gid, now) or "")): gid for gid in gids}
    # The looks answered in time count (their schedule is saved); the rest stay due.
    done, late = await _until_limited(set(tasks), within)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    found = {tasks[task]: task.exception() or task.result() for task in done}
    failures = [outcome for outcome in found.values() if isinstance(outcome, BaseException)]
    looked = {gid: outcome for gid, outcome in found.items() if not isinstance(outcome, BaseException)}
    if failures and (not looked or not all(isinstance(f, Exception) for f in failures)):
        raise failures[0]
    return looked


async def _until_limited(tasks: set[asyncio.Future], within: float | None) -> tuple[set, set]:
    """(done, still pending) once every task is done, ``within`` seconds have passed, or one was
    rate-limited."""
    loop = asyncio.get_running_loop()
    deadline = None if within is None else loop.time() + within
    done: set[asyncio.Future] = set()
    while tasks:
        left = None if deadline is None else max(0.0, deadline - loop.time())
        finished, tasks = await asyncio.wait(tasks, timeout=left, return_when=asyncio.FIRST_EXCEPTION)
        done |= finished
        if not finished or any(isinstance(task.exception(), RateLimitedError) for task in finished):
            break
    return done, tasks


def _valid(entry) -> bool:
    return (
        isinstance(entry, list) and len(entry) == 3
        and (entry[0] is None or isinstance(entry[0], int | float))
        and all(isinstance(value, int | float) for value in entry[1:])
    )


def _valid_token(entry) -> bool:
    return isinstance(entry, dict) and all(isinstance(entry.get(key), str) for key in ("sync", "taken_at"))
