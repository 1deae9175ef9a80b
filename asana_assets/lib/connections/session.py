"""Work done against Asana with one connection's credentials: a client opened for them, paced
within the token's quota, and an OAuth connection's access token refreshed as the work goes on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from asana_assets.lib.asana.client import AsanaClient, run
from asana_assets.lib.connections import oauth
from asana_assets.lib.connections.store import TokenStore
from asana_assets.lib.storage.quota import open_budget

T = TypeVar("T")
RUNS, SENSOR = "runs", "sensor"  # the pools of a token's quota: the runs', the events sensor's polls'


@dataclass(frozen=True)
class Quota:
    """A token's request budget: what its plan allows, the events sensor's share of it, and
    where the processes using the token share it (a postgresql:// URL or a folder; None: each
    process paces itself alone, at its share)."""

    requests_per_minute: int
    max_concurrency: int
    sensor_share: float
    store: str | None = None


@dataclass(frozen=True)
class OAuthRefresher:
    """A stored OAuth connection: its access token is read from ``store`` and refreshed by ``app``."""

    app: oauth.OAuthApp
    store: TokenStore
    connection_id: str


def run_with_client(base_url: str, credential: str | OAuthRefresher, quota: Quota,
                    work: Callable[[AsanaClient], Awaitable[T]], *, pool: str = RUNS, **client_options: Any) -> T:
    """``work(client)`` with a client for ``base_url`` acting with ``credential`` (a token, or an
    OAuth connection's refresher), drawing on ``pool``'s share of ``quota``.

    An OAuth access token is refreshed within the work, ahead of its expiry and when Asana refuses
    it (see `oauth.OAuthTokens`): a refused refresh marks the connection expired and says to
    reconnect, an unavailable token endpoint fails (retryable) and leaves the connection active.
    Its processes share one budget whatever token each holds at the moment: the connection's."""
    # The sensor is capped at its share; the runs may take the whole quota the sensor leaves (their
    # share is what they pace at alone, should the shared budget be out of reach).
    share, cap = (quota.sensor_share, None) if pool == SENSOR else (1 - quota.sensor_share, 1.0)
    if isinstance(credential, OAuthRefresher):
        token = oauth.OAuthTokens(credential.app, credential.store, credential.connection_id)
        budget_name = f"oauth connection {credential.connection_id}"
    else:
        token = budget_name = credential

    async def with_client() -> T:
        budget = open_budget(quota.store, budget_name) if quota.store else None
        async with AsanaClient(base_url, token, max_concurrency=quota.max_concurrency,
                               requests_per_minute=quota.requests_per_minute, budget=budget, pool=pool, share=share, cap=cap,
                               **client_options) as client:
            return await work(client)

    return run(with_client())


async def whoami(client: AsanaClient) -> dict:
    """The user the credentials act for: the cheapest proof that the connection works."""
    return await client.get_data("/users/me", fields=("name", "email"))
