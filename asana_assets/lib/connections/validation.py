"""Validating a connection's access: the token's user must be an admin of the synced workspace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from pydantic import SecretStr

from asana_assets.lib.asana.client import AsanaClient, AsanaError, AuthenticationError, run
from asana_assets.lib.connections.records import Connection, Tokens
from asana_assets.lib.connections.store import TokenStore
from asana_assets.lib.connections.troubleshooting import (
    ConnectionExpired,
    ConnectionProblem,
    ConnectionRefused,
    describe,
)

CREDENTIAL = {"oauth": "Asana login", "service_account": "key"}  # how refusals name what was used


class Access(NamedTuple):
    """Who a token acts for and the workspace it will sync."""

    user_gid: str
    user_name: str
    user_email: str
    workspace_gid: str
    workspace_name: str


def check_access(base_url: str, token: str, workspace_gid: str | None, credential: str) -> Access:
    """The token's user and workspace, refused unless that user is an admin of the workspace.

    ``credential`` names what was used in a refusal ("key"). The API shows workspace admins
    (``is_admin`` on the membership) but not the owner, so an owner who is not also an admin is
    refused: Asana's owners are normally admins too.
    """
    return run(_check_access(base_url, token, workspace_gid, credential))


async def _check_access(base_url: str, token: str, workspace_gid: str | None, credential: str) -> Access:
    async with AsanaClient(base_url, token, max_retries=2) as client:
        me = await client.get_data("/users/me", fields=["name", "email"])
        memberships = await client.get_data(
            "/users/me/workspace_memberships", fields=["workspace.name", "is_admin", "is_active"]
        )
    memberships = [m for m in memberships if m.get("is_active", True)]
    seen = ", ".join(f"{m['workspace']['name']} ({m['workspace']['gid']})" for m in memberships) or "none"
    chosen = [m for m in memberships if workspace_gid in (None, m["workspace"]["gid"])]
    if len(chosen) != 1:
        where = f"workspace {workspace_gid}" if workspace_gid else "exactly one workspace"
        raise ConnectionRefused(
            f"this {credential}'s user is not a member of {where} (it sees: {seen})",
            "name a workspace it sees, or connect with a member of that workspace",
        )
    workspace = chosen[0]["workspace"]
    if not chosen[0].get("is_admin"):
        raise ConnectionRefused(
            f"this {credential}'s user is not an admin of workspace {workspace['name']} ({workspace['gid']})",
            f"connect with a workspace admin or owner's {credential}",
        )
    return Access(me["gid"], me.get("name", ""), me.get("email", ""), workspace["gid"], workspace["name"])


def connect_service_account(
    base_url: str, key: str, store: TokenStore, workspace_gid: str | None = None
) -> Connection:
    """Validate a service-account key (user, workspace, admin) and only then store it."""
    access = check_access(base_url, key, workspace_gid, CREDENTIAL["service_account"])
    connection = Connection(
        auth_method="service_account",
        base_url=base_url,
        workspace_gid=access.workspace_gid,
        workspace_name=access.workspace_name,
        user_gid=access.user_gid,
        user_name=access.user_name,
        user_email=access.user_email,
        last_validated_at=datetime.now(UTC),
    )
    store.save(connection, Tokens(access_token=SecretStr(key)))
    return connection


def record_validation(store: TokenStore, connection: Connection, token: str) -> Connection:
    """Re-check a connection's access and record the outcome on it: failures are recorded, not raised."""
    try:
        check_access(connection.base_url, token, connection.workspace_gid, CREDENTIAL[connection.auth_method])
    except (AsanaError, ConnectionProblem) as error:
        expired = isinstance(error, AuthenticationError | ConnectionExpired)
        update = {"status": "expired" if expired else "error", "last_error": describe(error)}
    else:
        update = {"status": "active", "last_error": None, "last_validated_at": datetime.now(UTC)}
    connection = connection.model_copy(update=update)
    store.save(connection)
    return connection


