"""The shape of the code location and of the package: a reorganisation that drops or renames a
definition, or breaks the import rules, fails here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg

from asana_assets_tests.support import REPO

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def snapshot(defs: dg.Definitions) -> dict:
    """What users see of the code location: assets with their groups, checks, jobs, schedules,
    sensors and the partitioning, as sorted names."""
    graph = defs.resolve_asset_graph()
    specs = defs.resolve_all_asset_specs()
    return {
        "assets": sorted(f"{spec.key.to_user_string()} @ {spec.group_name}" for spec in specs),
        "checks": sorted(f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys),
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")),
        "schedules": sorted(s.name for s in defs.schedules),
        "sensors": sorted(s.name for s in defs.sensors),
        "partitions": sorted({
            getattr(graph.get(key).partitions_def, "name", None) or "unpartitioned" for key in graph.get_all_asset_keys()
        }),
    }


def test_the_definitions_match_their_snapshot():
    """A change users see (an asset, a check, a job...) is a change of the snapshot too:
    ``python -m asana_assets_tests.defs.test_layout`` rewrites it, for the diff to be reviewed."""
    from asana_assets.definitions import defs

    assert snapshot(defs) == json.loads(SNAPSHOT.read_text())


def test_importing_the_code_location_starts_and_writes_nothing(tmp_path):
    """A bare import in a clean environment in an empty folder: no demo simulator, no
    environment written, no file created."""
    probe = (
        "import os, threading; before = dict(os.environ); import asana_assets.definitions; "
        "assert dict(os.environ) == before, 'the environment changed'; "
        "assert threading.active_count() == 1, [t.name for t in threading.enumerate()]"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("ASANA_", "DAGSTER_"))}
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "demo" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_import_contract_holds():
    """lib/ never imports defs/ or Dagster, the simulator stands apart, and there is no cycle."""
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]


if __name__ == "__main__":
    from asana_assets.definitions import defs

    SNAPSHOT.write_text(json.dumps(snapshot(defs), indent=2) + "\n")
