"""What a connection can see: who its token acts for and whether private projects may escape it.

A person's token reads public projects and the private ones that person belongs to; only a
service account of an Enterprise organisation reads every project. The API names neither the
account kind nor the plan; its audit log, which answers only that service account, is the one
probe there is:

- 200: a service account of an Enterprise organisation, reading every project there;
- 403 (authenticated, no access): the plan has the audit log but the token may not read it, so
  it is not a service account: a person, unless the connection declares otherwise;
- 402 (payment required) or 404: the plan may lack the audit log; whether a normal token gets
  402 or 403 is not documented, so 402 says nothing about who the token acts for: the kind is
  unknown unless the connection declares it.

Only a 200 in every workspace confirms that the connection reads everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asana_assets.lib.asana.account import PERSON, SERVICE_ACCOUNT, account_kind
from asana_assets.lib.asana.client import AsanaClient, ForbiddenError, NotFoundError, PaymentRequiredError

# What a stored connection's way of connecting declares: a service-account key is one (as its
# owner says), an OAuth grant acts for the person who approved it.
DECLARED_BY_AUTH_METHOD = {"service_account": SERVICE_ACCOUNT, "oauth": PERSON}


@dataclass(frozen=True)
class Coverage:
    """Who the connection acts for and, per workspace, whether it sees everything there."""

    user_gid: str
    user: str  # "Name <email>"
    kind: str  # SERVICE_ACCOUNT, PERSON or UNKNOWN
    basis: str  # the evidence for ``kind``: what the audit log answered, or the connection's declaration
    plan: str  # "Enterprise" when the audit log answers everywhere, else "unknown": the API does not say
    admin_of: tuple[str, ...]  # workspaces where the user is an admin
    audit_log: dict[str, int] = field(default_factory=dict)  # workspace gid -> HTTP status of the probe

    @property
    def full(self) -> bool:
        """Confirmed to read every project: the audit log answered in every workspace."""
        return bool(self.audit_log) and all(status == 200 for status in self.audit_log.values())


async def coverage(client: AsanaClient, workspace_gids: list[str], declared: str | None = None) -> Coverage:
    """Read ``/users/me``, its workspace memberships, and probe each workspace's audit log.

    ``declared`` is the kind the connection says it is (SERVICE_ACCOUNT or PERSON), if it says:
    only the audit log read (200) outweighs it."""
    me = await client.get_data("/users/me", fields=("name", "email"))
    memberships = await client.list_all("/users/me/workspace_memberships", fields=("workspace", "is_admin"))
    answers = {gid: await _probe(client, gid) for gid in workspace_gids}
    kind, basis = account_kind(set(answers.values()), declared)
    return Coverage(
        user_gid=me["gid"],
        user=f"{me.get('name')} <{me.get('email')}>",
        kind=kind,
        basis=basis,
        plan="Enterprise" if answers and set(answers.values()) == {200} else "unknown",
        admin_of=tuple(m["workspace"]["gid"] for m in memberships if m.get("is_admin")),
        audit_log=answers,
    )


async def _probe(client: AsanaClient, workspace_gid: str) -> int:
    """The status the workspace's audit log answers the token with (200, 402, 403 or 404)."""
    try:
        await client.get_data(f"/workspaces/{workspace_gid}/audit_log_events", {"limit": 1})
    except (ForbiddenError, PaymentRequiredError, NotFoundError) as refused:
        return refused.status or 0
    return 200
