"""The workspace audit log (Enterprise+): who changed access and when, read incrementally.

Asana keeps audit events for 90 days and serves them oldest first. Each sync asks, per
workspace, for the events from the last one it kept (``start_at`` is inclusive, so events
sharing that instant are read again and deduplicated by gid) and adds them to the table, which
thus keeps events beyond Asana's retention. A workspace without the audit log (402 or 403: not
Enterprise+, or a token that is not a service account's) is noted, never a failure. An event
that fails validation goes to the quarantine table with its reason (``quarantined``), once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from asana_assets.lib.asana.client import AsanaClient, ForbiddenError, PaymentRequiredError
from asana_assets.lib.schema import TABLES, to_arrow

TABLE = "audit_log_events"
PAGE_SIZE = 100  # the spec's largest limit for this endpoint
USER_EVENTS = frozenset({
    "user_invited", "user_deprovisioned", "user_reprovisioned", "user_workspace_admin_role_changed",
})


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
        user = self.details.get("user")
        subject = self.resource.gid if self.event_type in USER_EVENTS else (
            user.get("gid") if isinstance(user, dict) else None)
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
    """The audit table after a read, each workspace's new cursor, what was refused, and the
    workspaces whose audit log is unavailable (gid -> why)."""

    table: pa.Table
    cursors: dict[str, str]
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    added: int = 0


async def read_audit_log(client: AsanaClient, workspace_gids: Iterable[str], cursors: dict[str, str],
                         current: pa.Table | None, observed_at: datetime) -> AuditLogRead:
    """Read each workspace's events since its cursor and add them to ``current``; a record that
    fails validation is returned as a quarantine row, with its reason."""
    rows: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    unavailable: dict[str, str] = {}
    fresh = dict(cursors)
    for workspace_gid in workspace_gids:
        try:
            async for raw in _events(client, workspace_gid, cursors.get(workspace_gid)):
                try:
                    rows.append(AuditLogEvent.model_validate(raw).row(workspace_gid))
                except ValidationError as error:
                    gid = raw.get("gid") if isinstance(raw, dict) else None
                    refused.append({
                        "table": TABLE, "gid": gid if isinstance(gid, str) else None,
                        "error": "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()),
                        "raw": orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode(), "observed_at": observed_at,
                    })
        except (PaymentRequiredError, ForbiddenError) as error:
            unavailable[workspace_gid] = f"HTTP {error.status}: the audit log needs Enterprise+ and a service account"
            continue
        mine = [row["created_at"] for row in rows if row["workspace_gid"] == workspace_gid]
        if mine:
            fresh[workspace_gid] = max(mine).astimezone(UTC).isoformat()
    new = to_arrow(TABLE, rows)
    table = new if current is None else _merged(current, new)
    previous = 0 if current is None else current.num_rows
    return AuditLogRead(table, fresh, refused, unavailable, table.num_rows - previous)


async def _events(client: AsanaClient, workspace_gid: str, since: str | None):
    """Every event from ``since`` on. The audit log answers a next_page even at the end of its
    current data: an empty page, or no next_page, ends the read."""
    query: dict[str, Any] = {"limit": PAGE_SIZE}
    if since:
        query["start_at"] = since
    path = f"/workspaces/{workspace_gid}/audit_log_events"
    while True:
        body = await client.get(path, query)
        page = body.get("data") or []
        for raw in page:
            yield raw
        offset = (body.get("next_page") or {}).get("offset")
        if not page or not offset:
            return
        query = {**query, "offset": offset}


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
