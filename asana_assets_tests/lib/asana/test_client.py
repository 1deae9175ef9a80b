"""Tests for the Asana HTTP client, mostly against `httpx.MockTransport` handlers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from asana_assets.lib.asana.client import (
    AsanaClient,
    AsanaConnectionError,
    AsanaError,
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitedError,
    ServerError,
    SyncTokenExpiredError,
)
from asana_assets.lib.asana.client import run as run_sync
from asana_assets.lib.asana.pacing import Grant
from asana_assets.settings import ASANA_API_BASE

TOKEN = "0/s3cr3t-t0ken-4f9a"
T = TypeVar("T")
Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def make_client(handler: Handler, **options: Any) -> AsanaClient:
    # Fast backoff and an effectively unlimited quota unless a test says otherwise.
    options = {"backoff_base": 0.001, "requests_per_minute": 10**7, **options}
    return AsanaClient(ASANA_API_BASE, TOKEN, transport=httpx.MockTransport(handler), **options)


def run(client: AsanaClient, awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        async with client:
            return await awaitable

    return asyncio.run(main())


def ok(data: Any, **extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"data": data, **extra})


def fail(status: int, message: str = "boom", **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"message": message}], **extra})


def sequence(*outcomes: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """A handler answering with `outcomes` in turn (raising the exceptions among them)."""
    remaining = list(outcomes)

    def handler(request: httpx.Request) -> httpx.Response:
        outcome = remaining.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return handler


# --- requests and responses -------------------------------------------------------------------


def test_get_sends_token_and_accept_to_path_under_base_url():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok([{"gid": "1"}], extra="kept")

    client = make_client(handler)
    assert run(client, client.get("/tasks/123/stories", {"a": "b"})) == {
        "data": [{"gid": "1"}],
        "extra": "kept",
    }
    (request,) = seen
    assert str(request.url) == "https://app.asana.com/api/1.0/tasks/123/stories?a=b"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"


def test_get_data_returns_data_and_sends_opt_fields():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok({"gid": "7", "name": "Audit"})

    client = make_client(handler)
    data = run(client, client.get_data("/projects/7", {"x": 1}, fields=["name", "owner.name"]))
    assert data == {"gid": "7", "name": "Audit"}
    assert dict(seen[0].url.params) == {"x": "1", "opt_fields": "name,owner.name"}


# --- pagination --------------------------------------------------------------------------------


def paged(items: list[dict], expired: set[str] | None = None) -> tuple[Handler, list]:
    """A handler serving `items` in pages of `limit`, and the requests it receives.

    Offsets are item indexes; each offset in `expired` answers 400 once.
    """
    requests: list[httpx.Request] = []
    expired = set(expired or ())

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        offset, limit = request.url.params.get("offset"), int(request.url.params["limit"])
        if offset in expired:
            expired.discard(offset)
            return fail(400, "offset: Your pagination token has expired")
        start = int(offset or 0)
        end = start + limit
        next_page = {"offset": str(end), "path": "...", "uri": "..."} if end < len(items) else None
        return ok(items[start:end], next_page=next_page)

    return handler, requests


def gids(n: int) -> list[dict]:
    return [{"gid": str(i)} for i in range(n)]


async def collect(pages) -> list[list[dict]]:
    return [page async for page in pages]


def test_pages_follow_next_page_sending_limit_and_opt_fields_every_time():
    handler, requests = paged(gids(250))
    client = make_client(handler)
    pages = run(client, collect(client.pages("/tasks", {"project": "9"}, fields=["name", "notes"])))
    assert [len(page) for page in pages] == [100, 100, 50]
    assert [item["gid"] for page in pages for item in page] == [str(i) for i in range(250)]
    params = [dict(request.url.params) for request in requests]
    assert params == [
        {"project": "9", "opt_fields": "name,notes", "limit": "100"},
        {"project": "9", "opt_fields": "name,notes", "limit": "100", "offset": "100"},
        {"project": "9", "opt_fields": "name,notes", "limit": "100", "offset": "200"},
    ]


def test_expired_offset_restarts_listing_once_and_skips_objects_already_yielded():
    handler, requests = paged(gids(250), expired={"200"})
    client = make_client(handler)
    pages = run(client, collect(client.pages("/tasks")))
    offsets = [request.url.params.get("offset") for request in requests]
    assert offsets == [None, "100", "200", None, "100", "200"]
    assert [item["gid"] for page in pages for item in page] == [str(i) for i in range(250)]
    assert [len(page) for page in pages] == [100, 100, 50]  # the replayed pages are not yielded


def test_offset_expiring_again_after_the_restart_raises():
    handler, requests = paged(gids(250), expired={"100", "200"})
    client = make_client(handler)
    with pytest.raises(BadRequestError):
        run(client, client.list_all("/tasks"))
    assert [r.url.params.get("offset") for r in requests] == [None, "100", None, "100", "200"]


def test_bad_request_on_the_first_page_is_not_restarted():
    client = make_client(sequence(fail(400, "workspace: Missing input"), ok([])))
    with pytest.raises(BadRequestError, match="workspace: Missing input"):
        run(client, client.list_all("/tasks"))
    assert client.stats.requests == 1


def test_list_all_flattens_pages():
    client = make_client(paged(gids(120))[0])
    assert run(client, client.list_all("/users")) == gids(120)


# --- events ------------------------------------------------------------------------------------


def test_events_returns_batch_next_sync_and_has_more():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok([{"action": "changed"}], sync="next", has_more=True)

    client = make_client(handler)
    assert run(client, client.events("42", "prev")) == ([{"action": "changed"}], "next", True)
    assert seen[0].url.path == "/api/1.0/events"
    assert dict(seen[0].url.params) == {"resource": "42", "sync": "prev"}


def test_events_412_carries_the_fresh_sync_token():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return fail(412, "Sync token invalid or too old.", sync="fresh-token")

    client = make_client(handler)
    with pytest.raises(SyncTokenExpiredError) as caught:
        run(client, client.events("42", None))
    assert caught.value.sync == "fresh-token"
    assert caught.value.status == 412
    assert "sync" not in seen[0].url.params
    assert client.stats.requests == 1  # a 412 is an answer, not a transient failure


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class", "wording"),
    [
        (400, BadRequestError, "malformed"),
        (401, AuthenticationError, "reconnect the integration"),
        (402, PaymentRequiredError, "paid Asana plan"),
        (403, ForbiddenError, "admin or workspace-owner access"),
        (404, NotFoundError, "deleted, trashed or no longer shared"),
        (451, AsanaError, "request failed"),
    ],
)
def test_client_errors_map_to_exceptions_without_retrying(status, error_class, wording):
    client = make_client(sequence(fail(status, "first"), ok({})))
    with pytest.raises(error_class) as caught:
        run(client, client.get("/tasks/5?opt_fields=name", {"offset": "secret-offset"}))
    error = caught.value
    assert type(error) is error_class
    assert (error.status, error.method, error.path) == (status, "GET", "/tasks/5")
    assert error.messages == ("first",)
    assert wording in str(error) and "first" in str(error)
    assert "secret-offset" not in str(error) and "opt_fields" not in str(error)
    assert client.stats.requests == 1 and client.stats.retries == 0


def test_error_without_json_body_still_maps():
    client = make_client(sequence(httpx.Response(404, text="<html>gone</html>")))
    with pytest.raises(NotFoundError) as caught:
        run(client, client.get("/tasks/5"))
    assert caught.value.messages == ()


# --- retries -----------------------------------------------------------------------------------


def test_server_errors_are_retried_until_success():
    outcomes = [fail(500, phrase="6 sad squid"), fail(502), fail(503), fail(504), ok({"gid": "1"})]
    client = make_client(sequence(*outcomes))
    assert run(client, client.get_data("/tasks/1")) == {"gid": "1"}
    stats = client.stats
    assert (stats.requests, stats.retries) == (5, 4)
    assert stats.responses == {500: 1, 502: 1, 503: 1, 504: 1, 200: 1}


def test_dropped_connections_and_timeouts_are_retried_until_success():
    request = httpx.Request("GET", ASANA_API_BASE)
    failures = [
        httpx.RemoteProtocolError("Server disconnected", request=request),
        httpx.ReadError("connection reset", request=request),
        httpx.ConnectError("connection refused", request=request),
        httpx.ReadTimeout("timed out", request=request),
    ]
    client = make_client(sequence(*failures, ok({"gid": "1"})))
    assert run(client, client.get_data("/tasks/1")) == {"gid": "1"}
    assert (client.stats.transport_errors, client.stats.retries) == (4, 4)


def test_backoff_is_capped_by_backoff_max():
    client = make_client(sequence(*[fail(503)] * 3, ok({})), backoff_base=100, backoff_max=0.01)
    started = time.monotonic()
    run(client, client.get("/x"))
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("outcome", "error_class"),
    [
        (fail(503), ServerError),
        (httpx.Response(429, headers={"Retry-After": "0"}, json={"errors": []}), RateLimitedError),
        (httpx.ReadError("reset"), AsanaConnectionError),
    ],
)
def test_retries_are_exhausted_then_raised(outcome, error_class):
    client = make_client(sequence(*[outcome] * 3), max_retries=2)
    with pytest.raises(error_class) as caught:
        run(client, client.get("/tasks/1"))
    assert caught.value.path == "/tasks/1"
    assert (client.stats.requests, client.stats.retries) == (3, 2)


def test_rate_limited_error_says_when_to_retry_and_defaults_to_one_second():
    client = make_client(sequence(fail(429, "too many requests")), max_retries=0)
    with pytest.raises(RateLimitedError, match=r"retry after 1 s") as caught:
        run(client, client.get("/tasks/1"))
    assert caught.value.retry_after == 1.0
    assert client.stats.rate_limited == 1


def test_retry_after_pauses_every_request_of_the_client():
    """One request gets a 429; a request issued during the pause waits until it ends too."""
    retry_after = 0.3
    sent: list[tuple[str, float]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, time.monotonic()))
        if len(sent) == 1:
            return httpx.Response(429, headers={"Retry-After": str(retry_after)}, json={})
        return ok({})

    client = make_client(handler)

    async def scenario() -> None:
        limited = asyncio.create_task(client.get("/limited"))
        await asyncio.sleep(0.05)  # the 429 has arrived; the client is paused
        await asyncio.gather(limited, client.get("/other"))

    run(client, scenario())
    (_, rejected_at), *later = sent
    assert sorted(path for path, _ in later) == ["/api/1.0/limited", "/api/1.0/other"]
    assert all(at - rejected_at >= retry_after for _, at in later)
    assert client.stats.rate_limited == 1 and client.stats.retries == 1
    assert client.stats.retry_after_seconds == pytest.approx(retry_after, abs=0.05)


# --- pacing ------------------------------------------------------------------------------------


def counting_handler() -> tuple[Handler, dict[str, int]]:
    counts = {"in_flight": 0, "max_in_flight": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        counts["in_flight"] += 1
        counts["max_in_flight"] = max(counts["max_in_flight"], counts["in_flight"])
        await asyncio.sleep(0.01)
        counts["in_flight"] -= 1
        return ok({})

    return handler, counts


@pytest.mark.parametrize(("max_concurrency", "expected"), [(4, 4), (80, 50)])
def test_concurrency_is_bounded_and_clamped_to_asanas_limit(max_concurrency, expected):
    handler, counts = counting_handler()
    client = make_client(handler, max_concurrency=max_concurrency)

    async def many() -> None:
        await asyncio.gather(*(client.get(f"/tasks/{i}") for i in range(60)))

    run(client, many())
    assert counts["max_in_flight"] == expected
    assert client.stats.requests == 60


def test_token_bucket_paces_requests_after_the_burst():
    # 1200/min is 20/s; a burst of 5 (the concurrency cap) goes at once, the other 20 take 1 s.
    handler, _ = counting_handler()
    client = make_client(handler, requests_per_minute=1200, max_concurrency=5)

    async def many() -> float:
        started = time.monotonic()
        await asyncio.gather(*(client.get(f"/tasks/{i}") for i in range(25)))
        return time.monotonic() - started

    assert 0.95 <= run(client, many()) < 2.0


# --- a budget shared with the token's other processes ---------------------------------------


class FakeBudget:
    """A shared budget that grants what it is asked, within `reads`, and records every call.
    `starved` first answers leave no read in flight; `paused` comes with the first answer."""

    def __init__(self, where: str, reads: int = 50, starved: int = 0, paused: float = 0.0,
                 failure: Exception | None = None) -> None:
        self.where, self.reads, self.starved, self.paused, self.failure = where, reads, starved, paused, failure
        self.takes: list[dict[str, Any]] = []
        self.granted_at: list[float] = []
        self.pauses: list[float] = []
        self.left: list[str] = []
        self.closed = False

    def take(self, member, pool, slots, reads, in_flight, lease) -> Grant:
        if self.failure is not None:
            raise self.failure
        self.takes.append({"member": member, "pool": pool, "slots": slots, "reads": reads, "lease": lease})
        granted = 0 if len(self.takes) <= self.starved else min(reads, self.reads)
        self.granted_at.append(time.monotonic())
        return Grant(start=0.0, slots=slots, reads=granted, paused=self.paused if len(self.takes) == 1 else 0.0)

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)

    def leave(self, member: str, unused: int = 0) -> None:
        self.left.append((member, unused))

    def close(self) -> None:
        self.closed = True


async def fetch_all(client: AsanaClient, n: int) -> list:
    return await asyncio.gather(*(client.get(f"/tasks/{i}") for i in range(n)))


def test_a_shared_budget_is_drawn_on_in_batches_not_per_request():
    handler, _ = counting_handler()
    budget = FakeBudget("batches")
    client = make_client(handler, requests_per_minute=6000, budget=budget)
    run(client, fetch_all(client, 200))
    assert client.stats.requests == 200
    batches = [take for take in budget.takes if take["slots"]]
    assert 1 <= len(batches) <= 200 / 10  # at 6,000 a minute, a second's worth is about 100 slots
    assert sum(take["slots"] for take in batches) >= 200
    assert len({take["member"] for take in budget.takes}) == 1
    # What the last batch did not use goes back: every slot taken, less the 200 sent.
    assert budget.left == [(budget.takes[0]["member"], sum(take["slots"] for take in batches) - 200)]
    assert budget.closed


def test_the_pool_and_the_share_reach_the_budget():
    """The sensor's 10% of 10 reads in flight is 1, within the token's 10."""
    handler, counts = counting_handler()
    budget = FakeBudget("pool")
    client = make_client(handler, max_concurrency=10, budget=budget, pool="sensor", share=0.1)
    run(client, fetch_all(client, 5))
    pool = budget.takes[0]["pool"]
    assert (pool.name, pool.concurrency, pool.total_concurrency) == ("sensor", 1, 10)
    assert counts["max_in_flight"] == 1


def test_the_reads_the_budget_leaves_bound_the_requests_in_flight():
    handler, counts = counting_handler()
    client = make_client(handler, max_concurrency=20, budget=FakeBudget("reads", reads=3))
    run(client, fetch_all(client, 30))
    assert counts["max_in_flight"] == 3
    assert client.stats.requests == 30


def test_a_client_left_no_read_in_flight_asks_again_and_sends_nothing_meanwhile():
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        return ok({})

    budget = FakeBudget("starved", starved=2)
    client = make_client(handler, budget=budget)
    run(client, fetch_all(client, 3))
    assert len(budget.takes) >= 3 and len(sent) == 3
    assert min(sent) >= budget.granted_at[2]  # only once the third answer left it room


def test_a_pause_in_the_budget_holds_this_client_too():
    """Another process got a 429: the first answer says the token is paused for 0.3 s."""
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        return ok({})

    budget = FakeBudget("paused", paused=0.3)
    client = make_client(handler, budget=budget)
    run(client, fetch_all(client, 4))
    assert len(sent) == 4 and min(sent) >= budget.granted_at[0] + 0.3
    assert client.stats.retry_after_seconds == pytest.approx(0.3, abs=0.05)


def test_a_429_pauses_the_tokens_other_processes_even_when_not_retried():
    budget = FakeBudget("429")
    client = make_client(sequence(httpx.Response(429, headers={"Retry-After": "7"}, json={})), budget=budget,
                         max_retries=0)
    with pytest.raises(RateLimitedError):
        run(client, client.get("/tasks/1"))
    assert budget.pauses == [7.0]


def test_a_budget_out_of_reach_leaves_the_client_alone_at_its_share(caplog):
    """Permission denied on the budget: the sync goes on at its share (half of 10 in flight),
    and the reason is logged once for the process, whatever the number of clients."""
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        handler, counts = counting_handler()
        budget = FakeBudget("/nowhere/quota", failure=PermissionError(13, "Permission denied"))
        client = make_client(handler, max_concurrency=10, budget=budget, share=0.5)
        run(client, fetch_all(client, 20))
        assert client.stats.requests == 20 and counts["max_in_flight"] == 5
        assert budget.closed
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "/nowhere/quota" in warning and "PermissionError: Permission denied" in warning
    assert TOKEN not in warning


# --- secrecy -----------------------------------------------------------------------------------


def test_token_never_appears_in_errors_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    scenarios = [
        sequence(fail(401, f"Not Authorized: {TOKEN}")),
        sequence(*[fail(503)] * 2),
        sequence(*[httpx.Response(429, headers={"Retry-After": "0"})] * 2),
        sequence(*[httpx.ConnectError(f"cannot connect for {TOKEN}")] * 2),
    ]
    texts = []
    for handler in scenarios:
        client = make_client(handler, max_retries=1)
        with pytest.raises(AsanaError) as caught:
            run(client, client.get("/users/me"))
        texts += [str(caught.value), repr(caught.value), repr(client)]
    assert any("retry 1/1 in" in record.getMessage() for record in caplog.records)
    for text in texts + [record.getMessage() for record in caplog.records]:
        assert TOKEN not in text
        assert "Bearer" not in text


# --- a token source: tokens replaced while the client runs -------------------------------------


class Replaced:
    """A token source whose token is replaced when Asana refuses it, as an OAuth connection's is."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.refused_tokens: list[str] = []

    async def token(self) -> str:
        return self.tokens[0]

    async def refused(self, token: str) -> bool:
        self.refused_tokens.append(token)
        if token == self.tokens[0] and len(self.tokens) > 1:
            self.tokens.pop(0)
        return self.tokens[0] != token


def through_source(source: Replaced, answer: Callable[[str], httpx.Response]) -> tuple[AsanaClient, list[str]]:
    """A client of ``source`` whose requests ``answer(token sent)``; the tokens sent, in order."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Authorization"].removeprefix("Bearer "))
        return answer(sent[-1])

    return AsanaClient(ASANA_API_BASE, source, transport=httpx.MockTransport(handler), requests_per_minute=10**7), sent


def test_a_401_is_sent_once_more_with_the_token_that_replaced_the_refused_one():
    source = Replaced("first", "second")
    client, sent = through_source(source, lambda token: fail(401) if token == "first" else ok({"gid": "1"}))
    assert run(client, client.get_data("/users/me")) == {"gid": "1"}
    assert sent == ["first", "second"] and source.refused_tokens == ["first"]
    assert client.stats.responses == {401: 1, 200: 1}


def test_a_401_to_the_replacing_token_too_is_raised_and_neither_token_shown():
    source = Replaced("first", "second")
    client, sent = through_source(source, lambda token: fail(401, f"Not Authorized: {token}"))
    with pytest.raises(AuthenticationError) as caught:
        run(client, client.get("/users/me"))
    assert sent == ["first", "second"]  # sent once more, not more
    assert "first" not in str(caught.value) and "second" not in str(caught.value)


def test_a_write_refused_with_401_is_sent_once_more_with_the_new_token():
    source = Replaced("first", "second")
    client, sent = through_source(source, lambda token: fail(401) if token == "first" else ok({"gid": "7"}))
    assert run(client, client.write("POST", "/tasks", {"name": "Finding"})) == {"gid": "7"}
    assert sent == ["first", "second"]


# --- network transport -------------------------------------------------------------------------


def test_real_connections_are_kept_alive_and_bounded():
    """Through real sockets: no more connections than the concurrency, each one reused."""
    state = {"connections": 0, "in_flight": 0, "max_in_flight": 0, "requests": 0}
    body = b'{"data": {"gid": "1"}}'
    response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    handlers: list[asyncio.Task] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())
        state["connections"] += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                state["requests"] += 1
                state["in_flight"] += 1
                state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
                await asyncio.sleep(0.01)
                state["in_flight"] -= 1
                writer.write(response % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()

    async def main() -> list:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            base_url = f"http://127.0.0.1:{port}/api/1.0"
            client = AsanaClient(base_url, TOKEN, max_concurrency=12, requests_per_minute=10**7)
            async with client:
                results = await asyncio.gather(*(client.get_data(f"/tasks/{i}") for i in range(60)))
            await asyncio.gather(*handlers)  # each ends once the client has hung up
        return results

    assert asyncio.run(main()) == [{"gid": "1"}] * 60
    assert state["requests"] == 60
    assert state["max_in_flight"] == 12
    assert state["connections"] == 12


def test_a_lone_surrogate_is_kept_as_its_escape_text_and_the_page_is_read():
    # Escaped in the JSON body as the API may send it: a lone high surrogate, then a valid pair.
    body = b'{"data": [{"gid": "1", "name": "x\\ud800y"}, {"gid": "2", "name": "\\ud83d\\ude42"}]}'
    client = make_client(lambda request: httpx.Response(200, content=body))
    data = run(client, client.get_data("/tasks"))
    assert data == [{"gid": "1", "name": "x\\ud800y"}, {"gid": "2", "name": "\U0001F642"}]


def test_a_body_that_is_not_json_is_still_an_error():
    client = make_client(lambda request: httpx.Response(200, content=b"<html>maintenance</html>"))
    with pytest.raises(AsanaError, match="non-JSON body"):
        run(client, client.get_data("/tasks"))


def test_run_works_where_an_event_loop_already_runs():
    async def answer():
        return 42

    async def host():  # e.g. a notebook, or a browser driver's loop in the same thread
        return run_sync(answer())

    assert asyncio.run(host()) == 42
