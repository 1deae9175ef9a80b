"""The demo keeps its world and its port: a sync, then the UI's sensors in a new process, see
the same organisation, so no run starts that nobody asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asana_assets_tests.support import REPO

BIN = Path(sys.executable).parent
SENSOR_TICK = """
import dagster as dg
from asana_assets.definitions import defs
sensor = defs.resolve_sensor_def("asana_events_sensor")
with dg.DagsterInstance.get() as instance, dg.build_sensor_context(instance=instance, resources=defs.resources) as context:
    result = sensor(context)
print("RUNS", len(getattr(result, "run_requests", None) or []))
print("SKIP", getattr(getattr(result, "skip_reason", None), "skip_message", result))
"""


@pytest.mark.slow
def test_a_demo_sync_then_the_sensor_in_a_new_process_starts_no_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASANA_", "DAGSTER_"))}
    (tmp_path / "home").mkdir()
    env |= {"DAGSTER_HOME": str(tmp_path / "home"), "ASANA_WAREHOUSE_DIR": str(tmp_path / "wh"), "ASANA_DEMO": "1"}
    synced = subprocess.run([str(BIN / "asana-connections"), "sync"], env=env, capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert synced.returncode == 0, synced.stderr[-3000:]
    first = json.loads((tmp_path / "wh" / "state" / "demo.json").read_text())
    tick = subprocess.run([sys.executable, "-c", SENSOR_TICK], env=env, capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert tick.returncode == 0, tick.stderr[-3000:]
    assert "RUNS 0" in tick.stdout and "no new events" in tick.stdout, tick.stdout
    assert json.loads((tmp_path / "wh" / "state" / "demo.json").read_text()) == first  # same world, same port
