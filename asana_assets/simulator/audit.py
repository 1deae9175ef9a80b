"""``GET /workspaces/{workspace_gid}/audit_log_events``: an Enterprise world's audit log, which the
world records as access changes (``World.audit_log``), served as Asana serves it.
"""

from __future__ import annotations

from typing import Any

from .calls import INVALID_OFFSET, ApiError, Call, Offsets, next_page, page_limit
from .models import Workspace
from .world import World

PAYMENT_REQUIRED = "The audit log API is only available to Enterprise+ domains; a service account is required."
MAX_LIMIT = 100
FILTERS = {
    "event_type": lambda event: event["event_type"],
    "actor_type": lambda event: event["actor"]["actor_type"],
    "actor_gid": lambda event: event["actor"]["gid"],
    "resource_gid": lambda event: event["resource"]["gid"],
}


def audit_log_events(world: World, call: Call, offsets: Offsets) -> dict[str, Any]:
    """The workspace's events ascending by created_at, filtered by start_at (inclusive) and
    end_at (exclusive); 402 outside Enterprise.

    The log is a stream, as the spec describes it: once events match, every answer carries a
    next_page, and its offset, sent again with the same filters, returns the events recorded
    after the last one served (an empty page at the end of current data). So an offset names
    the last event served, not a position, and it does not expire; one issued for other filters
    or altered is refused (400)."""
    workspace = call.path_gid("workspace_gid")
    if not world.enterprise or world.get(workspace, Workspace).plan != "enterprise":
        raise ApiError(402, PAYMENT_REQUIRED)
    if not world.sees_everything(call.user, workspace):
        raise ApiError(403, "Only service accounts of an Enterprise organization can read its audit log.")
    start, end = call.time("start_at"), call.time("end_at")
    events = [
        {k: v for k, v in event.items() if k != "workspace"}
        for event in sorted(world.audit_log, key=_order)
        if event["workspace"] == workspace
        and (start is None or event["created_at"] >= start) and (end is None or event["created_at"] < end)
    ]
    for name, value_of in FILTERS.items():
        wanted = call.query.get(name)
        if wanted is not None:
            events = [event for event in events if value_of(event) == wanted]
    limit = min(page_limit(call.query) or MAX_LIMIT, MAX_LIMIT)
    fingerprint = ":".join([workspace, *(str(call.query.get(name)) for name in ("start_at", "end_at", *FILTERS))])
    after = _after(offsets, call.query.get("offset"), fingerprint)
    page = [event for event in events if after is None or _order(event) > after][:limit]
    last = _order(page[-1]) if page else after
    payload: dict[str, Any] = {"data": page, "next_page": None}
    if last is not None:
        payload["next_page"] = next_page(call.request, offsets.signer.sign("audit", *last, fingerprint))
    return payload


def _order(event: dict[str, Any]) -> tuple[str, str]:
    """The log's order: by creation time, then gid (events of one instant keep a fixed order)."""
    return str(event["created_at"]), str(event["gid"])


def _after(offsets: Offsets, offset: str | None, fingerprint: str) -> tuple[str, str] | None:
    """The last event an offset was issued after (None without one); 400 for one not issued for
    these filters, or altered."""
    if offset is None:
        return None
    fields = offsets.signer.verify(offset)
    if not fields or len(fields) != 4 or fields[0] != "audit" or fields[3] != fingerprint:
        raise ApiError(400, INVALID_OFFSET)
    return fields[1], fields[2]
