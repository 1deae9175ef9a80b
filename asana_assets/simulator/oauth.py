"""Asana's OAuth 2 authorization-code grant, as documented: authorise, exchange, refresh, revoke.

There is no login page: a configured user (by default the world's default admin) approves every
request, or refuses them all. Issued access tokens act for that user on ``/api/1.0`` until they
expire or their refresh token is revoked. The token and revoke endpoints answer errors as
RFC 6749 does, ``{"error", "error_description"}``, not in the API's envelope.

Access tokens live ``access_token_ttl_seconds`` (3600 by default, as Asana's). For outage tests,
`fail_token_requests` makes the next token requests fail (503, 500, 429 or a dropped connection)
before anything is looked at; `requests` counts what reached each endpoint, `issued` the access
tokens issued by grant type (``refresh_token``: the refreshes).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass

from aiohttp import web
from multidict import MultiMapping
from yarl import URL

from .config import SimulatorConfig
from .models import User
from .world import UnknownObject, World

CODE_TTL_SECONDS = 600  # authorisation codes are short-lived and single-use
TOKEN_FAULTS = ("503", "500", "429", "drop")


@dataclass(slots=True)
class _Grant:
    """One approval, shared by its refresh token and every access token issued from it."""

    client_id: str
    user: str
    revoked: bool = False


@dataclass(slots=True, frozen=True)
class _Code:
    grant: _Grant
    redirect_uri: str
    challenge: str | None
    expires_at: float


class _OAuthFailure(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class OAuthProvider:
    """The ``/-/oauth_*`` endpoints and the access tokens they issued.

    Token lifetimes follow ``time.time()`` plus ``skew``: :meth:`advance` lets tests expire
    tokens without waiting.
    """

    def __init__(self, world: World, config: SimulatorConfig) -> None:
        if config.oauth_approver is not None:
            try:
                world.get(config.oauth_approver, User)
            except UnknownObject:
                raise ValueError(f"oauth_approver {config.oauth_approver!r} is not a user of this world") from None
        self.world, self.config = world, config
        self.skew = 0.0
        self._codes: dict[str, _Code] = {}
        self._refresh_tokens: dict[str, _Grant] = {}
        self._access_tokens: dict[str, tuple[_Grant, float]] = {}
        self._token_faults: deque[str] = deque()
        self.requests: Counter[str] = Counter()  # requests that reached each endpoint, answered or not
        self.issued: Counter[str] = Counter()  # access tokens issued, by grant type

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/-/oauth_authorize", self.authorize)
        app.router.add_post("/-/oauth_token", self.token)
        app.router.add_post("/-/oauth_revoke", self.revoke)

    def advance(self, seconds: float) -> None:
        """Move the token clock forward, e.g. past ``access_token_ttl_seconds``."""
        self.skew += seconds

    def fail_token_requests(self, times: int, fault: str = "503") -> None:
        """Answer the next ``times`` token requests with ``fault``, whatever they ask: "503" or
        "500" (down), "429" (rate-limited, Retry-After 1 s) or "drop" (the connection closed
        without an answer). Nothing is exchanged or refreshed by a failed request; a later
        call replaces the outage (``times=0`` ends it)."""
        if fault not in TOKEN_FAULTS:
            raise ValueError(f"fault must be one of {', '.join(TOKEN_FAULTS)}")
        self._token_faults = deque([fault] * times)

    def user_for(self, access_token: str | None) -> str | None:
        """The user an access token acts for; None if unknown, expired or revoked."""
        grant, expires_at = self._access_tokens.get(access_token or "", (None, 0.0))
        if grant is None or grant.revoked or self._now() >= expires_at:
            return None
        return grant.user

    async def authorize(self, request: web.Request) -> web.Response:
        self.requests["authorize"] += 1
        query = request.query
        app = self.config.oauth_apps.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if app is None or redirect_uri not in app.redirect_uris:
            # Never redirect to an unverified URI (RFC 6749 §4.1.2.1): answer here instead.
            return _error(_OAuthFailure(400, "invalid_request", "unknown client_id or unregistered redirect_uri"))
        state = query.get("state")
        challenge = query.get("code_challenge")
        if not state:
            return _redirect(redirect_uri, error="invalid_request", error_description="state is required")
        if query.get("response_type") != "code":
            return _redirect(redirect_uri, error="unsupported_response_type", state=state)
        if challenge and query.get("code_challenge_method") != "S256":
            return _redirect(
                redirect_uri, error="invalid_request", error_description="code_challenge_method must be S256", state=state
            )
        if self.config.oauth_deny:
            return _redirect(redirect_uri, error="access_denied", state=state)
        grant = _Grant(query["client_id"], self.config.oauth_approver or self.world.default_user)
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(grant, redirect_uri, challenge, self._now() + CODE_TTL_SECONDS)
        return _redirect(redirect_uri, code=code, state=state)

    async def token(self, request: web.Request) -> web.Response:
        self.requests["token"] += 1
        if self._token_faults:
            return _fault(self._token_faults.popleft(), request)
        form = await request.post()
        try:
            client_id = self._client(form)
            grant_type = form.get("grant_type")
            refresh_token = None
            if grant_type == "authorization_code":
                grant = self._redeem(form, client_id)
                refresh_token = secrets.token_urlsafe(32)
                self._refresh_tokens[refresh_token] = grant
            elif grant_type == "refresh_token":
                grant = self._refresh_tokens.get(str(form.get("refresh_token", "")))
                if grant is None or grant.revoked or grant.client_id != client_id:
                    raise _OAuthFailure(400, "invalid_grant", "the refresh token is invalid or revoked")
            else:
                raise _OAuthFailure(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
        except _OAuthFailure as failure:
            return _error(failure)
        access_token = secrets.token_urlsafe(32)
        ttl = self.config.access_token_ttl_seconds
        self._access_tokens[access_token] = (grant, self._now() + ttl)
        self.issued[str(grant_type)] += 1
        with self.world.lock:
            user = self.world.get(grant.user, User)
            data = {"id": int(user.gid), "gid": user.gid, "name": user.name, "email": user.email}
        body = {"access_token": access_token, "token_type": "bearer", "expires_in": ttl, "data": data}
        # A refresh keeps the original refresh token: Asana documents a new one only for the exchange.
        return web.json_response(body | ({"refresh_token": refresh_token} if refresh_token else {}))

    async def revoke(self, request: web.Request) -> web.Response:
        self.requests["revoke"] += 1
        form = await request.post()
        token = str(form.get("token", ""))
        try:
            client_id = self._client(form)
            if token in self._access_tokens:
                raise _OAuthFailure(400, "invalid_request", "revoke the refresh token, not an access token")
        except _OAuthFailure as failure:
            return _error(failure)
        grant = self._refresh_tokens.get(token)
        if grant is not None and grant.client_id == client_id:
            grant.revoked = True
        return web.json_response({})  # 200 even for an unknown token, as documented

    def _client(self, form: MultiMapping[str]) -> str:
        client_id = str(form.get("client_id", ""))
        app = self.config.oauth_apps.get(client_id)
        if app is None or not secrets.compare_digest(str(form.get("client_secret", "")), app.secret):
            raise _OAuthFailure(401, "invalid_client", "unknown client_id or wrong client_secret")
        return client_id

    def _redeem(self, form: MultiMapping[str], client_id: str) -> _Grant:
        code = self._codes.pop(str(form.get("code", "")), None)  # a failed attempt burns the code too
        if (
            code is None
            or code.expires_at <= self._now()
            or code.grant.client_id != client_id
            or code.redirect_uri != form.get("redirect_uri")
        ):
            raise _OAuthFailure(400, "invalid_grant", "the code is invalid, expired or was issued to another client")
        verifier = str(form.get("code_verifier", ""))
        if code.challenge is not None and not secrets.compare_digest(s256(verifier), code.challenge):
            raise _OAuthFailure(400, "invalid_grant", "code_verifier does not match the code_challenge")
        return code.grant

    def _now(self) -> float:
        return time.time() + self.skew


def s256(verifier: str) -> str:
    """PKCE's S256 challenge of a verifier (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _redirect(redirect_uri: str, **params: str | None) -> web.Response:
    location = URL(redirect_uri).update_query({k: v for k, v in params.items() if v is not None})
    return web.Response(status=302, headers={"Location": str(location)})


def _fault(fault: str, request: web.Request) -> web.Response:
    if fault == "drop":
        if request.transport is not None:
            request.transport.close()  # aiohttp's write of the response below then fails quietly
        return web.Response()
    if fault == "429":
        return web.json_response({"error": "rate_limited"}, status=429, headers={"Retry-After": "1"})
    return web.json_response({"error": "server_error"}, status=int(fault))


def _error(failure: _OAuthFailure) -> web.Response:
    return web.json_response({"error": failure.error, "error_description": failure.description}, status=failure.status)
