"""Connecting with a user's Asana login: OAuth 2 authorization code with state and PKCE.

`start_authorization` builds the URL to send the user to; `complete_authorization` takes the
redirect back (or the code pasted from it), exchanges the code, validates the user's access and
stores the tokens. An access token lives an hour, a sync may take longer: `OAuthTokens` gives an
`AsanaClient` the connection's token before each request, refreshed ahead of its expiry and when
Asana answers 401, one refresh at a time in a process (an asyncio lock) and across processes
(under the token store's lock, where a process finding a token refreshed by another uses it:
Asana limits refreshes). `access_token` is one token, refreshed the same way.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
from pydantic import SecretStr

from asana_assets import settings
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

# Refresh this long before expiry (a quarter of a shorter life), so no request races the expiry.
REFRESH_MARGIN = timedelta(minutes=5)
TOKEN_ATTEMPTS = 4  # tries of a token request that Asana could not answer, before giving up
BACKOFF_SECONDS = 1.0  # the wait after the first failed try, doubled after each one
MAX_RETRY_AFTER = 30.0  # the longest Retry-After honoured: past it, the run fails and is retried


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
    """A usable access token for ``app.base_url``, refreshed first when it is due (see `fresh_tokens`)."""
    return fresh_tokens(app, store, connection_id).access_token.get_secret_value()


def fresh_tokens(app: OAuthApp, store: TokenStore, connection_id: str, refused: str | None = None) -> Tokens:
    """The connection's tokens for ``app.base_url``: refreshed first when the access token expires
    within the margin, or is ``refused`` (Asana answered it 401) and still the one stored.

    The refresh holds the token store's lock: another process that needs one meanwhile waits,
    then finds this one's token and uses it. A refused grant marks the connection expired and
    raises ConnectionExpired; Asana unavailable raises ConnectionUnavailable and changes nothing."""
    if store.get(connection_id).status in ("expired", "revoked"):
        raise ConnectionExpired()
    tokens = store.tokens(connection_id, app.base_url)
    if not _stale(tokens, refused):
        return tokens

    def renew(connection: Connection, stored: Tokens) -> Tokens:
        if connection.status in ("expired", "revoked"):
            raise ConnectionExpired()
        if not _stale(stored, refused):  # another process refreshed them while this one waited
            return stored
        if stored.refresh_token is None:
            raise ConnectionExpired()
        refresh_token = stored.refresh_token.get_secret_value()
        body = _token_request(app, grant_type="refresh_token", refresh_token=refresh_token)
        return _tokens(body, refresh_token, app.base_url)  # Asana keeps the refresh token

    try:
        return store.change_tokens(connection_id, app.base_url, renew)
    except GrantRefused:
        expired = ConnectionExpired()
        store.update(connection_id, status="expired", last_error=str(expired))
        raise expired from None
    except ConnectionUnavailable as unavailable:
        raise ConnectionUnavailable(
            unavailable.cause, "nothing to reconnect, the connection stays active: a later run or retry refreshes it"
        ) from None


class OAuthTokens:
    """A stored OAuth connection's access token for an `AsanaClient` (its `TokenSource`): kept in
    memory, refreshed when due or refused, by one request at a time; the others wait for it."""

    def __init__(self, app: OAuthApp, store: TokenStore, connection_id: str) -> None:
        self.app, self.store, self.connection_id = app, store, connection_id
        self._tokens: Tokens | None = None
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        tokens = self._tokens
        if tokens is None or _stale(tokens):
            tokens = await self._renew(None)
        return tokens.access_token.get_secret_value()

    async def refused(self, token: str) -> bool:
        return (await self._renew(token)).access_token.get_secret_value() != token

    async def _renew(self, refused: str | None) -> Tokens:
        async with self._lock:
            if self._tokens is None or _stale(self._tokens, refused):  # not renewed while this one waited
                # In a thread: the store and the token endpoint are reached synchronously.
                self._tokens = await asyncio.to_thread(fresh_tokens, self.app, self.store, self.connection_id, refused)
            return self._tokens


def _stale(tokens: Tokens, refused: str | None = None) -> bool:
    """Whether ``tokens`` need a refresh: Asana refused their access token, or it expires within
    `REFRESH_MARGIN` (a quarter of its life, if shorter)."""
    if refused is not None and tokens.access_token.get_secret_value() == refused:
        return True
    if tokens.expires_at is None:
        return False
    margin = REFRESH_MARGIN
    if tokens.issued_at is not None:
        margin = min(margin, (tokens.expires_at - tokens.issued_at) / 4)
    return tokens.expires_at - margin <= datetime.now(UTC)


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
    now = datetime.now(UTC)
    return Tokens(
        access_token=SecretStr(body["access_token"]),
        refresh_token=SecretStr(refresh_token),
        expires_at=now + timedelta(seconds=body["expires_in"]),
        issued_at=now,
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
