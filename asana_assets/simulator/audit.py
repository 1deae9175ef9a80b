"""``GET /workspaces/{workspace_gid}/audit_log_events``: an Enterprise world's audit log, which the
world records as access changes (``World.audit_log``), served as Asana serves it.
"""

from __future__ import annotations

from typing import Any

from .calls import ApiError, Call, Offsets, page_limit
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
    end_at (exclusive); 402 outside Enterprise. Paging always answers a next_page once there
    is data, as the real stream does; an empty page marks the end of current data."""
    workspace = call.path_gid("workspace_gid")
    if not world.enterprise or world.get(workspace, Workspace).plan != "enterprise":
        raise ApiError(402, PAYMENT_REQUIRED)
    if not world.sees_everything(call.user, workspace):
        raise ApiError(403, "Only service accounts of an Enterprise organization can read its audit log.")
    start, end = call.time("start_at"), call.time("end_at")
    events = [
        {k: v for k, v in event.items() if k != "workspace"}
        for event in sorted(world.audit_log, key=lambda event: event["created_at"])
        if event["workspace"] == workspace
        and (start is None or event["created_at"] >= start) and (end is None or event["created_at"] < end)
    ]
    for name, value_of in FILTERS.items():
        wanted = call.query.get(name)
        if wanted is not None:
            events = [event for event in events if value_of(event) == wanted]
    limit = min(page_limit(call.query) or MAX_LIMIT, MAX_LIMIT)
    fingerprint = f"audit:{workspace}:{start}:{end}"
    position = offsets.position(call.query.get("offset"), fingerprint)
    page = events[position:position + limit]
    payload: dict[str, Any] = {"data": page, "next_page": None}
    if events:
        payload["next_page"] = offsets.next_page(call.request, position + len(page), fingerprint)
    return payload
