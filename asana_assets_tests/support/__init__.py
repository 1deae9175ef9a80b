"""What several test modules share that is not a fixture: the pipeline runner, ground-truth
comparisons, world changes, an OAuth token's clock, Asana's OpenAPI spec, where the repository
and the test Postgres are, how to run a command as a user would, and how to kill one where it
stands."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("ASANA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BIN = Path(sys.executable).parent  # the virtualenv's commands (asana-connections, dagster, ...)


def free_port() -> int:
    """A local TCP port nothing listens on (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli_env(tmp_path: Path, **extra) -> dict:
    """The environment of a command run as a user would: no ASANA_ or DAGSTER_ setting but
    ``extra``, a Dagster home and a warehouse of its own under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASANA_", "DAGSTER_"))}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**env, "DAGSTER_HOME": str(home), "ASANA_WAREHOUSE_DIR": str(tmp_path / "wh"), **extra}


def kill_at(process: subprocess.Popen, marker: Path, point: str, within: float = 240) -> None:
    """SIGKILL ``process`` once it has written ``marker`` (it stops there and waits, see
    ``killed_sync.py`` and ``killed_run.py``); fails if it ends, or ``within`` seconds pass, first."""
    deadline = time.monotonic() + within
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), f"the run never reached {point}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
