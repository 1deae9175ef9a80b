"""Running the simulated API in-process: its own event loop on a daemon thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web

from .config import SimulatorConfig
from .limits import Stats
from .models import User
from .server import AsanaApi
from .world import World


class Simulator:
    """A running simulated Asana API over ``world``.

    ``start()`` returns the base URL (``http://HOST:PORT/api/1.0``); use as a context manager to
    stop it afterwards. Mutate ``world`` between requests to simulate activity between syncs.
    """

    def __init__(self, world: World, config: SimulatorConfig | None = None) -> None:
        self.world = world
        self.config = config or SimulatorConfig()
        for token, user in self.config.tokens.items():
            if user is not None and not isinstance(world.objects.get(user), User):
                raise ValueError(f"token {token!r} maps to {user!r}, which is not a user of this world")
        self.api = AsanaApi(world, self.config)
        self.base_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def stats(self) -> Stats:
        return self.api.stats

    def malformed_gids(self) -> set[str]:
        """The task and story gids served with a corrupted field (empty unless malformed_rate > 0)."""
        return self.api.malformed_gids()

    def expire_sync_tokens(self) -> None:
        """Make every sync token issued so far answer 412."""
        self.api.expire_sync_tokens()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port) and return the API base URL."""
        if self._loop is not None:
            raise RuntimeError("the simulator is already running")
        self._loop = _new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asana-simulator", daemon=True)
        self._thread.start()
        bound = asyncio.run_coroutine_threadsafe(self._serve(host, port), self._loop).result(timeout=30)
        self.base_url = f"http://{host}:{bound}/api/1.0"
        return self.base_url

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._loop = self._thread = self._runner = None
        self.base_url = None

    def __enter__(self) -> Simulator:
        if self._loop is None:
            self.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    async def _serve(self, host: str, port: int) -> int:
        self._runner = web.AppRunner(self.api.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, backlog=1024).start()
        return self._runner.addresses[0][1]


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it roughly doubles throughput), else the standard loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
