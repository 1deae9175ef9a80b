"""Incremental against full sync: 1% of a 20,000-task workspace changes between two syncs.

The simulator runs in this process (the world must be changed between the syncs) with 30 ms of
latency a request. Prints requests and wall time of the full sync and of the incremental one.

    python benchmarks/incremental_sync.py [--tasks 20000] [--changed 0.01]
"""

from __future__ import annotations

import argparse
import random
import time

from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.client import run as run_async
from asana_assets.lib.asana.crawl import crawl
from asana_assets.lib.asana.incremental import incremental_sync, record_full_sync
from asana_assets.lib.asana.state import SyncState
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world

QUOTA = 1_000_000


def change(world, share: float, seed: int = 3) -> int:
    """Rename, complete, comment on or move a share of the tasks."""
    rng = random.Random(seed)
    truth = world.ground_truth()
    tasks = [t for t in truth["tasks"] if t["memberships"]]
    sections = {}
    for s in truth["sections"]:
        sections.setdefault(s["project"]["gid"], []).append(s["gid"])
    picked = rng.sample(tasks, int(len(truth["tasks"]) * share))
    actor = world.default_user
    for i, task in enumerate(picked):
        gid = task["gid"]
        match i % 4:
            case 0:
                world.update_task(gid, name=f"{task['name']} (edited)", actor=actor)
            case 1 if not task["completed"]:
                world.complete_task(gid, actor=actor)
            case 2:
                world.add_comment(gid, "Checked", actor=actor)
            case _:
                project = task["memberships"][0]["project"]["gid"]
                world.move_task_to_section(gid, rng.choice(sections[project]), actor=actor)
    return len(picked)


def timed(base_url: str, work):
    async def run():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
            start = time.perf_counter()
            result = await work(client)
            return result, time.perf_counter() - start, client.stats.requests

    return run_async(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--changed", type=float, default=0.01)
    args = parser.parse_args()
    world = generate_world(seed=7, tasks=args.tasks)
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA, latency_ms=30)) as sim:
        first, full_s, full_requests = timed(sim.base_url, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, first)
        changed = change(world, args.changed)
        _, inc_s, inc_requests = timed(sim.base_url, lambda client: incremental_sync(client, state, first.tables))
    print(f"workspace: {args.tasks} tasks, {len(first.tables['projects'])} projects; changed {changed} tasks")
    print(f"  full sync         {full_requests:6d} requests  {full_s:6.2f} s")
    print(f"  incremental sync  {inc_requests:6d} requests  {inc_s:6.2f} s")
    print(f"  ratio             {inc_requests / full_requests:6.3f}           {inc_s / full_s:6.3f}")


if __name__ == "__main__":
    main()
