"""The demo: the simulator's generated organisation as the Asana source, chosen by ASANA_DEMO.

The demo is never inferred: it serves only where ASANA_DEMO asks for it, and even then it
refuses (`refusal`) while anything else points at a real Asana (ASANA_ACCESS_TOKEN,
ASANA_CONNECTION_ID, ASANA_BASE_URL, a connection store) or at a warehouse's Postgres
(ASANA_POSTGRES_URL): a demo never writes into a real warehouse. It starts the first time this
process needs it; nothing starts at import.
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
from asana_assets.simulator.generator import OFFBOARDING, OFFBOARDING_DAYS, REVIEWS, SLA_CATEGORY

log = logging.getLogger("asana_assets.demo")

DEMO_SEED = 1
DEMO_TASKS = 400
# The demo organisation is on a plan with ten times the paid quota, so the demo takes seconds.
DEMO_REQUESTS_PER_MINUTE = 15_000
# The demo organisation's compliance settings: where its offboarding tickets are filed, and the day
# its IT team allows itself (so the monitor runs, and the leaver's open ticket is overdue); the SLA of
# its security incidents by severity (so one open past it and one closed late alarm); the project its
# access review campaign is filed in (so its revoke still held and its overdue item alarm).
COMPLIANCE = {"offboarding_projects": [OFFBOARDING], "offboarding_days": OFFBOARDING_DAYS,
              "sla_categories": [SLA_CATEGORY], "review_project": REVIEWS}

_running: str | None = None  # the API base this process serves the demo at
_simulators: list[Simulator] = []  # the one this process started, kept alive
_starting = threading.Lock()


def _real_asana() -> tuple[str, str] | None:
    """What in the environment points at a real Asana, and how to leave it out; None when nothing does."""
    for setting in (settings.ACCESS_TOKEN, settings.CONNECTION_ID, settings.BASE_URL, settings.CONNECTION_STORE):
        if setting.is_set:
            return f"{setting.name} is set", f"unset {setting.name}"
    if Path(settings.CONNECTION_STORE.default).exists():
        store = settings.CONNECTION_STORE.default
        return f"the connection store {store} exists", f"run the demo in a directory without {store}"
    return None


def refusal() -> ConnectionProblem | None:
    """Why the demo may not serve although ASANA_DEMO asks for it, as the error to raise; None when it may."""
    credentials = f"set {settings.ACCESS_TOKEN.name} or {settings.CONNECTION_ID.name}"
    if (asana := _real_asana()) is not None:
        what, leave_out = asana
        return ConnectionProblem(
            f"{settings.DEMO.name} asks for the demo but {what}",
            f"{leave_out} for the demo, or unset {settings.DEMO.name} to sync that Asana (the demo simulator "
            "serves only where nothing points at a real Asana)",
        )
    if settings.POSTGRES_URL.is_set:
        return ConnectionProblem(
            f"{settings.DEMO.name} asks for the demo but {settings.POSTGRES_URL.name} is set",
            f"unset {settings.POSTGRES_URL.name} for the demo, or unset {settings.DEMO.name} and {credentials} "
            "(the demo simulator never writes into a configured warehouse)",
        )
    return None


def source() -> tuple[str, str]:
    """(API base, token) of the demo simulator, started on first use; raises `refusal` where the
    demo may not serve.

    The demo keeps its world and its port (``demo.json`` beside the warehouse's sync state):
    every process that serves it again (`make demo`, then `make ui`) serves the same
    organisation at the same address, so the events tokens a sync saved stay valid and no run
    starts that nobody asked for; a process that finds it already served there uses it. Its
    address goes into this process's environment (ASANA_DEMO_BASE_URL), so run workers that this
    process starts reach the same simulator instead of starting their own.
    """
    global _running
    with _starting:
        if (refused := refusal()) is not None:
            raise refused
        if _running is None:
            _running = settings.DEMO_BASE_URL.get() or _serve(_remembered())
            os.environ[settings.DEMO_BASE_URL.name] = _running
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
    # An Enterprise organisation from the start, synced by a service account: it sees everything,
    # and its audit log holds the access history.
    world = generate_world(seed=DEMO_SEED, tasks=DEMO_TASKS, now=datetime.fromisoformat(state["now"]), enterprise=True)
    simulator = Simulator(
        world, SimulatorConfig(requests_per_minute=DEMO_REQUESTS_PER_MINUTE, secret=state["secret"]),
    )
    base_url = simulator.start(port=port if port and _port_free(port) else 0)
    _simulators.append(simulator)
    write_atomically(_state_file(), json.dumps({**state, "port": int(base_url.split(":")[2].split("/")[0])}).encode())
    log.warning(
        "%s is on: serving the demo Asana workspace (simulator, seed %s, %s tasks) at %s",
        settings.DEMO.name, DEMO_SEED, DEMO_TASKS, base_url,
    )
    return base_url


def running_base_url() -> str | None:
    """The demo simulator's API base when this process, or the process that started it, serves it."""
    return _running or settings.DEMO_BASE_URL.get()
