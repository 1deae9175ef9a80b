"""The embedded default source: with no Asana token configured, serve the demo simulator."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from asana_assets.connections import DEFAULT_STORE, STORE_ENV
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world

log = logging.getLogger("asana_assets.demo")

DEMO_SEED = 1
DEMO_TASKS = 400
# The demo organisation is on a plan with ten times the paid quota, so the demo takes seconds.
DEMO_REQUESTS_PER_MINUTE = 15_000

_running: Simulator | None = None


def ensure_source() -> None:
    """Start the demo simulator when no credentials (ASANA_ACCESS_TOKEN, ASANA_CONNECTION_ID), no
    ASANA_BASE_URL and no connection store (ASANA_CONNECTION_STORE, or the default store file:
    a deployment of stored connections) are set.

    Its address and token go into this process's environment, so run workers that this
    process starts reach the same simulator instead of starting their own.
    """
    global _running
    configured = ("ASANA_ACCESS_TOKEN", "ASANA_CONNECTION_ID", "ASANA_BASE_URL", STORE_ENV)
    if _running is not None or any(os.environ.get(name) for name in configured) or Path(DEFAULT_STORE).exists():
        return
    _running = Simulator(
        generate_world(seed=DEMO_SEED, tasks=DEMO_TASKS),
        SimulatorConfig(requests_per_minute=DEMO_REQUESTS_PER_MINUTE),
    )
    base_url = _running.start()
    os.environ["ASANA_BASE_URL"] = base_url
    os.environ["ASANA_ACCESS_TOKEN"] = DEMO_TOKEN
    os.environ.setdefault("ASANA_REQUESTS_PER_MINUTE", str(DEMO_REQUESTS_PER_MINUTE))
    log.warning(
        "ASANA_ACCESS_TOKEN is not set: serving the demo Asana workspace "
        "(simulator, seed %s, %s tasks) at %s",
        DEMO_SEED, DEMO_TASKS, base_url,
    )
