"""The embedded default source: the demo simulator, served when nothing points at a real Asana.

Nothing starts at import: the simulator starts the first time this process needs the Asana
resource while no credentials, API base or connection store are configured.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from asana_assets import settings
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world

log = logging.getLogger("asana_assets.demo")

DEMO_SEED = 1
DEMO_TASKS = 400
# The demo organisation is on a plan with ten times the paid quota, so the demo takes seconds.
DEMO_REQUESTS_PER_MINUTE = 15_000

_running: Simulator | None = None
_starting = threading.Lock()


def wanted() -> bool:
    """True when the demo is the source: no credentials (ASANA_ACCESS_TOKEN, ASANA_CONNECTION_ID),
    no ASANA_BASE_URL and no connection store (ASANA_CONNECTION_STORE, or the default store file:
    a deployment of stored connections), or when this process already serves it."""
    if _running is not None:
        return True
    configured = (settings.ACCESS_TOKEN, settings.CONNECTION_ID, settings.BASE_URL, settings.CONNECTION_STORE)
    return not any(setting.is_set for setting in configured) and not Path(settings.CONNECTION_STORE.default).exists()


def source() -> tuple[str, str]:
    """(API base, token) of the demo simulator, started on first use.

    Its address and token go into this process's environment, so run workers that this
    process starts reach the same simulator instead of starting their own.
    """
    global _running
    with _starting:
        if _running is None:
            running = Simulator(
                generate_world(seed=DEMO_SEED, tasks=DEMO_TASKS),
                SimulatorConfig(requests_per_minute=DEMO_REQUESTS_PER_MINUTE),
            )
            base_url = running.start()
            os.environ[settings.BASE_URL.name] = base_url
            os.environ[settings.ACCESS_TOKEN.name] = DEMO_TOKEN
            os.environ.setdefault(settings.REQUESTS_PER_MINUTE.name, str(DEMO_REQUESTS_PER_MINUTE))
            log.warning(
                "%s is not set: serving the demo Asana workspace (simulator, seed %s, %s tasks) at %s",
                settings.ACCESS_TOKEN.name, DEMO_SEED, DEMO_TASKS, base_url,
            )
            _running = running
        return _running.base_url, DEMO_TOKEN
