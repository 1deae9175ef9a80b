"""The workspace audit log (Enterprise+): who changed access and when, read incrementally.

Asana keeps audit events for 90 days and serves them oldest first, as a stream: each sync
resumes a workspace's log with the ``offset`` of the last page it read, sent with the same
filters, as the spec says to poll it, and adds the events to the table, which thus keeps them
beyond Asana's retention. A workspace read before offsets were kept resumes from the time of
its last event (``start_at``, inclusive: events of that instant are read again and kept once by
gid); so does one whose offset Asana refuses (400), from the newest event the table holds. A
workspace without the audit log (402 or 403: not Enterprise+, or a token that is not a service
account's) is noted, never a failure. An event that fails validation goes to the quarantine
table with its reason (``quarantined``), once.

Only documented fields are read: a user event's resource is the user it is about; a team or
project membership event names the team or project, not the member (the access snapshots may
tell who it was: see ``compliance.attribution``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from asana_assets.lib.asana.client import AsanaClient, BadRequestError, ForbiddenError, PaymentRequiredError
from asana_assets.lib.schema import TABLES, to_arrow

TABLE = "audit_log_events"
PAGE_SIZE = 100  # the spec's largest limit for this endpoint
# Events whose resource is the user they are about (Asana: "all user events operate on the user
# resource type", and so do role events).
USER_EVENTS = frozenset({
    "user_invited", "user_deprovisioned", "user_reprovisioned", "user_workspace_admin_role_changed",
})

log = logging.getLogger(__name__)


class _Party(BaseModel):
    model_config = ConfigDict(extra="ignore")
    gid: str | None = None
    name: str | None = None
    email: str | None = None


class _Actor(_Party):
    actor_type: str | None = None


class _Resource(_Party):
    resource_type: str | None = None
    resource_subtype: str | None = None


class AuditLogEvent(BaseModel):
    """One audit event as the API returns it (``details`` and ``context`` are kept whole)."""

    model_config = ConfigDict(extra="ignore")
    gid: str
    created_at: AwareDatetime
    event_type: str
    event_category: str | None = None
    actor: _Actor
    resource: _Resource
    details: dict[str, Any] = {}
    context: dict[str, Any] = {}

    def row(self, workspace_gid: str) -> dict[str, Any]:
        about_user = self.event_type in USER_EVENTS and self.resource.resource_type == "user"
        subject = self.resource.gid if about_user else None
        return {
            "gid": self.gid, "workspace_gid": workspace_gid, "created_at": self.created_at,
            "event_type": self.event_type, "event_category": self.event_category,
            "actor_type": self.actor.actor_type, "actor_gid": self.actor.gid, "actor_name": self.actor.name,
            "actor_email": self.actor.email, "resource_type": self.resource.resource_type,
            "resource_subtype": self.resource.resource_subtype, "resource_gid": self.resource.gid,
            "resource_name": self.resource.name, "resource_email": self.resource.email,
            "subject_user_gid": subject,
            "old_value": _text(self.details.get("old_value")), "new_value": _text(self.details.get("new_value")),
            "details": orjson.dumps(self.details, option=orjson.OPT_SORT_KEYS).decode(),
            "context": orjson.dumps(self.context, option=orjson.OPT_SORT_KEYS).decode(),
        }


@dataclass
class AuditLogRead:
    """The audit table after a read; per workspace, the ``start_at`` its stream was opened with
    (``starts``) and the offset to resume it from (``offsets``); what was refused; and the
    workspaces whose audit log is unavailable (gid -> why)."""

    table: pa.Table
    starts: dict[str, str]
    offsets: dict[str, str]
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    added: int = 0


async def read_audit_log(client: AsanaClient, workspace_gids: Iterable[str], starts: dict[str, str],
                         offsets: dict[str, str], current: pa.Table | None, observed_at: datetime) -> AuditLogRead:
    """Resume each workspace's log (its ``offsets`` entry, sent with its ``starts`` entry; without
    an offset, from its ``starts`` entry: the created_at a state saved before offsets holds) and
    add the events to ``current``; a record that fails validation is returned as a quarantine
    row, with its reason."""
    rows: dict[str, dict[str, Any]] = {}
    refused: list[dict[str, Any]] = []
    unavailable: dict[str, str] = {}
    starts, offsets = dict(starts), dict(offsets)
    for workspace_gid in workspace_gids:
        try:
            try:
                events, offset = await _read(client, workspace_gid, starts.get(workspace_gid),
                                             offsets.get(workspace_gid))
            except BadRequestError:
                if workspace_gid not in offsets:
                    raise
                log.warning("Asana refused the audit log offset of workspace %s; resuming from its newest event",
                            workspace_gid)
                starts.pop(workspace_gid, None)
                if (newest := _newest(current, workspace_gid)) is not None:
                    starts[workspace_gid] = newest
                events, offset = await _read(client, workspace_gid, starts.get(workspace_gid), None)
        except (PaymentRequiredError, ForbiddenError) as error:
            unavailable[workspace_gid] = f"HTTP {error.status}: the audit log needs Enterprise+ and a service account"
            continue
        for raw in events:
            try:
                row = AuditLogEvent.model_validate(raw).row(workspace_gid)
                rows[row["gid"]] = row
            except ValidationError as error:
                refused.append(_refused(raw, error, observed_at))
        if offset is None:  # nothing matches (the spec's null next_page): the next read opens afresh
            offsets.pop(workspace_gid, None)
        else:
            offsets[workspace_gid] = offset
    new = to_arrow(TABLE, rows.values())
    table = new if current is None else _merged(current, new)
    previous = 0 if current is None else current.num_rows
    return AuditLogRead(table, starts, offsets, refused, unavailable, table.num_rows - previous)


async def _read(client: AsanaClient, workspace_gid: str, start: str | None,
                offset: str | None) -> tuple[list[Any], str | None]:
    """Every event from ``offset`` (else from ``start``, else from the first), and the offset to
    resume from next (None: nothing matches). The log answers a next_page even at the end of
    its current data, so an empty page ends the read; a page without one is read again next
    time rather than skipped."""
    query: dict[str, Any] = {"limit": PAGE_SIZE}
    if start:
        query["start_at"] = start
    path = f"/workspaces/{workspace_gid}/audit_log_events"
    events: list[Any] = []
    while True:
        body = await client.get(path, query if offset is None else {**query, "offset": offset})
        page = body.get("data") or []
        events += page
        following = (body.get("next_page") or {}).get("offset")
        if not page or not following:
            return events, following or offset
        offset = following


def _newest(current: pa.Table | None, workspace_gid: str) -> str | None:
    """The time of the newest event the table keeps for the workspace, as ISO-8601 (None: none)."""
    if current is None:
        return None
    newest = pc.max(current.filter(pc.equal(current["workspace_gid"], workspace_gid))["created_at"]).as_py()
    return None if newest is None else newest.astimezone(UTC).isoformat()


def _refused(raw: Any, error: ValidationError, observed_at: datetime) -> dict[str, Any]:
    """The quarantine row of an event that failed validation."""
    gid = raw.get("gid") if isinstance(raw, dict) else None
    return {
        "table": TABLE, "gid": gid if isinstance(gid, str) else None,
        "error": "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()),
        "raw": orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode(), "observed_at": observed_at,
    }


def quarantined(quarantine: pa.Table | None, refused: list[dict[str, Any]]) -> pa.Table:
    """The quarantine table with the refused audit events in it, each once: an event read again
    (``start_at`` is inclusive, and one whose time does not parse sorts anywhere) replaces its
    row, matched by its record since it may lack a gid."""
    new = to_arrow("quarantine", refused)
    if quarantine is None:
        return new
    again = pc.and_(pc.equal(quarantine["table"], TABLE), pc.is_in(quarantine["raw"], value_set=new["raw"]))
    kept = quarantine.cast(new.schema).filter(pc.invert(pc.fill_null(again, False)))
    return pa.concat_tables([kept, new])


def _merged(current: pa.Table, new: pa.Table) -> pa.Table:
    """The kept events plus the new ones, one row per gid (a re-read event replaces its copy)."""
    kept = current.cast(TABLES[TABLE]).filter(pc.invert(pc.is_in(current["gid"], new["gid"])))
    return pa.concat_tables([kept, new]).sort_by([("created_at", "ascending"), ("gid", "ascending")])


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
