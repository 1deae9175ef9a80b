"""What went wrong with a connection and what to do about it, in the product's words."""

from __future__ import annotations

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


def describe(failure: BaseException) -> str:
    """One line for users and for `Connection.last_error`: cause, then what to do."""
    return str(troubleshoot(failure))


def troubleshoot(failure: BaseException) -> Trouble:
    """What went wrong and what to do about it, in the product's words, for any failure."""
    if isinstance(failure, ConnectionProblem):
        return Trouble(failure.cause, failure.fix)
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
    if isinstance(failure, ServerError | AsanaConnectionError):
        return Trouble("Asana could not be reached or kept failing", "retry after some time")
    if isinstance(failure, AsanaError):
        return Trouble(f"Asana refused a request (HTTP {failure.status})", "retry; if it persists, contact support")
    # Other errors may carry anything in their text, a token included, so only their type is shown.
    return Trouble(f"unexpected error ({type(failure).__name__})", "retry; if it persists, contact support")
