"""Scale benchmark: a 100,000-task organisation through the jobs users run.

One simulator (in this process: 30 ms a request, quota out of the way) serves three runs of the
code location's jobs, each run in a process of its own as `asana-connections sync` runs them
(the in-process executor):

1. ``full sync``: ``asana_full_sync`` from an empty warehouse: the crawl, the derived tables,
   the monitors and their evidence pack, and the publication (Parquet, and Postgres unless
   ``--no-postgres``);
2. ``incremental, 1% changed``: ``asana_incremental_sync`` after 1% of the tasks were renamed,
   completed, commented on or moved;
3. ``reconcile, 1% changed unseen``: ``asana_reconcile_sync`` (the daily run) after another 1%
   changed with their events lost (edits, completions, comments, moves, deletions, new tasks);
   the tokens are the earlier runs' (minutes old, as the events sensor keeps them);
4. ``derived layer alone``: ``asana_full_sync`` restricted to the compliance tables (and the
   checks on them): tables, monitors, evidence pack, publication, from the published raw tables.

Each run prints the requests the simulator served; the derived layer's time (its steps: derived
tables, monitors and evidence pack, the Parquet publication included) without the Postgres
publication, and the Postgres publication's own time and slowest tables; and per step the
requests the crawl counted, the wall time from the step's start to its end events, and the peak
memory: the run process's peak resident set size, read from ``VmHWM`` in ``/proc/self/status``
and reset (``/proc/self/clear_refs``) every 10 ms by a thread, each interval's peak attributed
to the steps it overlaps. Check steps are summed in one row. A run with a crawl prints what it
did after it, as its own record shows it: from the crawl step's end to the run's end (derived
tables, monitors, evidence pack, every check, the publication, and Dagster's steps between). At
100,000 tasks it records, for ``targets.py``, that figure and the peak memory of the full sync
(run 1), and the derived layer's time (run 4).

    python benchmarks/scale.py                   # 100,000 tasks: 4 to 8 minutes on two cores
    python benchmarks/scale.py --tasks 10000 --no-postgres
    python benchmarks/scale.py --tasks 300000 --full-only  # the full sync alone, at 300,000 tasks
    python benchmarks/scale.py --home /tmp/bench                    # keeps the warehouse, then:
    python benchmarks/scale.py --home /tmp/bench --derived-only     # run 4 alone, again, in seconds

``--derived-only`` runs the derived layer alone over the raw tables a previous run left in
``--home`` (no world, no simulator: the derived layer sends no request); each such run adds a
``monitor_results`` part, as a daily run does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import pyarrow.parquet as pq
from incremental_sync import change  # sibling scripts: benchmarks/ is on sys.path
from reconcile import change as change_unseen
from targets import record

from asana_assets.lib.storage.postgres import ident, libpq_url
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
QUOTA = 1_000_000
SEED = 3
SAMPLE_SECONDS = 0.01
RUNS = {  # label -> (job, derived tables only)
    "full sync": ("asana_full_sync", False),
    "incremental, 1% changed": ("asana_incremental_sync", False),
    "reconcile, 1% changed unseen": ("asana_reconcile_sync", False),
    "derived layer alone": ("asana_full_sync", True),
}


class PeakSampler(threading.Thread):
    """Every SAMPLE_SECONDS: (time, peak resident MB since the previous sample)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stopped = threading.Event()

    @staticmethod
    def peak_mb() -> float:
        status = Path("/proc/self/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from the current RSS
        return kb / 1024

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            self.samples.append((time.time(), self.peak_mb()))

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.samples.append((time.time(), self.peak_mb()))

    def peak_between(self, start: float, end: float) -> float:
        """The peak over the intervals that overlap [start, end]."""
        previous, peak = 0.0, 0.0
        for at, mb in self.samples:
            if at >= start and previous <= end:
                peak = max(peak, mb)
            previous = at
        return peak


def run_job(label: str) -> dict:
    """In the run's own process: execute the job as `asana-connections sync` does, then report
    its steps."""
    import dagster as dg

    from asana_assets.definitions import defs
    from asana_assets.defs.partitions import DEFAULT, register
    from asana_assets.defs.tables import table_key
    from asana_assets.lib.schema import DERIVED_TABLES

    job_name, derived_only = RUNS[label]
    sampler = PeakSampler()
    sampler.start()
    with dg.DagsterInstance.get() as instance:
        register(instance, [DEFAULT])
        started = time.time()
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, partition_key=DEFAULT, raise_on_error=False,
            asset_selection=[table_key(t) for t in DERIVED_TABLES] if derived_only else None,
        )
        wall = time.time() - started
        sampler.stop()
        requests: dict[str, int] = {}
        postgres: dict[str, dict] = {}
        publication = 0.0
        failures = []
        entries = instance.all_logs(result.run_id)
        ended = None
        for entry in entries:
            event = entry.dagster_event
            if event is not None and event.event_type in (dg.DagsterEventType.RUN_SUCCESS,
                                                          dg.DagsterEventType.RUN_FAILURE):
                ended = entry.timestamp
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_FAILURE":
                error, messages = event.step_failure_data.error, []
                while error is not None:
                    messages.append(error.message.strip())
                    error = error.cause
                failures.append(f"{event.step_key}: {' <- '.join(messages)[:2000]}")
            if event.event_type_value == "ASSET_MATERIALIZATION":
                metadata = event.event_specific_data.materialization.metadata
                if "sync_requests" in metadata:
                    requests[event.step_key] = metadata["sync_requests"].value
                if "postgres_loads" in metadata:
                    postgres = metadata["postgres_loads"].value
                if "postgres_seconds" in metadata:
                    publication = metadata["postgres_seconds"].value
    spans = step_spans(entries)
    steps = [
        {"step": step, "seconds": end - start, "peak_mb": sampler.peak_between(start, end),
         "requests": requests.get(step)}
        for step, (start, end) in spans.items()
    ]
    (crawl,), _ = asset_steps()
    after_crawl = ended - spans[crawl][1] if crawl in spans and ended is not None else None
    return {"success": result.success, "failures": failures, "wall": wall, "steps": steps, "postgres": postgres,
            "publication": publication, "after_crawl": after_crawl,
            "run_peak_mb": max(mb for _, mb in sampler.samples)}


def step_spans(entries) -> dict[str, tuple[float, float]]:
    """Each step's start and end (epoch seconds) in a run's log entries."""
    spans: dict[str, list[float]] = {}
    for entry in entries:
        event = entry.dagster_event
        if event is not None and event.step_key and event.event_type_value in ("STEP_START", "STEP_SUCCESS",
                                                                                "STEP_FAILURE"):
            spans.setdefault(event.step_key, []).append(entry.timestamp)
    return {step: (min(times), max(times)) for step, times in spans.items()}


def asset_steps() -> tuple[set[str], set[str]]:
    """The step keys of the assets (the others are checks): the crawl's, the derived layer's."""
    from asana_assets.defs.compliance.assets import compliance_assets
    from asana_assets.defs.raw.assets import asana_raw_sync

    return {asana_raw_sync.node_def.name}, {definition.node_def.name for definition in compliance_assets}


def derived_seconds(report: dict) -> float:
    """The derived layer's time (derived tables, monitors, evidence pack, the Parquet publication):
    its steps run one after the other; the Postgres publication (of every table the run wrote)
    happens inside the last of them, and is left out."""
    _, derived = asset_steps()
    return sum(s["seconds"] for s in report["steps"] if s["step"] in derived) - report["publication"]


def print_run(label: str, tasks: int, requests: int, report: dict) -> None:
    crawl, derived = asset_steps()
    assets = crawl | derived
    status = "" if report["success"] else "  (FAILED)"
    print(f"\n{label}: {tasks:,} tasks, {requests:,} requests, {report['wall']:.1f} s, "
          f"run peak {report['run_peak_mb']:,.0f} MB{status}")
    for failure in report["failures"]:
        print(f"  {failure}")
    if report["after_crawl"] is not None:
        print(f"  after the crawl, as the run's record shows it (from the crawl step's end to the run's): "
              f"{report['after_crawl']:.1f} s")
    if any(s["step"] in derived for s in report["steps"]):
        published = f"{report['publication']:.1f} s" if report["postgres"] else "none (--no-postgres)"
        print(f"  derived tables + monitors + evidence pack: {derived_seconds(report):.1f} s without the "
              f"Postgres publication; the Postgres publication: {published}")
    if loads := report["postgres"]:
        slowest = sorted(loads.items(), key=lambda item: -item[1]["seconds"])[:4]
        print(f"  Postgres publication's loads, inside the last step: {sum(s['seconds'] for s in loads.values()):.1f} s; "
              + ", ".join(f"{table} {s['seconds']:.1f} s ({s['staged']:,} rows, {s['inserted']:,} inserted, "
                          f"{s['updated']:,} updated)" for table, s in slowest))
    print(f"  {'step':34} {'requests':>9} {'seconds':>8} {'peak MB':>8}")
    checks = [s for s in report["steps"] if s["step"] not in assets]
    for step in (s for s in report["steps"] if s["step"] in assets):
        made = "" if step["requests"] is None else f"{step['requests']:,}"
        print(f"  {step['step']:34} {made:>9} {step['seconds']:>8.1f} {step['peak_mb']:>8,.0f}")
    if checks:
        print(f"  {f'checks ({len(checks)} steps)':34} {'':>9} {sum(s['seconds'] for s in checks):>8.1f} "
              f"{max(s['peak_mb'] for s in checks):>8,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of the tasks changed before run 2")
    parser.add_argument("--latency-ms", type=int, default=30)
    parser.add_argument("--postgres", default=os.environ.get("ASANA_TEST_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument("--no-postgres", action="store_true", help="publish to Parquet only")
    parser.add_argument("--home", help="keep the Dagster home and the warehouse in this new folder (default: a temporary one)")
    parser.add_argument("--derived-only", action="store_true",
                        help="only the derived layer, over the warehouse a previous run left in --home")
    parser.add_argument("--full-only", action="store_true", help="only run 1, the full sync")
    parser.add_argument("--run-job", choices=sorted(RUNS), help=argparse.SUPPRESS)  # a run's own process
    args = parser.parse_args()
    if args.run_job:
        print(json.dumps(run_job(args.run_job)))
        return
    if args.derived_only:
        if not args.home or not (Path(args.home) / "warehouse").is_dir():
            parser.error("--derived-only needs --home, with the warehouse of a previous run")
        derived_only(args)
        return

    started = time.perf_counter()
    world = generate_world(seed=SEED, tasks=args.tasks)
    print(f"world: {args.tasks:,} tasks generated in {time.perf_counter() - started:.0f} s")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    config = SimulatorConfig(requests_per_minute=QUOTA, latency_ms=args.latency_ms)
    with (contextlib.nullcontext(args.home) if args.home else tempfile.TemporaryDirectory()) as home, \
            Simulator(world, config) as sim:
        Path(home).mkdir(parents=True, exist_ok=True)
        env = job_env(args, home, schema, sim.base_url)
        Path(home, "dagster.yaml").touch()  # the default instance, without a warning that it has no file
        try:
            for label in ["full sync"] if args.full_only else RUNS:
                if label.startswith("incremental"):
                    print(f"changed {change(world, args.changed)} tasks")
                if label.startswith("reconcile"):
                    print(f"changed {change_unseen(world, args.changed)} tasks, their events lost")
                sim.stats.reset()
                report = run_child(label, env)
                print_run(label, args.tasks, sim.stats.snapshot()["total"], report)
                record_targets(label, args.tasks, report)
        finally:
            drop_schema(args, schema)


def job_env(args, home: str, schema: str, base_url: str) -> dict[str, str]:
    """The run processes' environment: the home, the warehouse, the source and the publication."""
    env = {**os.environ, "DAGSTER_HOME": home, "ASANA_BASE_URL": base_url, "ASANA_ACCESS_TOKEN": DEMO_TOKEN,
           "ASANA_WAREHOUSE_DIR": str(Path(home) / "warehouse"), "ASANA_REQUESTS_PER_MINUTE": str(QUOTA)}
    if not args.no_postgres:
        env |= {"ASANA_POSTGRES_URL": args.postgres, "ASANA_POSTGRES_SCHEMA": schema}
    return env


def run_child(label: str, env: dict[str, str]) -> dict:
    """One run, in a process of its own; its report."""
    child = subprocess.run([sys.executable, __file__, "--run-job", label], env=env, check=False,
                           capture_output=True, text=True)
    if child.returncode:
        sys.exit(f"{label}: the run's process failed:\n{child.stderr[-4000:]}")
    return json.loads(child.stdout.splitlines()[-1])


def derived_only(args) -> tuple[int, dict]:
    """Run 4 alone over the warehouse in ``--home``; its tasks and its report. The Postgres
    publication goes to a new schema (dropped after), so it loads the derived tables into empty
    ones."""
    label, schema = "derived layer alone", f"bench_{uuid.uuid4().hex[:8]}"
    tasks = pq.read_metadata(Path(args.home) / "warehouse" / "asana" / "tasks.parquet").num_rows
    try:
        report = run_child(label, job_env(args, args.home, schema, "http://127.0.0.1:9/api/1.0"))
        print_run(label, tasks, 0, report)
        record_targets(label, tasks, report)
    finally:
        drop_schema(args, schema)
    return tasks, report


def record_targets(label: str, tasks: int, report: dict) -> None:
    """The figures the targets name (at 100,000 tasks, of a run that succeeded): the derived layer's
    time, from the run of it alone; the full sync's time after its crawl, and its peak memory, at
    300,000 tasks too."""
    if not report["success"]:
        return
    if label == "full sync" and tasks == 300_000:
        record("scale", full_peak_gb_300k=round(report["run_peak_mb"] / 1024, 2))
    if tasks != 100_000:
        return
    if label == "derived layer alone":
        record("scale", derived_seconds=round(derived_seconds(report), 2))
    elif label == "full sync":
        record("scale", full_peak_gb=round(report["run_peak_mb"] / 1024, 2),
               after_crawl_seconds=round(report["after_crawl"], 2))


def drop_schema(args, schema: str) -> None:
    if not args.no_postgres:
        with adbc.connect(libpq_url(args.postgres)) as connection, connection.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")
            connection.commit()


if __name__ == "__main__":
    main()
