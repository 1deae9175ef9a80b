"""Small-run benchmark: an incremental `asana-connections sync` after one task changed.

A 2,000-task world at 30 ms a request and 1,500 requests a minute (as full_sync.py's run (b)):
a full sync first, then one task renamed through the API, then the incremental sync that picks
the change up, timed as a user meets it: the whole process from start to exit, its wall time and
its CPU time (user and system). It runs on two Dagster instances: the default one a bare
``$DAGSTER_HOME`` gives (SQLite, as `make demo`), and the production one (`dagster.yaml`: run and
event storage in Postgres, a database of its own, dropped after).

It also splits the process's wall time by the run's own record: before the run's first event
(Python, the imports, the instance), the run itself (its steps, and the events it records), and
after its last event (the command's summary, the exit), and prints the slowest steps. Beside it,
Dagster's own floor on the same instance: a process that imports the code location (as a sync
does) and executes a hollow twin of the sync job (the same steps, each materializing the same assets and evaluating the
same checks, computing nothing), timed the same way.

    python benchmarks/small_run.py [--tasks 2000] [--instance sqlite|postgres]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import httpx
import psycopg2
from full_sync import SEED, start_simulator
from scale import step_spans
from targets import record

from asana_assets.simulator import DEMO_TOKEN

LATENCY_MS = 30
QUOTA = 1_500
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "postgres"}
ROOT = Path(__file__).resolve().parent.parent
CHANGED = "(incremental: 1 task(s) re-read"  # what the run's log says when it read the one change


@contextmanager
def instance_home(kind: str, benchmark: str = "small_run"):
    """A fresh ``$DAGSTER_HOME`` and the environment its instance needs (on Postgres, a database
    of its own, named after the benchmark)."""
    with tempfile.TemporaryDirectory() as home:
        if kind == "sqlite":
            Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            yield home, {}
            return
        database = f"asana_{benchmark}_{os.getpid()}"
        admin = psycopg2.connect(dbname="postgres", **POSTGRES)
        admin.autocommit = True
        admin.cursor().execute(f"CREATE DATABASE {database}")
        shutil.copy(ROOT / "dagster.yaml", home)
        try:
            yield home, {"DAGSTER_PG_HOST": POSTGRES["host"], "DAGSTER_PG_PORT": str(POSTGRES["port"]),
                         "DAGSTER_PG_DB": database, "DAGSTER_PG_USERNAME": POSTGRES["user"],
                         "DAGSTER_PG_PASSWORD": POSTGRES["password"]}
        finally:
            admin.cursor().execute(f"DROP DATABASE {database} WITH (FORCE)")
            admin.close()


def timed(command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, float, float]:
    """``command`` in a process of its own: the result, when it started (epoch), its wall seconds
    and its CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started_at, started = time.time(), time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[1:])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done, started_at, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed_sync(env: dict, mode: str) -> tuple[subprocess.CompletedProcess, float, float, float]:
    """`asana-connections sync --mode <mode>` of the default connection, timed (see `timed`)."""
    cli = Path(sys.executable).with_name("asana-connections")
    return timed([str(cli), "sync", "default", "--mode", mode], env)


def _results(keys: list[dg.AssetKey], checks: list[dg.AssetCheckKey]):
    """A hollow step's body: every asset materialized, every check passed."""
    def results():
        yield from (dg.MaterializeResult(asset_key=key, metadata={"rows": 0}) for key in keys)
        yield from (dg.AssetCheckResult(asset_key=c.asset_key, check_name=c.name, passed=True) for c in checks)

    return results


def hollow_job() -> dg.JobDefinition:
    """The sync job's twin: a step for each of its steps, materializing the same assets and
    evaluating the same checks (each passing) in the same order, computing and reading nothing.
    Its partitions are static (the real job's are dynamic) and it has no resources."""
    from asana_assets.definitions import defs
    from asana_assets.defs.automation.jobs import SYNC

    graph = defs.resolve_asset_graph()
    selected = SYNC.resolve(graph) | SYNC.resolve_checks(graph)
    partitions = dg.StaticPartitionsDefinition(["default"])
    order = graph.toposorted_asset_keys
    steps = []
    for node in graph.assets_defs:
        keys = [key for key in order if key in node.keys and key in selected]  # yielded upstream first
        checks = [key for key in node.check_keys if key in selected]
        if not node.is_executable or not (keys or checks):
            continue
        # The real graph's dependencies, so the steps run in the real plan's order.
        check_specs = [dg.AssetCheckSpec(check.name, asset=check.asset_key, additional_deps=[
            parent for parent in graph.get(check).parent_entity_keys if parent != check.asset_key]) for check in checks]
        results = _results(keys, checks)
        if keys:
            steps.append(dg.multi_asset(name=node.node_def.name, partitions_def=partitions, check_specs=check_specs, specs=[
                dg.AssetSpec(key, partitions_def=partitions, deps=graph.get(key).parent_keys & selected)
                for key in keys])(results))
        else:
            steps.append(dg.multi_asset_check(name=node.node_def.name, specs=check_specs)(results))
    hollow = dg.Definitions(assets=[s for s in steps if isinstance(s, dg.AssetsDefinition)],
                            asset_checks=[s for s in steps if not isinstance(s, dg.AssetsDefinition)],
                            jobs=[dg.define_asset_job("hollow_sync", partitions_def=partitions)],
                            executor=dg.in_process_executor)
    return hollow.resolve_job_def("hollow_sync")


def run_hollow() -> None:
    """In a process of its own: import the code location (as a sync does), run its hollow twin,
    print the events it recorded."""
    import pandas  # noqa: F401 - what every run of the project imports
    import pyarrow  # noqa: F401

    job = hollow_job()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance, partition_key="default",  # quiet, as the command is
                                        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
        print(len(instance.all_logs(result.run_id)))


def rename_one_task(base_url: str) -> None:
    """Rename the first task of the first project, as a user would in Asana."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {DEMO_TOKEN}"}) as api:
        workspace = api.get("/workspaces").json()["data"][0]["gid"]
        project = api.get("/projects", params={"workspace": workspace, "limit": 1}).json()["data"][0]["gid"]
        task = api.get("/tasks", params={"project": project, "limit": 1}).json()["data"][0]["gid"]
        api.put(f"/tasks/{task}", json={"data": {"name": "Renamed for the small-run benchmark"}}).raise_for_status()


def run_record(env: dict) -> tuple[float, float, int, list[tuple[str, float]]]:
    """The latest run's first and last event times (epoch), its events recorded and its steps'
    durations, slowest first, from the instance itself (opened with ``env``, then restored)."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with dg.DagsterInstance.get() as instance:
            run = instance.get_run_records(limit=1)[0].dagster_run
            events = instance.all_logs(run.run_id)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    steps = [(step, end - start) for step, (start, end) in step_spans(events).items()]
    return events[0].timestamp, events[-1].timestamp, len(events), sorted(steps, key=lambda s: -s[1])


def measure(kind: str, tasks: int) -> None:
    """The small run on a ``kind`` instance, beside Dagster's floor there; prints and records both."""
    proc, base_url = start_simulator(tasks, LATENCY_MS, QUOTA, None)
    try:
        with instance_home(kind) as (home, instance_env):
            env = {**os.environ, **instance_env, "DAGSTER_HOME": home, "ASANA_ACCESS_TOKEN": DEMO_TOKEN,
                   "ASANA_BASE_URL": base_url, "ASANA_WAREHOUSE_DIR": str(Path(home) / "warehouse"),
                   "ASANA_REQUESTS_PER_MINUTE": str(QUOTA)}
            for name in ("ASANA_POSTGRES_URL", "ASANA_QUOTA_STORE", "ASANA_CONNECTION_ID", "ASANA_DEMO"):
                env.pop(name, None)
            _, _, full_wall, full_cpu = timed_sync(env, "full")
            rename_one_task(base_url)
            done, started_at, wall, cpu = timed_sync(env, "incremental")
            if CHANGED not in done.stderr:
                raise SystemExit(f"the incremental sync did not read the one change:\n{done.stderr[-2000:]}")
            first, last, events, steps = run_record(env)
            hollow, _, hollow_wall, hollow_cpu = timed([sys.executable, __file__, "--hollow"], env)
    finally:
        proc.terminate()
        proc.wait()
    print(f"instance: {kind}; {tasks} tasks (seed {SEED}), {LATENCY_MS} ms a request, {QUOTA} requests a minute")
    print(f"  full sync first         {full_wall:6.2f} s wall, {full_cpu:5.2f} CPU-s")
    print(f"  incremental, 1 changed  {wall:6.2f} s wall, {cpu:5.2f} CPU-s (start to exit)")
    print(f"    before the run        {first - started_at:6.2f} s  (Python, imports, the instance)")
    print(f"    the run               {last - first:6.2f} s  ({events} events recorded, {len(steps)} steps)")
    print(f"    after the run         {started_at + wall - last:6.2f} s  (summary, exit)")
    for step, seconds in steps[:5]:
        print(f"      {step:42s} {seconds:5.2f} s")
    print(f"  Dagster's floor         {hollow_wall:6.2f} s wall, {hollow_cpu:5.2f} CPU-s (the job's hollow twin: "
          f"{hollow.stdout.split()[-1]} events recorded, nothing computed)")
    record("small_run", **{f"{kind}_wall_seconds": wall, f"{kind}_cpu_seconds": cpu,
                            f"{kind}_floor_wall_seconds": hollow_wall, f"{kind}_floor_cpu_seconds": hollow_cpu})


def main() -> None:
    """Measure on each instance asked for (both by default), or be the floor's own process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2_000)
    parser.add_argument("--instance", choices=["sqlite", "postgres"], action="append")
    parser.add_argument("--hollow", action="store_true", help=argparse.SUPPRESS)  # the floor's own process
    args = parser.parse_args()
    if args.hollow:
        run_hollow()
        return
    for kind in args.instance or ["sqlite", "postgres"]:
        measure(kind, args.tasks)


if __name__ == "__main__":
    main()
