"""Full-sync benchmark against the simulator, run in its own process (two cores: one each).

Run (a): 20,000 tasks, 30 ms a request, quota out of the way: the 50-GET concurrency cap binds,
so the floor is requests x latency / 50.
Run (b): 2,000 tasks at the paid plan's 1,500 requests a minute: the quota binds, so the floor
is requests / quota.
Run (c): run (b) under a cost limit too, of 20,000 objects a minute where the crawl's answers hold
about 73,000: the cost binds (Asana publishes no figure; this one makes the crawl need about
1.6 times the quota's floor). Its floor is the time the limit takes to refill what the crawl
costs beyond the first minute's balance; the client learns the limit from its 429s.
Run (process): run (b) as a user meets it, `asana-connections sync` from start to exit.

Each run prints the requests made, requests per task against the minimum the API allows,
429s received, wall time, and wall time over the floor.

    python benchmarks/full_sync.py            # both runs
    python benchmarks/full_sync.py --run a    # one of them (a, b, c or process)
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from targets import record

from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.client import run as run_async
from asana_assets.lib.asana.crawl import crawl
from asana_assets.simulator import DEMO_TOKEN, generate_world

CONCURRENCY_CAP = 50
RUNS = {
    "a": {"tasks": 20_000, "latency_ms": 30, "quota": 1_000_000},
    "b": {"tasks": 2_000, "latency_ms": 30, "quota": 1_500},
    "c": {"tasks": 2_000, "latency_ms": 30, "quota": 1_500, "cost": 20_000},
}
SEED = 7


def pages(n: int) -> int:
    """Requests to list n items at 100 a page (an empty list still costs one)."""
    return max(1, math.ceil(n / 100))


def minimum_requests(seed: int, tasks: int) -> tuple[int, int]:
    """The fewest GETs that read every table, and the number of tasks, from ground truth.

    One page per 100 items of each listing, and one task count per project (what tickets_synced
    compares the rows with); stories need one listing per task and subtasks one per task that
    has any (num_subtasks tells leaves apart for free).
    """
    truth = generate_world(seed=seed, tasks=tasks).ground_truth()
    per_parent = Counter(t["parent"]["gid"] for t in truth["tasks"] if t.get("parent"))
    per_project = Counter(m["project"]["gid"] for t in truth["tasks"] for m in t.get("memberships") or [])
    per_team = Counter(m["team"]["gid"] for m in truth["team_memberships"])
    per_task_stories = Counter(s["target"]["gid"] for s in truth["stories"])
    sections = Counter(s["project"]["gid"] for s in truth["sections"])
    project_members = Counter(m["parent"]["gid"] for m in truth["project_memberships"])
    projects = [p["gid"] for p in truth["projects"]]
    total = (
        1  # workspaces
        + pages(len(truth["workspace_memberships"]))
        + pages(len(truth["users"]))  # their avatars, from the users listing
        + pages(len(truth["teams"]))
        + sum(pages(per_team[t["gid"]]) for t in truth["teams"])
        + pages(len(truth["tags"]))
        + pages(len(projects))
        + sum(pages(sections[p]) + pages(project_members[p]) + pages(per_project[p]) + 1 for p in projects)
        + sum(pages(n) for n in per_parent.values())
        + sum(pages(per_task_stories[t["gid"]]) for t in truth["tasks"])
    )
    return total, len(truth["tasks"])


def start_simulator(tasks: int, latency_ms: int, quota: int, cost: int | None,
                    project_tasks: int | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "asana_assets.simulator", "--port", "0", "--seed", str(SEED),
            "--tasks", str(tasks), "--latency-ms", str(latency_ms),
            "--requests-per-minute", str(quota), "--token", DEMO_TOKEN,
            *(["--cost-per-minute", str(cost)] if cost else []),
            *(["--project-tasks", str(project_tasks)] if project_tasks else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:
        match = re.search(r"(http://\S+/api/1\.0)", line)
        if match:
            return proc, match.group(1)
    raise RuntimeError("the simulator exited before serving")


async def sync_once(base_url: str, quota: int):
    async with AsanaClient(
        base_url, DEMO_TOKEN, max_concurrency=CONCURRENCY_CAP, requests_per_minute=quota
    ) as client:
        started, cpu = time.perf_counter(), time.process_time()
        result = await crawl(client)
        result.client_stats["cpu_seconds"] = time.process_time() - cpu
        return time.perf_counter() - started, result


def run(name: str) -> None:
    cfg = RUNS[name]
    minimum, n_tasks = minimum_requests(SEED, cfg["tasks"])
    proc, base_url = start_simulator(cfg["tasks"], cfg["latency_ms"], cfg["quota"], cfg.get("cost"))
    try:
        wall, result = run_async(sync_once(base_url, cfg["quota"]))
        served = httpx.get(base_url.replace("/api/1.0", "/_simulator/stats")).json()
    finally:
        proc.terminate()
        proc.wait()
    stats = result.client_stats
    requests = stats["requests"]
    if cfg["quota"] >= 1_000_000:
        floor, binding = requests * cfg["latency_ms"] / 1000 / CONCURRENCY_CAP, "concurrency cap"
    else:
        floor, binding = requests / (cfg["quota"] / 60), "quota"
    if cfg.get("cost"):
        cost_floor = max(0, served["cost"] - cfg["cost"]) / (cfg["cost"] / 60)
        if cost_floor > floor:
            floor, binding = cost_floor, f"cost ({served['cost']} objects at {cfg['cost']} a minute)"
    synced = result.tables["tasks"].num_rows
    print(f"run ({name}): {n_tasks} tasks, {cfg['latency_ms']} ms latency, binding limit: {binding}")
    print(f"  tasks synced           {synced} (stories {result.tables['stories'].num_rows})")
    print(f"  requests made          {requests} (minimum {minimum})")
    print(f"  requests per task      {requests / n_tasks:.3f} (minimum {minimum / n_tasks:.3f}, "
          f"ratio {requests / minimum:.3f})")
    print(f"  429s received          {stats.get('rate_limited', 0)} (by cause: {served['rate_limited_by'] or 'none'}; "
          f"{stats.get('cost_cuts', 0)} cut the learned cost pace)")
    print(f"  client CPU             {stats['cpu_seconds']:.2f} s ({stats['cpu_seconds'] / requests * 1e3:.3f} ms a request)")
    print(f"  wall time              {wall:.2f} s")
    print(f"  floor                  {floor:.2f} s")
    print(f"  wall / floor           {wall / floor:.3f}")
    figures = {
        "a": {"requests_ratio": requests / minimum},
        "b": {"quota_wall_ratio": wall / floor},
        "c": {"cost_wall_ratio": wall / floor, "cost_rate_limited": stats.get("rate_limited", 0)},
    }
    record("full_sync", **figures[name])


def run_process() -> None:
    """Run (b) as a user meets it: `asana-connections sync` from its start to its exit, a process
    of its own on a fresh Dagster instance and warehouse (the token's shared budget in the
    warehouse's folder, as by default), no events sensor running. Everything after the crawl
    (derived tables, monitors, evidence, checks, publication) is inside the figure."""
    cfg = RUNS["b"]
    proc, base_url = start_simulator(cfg["tasks"], cfg["latency_ms"], cfg["quota"], None)
    try:
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "DAGSTER_HOME": home, "ASANA_ACCESS_TOKEN": DEMO_TOKEN, "ASANA_BASE_URL": base_url,
                   "ASANA_WAREHOUSE_DIR": str(Path(home) / "warehouse"), "ASANA_REQUESTS_PER_MINUTE": str(cfg["quota"])}
            for name in ("ASANA_POSTGRES_URL", "ASANA_QUOTA_STORE", "ASANA_CONNECTION_ID", "ASANA_DEMO"):
                env.pop(name, None)
            cli = Path(sys.executable).with_name("asana-connections")
            started = time.perf_counter()
            done = subprocess.run([str(cli), "sync", "default"], env=env, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - started
        served = httpx.get(base_url.replace("/api/1.0", "/_simulator/stats")).json()
    finally:
        proc.terminate()
        proc.wait()
    if done.returncode:
        raise SystemExit(f"asana-connections sync failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    floor = served["total"] / (cfg["quota"] / 60)
    print(f"run (b) as a process: asana-connections sync, {cfg['tasks']} tasks, {cfg['quota']} requests a minute, "
          "no sensor")
    print(f"  requests served        {served['total']} (429s: {served['by_status'].get('429', 0)})")
    print(f"  wall time, start to exit {wall:.2f} s")
    print(f"  quota floor            {floor:.2f} s")
    print(f"  wall / floor           {wall / floor:.3f}")
    record("full_sync", process_wall_ratio=wall / floor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", choices=[*sorted(RUNS), "process"], action="append")
    for name in parser.parse_args().run or [*sorted(RUNS), "process"]:
        run_process() if name == "process" else run(name)


if __name__ == "__main__":
    main()
