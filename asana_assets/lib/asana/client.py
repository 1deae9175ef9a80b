"""Async, read-only client for Asana's REST API.

One `AsanaClient` holds one token source and its keep-alive connections: a fixed token, or an OAuth
connection's, which may change between two requests (refreshed ahead of its expiry, or when Asana
answers 401), so a sync can outlast its access tokens. Asana limits each token
(at most 50 GETs in flight and a per-minute quota that also counts rejected calls), so the client
paces itself below those limits instead of relying on 429s, and treats a 429 as a signal for the
whole client to pause. Asana's cost limit, which it does not publish, the client learns from the
429s it meets (pacing.py's `CostPace`).

Several processes use one token at once (a run, the events sensor's polls, a sync from the command
line): given a `SharedBudget`, the client draws its share of the token's quota from it, with the
other processes (see lib/storage/quota.py), instead of pacing itself as if it had the quota alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

import aiohttp
import httpx
import orjson
import yarl

from .pacing import Pacing, SharedBudget

MAX_CONCURRENT_GETS = 50  # Asana answers a 51st concurrent GET with a 429
MAX_CONCURRENT_WRITES = 15  # and a 16th concurrent POST, PUT or DELETE
PAGE_SIZE = 100  # the largest `limit` Asana accepts
DEFAULT_RETRY_AFTER = 1.0  # seconds, should a 429 ever come without Retry-After

_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
# Transport errors that come from our own configuration, not from the network: retrying is futile.
_PERMANENT_TRANSPORT_ERRORS = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)

Params = Mapping[str, Any]
T = TypeVar("T")

log = logging.getLogger(__name__)


class AsanaError(Exception):
    """Base of every error raised by `AsanaClient`.

    `status` is the HTTP status (None when no response arrived), `path` the API path without its
    query string, and `messages` Asana's own error messages from the response body.
    """

    summary = "the Asana API request failed"

    def __init__(
        self,
        method: str,
        path: str,
        status: int | None = None,
        messages: Sequence[str] = (),
        *,
        summary: str | None = None,
    ) -> None:
        self.method = method
        self.path = path.partition("?")[0]
        self.status = status
        self.messages = tuple(messages)
        where = f"{method} {self.path}" + ("" if status is None else f" -> HTTP {status}")
        detail = f": {'; '.join(self.messages)}" if self.messages else ""
        super().__init__(f"{summary or self.summary} [{where}]{detail}")


class BadRequestError(AsanaError):
    summary = (
        "Asana rejected the request as malformed (a missing or invalid parameter, "
        "an expired pagination offset, or a result too large to return)"
    )


class ResultTooLargeError(BadRequestError):
    """A listing Asana truncates: its result set is too large ("on the order of tens of
    thousands"), so the page past the truncation answers 400 however often it is asked for."""

    summary = "Asana refused a listing as too large to return whole: list it in smaller parts"


class AuthenticationError(AsanaError):
    summary = (
        "Asana rejected the access token: reconnect the integration "
        "(the token is invalid, expired or revoked)"
    )


class PaymentRequiredError(AsanaError):
    summary = "this endpoint needs a paid Asana plan (Premium, Business or Enterprise)"


class ForbiddenError(AsanaError):
    summary = "the token's user may not read this: admin or workspace-owner access is needed"


class NotFoundError(AsanaError):
    summary = "the object is gone: deleted, trashed or no longer shared with the token's user"


class SyncTokenExpiredError(AsanaError):
    """The events sync token is missing, invalid or expired; `sync` is the fresh one to use."""

    summary = (
        "the events sync token is missing, invalid or expired: re-crawl in full, "
        "then continue with the fresh token"
    )

    def __init__(self, *args: Any, sync: str | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sync = sync


class RateLimitedError(AsanaError):
    """Asana kept answering 429 until the retries ran out."""

    def __init__(self, *args: Any, retry_after: float, **kwargs: Any) -> None:
        super().__init__(
            *args, summary=f"rate-limited by Asana; retry after {retry_after:g} s", **kwargs
        )
        self.retry_after = retry_after


class ServerError(AsanaError):
    summary = "Asana kept failing with a server error; try again later"


class AsanaConnectionError(AsanaError):
    summary = "could not reach Asana: timeouts or dropped connections persisted"


_ERRORS_BY_STATUS: dict[int, type[AsanaError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: ForbiddenError,
    404: NotFoundError,
}


@dataclass(slots=True)
class ClientStats:
    """What the client did, for benchmarks and tests."""

    requests: int = 0  # HTTP attempts sent, retries included
    responses: Counter[int] = field(default_factory=Counter)  # by status code
    retries: int = 0
    retry_after_seconds: float = 0.0  # wall-clock time the client stood paused by Retry-After
    transport_errors: int = 0
    cost_cuts: int = 0  # 429s that cut the pace learned for Asana's cost limit

    @property
    def rate_limited(self) -> int:
        """Number of 429 responses received."""
        return self.responses[429]



class _AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's request/response model over aiohttp's connection pool.

    httpcore's pool costs several milliseconds of CPU a request at 50 connections, which makes
    a 24,000-request sync CPU-bound; aiohttp's costs about 0.15 ms. aiohttp's failures map to
    httpx's transport errors, so the retry logic sees one family of exceptions.
    """

    def __init__(self, connections: int, timeout: float) -> None:
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the event loop that will run the requests.
        connector = aiohttp.TCPConnector(limit=self._connections, ssl=httpx.create_ssl_context())
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        try:
            async with session.request(
                request.method, yarl.URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(), data=request.content or None,
            ) as answer:
                body = await answer.read()
        except TimeoutError as exc:
            raise httpx.ReadTimeout("the request timed out", request=request) from exc
        except aiohttp.InvalidURL as exc:
            raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.NetworkError(str(exc), request=request) from exc
        # Content-Encoding is left to httpx to decode (aiohttp's decompression is off).
        return httpx.Response(answer.status, headers=answer.raw_headers, content=body, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class TokenSource(Protocol):
    """Where a client takes its bearer token, before each request: an OAuth connection's, kept
    fresh (lib/connections/oauth.py), or a fixed one."""

    async def token(self) -> str:
        """The token to send now."""
        ...

    async def refused(self, token: str) -> bool:
        """Asana answered ``token`` 401: whether another token now stands in its place (refreshed
        for this request or a concurrent one), so the request is worth sending once more."""
        ...


@dataclass(frozen=True, slots=True)
class _FixedToken:
    """A token nothing refreshes (a personal access token, a service account's key): a 401 is final."""

    value: str = field(repr=False)

    async def token(self) -> str:
        return self.value

    async def refused(self, token: str) -> bool:
        return False


class AsanaClient:
    """GET client for Asana's REST API with pacing, retries and clear errors.

    Use as an async context manager. Paths are relative to `base_url`, e.g. `/tasks/123/stories`.
    `transport` replaces the network transport (tests pass an `httpx.MockTransport`). `token` is
    a fixed token or a `TokenSource`, asked before each request.

    The client draws on `share` of `requests_per_minute` and `max_concurrency` alone; given the
    token's `budget`, shared with its other processes (the client closes it), it draws on the
    token's slots up to its pool's `cap` (`pool`: "runs", or "sensor" for the events sensor's
    polls; the cap defaults to the share).
    """

    def __init__(
        self,
        base_url: str,
        token: str | TokenSource,
        *,
        max_concurrency: int = 50,
        requests_per_minute: int = 1500,
        timeout: float = 60.0,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        budget: SharedBudget | None = None,
        pool: str = "runs",
        share: float = 1.0,
        cap: float | None = None,
    ) -> None:
        if max_concurrency < 1 or requests_per_minute <= 0:
            raise ValueError("max_concurrency and requests_per_minute must be positive")
        if not 0 < share <= (cap or share) <= 1:
            raise ValueError("share must be above 0, and at most the cap, at most 1")
        self.max_concurrency = min(max_concurrency, MAX_CONCURRENT_GETS)
        self.stats = ClientStats()
        self._auth = _FixedToken(token) if isinstance(token, str) else token
        self._sent: set[str] = set()  # every token sent, kept only to scrub them from error text
        self._bearer: tuple[str, httpx.Headers] | None = None  # the last token sent, with its headers
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._pacing = Pacing(requests_per_minute, self.max_concurrency, share, pool, budget, self.stats, cap)
        self._writes = asyncio.Semaphore(MAX_CONCURRENT_WRITES)
        self._base_url = base_url.rstrip("/")
        # The transport is called directly: httpx.AsyncClient's cookie, auth and redirect
        # handling would cost more CPU per request than the HTTP exchange itself, and an API
        # client needs none of it.
        self._transport = transport or _AiohttpTransport(self.max_concurrency, timeout)

    async def __aenter__(self) -> AsanaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        try:
            await self._pacing.close()
        finally:
            await self._transport.aclose()

    async def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        """GET `path` and return the whole JSON body, retrying 429s, 5xx and network failures."""
        attempt = 0
        while True:
            try:
                response = await self._send("GET", path, params)
            except httpx.TransportError as exc:
                self.stats.transport_errors += 1
                if attempt == self._max_retries or isinstance(exc, _PERMANENT_TRANSPORT_ERRORS):
                    raise self._connection_error(path, exc) from exc
                reason = type(exc).__name__
                delay, level = self._backoff(attempt), logging.INFO
            else:
                if response.is_success:
                    return self._body(response, path)
                status = response.status_code
                retryable = status == 429 or status in _TRANSIENT_STATUSES
                if status == 429:  # every request of the token waits, whether or not this one retries
                    self._pacing.pause(_retry_after(response))
                if attempt == self._max_retries or not retryable:
                    raise self._error(response, path)
                reason = f"HTTP {status}"
                if status == 429:  # a sign the pacing is off, hence the warning
                    delay, level = _retry_after(response), logging.WARNING
                else:
                    delay, level = self._backoff(attempt), logging.INFO
            attempt += 1
            self.stats.retries += 1
            log.log(
                level,
                "GET %s failed (%s); retry %d/%d in %.2f s",
                path.partition("?")[0], reason, attempt, self._max_retries, delay,
            )
            await asyncio.sleep(delay)

    async def get_data(
        self, path: str, params: Params | None = None, fields: Sequence[str] | None = None
    ) -> Any:
        """GET `path`, asking for `fields` via opt_fields, and return the body's `data`."""
        return (await self.get(path, _query(params, fields)))["data"]

    async def pages(
        self, path: str, params: Params | None = None, fields: Sequence[str] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield a listing page by page, following the offsets Asana returns.

        Offsets expire, so a 400 on a follow-up page restarts the listing from the first page
        (once). Objects already yielded are skipped by gid, which also drops the repeats a
        listing can show while its data changes underneath it. A 400 on a follow-up page again
        after the restart is Asana truncating a result set too large to list whole: raised as
        `ResultTooLargeError`, so the caller can list it in parts (the status alone tells the two
        apart; Asana's messages are not parsed).
        """
        query = {**_query(params, fields), "limit": PAGE_SIZE}
        seen: set[str] = set()
        offset: str | None = None
        restarted = False
        while True:
            try:
                page_query = query if offset is None else {**query, "offset": offset}
                body = await self.get(path, page_query)
            except BadRequestError as refused:
                if offset is None:
                    raise
                if restarted:
                    raise ResultTooLargeError("GET", path, refused.status, refused.messages) from refused
                log.warning("offset expired while listing %s; restarting from page 1", path)
                offset, restarted = None, True
                continue
            page = [item for item in body["data"] if (gid := _gid(item)) is None or gid not in seen]
            seen.update(gid for item in page if (gid := _gid(item)) is not None)
            if page:
                yield page
            offset = (body.get("next_page") or {}).get("offset")
            if not offset:
                return

    async def list_all(
        self, path: str, params: Params | None = None, fields: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every object of a paginated listing."""
        return [item async for page in self.pages(path, params, fields) for item in page]

    async def events(
        self, resource_gid: str, sync: str | None
    ) -> tuple[list[dict[str, Any]], str, bool]:
        """One batch of events on a task, project or goal: (events, next sync token, has_more).

        Without a valid `sync` (including the very first call) Asana answers 412, raised as
        `SyncTokenExpiredError` whose `sync` attribute holds the token to continue with.
        """
        params = {"resource": resource_gid}
        if sync is not None:
            params["sync"] = sync
        body = await self.get("/events", params)
        return body["data"], body["sync"], bool(body.get("has_more"))

    async def write(self, method: str, path: str, data: dict[str, Any]) -> dict[str, Any]:
        """POST or PUT ``{"data": data}``; returns the body's ``data``. Only a 429 is retried, and
        a 401 sent once more with a refreshed token (Asana refused them, so nothing was written): a
        write that may have been applied is never sent twice. At most MAX_CONCURRENT_WRITES are in
        flight; the rest wait their turn."""
        content = orjson.dumps({"data": data})
        async with self._writes:
            for attempt in range(self._max_retries + 1):
                try:
                    response = await self._send(method, path, content=content)
                except httpx.TransportError as exc:
                    raise self._connection_error(path, exc) from exc
                if response.is_success:
                    return self._body(response, path)["data"]
                if response.status_code != 429 or attempt == self._max_retries:
                    break
                self._pacing.pause(_retry_after(response))  # the next enter() waits it out
        raise self._error(response, path)

    async def _send(
        self, method: str, path: str, params: Params | None = None, content: bytes | None = None
    ) -> httpx.Response:
        """The request, sent once more if Asana answers 401 to a token the source has replaced
        since (an OAuth token refreshed): that request is repeated, not the run."""
        response, token = await self._exchange(method, path, params, content)
        if response.status_code == 401 and await self._auth.refused(token):
            self.stats.retries += 1
            log.info("%s %s answered 401; sent again with a refreshed token", method, path.partition("?")[0])
            response, _ = await self._exchange(method, path, params, content)
        return response

    async def _exchange(
        self, method: str, path: str, params: Params | None, content: bytes | None
    ) -> tuple[httpx.Response, str]:
        """One HTTP exchange, paced, and the token it carried."""
        ticket = await self._pacing.enter()
        try:
            token = await self._auth.token()  # once the wait for a slot is over: the freshest
            self.stats.requests += 1
            response = await self._transport.handle_async_request(self._request(method, path, params, content, token))
            await response.aread()
        finally:
            self._pacing.leave()
        self.stats.responses[response.status_code] += 1
        # The objects in an answer are the client's only view of what Asana's cost limit charged.
        limited = _retry_after(response) if response.status_code == 429 else None
        if self._pacing.cost.answered(ticket, response.content.count(b"{"), limited):
            self.stats.cost_cuts += 1
            log.warning(
                "Asana answered 429: pacing for its cost limit at %.0f objects a minute and %d reads in flight, "
                "raised again while no 429 comes", self._pacing.cost.pace, self._pacing.cost.limiter.limit,
            )
        return response, token

    def _request(
        self, method: str, path: str, params: Params | None, content: bytes | None, token: str
    ) -> httpx.Request:
        """The request, its URL built as one string: httpx then parses it once instead of three
        times, which matters with a long opt_fields list on every request."""
        url = self._base_url + path
        if params:
            url += "?" + urlencode(params, safe=",.")
        headers = self._headers(token)
        if content is not None:
            headers = httpx.Headers({**headers, "Content-Type": "application/json"})
        return httpx.Request(method, url, headers=headers, content=content)

    def _headers(self, token: str) -> httpx.Headers:
        """The headers carrying ``token``, built again only when the token changes (a refresh)."""
        if self._bearer is None or self._bearer[0] != token:
            self._sent.add(token)
            self._bearer = (token, httpx.Headers({"Authorization": f"Bearer {token}", "Accept": "application/json"}))
        return self._bearer[1]

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so failing requests do not retry in lockstep."""
        return random.uniform(0, min(self._backoff_max, self._backoff_base * 2**attempt))

    def _body(self, response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            pass
        try:  # JSON that escapes a lone surrogate ("\ud800"), which orjson refuses
            return _without_lone_surrogates(json.loads(response.content))
        except ValueError:
            raise AsanaError(
                "GET", path, response.status_code, summary="Asana answered with a non-JSON body"
            ) from None

    def _error(self, response: httpx.Response, path: str) -> AsanaError:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            body = {}
        messages = [
            self._redact(str(error["message"]))
            for error in body.get("errors") or ()
            if isinstance(error, dict) and error.get("message")
        ]
        status = response.status_code
        if status == 412:
            return SyncTokenExpiredError("GET", path, status, messages, sync=body.get("sync"))
        if status == 429:
            retry_after = _retry_after(response)
            return RateLimitedError("GET", path, status, messages, retry_after=retry_after)
        error_class = _ERRORS_BY_STATUS.get(status, ServerError if status >= 500 else AsanaError)
        return error_class("GET", path, status, messages)

    def _connection_error(self, path: str, exc: httpx.TransportError) -> AsanaConnectionError:
        cause = self._redact(f"{type(exc).__name__}: {exc}")
        return AsanaConnectionError("GET", path, messages=[cause])

    def _redact(self, text: str) -> str:
        """Scrub the tokens sent from server-provided text, should a server ever echo one."""
        for token in filter(None, self._sent):
            text = text.replace(token, "[token]")
        return text


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a sync to completion on uvloop when it is installed: its event loop costs less CPU
    per request than asyncio's, and a large sync is bound by the client's CPU. Called where an
    event loop already runs (a notebook, an async host), it runs in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="asana-sync") as thread:
        return thread.submit(_run_here, coroutine).result()


def _run_here(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def _query(params: Params | None, fields: Sequence[str] | None) -> dict[str, Any]:
    query = dict(params or {})
    if fields:
        query["opt_fields"] = ",".join(fields)
    return query


def _gid(item: Any) -> str | None:
    """A listed object's gid; None for a record without one, which validation then refuses."""
    gid = item.get("gid") if isinstance(item, dict) else None
    return gid if isinstance(gid, str) else None


def _retry_after(response: httpx.Response) -> float:
    """Seconds to wait from a 429's Retry-After (Asana sends whole seconds)."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return DEFAULT_RETRY_AFTER


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value: Any) -> Any:
    """A lone surrogate cannot be stored as UTF-8: it is kept as its JSON escape text (``\\ud800``)."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_lone_surrogates(v) for k, v in value.items()}
    return value
