"""Reconcile against full sync: requests after 1% of a workspace's tasks changed unseen.

The simulator runs in this process (the world is changed between the syncs, with its events
feed off, as if every event were lost). Prints the requests of a full sync and of the reconcile
a day later, with the events sensor running (it keeps the tokens of the projects it polls young,
so their feeds are not read again) and without it, their ratio against the target and the
reconcile's requests by route. The generator makes one
project per 100 tasks, the target's shape (100,000 tasks in 1,000 projects: ``--tasks 100000``,
a few minutes).

    python benchmarks/reconcile.py [--tasks 20000] [--changed 0.01]
"""

from __future__ import annotations

import argparse
import copy
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from targets import record

from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.client import run as run_async
from asana_assets.lib.asana.crawl import crawl
from asana_assets.lib.asana.incremental import record_full_sync
from asana_assets.lib.asana.reconcile import reconcile_sync
from asana_assets.lib.asana.state import SyncState
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world

QUOTA = 1_000_000
TARGET = 0.03  # of the full sync's requests, after 1% of the tasks changed


def change(world, share: float, seed: int = 3) -> int:
    """Edit, complete, comment on, move (between sections or projects), delete or add beside a
    share of the tasks, with the events feed off."""
    rng = random.Random(seed)
    truth = world.ground_truth()
    tasks = [t for t in truth["tasks"] if t["memberships"]]
    sections: dict[str, list[str]] = {}
    for s in truth["sections"]:
        sections.setdefault(s["project"]["gid"], []).append(s["gid"])
    projects = sorted(sections)
    picked = rng.sample(tasks, int(len(truth["tasks"]) * share))
    actor = world.default_user
    with world.events_lost():
        for i, task in enumerate(picked):
            gid, project = task["gid"], task["memberships"][0]["project"]["gid"]
            match i % 7:
                case 0:
                    world.update_task(gid, name=f"{task['name']} (edited)", actor=actor)
                case 1 if not task["completed"]:
                    world.complete_task(gid, actor=actor)
                case 2:
                    world.add_comment(gid, "Checked", actor=actor)
                case 3:
                    world.move_task_to_section(gid, rng.choice(sections[project]), actor=actor)
                case 4:
                    world.remove_task_from_project(gid, project, actor=actor)
                    world.add_task_to_project(gid, rng.choice(projects), actor=actor)
                case 5:
                    world.delete_task(gid, actor=actor)
                case _:
                    world.create_task("Added beside it", project=project, actor=actor)
    return len(picked)


# The two days a reconcile may follow. With the events sensor running (the daemon), a project it
# polls has a token renewed within about two hours (quiet ones are polled at least every 64 to
# 130 minutes); an archived one is not polled, so its token is the last reconcile's, a day old.
# Without it (syncs from the command line only), every token is the last reconcile's.
DAYS = {
    "with the events sensor": lambda archived: timedelta(hours=23.9 if archived else 2),
    "without the sensor": lambda archived: timedelta(hours=23.9),
}


def day_later(state: SyncState, age) -> SyncState:
    """A copy of ``state`` as a day later: each project's token taken ``age(gid)`` before now."""
    aged = copy.deepcopy(state)
    now = datetime.now(UTC)
    for gid, entry in aged.tokens.items():
        entry["taken_at"] = (now - age(gid)).isoformat()
    return aged


def counted(base_url: str, sim: Simulator, work):
    async def run():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
            return await work(client)

    sim.stats.reset()
    start = time.perf_counter()
    result = run_async(run())
    return result, time.perf_counter() - start, Counter(sim.stats.by_route)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--changed", type=float, default=0.01)
    args = parser.parse_args()
    world = generate_world(seed=7, tasks=args.tasks)
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        first, full_s, full_routes = counted(sim.base_url, sim, lambda client: crawl(client, track_events=True))
        state = SyncState()
        record_full_sync(state, first)
        changed = change(world, args.changed)
        archived = set(state.archived)
        runs = {}
        for day, age in DAYS.items():
            aged = day_later(state, lambda gid, age=age: age(gid in archived))
            runs[day] = counted(sim.base_url, sim, lambda client, aged=aged: reconcile_sync(client, aged, first.tables))
    full = full_routes.total()
    projects = len(first.tables["projects"])
    print(f"workspace: {args.tasks} tasks, {projects} projects ({args.tasks / projects:.0f} tasks a project, "
          f"{len(archived)} archived); changed {changed} tasks unseen")
    print(f"  full sync   {full:7d} requests  {full_s:6.2f} s")
    ratios = {day: routes.total() / full for day, (_, _, routes) in runs.items()}
    record("reconcile", ratio_with_sensor=ratios["with the events sensor"],
           ratio_without_sensor=ratios["without the sensor"])
    for day, (_, seconds, routes) in runs.items():
        ratio = ratios[day]
        print(f"  reconcile   {routes.total():7d} requests  {seconds:6.2f} s  ratio {ratio:.3f} "
              f"(target {TARGET:.3f}: {'met' if ratio <= TARGET else 'not met'})  {day}")
    for day, (_, _, routes) in runs.items():
        print(f"  reconcile by route, {day}:")
        for route, count in routes.most_common():
            print(f"    {count:6d}  {route}")


if __name__ == "__main__":
    main()
