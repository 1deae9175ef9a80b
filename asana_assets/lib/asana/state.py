"""What an incremental sync resumes from: each project's events token and when it was taken."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

TOKEN_LIFE = timedelta(hours=24)


@dataclass
class SyncState:
    """What an incremental sync resumes from: per project, its events token and when it was taken;
    and which projects are archived (the events sensor leaves those to the daily reconcile)."""

    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    last_full_sync_at: str | None = None
    last_sync_at: str | None = None
    archived: list[str] = field(default_factory=list)
    last_full_sync_requests: int | None = None  # the size of the next full crawl, for its time left
    # Workspace gid -> the start_at its audit log stream was opened with (Enterprise+ workspaces
    # only; a state saved before audit_log_offsets holds the created_at of the last event read).
    audit_log: dict[str, str] = field(default_factory=dict)
    # Workspace gid -> the audit log offset to resume from, sent with the same start_at (the spec's polling).
    audit_log_offsets: dict[str, str] = field(default_factory=dict)
    # Workspace gid -> why it has no audit log (402/403), so that is noted once, not every sync.
    audit_log_unavailable: dict[str, str] = field(default_factory=dict)
    # Findings as tasks: finding key (monitor/resource type/resource gid) -> its open task's gid.
    remediation: dict[str, str] = field(default_factory=dict)

    def token(self, project_gid: str, now: datetime) -> str | None:
        """The project's token, unless it is older than its life (then the project is re-listed)."""
        entry = self.tokens.get(project_gid)
        if not entry or now - datetime.fromisoformat(entry["taken_at"]) > TOKEN_LIFE:
            return None
        return entry["sync"]

    def age(self, project_gid: str, now: datetime) -> timedelta | None:
        """How old the project's token is (None without one)."""
        entry = self.tokens.get(project_gid)
        return now - datetime.fromisoformat(entry["taken_at"]) if entry else None

    def renew(self, renewed: dict[str, dict[str, str]]) -> None:
        """Take the tokens the events sensor was handed by polls that found nothing pending
        (`PollSchedule.tokens`) where they are younger than this state's: each stands for the
        same place in its feed as the token it was polled with, or a later one."""
        for gid, entry in renewed.items():
            mine = self.tokens.get(gid)
            if mine and datetime.fromisoformat(entry["taken_at"]) > datetime.fromisoformat(mine["taken_at"]):
                self.tokens[gid] = dict(entry)

    def began_last_sync(self) -> datetime | None:
        """When the last committed sync began (None before the first): a crawl's checkpoint
        from before then is stale."""
        return None if self.last_sync_at is None else datetime.fromisoformat(self.last_sync_at)

    def resumed(self, read_at: dict[str, datetime], full_sync_requests: int | None) -> None:
        """After a full crawl that took projects from a checkpoint: their tokens were taken after
        ``read_at`` (when the crawl that read them began), not after this one began, so their
        age counts from then; and this crawl's requests were not a full crawl's, so the size
        kept for the next one's time left stays ``full_sync_requests``."""
        for gid, at in read_at.items():
            if (entry := self.tokens.get(gid)) is not None and at < datetime.fromisoformat(entry["taken_at"]):
                entry["taken_at"] = at.isoformat()
        self.last_full_sync_requests = full_sync_requests

    def advance(self, tokens: dict[str, str], projects: Iterable[str], now: datetime, full: bool,
                archived: Iterable[str] = ()) -> None:
        live = set(projects)
        kept = {gid: entry for gid, entry in self.tokens.items() if gid in live}
        fresh = {gid: {"sync": sync, "taken_at": now.isoformat()} for gid, sync in tokens.items() if gid in live}
        self.tokens = {**kept, **fresh}
        self.archived = sorted(set(archived) & live)
        self.last_sync_at = now.isoformat()
        if full:
            self.last_full_sync_at = now.isoformat()
