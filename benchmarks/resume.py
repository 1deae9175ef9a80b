"""Resume benchmark: a full crawl killed (SIGKILL) at about half its requests, then rerun.

A 20,000-task world at 30 ms a request, the quota out of the way (as full_sync.py's run (a)):

1. a whole crawl, uninterrupted, with its checkpoint in a folder of its own: the full crawl's
   requests;
2. the same crawl in a process of its own, with a checkpoint in a fresh folder, killed with
   SIGKILL once the simulator has answered half the full crawl's requests;
3. the rerun, in this process, resuming from that checkpoint.

It prints the rerun's requests as a share of the full crawl's (the target: at most 55%), the
projects it took from the checkpoint whole and the parts of the others' reads, and whether its
tables equal the uninterrupted crawl's.

``--project-tasks 5000`` makes the projects that large (four of them), so the kill falls in the
middle of one and the rerun resumes it from the parts of its read (a few pages of its task listing
each) rather than from whole projects; its figure is recorded apart from the target's.

    python benchmarks/resume.py [--tasks 20000] [--latency-ms 30] [--project-tasks 5000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from full_sync import CONCURRENCY_CAP, start_simulator
from targets import record

from asana_assets.lib.asana.checkpoint import Checkpoint
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.client import run as run_async
from asana_assets.lib.asana.crawl import crawl
from asana_assets.lib.schema import RAW_TABLES, primary_key
from asana_assets.simulator import DEMO_TOKEN

QUOTA = 1_000_000
POLL_SECONDS = 0.02  # how often the simulator's count is read while the crawl to kill runs
RUN_TIMES = {"projects": ["synced_at", "tasks_counted_at"], "quarantine": ["observed_at"]}


def crawl_with_checkpoint(base_url: str, root: Path):
    async def go():
        async with AsanaClient(base_url, DEMO_TOKEN, max_concurrency=CONCURRENCY_CAP,
                               requests_per_minute=QUOTA) as client:
            return await crawl(client, track_events=True, checkpoint=Checkpoint(root))

    return run_async(go())


def served(stats: httpx.Client) -> int:
    return stats.get("/_simulator/stats").json()["total"]


def same_tables(a, b) -> bool:
    """Row for row, in any order, the times the crawls ran aside."""
    def rows(table, result):
        data = result.tables[table].drop_columns(RUN_TIMES.get(table, []))
        key = list(primary_key(table)) or data.column_names
        return data.sort_by([(column, "ascending") for column in key])

    return all(rows(t, a).equals(rows(t, b)) for t in RAW_TABLES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=int, default=30)
    parser.add_argument("--project-tasks", type=int, default=None, help="about this many tasks a project")
    parser.add_argument("--crawl", nargs=2, metavar=("BASE_URL", "ROOT"), help=argparse.SUPPRESS)  # step 2's process
    args = parser.parse_args()
    if args.crawl:
        crawl_with_checkpoint(args.crawl[0], Path(args.crawl[1]))
        return
    proc, base_url = start_simulator(args.tasks, args.latency_ms, QUOTA, None, args.project_tasks)
    try:
        with (tempfile.TemporaryDirectory() as whole_root, tempfile.TemporaryDirectory() as killed_root,
              httpx.Client(base_url=base_url.removesuffix("/api/1.0")) as stats):
            started = time.perf_counter()
            whole = crawl_with_checkpoint(base_url, Path(whole_root))
            whole_wall = time.perf_counter() - started
            full = whole.client_stats["requests"]

            before = served(stats)
            child = subprocess.Popen([sys.executable, __file__, "--crawl", base_url, killed_root])
            while served(stats) - before < full / 2 and child.poll() is None:
                time.sleep(POLL_SECONDS)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            at_kill = served(stats) - before

            started = time.perf_counter()
            resumed = crawl_with_checkpoint(base_url, Path(killed_root))
            rerun_wall = time.perf_counter() - started
            equal = same_tables(resumed, whole)
    finally:
        proc.terminate()
        proc.wait()
    rerun = resumed.client_stats["requests"]
    share = rerun / full
    projects = whole.tables["projects"].num_rows
    print(f"resume: {args.tasks} tasks, {projects} projects, {args.latency_ms} ms latency, quota out of the way")
    shape = "" if args.project_tasks is None else "_large_projects"
    print(f"  full crawl             {full} requests in {whole_wall:.1f} s")
    print(f"  killed (SIGKILL) after {at_kill} requests answered ({at_kill / full:.1%} of the full crawl's)")
    print(f"  rerun                  {rerun} requests in {rerun_wall:.1f} s, {len(resumed.resumed)} of {projects} "
          f"projects from the checkpoint, whole or in {resumed.resumed_parts} part(s)")
    print(f"  rerun / full crawl     {share:.3f} (target 0.55)")
    print(f"  tables equal the uninterrupted crawl's: {'yes' if equal else 'NO'}")
    if not equal:
        raise SystemExit("the resumed crawl's tables differ from the uninterrupted crawl's")
    record("resume" + shape, rerun_share=share, killed_at_share=at_kill / full)


if __name__ == "__main__":
    main()
