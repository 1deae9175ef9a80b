"""The embedded default source: the demo simulator, served only where nothing is configured.

The demo starts the first time this process needs the Asana resource while nothing points at a
real Asana (no ASANA_ACCESS_TOKEN, ASANA_CONNECTION_ID, ASANA_BASE_URL or connection store) nor at
a real warehouse (no ASANA_POSTGRES_URL, and a Dagster instance that keeps its storage in no
database server). Anywhere else it never starts: the code location still loads, and whatever
needs Asana fails with `refusal`, which names the setting that made the difference. Nothing
starts at import.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx

from asana_assets import settings
from asana_assets.lib.connections.troubleshooting import ConnectionProblem
from asana_assets.lib.storage.files import write_atomically
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world

log = logging.getLogger("asana_assets.demo")

DEMO_SEED = 1
DEMO_TASKS = 400
# The demo organisation is on a plan with ten times the paid quota, so the demo takes seconds.
DEMO_REQUESTS_PER_MINUTE = 15_000
CREDENTIALS = f"set {settings.ACCESS_TOKEN.name} or {settings.CONNECTION_ID.name}"

_running: str | None = None  # the API base this process serves the demo at
_simulators: list[Simulator] = []  # the one this process started, kept alive
_starting = threading.Lock()


def asana_setting() -> str | None:
    """What in the environment points at a real Asana, in words; None when nothing does."""
    for setting in (settings.ACCESS_TOKEN, settings.CONNECTION_ID, settings.BASE_URL, settings.CONNECTION_STORE):
        if setting.is_set:
            return f"{setting.name} is set"
    if Path(settings.CONNECTION_STORE.default).exists():
        return f"the connection store {settings.CONNECTION_STORE.default} exists"
    return None


def refusal(instance_storage: str | None = None) -> ConnectionProblem | None:
    """Why the demo may not be the source here, as the error to raise; None when it may be.

    ``instance_storage`` names the package with which the Dagster instance in use keeps its
    storage in a database server (a production instance), when it does.
    """
    if _running is not None:
        return None
    if (asana := asana_setting()) is not None:
        return ConnectionProblem(
            f"{asana} but no Asana credentials are",
            f"{CREDENTIALS} (the demo simulator serves only where nothing points at a real Asana)",
        )
    if settings.POSTGRES_URL.is_set:
        return ConnectionProblem(
            f"{settings.POSTGRES_URL.name} is set but no Asana credentials are",
            f"{CREDENTIALS} (the demo simulator never writes into a configured warehouse)",
        )
    if instance_storage:
        return ConnectionProblem(
            f"the Dagster instance (dagster.yaml in DAGSTER_HOME) keeps its storage in a database server "
            f"({instance_storage}) but no Asana credentials are set",
            f"{CREDENTIALS} (the demo simulator never writes beside a production instance; for the demo, "
            "point DAGSTER_HOME at an instance of its own, as `make demo` does)",
        )
    return None


def source(instance_storage: str | None = None) -> tuple[str, str]:
    """(API base, token) of the demo simulator, started on first use; raises `refusal` where
    the demo may not serve.

    The demo keeps its world and its port (``demo.json`` beside the warehouse's sync state):
    every process that serves it again (`make demo`, then `make ui`) serves the same
    organisation at the same address, so the events tokens a sync saved stay valid and no run
    starts that nobody asked for; a process that finds it already served there uses it. Its
    address and token go into this process's environment, so run workers that this process
    starts reach the same simulator instead of starting their own.
    """
    global _running
    with _starting:
        if _running is None:
            if (refused := refusal(instance_storage)) is not None:
                raise refused
            _running = _serve(_remembered())
            os.environ[settings.BASE_URL.name] = _running
            os.environ[settings.ACCESS_TOKEN.name] = DEMO_TOKEN
            os.environ.setdefault(settings.REQUESTS_PER_MINUTE.name, str(DEMO_REQUESTS_PER_MINUTE))
        return _running, DEMO_TOKEN


def _state_file() -> Path:
    return Path(str(settings.WAREHOUSE_DIR.get())) / "state" / "demo.json"


def _remembered() -> dict:
    """The demo's world clock, signing secret and port, chosen once and kept."""
    path = _state_file()
    if path.exists():
        return json.loads(path.read_text())
    return {"now": datetime.now(UTC).replace(microsecond=0).isoformat(), "secret": secrets.token_hex(16), "port": 0}


def _answers_as_demo(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/users/me", headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
                         timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _serve(state: dict) -> str:
    port = int(state["port"])
    base_url = f"http://127.0.0.1:{port}/api/1.0"
    if port and not _port_free(port) and _answers_as_demo(base_url):
        log.info("Using the demo Asana workspace already served at %s", base_url)
        return base_url
    world = generate_world(seed=DEMO_SEED, tasks=DEMO_TASKS, now=datetime.fromisoformat(state["now"]))
    world.enterprise = True  # an Enterprise organisation, synced by a service account: it sees everything
    simulator = Simulator(
        world, SimulatorConfig(requests_per_minute=DEMO_REQUESTS_PER_MINUTE, secret=state["secret"]),
    )
    base_url = simulator.start(port=port if port and _port_free(port) else 0)
    _simulators.append(simulator)
    write_atomically(_state_file(), json.dumps({**state, "port": int(base_url.split(":")[2].split("/")[0])}).encode())
    log.warning(
        "%s is not set: serving the demo Asana workspace (simulator, seed %s, %s tasks) at %s",
        settings.ACCESS_TOKEN.name, DEMO_SEED, DEMO_TASKS, base_url,
    )
    return base_url


def running_base_url() -> str | None:
    """The demo simulator's API base when this process serves it."""
    return _running
