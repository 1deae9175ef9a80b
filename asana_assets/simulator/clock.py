"""Timestamps in Asana's wire format and the world's clock.

Timestamps are stored as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` strings: that is what the API serves, and
the fixed-width format sorts lexicographically in time order, so filters compare strings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def iso(when: datetime) -> str:
    """Format an aware (or UTC-naive) datetime as Asana's millisecond UTC timestamp."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 date or datetime; naive values are taken as UTC. Raises ValueError."""
    parsed = datetime.fromisoformat(text.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Clock:
    """Hands out strictly increasing millisecond times for mutations made after generation.

    It follows real time unless a test pins it with :meth:`set` or moves it with :meth:`advance`;
    two calls never return the same instant, so stories and events keep a total order.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._pinned: datetime | None = None
        self._last = start or datetime.min.replace(tzinfo=UTC)

    def set(self, when: datetime) -> None:
        """Pin the clock at ``when`` (later calls to :meth:`now` still tick by one millisecond)."""
        self._pinned = when if when.tzinfo else when.replace(tzinfo=UTC)

    def advance(self, **delta: float) -> None:
        """Move a pinned clock forward, e.g. ``advance(hours=2)``; pins it at now if it was real."""
        self._pinned = (self._pinned or self.now()) + timedelta(**delta)

    def now(self) -> datetime:
        """The next instant: the pinned or real time, but at least 1 ms after the previous one."""
        base = self._pinned or datetime.now(UTC)
        base = base.replace(microsecond=base.microsecond // 1000 * 1000)
        self._last = max(base, self._last + timedelta(milliseconds=1))
        return self._last
