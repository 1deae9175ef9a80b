"""AsanaClient.write: the body Asana expects, and a retry only when Asana refused the write."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from asana_assets.lib.asana.client import AsanaClient, ServerError

BASE = "https://asana.test/api/1.0"


def send(responses: list[httpx.Response], method="POST", path="/tasks", data=None):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses[len(seen) - 1]

    async def run():
        async with AsanaClient(BASE, "secret-token", transport=httpx.MockTransport(handler),
                               requests_per_minute=10**7) as client:
            return await client.write(method, path, data or {"name": "Finding"})

    return lambda: asyncio.run(run()), seen


def test_a_write_sends_the_data_envelope_and_returns_data():
    run, seen = send([httpx.Response(201, json={"data": {"gid": "7", "name": "Finding"}})])
    assert run() == {"gid": "7", "name": "Finding"}
    [request] = seen
    assert request.method == "POST" and str(request.url) == f"{BASE}/tasks"
    assert json.loads(request.content) == {"data": {"name": "Finding"}}
    assert request.headers["Content-Type"] == "application/json"


def test_a_refused_write_is_retried_after_the_pause():
    run, seen = send([httpx.Response(429, headers={"Retry-After": "0"}, json={"errors": [{"message": "slow"}]}),
                      httpx.Response(201, json={"data": {"gid": "7"}})])
    assert run() == {"gid": "7"} and len(seen) == 2


def test_a_write_that_may_have_been_applied_is_never_sent_twice():
    run, seen = send([httpx.Response(500, json={"errors": [{"message": "boom"}]}),
                      httpx.Response(201, json={"data": {"gid": "7"}})])
    with pytest.raises(ServerError):
        run()
    assert len(seen) == 1
