"""The audit log of an Enterprise world: what the world records when access changes, and the
``GET /workspaces/{workspace_gid}/audit_log_events`` route that serves it.

Event names are Asana's documented ones (``user_invited``, ``user_deprovisioned``,
``user_reprovisioned``, ``user_workspace_admin_role_changed``, ``team_member_added|removed``,
``project_member_added|removed``). For the membership events the member is named in
``details.user`` (the details object allows extra properties); that placement is the
simulator's choice, not a documented one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import AsanaApi, Call
    from .world import World

PAYMENT_REQUIRED = "The audit log API is only available to Enterprise+ domains; a service account is required."
CATEGORIES = {
    "user_invited": "user_access",
    "user_deprovisioned": "user_access",
    "user_reprovisioned": "user_access",
    "user_workspace_admin_role_changed": "roles",
    "team_member_added": "access_control",
    "team_member_removed": "access_control",
    "project_member_added": "access_control",
    "project_member_removed": "access_control",
}
MAX_LIMIT = 100
FILTERS = {
    "event_type": lambda event: event["event_type"],
    "actor_type": lambda event: event["actor"]["actor_type"],
    "actor_gid": lambda event: event["actor"]["gid"],
    "resource_gid": lambda event: event["resource"]["gid"],
}


def _party(world: World, gid: str | None, kind: str) -> dict[str, Any]:
    """An actor or resource as the audit log names it (absent fields left out: the spec's are
    not nullable); no gid is Asana itself."""
    if gid is None:
        return {f"{kind}_type": "asana"}
    obj = world.objects[gid]
    named = {"gid": gid, "name": getattr(obj, "name", None), "email": getattr(obj, "email", None)}
    return {f"{kind}_type": obj.resource_type, **{k: v for k, v in named.items() if v is not None}}


def record(world: World, event_type: str, workspace: str, resource: str, *, actor: Any, at: Any,
           user: str | None = None, old_value: str | None = None, new_value: str | None = None) -> None:
    """Append one event to an Enterprise world's audit log (other worlds keep none, and their
    clock does not tick for it). ``actor`` is a user (None: Asana itself), ``at`` a time as the
    world's mutations take it."""
    if not world.enterprise:
        return
    when, actor = world._stamp(at, actor)
    details: dict[str, Any] = {"old_value": old_value, "new_value": new_value}
    if user is not None:
        details["user"] = {k: v for k, v in _party(world, user, "resource").items() if k != "resource_type"}
    world.audit_log.append({
        "gid": world._gid(),
        "created_at": when,
        "event_type": event_type,
        "event_category": CATEGORIES[event_type],
        "actor": _party(world, actor, "actor"),
        "resource": _party(world, resource, "resource"),
        "details": details,
        "context": {"context_type": "api" if actor else "asana"},
        "workspace": workspace,
    })


def audit_log_events(api: AsanaApi, call: Call) -> dict[str, Any]:
    """The workspace's events ascending by created_at, filtered by start_at (inclusive) and
    end_at (exclusive); 402 outside Enterprise. Paging always answers a next_page once there
    is data, as the real stream does; an empty page marks the end of current data."""
    from .models import Workspace
    from .server import ApiError, _limit  # the server imports this module to route to it

    world = api.world
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
    limit = min(_limit(call.query) or MAX_LIMIT, MAX_LIMIT)
    fingerprint = f"audit:{workspace}:{start}:{end}"
    position = api._offset_position(call.query.get("offset"), fingerprint)
    page = events[position:position + limit]
    payload: dict[str, Any] = {"data": page, "next_page": None}
    if events:
        payload["next_page"] = api._next_page(call.request, position + len(page), fingerprint)
    return payload
