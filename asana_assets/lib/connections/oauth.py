"""Connecting with a user's Asana login: OAuth 2 authorization code with state and PKCE.

`start_authorization` builds the URL to send the user to; `complete_authorization` takes the
redirect back (or the code pasted from it), exchanges the code, validates the user's access and
stores the tokens. `access_token` refreshes an access token before it expires, and
`call_with_refresh` once more on a 401.

Only a refusal of the grant (400 or 401 ``invalid_grant`` from the token endpoint) marks the
connection expired. A 429, a 5xx, a timeout or a dropped connection says nothing about the grant:
the request is retried with backoff and, if Asana stays unavailable, `ConnectionUnavailable`
(retryable) is raised and the connection stays active. A refresh token is sent only to the API
base its tokens were granted for (see `TokenStore.tokens`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode

import httpx
from pydantic import SecretStr

from asana_assets import settings
from asana_assets.lib.asana.client import AuthenticationError
from asana_assets.lib.connections.records import Connection, Tokens
from asana_assets.lib.connections.store import TokenStore
from asana_assets.lib.connections.troubleshooting import (
    RECONNECT,
    ConnectionExpired,
    ConnectionProblem,
    ConnectionUnavailable,
)
from asana_assets.lib.connections.validation import CREDENTIAL, check_access
from asana_assets.settings import ASANA_API_BASE

REFRESH_MARGIN = timedelta(minutes=5)  # refresh this long before expiry, so no call races it
TOKEN_ATTEMPTS = 4  # tries of a token request that Asana could not answer, before giving up
BACKOFF_SECONDS = 1.0  # the wait after the first failed try, doubled after each one
MAX_RETRY_AFTER = 30.0  # the longest Retry-After honoured: past it, the run fails and is retried
T = TypeVar("T")


class OAuthError(ConnectionProblem):
    """The authorization did not go through: refused, tampered with, or the code was rejected."""


class GrantRefused(OAuthError):
    """The token endpoint refused the grant itself (a code or refresh token): only a new
    authorization helps."""


@dataclass(frozen=True)
class OAuthApp:
    """The OAuth app registered with Asana, and the API it authorises."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    base_url: str = ASANA_API_BASE

    def endpoint(self, name: str) -> str:
        """Asana serves OAuth beside the API: ``https://app.asana.com/-/oauth_token`` for ``.../api/1.0``."""
        root = self.base_url.rstrip("/").removesuffix("/api/1.0")
        return f"{root}/-/oauth_{name}"


@dataclass(frozen=True)
class PendingAuthorization:
    """An authorization in progress: the URL to open, and what checks the answer to it."""

    url: str
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)
    scopes: tuple[str, ...] = ("default",)


def start_authorization(app: OAuthApp, scopes: Sequence[str] = ("default",)) -> PendingAuthorization:
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uri,
        "response_type": "code",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": " ".join(scopes),
    }
    return PendingAuthorization(f"{app.endpoint('authorize')}?{urlencode(query)}", state, verifier, tuple(scopes))


def complete_authorization(
    app: OAuthApp, pending: PendingAuthorization, answer: str, store: TokenStore, workspace_gid: str | None = None
) -> Connection:
    """Exchange the code from ``answer`` (the redirect URL, or the bare code) and store the connection.

    The user must be an admin of the workspace; if not, the new grant is revoked, not kept.
    """
    body = _token_request(
        app,
        grant_type="authorization_code",
        redirect_uri=app.redirect_uri,
        code=_code(answer, pending.state),
        code_verifier=pending.code_verifier,
    )
    tokens = _tokens(body, body["refresh_token"], app.base_url)
    try:
        access = check_access(app.base_url, body["access_token"], workspace_gid, CREDENTIAL["oauth"])
    except Exception:
        _revoke(app, body["refresh_token"])
        raise
    connection = Connection(
        auth_method="oauth",
        base_url=app.base_url,
        workspace_gid=access.workspace_gid,
        workspace_name=access.workspace_name,
        scopes=list(pending.scopes),
        user_gid=access.user_gid,
        user_name=access.user_name,
        user_email=access.user_email,
        last_validated_at=datetime.now(UTC),
    )
    store.save(connection, tokens)
    return connection


def access_token(app: OAuthApp, store: TokenStore, connection_id: str) -> str:
    """A usable access token for ``app.base_url``, refreshed first when it expires within `REFRESH_MARGIN`."""
    if store.get(connection_id).status in ("expired", "revoked"):
        raise ConnectionExpired()
    tokens = store.tokens(connection_id, app.base_url)
    if tokens.expires_at is not None and tokens.expires_at - REFRESH_MARGIN <= datetime.now(UTC):
        tokens = refresh(app, store, connection_id)
    return tokens.access_token.get_secret_value()


def refresh(app: OAuthApp, store: TokenStore, connection_id: str) -> Tokens:
    """A new access token. A refused grant marks the connection expired and raises
    ConnectionExpired; Asana unavailable raises ConnectionUnavailable and changes nothing."""
    tokens = store.tokens(connection_id, app.base_url)
    if tokens.refresh_token is None:
        raise ConnectionExpired()
    try:
        body = _token_request(app, grant_type="refresh_token", refresh_token=tokens.refresh_token.get_secret_value())
    except GrantRefused:
        expired = ConnectionExpired()
        store.update(connection_id, status="expired", last_error=str(expired))
        raise expired from None
    except ConnectionUnavailable as unavailable:
        raise ConnectionUnavailable(
            unavailable.cause, "nothing to reconnect, the connection stays active: a later run or retry refreshes it"
        ) from None
    fresh = _tokens(body, tokens.refresh_token.get_secret_value(), app.base_url)  # Asana keeps the refresh token
    store.save_tokens(connection_id, fresh)
    return fresh


async def call_with_refresh(
    app: OAuthApp, store: TokenStore, connection_id: str, request: Callable[[str], Awaitable[T]]
) -> T:
    """``request(access_token)``, refreshed and tried once more if Asana answers 401."""
    token = await asyncio.to_thread(access_token, app, store, connection_id)
    try:
        return await request(token)
    except AuthenticationError:
        fresh = await asyncio.to_thread(refresh, app, store, connection_id)
        return await request(fresh.access_token.get_secret_value())


def revoke(store: TokenStore, connection_id: str, app: OAuthApp | None = None) -> Connection:
    """Revoke an OAuth grant at Asana (``app`` needed), then forget the connection's tokens.

    A service-account key cannot be revoked through the API: it is only forgotten here and stays
    valid until an admin deletes it in Asana's admin console.
    """
    connection = store.get(connection_id)
    if connection.auth_method == "oauth" and connection.status != "revoked":
        if app is None:
            raise ValueError("revoking an OAuth connection needs its OAuthApp")
        refresh_token = store.tokens(connection_id, app.base_url).refresh_token
        if refresh_token is not None:
            _revoke(app, refresh_token.get_secret_value())
    connection = connection.model_copy(update={"status": "revoked", "last_error": None})
    store.forget_tokens(connection)
    return connection


def _code(answer: str, state: str) -> str:
    """The code from a pasted redirect URL (whose state must match) or a bare pasted code.

    A bare code carries no state to check; the user copied it from their own browser, so there is
    no forged callback for the state to catch.
    """
    text = answer.strip()
    if "=" not in text:
        return text
    params = {k: v[0] for k, v in parse_qs(text.partition("?")[2] or text).items()}
    if "error" in params:
        raise OAuthError(
            f"Asana did not authorise the connection ({params['error']})",
            "connect again and allow access, signed in as a workspace admin or owner",
        )
    if not secrets.compare_digest(params.get("state", ""), state):
        raise OAuthError(
            "the redirect does not answer this authorization request (its state differs)", "connect again"
        )
    if not params.get("code"):
        raise OAuthError("the redirect holds no authorization code", "connect again")
    return params["code"]


def _tokens(body: dict[str, Any], refresh_token: str, base_url: str) -> Tokens:
    return Tokens(
        access_token=SecretStr(body["access_token"]),
        refresh_token=SecretStr(refresh_token),
        expires_at=datetime.now(UTC) + timedelta(seconds=body["expires_in"]),
        base_url=base_url,
    )


def _token_request(app: OAuthApp, **form: str) -> dict[str, Any]:
    """POST to the token endpoint, retrying with backoff while Asana cannot answer."""
    for attempt in range(TOKEN_ATTEMPTS):
        wait = BACKOFF_SECONDS * 2**attempt
        try:
            response = _post(app, "token", form)
        except ConnectionUnavailable as unreachable:
            failure = unreachable.cause
        else:
            if response.is_success:
                try:
                    return response.json()
                except ValueError:  # a proxy's page, a cut-off body
                    failure = f"HTTP {response.status_code} without a JSON body"
            elif response.status_code in (408, 429) or response.status_code >= 500:
                # Asana is busy or down: that says nothing against the grant.
                failure = f"HTTP {response.status_code}"
                wait = max(wait, _retry_after(response))
            else:
                raise _refusal(response)
        if attempt + 1 < TOKEN_ATTEMPTS:
            time.sleep(wait)
    raise ConnectionUnavailable(
        f"Asana's OAuth token endpoint could not answer ({failure}, {TOKEN_ATTEMPTS} tries)", "retry after some time"
    )


def _refusal(response: httpx.Response) -> OAuthError:
    """What a 4xx from the token endpoint means: the grant refused (400/401 ``invalid_grant``,
    or no error named), or a fault of the app's configuration or request that no new
    authorization would cure."""
    try:
        error = str(response.json().get("error", ""))
    except (ValueError, AttributeError):
        error = ""
    cause = f"Asana refused the OAuth request (HTTP {response.status_code}{' ' + error if error else ''})"
    if response.status_code in (400, 401) and error in ("invalid_grant", ""):
        return GrantRefused(cause, RECONNECT)
    if error == "invalid_client":
        app = f"{settings.OAUTH_CLIENT_ID.name} and {settings.OAUTH_CLIENT_SECRET.name}"
        return OAuthError(cause, f"set {app} to the registered app's: the grant itself may be fine")
    return OAuthError(
        cause, "check the connection's base URL and the OAuth app's settings; if it persists, contact support"
    )


def _retry_after(response: httpx.Response) -> float:
    """The wait Asana asks for, capped at `MAX_RETRY_AFTER`; 0 when it asks for none."""
    try:
        return min(max(float(response.headers.get("Retry-After", 0)), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return 0.0


def _revoke(app: OAuthApp, refresh_token: str) -> None:
    response = _post(app, "revoke", {"token": refresh_token})
    if not response.is_success:
        raise OAuthError(f"Asana refused to revoke the authorization (HTTP {response.status_code})", "retry later")


def _post(app: OAuthApp, endpoint: str, form: dict[str, str]) -> httpx.Response:
    credentials = {"client_id": app.client_id, "client_secret": app.client_secret}
    try:
        return httpx.post(app.endpoint(endpoint), data=credentials | form, timeout=30)
    except httpx.TransportError as error:
        # The exception's text is left out: it could quote the request, and so its secrets.
        raise ConnectionUnavailable(
            f"could not reach Asana ({type(error).__name__})", "retry after some time"
        ) from None
