"""What a connection can see: who its token acts for and whether private projects may escape it.

A person's token reads public projects and the private ones that person belongs to; only a
service account of an Enterprise organisation reads every project. The API names neither the
account kind nor the plan, but its audit log answers only that service account, so one probe
per workspace tells both.
"""

from __future__ import annotations

from dataclasses import dataclass

from asana_assets.lib.asana.client import AsanaClient, ForbiddenError, NotFoundError, PaymentRequiredError

SERVICE_ACCOUNT, PERSON = "service account", "person"
FIX = "connect with a service account on an Enterprise organisation"


@dataclass(frozen=True)
class Coverage:
    """Who the connection acts for and, per workspace, whether it sees everything there."""

    user_gid: str
    user: str  # "Name <email>"
    kind: str  # SERVICE_ACCOUNT or PERSON
    plan: str  # "Enterprise" when the audit log answers, else "unknown": the API does not say
    admin_of: tuple[str, ...]  # workspaces where the user is an admin


async def coverage(client: AsanaClient, workspace_gids: list[str]) -> Coverage:
    """Read ``/users/me``, its workspace memberships, and probe each workspace's audit log."""
    me = await client.get_data("/users/me", fields=("name", "email"))
    memberships = await client.list_all("/users/me/workspace_memberships", fields=("workspace", "is_admin"))
    full = [await _reads_audit_log(client, gid) for gid in workspace_gids]
    everywhere = bool(full) and all(full)
    return Coverage(
        user_gid=me["gid"],
        user=f"{me.get('name')} <{me.get('email')}>",
        kind=SERVICE_ACCOUNT if everywhere else PERSON,
        plan="Enterprise" if everywhere else "unknown",
        admin_of=tuple(m["workspace"]["gid"] for m in memberships if m.get("is_admin")),
    )


async def _reads_audit_log(client: AsanaClient, workspace_gid: str) -> bool:
    try:
        await client.get_data(f"/workspaces/{workspace_gid}/audit_log_events", {"limit": 1})
    except (ForbiddenError, PaymentRequiredError, NotFoundError):
        return False
    return True
