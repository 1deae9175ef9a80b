"""One quota per token: a day of one connection compressed into minutes, every process sharing the token.

A simulated organisation of 1,000 projects on the paid plan's 1,500 requests a minute (the
simulator enforces it, and 50 reads in flight, with 30 ms a request). Over --minutes:

- the events sensor ticks every --tick seconds in a process of its own, as the daemon's does
  (`asana_events_sensor` through dagster's build_sensor_context);
- the runs it requests (incremental syncs of the changed projects) and the connection's daily
  reconcile (a quarter of the way through; `--daily full` for the weekly full crawl instead) run
  one at a time, as dagster.yaml queues them, each in a process of its own (the raw tables'
  asset, through dagster's materialize);
- the day's --changes (renames, comments, moves, completions) happen at an even pace.

Every process is configured by the settings, as in production: ASANA_QUOTA_STORE (a folder, or
the Postgres of --postgres) holds the token's shared budget; ASANA_SENSOR_QUOTA_SHARE the sensor's
share. The warehouse starts from a full sync made beforehand through an unlimited simulator over
the same organisation. Prints the requests of each process, the most requests in any 60 s, the
429s, and the requests per change.

    python benchmarks/quota.py [--minutes 8] [--projects 1000] [--daily reconcile|full] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from targets import record

from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World, generate_world

SECRET = "quota-benchmark"  # one signing secret: the setup's sync tokens stay valid in the day's simulator
SETUP_QUOTA = 10**7
SEED = 7


# -- the organisation and its day -------------------------------------------------------------


def build_world(projects: int, tasks: int) -> World:
    """A generated organisation, topped up to ``projects`` projects with a task each."""
    world = generate_world(seed=SEED, tasks=tasks)
    truth = world.ground_truth()
    workspace, team = truth["workspaces"][0]["gid"], truth["teams"][0]["gid"]
    world.record_events = False  # as the generator does: nothing has taken a sync token yet
    for n in range(projects - len(truth["projects"])):
        project = world.add_project(workspace, f"Service {n}", team=team, owner=world.default_user)
        todo = world.add_section(project, "To Do")
        world.add_section(project, "Done")
        world.create_task(f"Runbook review {n}", project=project, section=todo, actor=world.default_user)
    world.record_events = True
    return world


def change_steadily(world: World, changes: int, seconds: float, stop: threading.Event, made: Counter) -> None:
    """``changes`` edits spread evenly over ``seconds``: a rename, a comment, a move, a completion."""
    rng = random.Random(SEED)
    truth = world.ground_truth()
    tasks = [t for t in truth["tasks"] if t["memberships"] and not t["parent"] and not t["completed"]]
    sections: dict[str, list[str]] = {}
    for section in truth["sections"]:
        sections.setdefault(section["project"]["gid"], []).append(section["gid"])
    actor = world.default_user
    for n in range(changes):
        if stop.wait(seconds / changes):
            return
        task = tasks[rng.randrange(len(tasks))]
        match n % 4:
            case 0:
                world.update_task(task["gid"], name=f"{task['name']} (edited {n})", actor=actor)
            case 1:
                world.add_comment(task["gid"], f"Checked ({n})", actor=actor)
            case 2:
                project = task["memberships"][0]["project"]["gid"]
                world.move_task_to_section(task["gid"], rng.choice(sections[project]), actor=actor)
            case _:
                world.complete_task(task["gid"], actor=actor)
                tasks.remove(task)
        made["changes"] += 1


def busiest_minute(times: list[float]) -> int:
    """The most requests within any 60 s."""
    times, most, first = sorted(times), 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 60:
            first += 1
        most = max(most, last - first + 1)
    return most


# -- the processes ----------------------------------------------------------------------------


def count_requests() -> Counter:
    """The requests (and 429s) every client of this process has answered from now on, as they go."""
    from asana_assets.lib.asana.client import AsanaClient

    totals: Counter = Counter()
    send = AsanaClient._send

    async def counted(self: AsanaClient, *args):
        response = await send(self, *args)
        totals["requests"] += 1
        totals["429"] += response.status_code == 429
        return response

    AsanaClient._send = counted
    return totals


def sensor_process(seconds: float, tick: float) -> None:
    """Tick the events sensor as the daemon does (the next tick `tick` seconds after the last one
    started), one JSON line a tick; stops after ``seconds``, whatever its polls still do."""
    import dagster as dg

    from asana_assets.defs.automation.sensors import asana_events_sensor
    from asana_assets.defs.partitions import DEFAULT, register
    from asana_assets.defs.resources.configured import configured_resources

    totals = count_requests()
    resources = {k: v for k, v in configured_resources().items() if k in ("asana", "warehouse")}
    instance = dg.DagsterInstance.ephemeral()
    register(instance, [DEFAULT])
    cursor, started, ticks = None, time.monotonic(), 0
    while (begun := time.monotonic()) - started < seconds:
        result = asana_events_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))
        cursor = getattr(result, "cursor", None) or cursor
        runs = [{"run_key": r.run_key, "run_config": r.run_config} for r in getattr(result, "run_requests", None) or []]
        skip = getattr(result, "skip_reason", None) or (result if isinstance(result, dg.SkipReason) else None)
        ticks += 1
        print(json.dumps({"tick": ticks, "seconds": round(time.monotonic() - begun, 1), "runs": runs,
                          "skip": getattr(skip, "skip_message", skip), **totals}, default=str), flush=True)
        time.sleep(max(0.0, min(begun + tick, started + seconds) - time.monotonic()))
    print(json.dumps({"final": True, **totals}), flush=True)
    os._exit(0)  # a poll still going on past its tick's budget is abandoned, as the daemon's would be


def run_process(run_config: dict) -> None:
    """One run of the raw tables' asset for the default connection; one JSON line."""
    import dagster as dg

    from asana_assets.defs.partitions import DEFAULT, register
    from asana_assets.defs.raw.assets import asana_raw_sync
    from asana_assets.defs.resources.configured import configured_resources

    totals = count_requests()
    resources = {k: v for k, v in configured_resources().items() if k in ("asana", "warehouse")}
    instance = dg.DagsterInstance.ephemeral()
    register(instance, [DEFAULT])
    begun = time.monotonic()
    result = dg.materialize([asana_raw_sync], instance=instance, partition_key=DEFAULT, resources=resources,
                            run_config=run_config, raise_on_error=False)
    print(json.dumps({"success": result.success, "seconds": round(time.monotonic() - begun, 1), **totals}), flush=True)


# -- the day ----------------------------------------------------------------------------------


class Day:
    """The processes of one connection's day: the sensor, and the runs, one at a time."""

    def __init__(self, env: dict[str, str], folder: Path, seconds: float, tick: float, daily: str, daily_at: float) -> None:
        self.env, self.folder, self.seconds, self.tick = env, folder, seconds, tick
        self.daily, self.daily_at = daily, daily_at
        self.queue: list[tuple[str, dict]] = []  # (kind, run_config)
        self.keys: set[str] = set()  # run keys already requested: the daemon launches each once
        self.sensor: dict = {}
        self.ticks: list[dict] = []
        self.runs: list[dict] = []
        self._lock = threading.Lock()

    def child(self, *args: str) -> subprocess.Popen:
        """A process of the day; its logs go to the day's folder (logs.txt)."""
        with open(self.folder / "logs.txt", "a") as logs:
            return subprocess.Popen([sys.executable, __file__, *args], env=self.env, cwd=self.folder,
                                    stdout=subprocess.PIPE, stderr=logs, text=True)

    def _follow_sensor(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            report = json.loads(line)
            with self._lock:
                self.sensor = report
                if report.get("final"):
                    continue
                self.ticks.append(report)
                for run in report["runs"]:
                    if run["run_key"] not in self.keys:
                        self.keys.add(run["run_key"])
                        self.queue.append(("incremental", run["run_config"]))

    def live(self) -> None:
        started = time.monotonic()
        sensor = self.child("--role", "sensor", "--seconds", str(self.seconds), "--tick", str(self.tick))
        follower = threading.Thread(target=self._follow_sensor, args=(sensor,), daemon=True)
        follower.start()
        running: tuple[str, subprocess.Popen, float] | None = None
        daily_queued = False
        while (now := time.monotonic() - started) < self.seconds:
            with self._lock:
                if not daily_queued and now >= self.daily_at:
                    self.queue.append((self.daily, {"ops": {"asana_raw_sync": {"config": {"mode": self.daily}}}}))
                    daily_queued = True
                if running is None and self.queue:
                    kind, config = self.queue.pop(0)
                    running = (kind, self.child("--role", "run", "--config", json.dumps(config)), now)
            if running is not None and running[1].poll() is not None:
                kind, process, began = running
                report = json.loads(process.stdout.read().strip().splitlines()[-1])
                self.runs.append({"kind": kind, "began": round(began), **report})
                running = None
            time.sleep(0.5)
        if running is not None:  # the day is over: a run still going is stopped, its requests unknown
            kind, process, began = running
            process.terminate()
            process.wait()
            self.runs.append({"kind": kind, "began": round(began), "success": None, "requests": None})
        sensor.wait(timeout=120)
        follower.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="length of the compressed day")
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=500, help="tasks of the generated part of the organisation")
    parser.add_argument("--changes", type=int, default=240, help="edits over the day")
    parser.add_argument("--quota", type=int, default=1500, help="requests a minute of the token")
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--tick", type=float, default=60.0, help="seconds between two ticks of the sensor")
    parser.add_argument("--sensor-share", type=float, default=0.1)
    parser.add_argument("--daily", choices=("reconcile", "full"), default="reconcile",
                        help="the day's big run: the daily reconcile, or the weekly full crawl")
    parser.add_argument("--postgres", help="keep the shared budget in this Postgres (default: a folder)")
    parser.add_argument("--role", choices=("sensor", "run"), help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "sensor":
        return sensor_process(args.seconds, args.tick)
    if args.role == "run":
        return run_process(json.loads(args.config))

    world = build_world(args.projects, args.tasks)
    folder = Path(tempfile.mkdtemp(prefix="quota-benchmark-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASANA_", "DAGSTER_"))} | {
        "ASANA_ACCESS_TOKEN": DEMO_TOKEN, "ASANA_WAREHOUSE_DIR": str(folder / "warehouse"),
        "ASANA_QUOTA_STORE": args.postgres or str(folder / "quota"), "ASANA_SENSOR_QUOTA_SHARE": str(args.sensor_share),
        "DAGSTER_HOME": str(folder),
    }
    seconds = args.minutes * 60
    day = Day(env, folder, seconds, args.tick, args.daily, daily_at=seconds / 4)
    print(f"{args.projects} projects, {len(world.ground_truth()['tasks'])} tasks; a day in {args.minutes:g} min "
          f"at {args.quota} requests a minute, the sensor's share {args.sensor_share:.0%}")

    with Simulator(world, SimulatorConfig(requests_per_minute=SETUP_QUOTA, secret=SECRET)) as setup:
        day.env |= {"ASANA_BASE_URL": setup.base_url, "ASANA_REQUESTS_PER_MINUTE": str(SETUP_QUOTA)}
        process = day.child("--role", "run", "--config", json.dumps({"ops": {"asana_raw_sync": {"config": {}}}}))
        first = json.loads(process.communicate()[0].strip().splitlines()[-1])
    if not first["success"]:
        raise SystemExit("the first full sync failed")
    print(f"  warehouse set up by a full sync: {first['requests']} requests (an unlimited simulator)")

    config = SimulatorConfig(requests_per_minute=args.quota, latency_ms=args.latency_ms, secret=SECRET)
    with Simulator(world, config) as sim:
        answered: list[float] = []
        log_request = sim.stats.record

        def logged(route: str, status: int | None) -> None:  # the simulator's request log
            answered.append(time.monotonic())
            log_request(route, status)

        sim.stats.record = logged
        day.env |= {"ASANA_BASE_URL": sim.base_url, "ASANA_REQUESTS_PER_MINUTE": str(args.quota)}
        stop, made = threading.Event(), Counter()
        changer = threading.Thread(target=change_steadily, args=(world, args.changes, seconds, stop, made))
        changer.start()
        try:
            day.live()
        finally:
            stop.set()
            changer.join()
        by_status = dict(sim.stats.by_status)

    total = sum(by_status.values())
    runs = [r for r in day.runs if r["requests"] is not None]
    print(f"  sensor                 {day.sensor.get('requests', 0)} requests in {len(day.ticks)} ticks "
          f"({sum(bool(t['runs']) for t in day.ticks)} asked for runs; skips: "
          f"{dict(Counter(str(t['skip']).split(': ', 1)[-1] for t in day.ticks if t['skip']))})")
    for run in day.runs:
        requests = "stopped at the end of the day" if run["requests"] is None else f"{run['requests']} requests"
        print(f"  {run['kind']:<11} run at {run['began']:>4} s  {requests}"
              + (f" in {run['seconds']} s, {'succeeded' if run['success'] else 'FAILED'}" if run["requests"] is not None else ""))
    print(f"  all processes          {total} requests ({by_status})")
    print(f"  busiest 60 s           {busiest_minute(answered)} requests (quota {args.quota})")
    print(f"  429s                   {by_status.get(429, 0)}")
    record("quota", rate_limited=by_status.get(429, 0), busiest_minute=busiest_minute(answered))
    changes = made["changes"]
    incremental = sum(r["requests"] for r in runs if r["kind"] == "incremental")
    print(f"  changes                {changes}; synced by {sum(r['kind'] == 'incremental' for r in runs)} incremental run(s)")
    if any(r["kind"] == "incremental" for r in runs):
        print(f"  requests per change    {(day.sensor.get('requests', 0) + incremental) / changes:.1f} "
              f"(sensor and incremental runs); {total / changes:.1f} (everything, the {args.daily} run included)")
    else:
        print("  requests per change    none: no incremental run synced a change")
    print(f"  (the processes' logs: {folder / 'logs.txt'})")


if __name__ == "__main__":
    main()
