"""What went wrong with a connection and what to do about it, in the product's words."""

from __future__ import annotations

import re
from typing import NamedTuple

from asana_assets.lib.asana.client import (
    AsanaConnectionError,
    AsanaError,
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)

RECONNECT = "reconnect the integration"
NETWORK = "the network between here and there (proxy, firewall, DNS)"


class ConnectionProblem(Exception):
    """A connection failure with what caused it and what to do, both in plain words."""

    retryable = False  # True: the same call may succeed later unchanged (an outage, a rate limit)

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause}: {fix}")
        self.cause, self.fix = cause, fix


class ConnectionRefused(ConnectionProblem):
    """The credentials work but cannot be used: wrong workspace, or the user is not an admin."""


class ConnectionExpired(ConnectionProblem):
    def __init__(self) -> None:
        super().__init__("Asana no longer accepts this connection's authorization", RECONNECT)


class ConnectionUnavailable(ConnectionProblem):
    """Asana could not answer (429, 5xx, timeout, dropped connection): nothing is wrong with the
    connection, which stays as it is; a later try may succeed."""

    retryable = True


class Trouble(NamedTuple):
    cause: str
    fix: str

    def __str__(self) -> str:
        return f"{self.cause}: {self.fix}"


class Source(NamedTuple):
    """What a sync reads with, each part named by the setting that gave it (None: a stored
    connection's or the demo's), so that a failure names what to change."""

    base_url: str
    base_url_setting: str | None = None
    workspace_gid: str | None = None
    workspace_setting: str | None = None
    token_setting: str | None = None  # a bare token's; a stored connection's is fixed by reconnecting


def describe(failure: BaseException, source: Source | None = None) -> str:
    """One line for users and for `Connection.last_error`: cause, then what to do."""
    return str(troubleshoot(failure, source))


def troubleshoot(failure: BaseException, source: Source | None = None) -> Trouble:
    """What went wrong and what to do about it, in the product's words, for any failure; with the
    `source` a sync read, naming the setting to change and its value (never a token's)."""
    if isinstance(failure, ConnectionProblem):
        return Trouble(failure.cause, failure.fix)
    if source is not None and (trouble := _with_source(failure, source)) is not None:
        return trouble
    if isinstance(failure, AuthenticationError):
        return Trouble("401 Unauthorized: Asana rejected the token (invalid, expired or revoked)", RECONNECT)
    if isinstance(failure, ForbiddenError):
        return Trouble(
            "403 Forbidden: the connected user may not read this",
            "ensure the connected user has admin or workspace-owner access in Asana and can see the projects",
        )
    if isinstance(failure, NotFoundError):
        return Trouble(
            f"404 Not Found: the project or task is no longer available ({failure.path})",
            "verify it still exists and is shared with the connected user; the sync goes on with the rest",
        )
    if isinstance(failure, RateLimitedError):
        return Trouble(
            "429 Too Many Requests: Asana rate-limited the connection",
            f"retry after {failure.retry_after:g} s, as Asana's Retry-After asks (syncs wait and retry by themselves)",
        )
    if isinstance(failure, AsanaConnectionError):
        return Trouble(f"Asana could not be reached ({'; '.join(failure.messages) or 'no answer'})",
                       f"check {NETWORK}, then retry")
    if isinstance(failure, ServerError):
        return Trouble("Asana kept failing with a server error", "retry after some time")
    if isinstance(failure, AsanaError):
        return Trouble(f"Asana refused a request (HTTP {failure.status})", "retry; if it persists, contact support")
    # Other errors may carry anything in their text, a token included, so only their type is shown.
    return Trouble(f"unexpected error ({type(failure).__name__})", "retry; if it persists, contact support")


def _with_source(failure: BaseException, source: Source) -> Trouble | None:
    """The failures a setting causes, each naming that setting; None for the others."""
    if isinstance(failure, AuthenticationError) and source.token_setting:
        return Trouble(f"{source.token_setting} is not accepted (401)",
                       "set a valid personal access token or service-account token")
    workspace = f"/workspaces/{source.workspace_gid}"
    if isinstance(failure, NotFoundError) and source.workspace_gid and failure.path == workspace:
        named = (f"{source.workspace_setting}={source.workspace_gid}" if source.workspace_setting
                 else f"the connection's workspace {source.workspace_gid}")
        fix = (f"set {source.workspace_setting} to a workspace the token sees, or unset it to sync every one"
               if source.workspace_setting else "connect again with --workspace set to a workspace it sees")
        return Trouble(f"{named} does not exist or is not visible to the token (404)", fix)
    if isinstance(failure, AsanaConnectionError):
        return unreachable(source, "; ".join(failure.messages) or "no answer")
    return None


def unreachable(source: Source, cause: str) -> Trouble:
    """The API at the source's base URL could not be reached, for ``cause``."""
    setting = source.base_url_setting
    url = re.sub(r"//[^@/]*@", "//", source.base_url)  # never the credentials a URL may carry
    named = f"{setting}={url}" if setting else url
    return Trouble(f"the Asana API at {named} could not be reached ({cause})",
                   f"check {setting} and {NETWORK}" if setting else f"check {NETWORK}")
