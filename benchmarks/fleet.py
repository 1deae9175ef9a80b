"""A fleet on one machine: many connections, each its own token, on the production-style instance over a compressed day.

What runs is what a deployment runs: `dagster-daemon` (the connections sensor, the events
sensor, the schedules, the queued run coordinator of dagster.yaml: 4 runs at once, one a
connection) and `dagster-webserver`, both reaching the code location's own server
(workspace.code-server.yaml; --code-server daemon: workspace.yaml, where each starts its own), on
an instance stored in Postgres, the tables mirrored into the same Postgres, the tokens' shared
budgets there too. The simulator serves one workspace per
connection, each reached with its own service-account key under Asana's 1,500 requests a minute
and 30 ms a request.

1. **Setup.** --connections workspaces of --min-tasks to --max-tasks tasks (spread evenly on a
   log scale) are stored as connections; the connections sensor finds them and launches their
   first full syncs, which the benchmark waits for.
2. **Quiet.** --quiet-minutes with nothing changing: what the deployment costs by the minute
   (the daemon's ticks, the sensors' polls, the webserver, Postgres).
3. **The day**, --hours hours of --hour-seconds each. Every hour a tenth of the connections see
   an edit (a task renamed), which the events sensor must find and sync; each connection's daily
   reconcile is submitted at its hour (through the webserver, to the same queue the schedule
   feeds: the schedule itself keeps the wall clock's hours, which a compressed day has not).
   Then the queue is left to drain.

CPU is the machine's (/proc/stat: every process, Postgres included) less this process's own
(the simulator and the benchmark) and less the machine's idle load, measured before anything
starts. A connection-day is the day's runs once (they happen in the compressed day as they would
in a real one) plus the quiet minutes' rate over 24 real hours, so the by-the-minute cost is not
compressed away. The wait from an edit to its finding is from the edit to the end of the first
run of its connection that started after it and read its project (an incremental run naming the
project, or the reconcile): the run that put it in the tables and evaluated the monitors on it.
Every edit is then looked up in the connection's Postgres tables.

    python benchmarks/fleet.py [--connections 200] [--min-tasks 200] [--max-tasks 5000] [--hours 24]
                               [--hour-seconds 60] [--quiet-minutes 3]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import httpx
import psycopg2
from cryptography.fernet import Fernet
from small_run import POSTGRES, instance_home
from targets import record

from asana_assets.lib.connections.store import TokenStore
from asana_assets.lib.connections.validation import connect_service_account
from asana_assets.simulator import Simulator, SimulatorConfig, generate_world

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SEED = 11
QUOTA = 1_500
LATENCY_MS = 30
DAY_SECONDS = 24 * 3600
FULL, RECONCILE, INCREMENTAL = "asana_full_sync", "asana_reconcile_sync", "asana_incremental_sync"
PARTITION = "dagster/partition"
BUSY = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def sizes(connections: int, least: int, most: int) -> list[int]:
    """Task budgets from ``least`` to ``most``, evenly spread on a log scale."""
    if connections == 1:
        return [least]
    return [round(least * (most / least) ** (n / (connections - 1))) for n in range(connections)]


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent since boot (every process, the kernel's work included)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds of this process (the simulator's threads included) and of the children it waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Meter:
    """The fleet's CPU: the machine's, less this process's and the machine's idle rate."""

    def __init__(self, idle_rate: float) -> None:
        self.idle_rate = idle_rate
        self.start()

    def start(self) -> None:
        self.at, self.machine, self.own = time.monotonic(), busy_seconds(), own_seconds()

    def read(self) -> tuple[float, float]:
        """(wall seconds, fleet CPU seconds) since start."""
        wall = time.monotonic() - self.at
        return wall, busy_seconds() - self.machine - (own_seconds() - self.own) - self.idle_rate * wall


def processes() -> dict[int, tuple[int, str, float]]:
    """Every live process: pid -> (parent pid, command line, CPU seconds so far)."""
    found, tick = {}, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
        found[int(entry.name)] = (int(fields[1]), command, (int(fields[11]) + int(fields[12])) / tick)
    return found


def breakdown(before: dict, after: dict, roots: dict[int, str]) -> Counter:
    """CPU seconds between two snapshots by part of the deployment: each root's tree (the daemon,
    the webserver, each with its code server), the run workers, Postgres, the rest."""
    parts: Counter = Counter()
    for pid, (parent, command, cpu) in after.items():
        spent = cpu - before.get(pid, (0, "", 0.0))[2]
        if "execute_run" in command:
            part = "run workers"
        elif command.startswith("postgres"):
            part = "postgres"
        else:
            part, up = "the rest of the machine", pid
            while up in after and up not in roots:
                up = after[up][0]
            part = roots.get(up, part)
        parts[part] += spent
    return parts


def start(command: list[str], env: dict[str, str], logs) -> subprocess.Popen:
    """A process of the deployment, in a process group of its own (so nothing it starts outlives the benchmark)."""
    return subprocess.Popen([str(BIN / command[0]), *command[1:]], env=env, cwd=ROOT, stdout=logs, stderr=logs,
                            start_new_session=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def runs(instance: dg.DagsterInstance) -> list[dg.RunRecord]:
    return list(instance.get_run_records(filters=dg.RunsFilter(job_name=None), limit=100_000))


def wait_for(condition, what: str, limit: float, every: float = 5.0, give_up: bool = True) -> float:
    """Seconds until ``condition()`` holds; when ``limit`` passes first, stops the benchmark (or,
    with ``give_up`` false, returns)."""
    begun = time.monotonic()
    while not condition():
        if time.monotonic() - begun > limit:
            if not give_up:
                return time.monotonic() - begun
            raise SystemExit(f"gave up after {limit:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - begun


def first_syncs_done(instance: dg.DagsterInstance, keys: set[str]) -> bool:
    """Every connection's first full sync succeeded; a failed one stops the benchmark."""
    records = [r for r in runs(instance) if r.dagster_run.job_name == FULL]
    failed = [r.dagster_run.tags.get(PARTITION) for r in records if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
    if failed:
        raise SystemExit(f"a first full sync failed: {failed} (asana-connections runs --log <run id>)")
    done = {r.dagster_run.tags.get(PARTITION) for r in records if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS}
    return keys <= done


def queue_empty(instance: dg.DagsterInstance) -> bool:
    return not instance.get_run_records(filters=dg.RunsFilter(statuses=BUSY), limit=1)


def editable_tasks(world, workspace: str) -> list[tuple[str, str, set[str]]]:
    """(gid, name, projects) of a workspace's open top-level tasks in a project none of which is
    archived. The events sensor polls no archived project: an edit there waits for the
    connection's next daily reconcile (docs/operations.md), a day a compressed one cannot show."""
    with world.lock:
        tasks = [o for o in world.objects.values() if o.resource_type == "task" and o.workspace == workspace]
        return [(t.gid, t.name, projects) for t in tasks
                if not t.parent and not t.completed and (projects := {project for project, _section in t.memberships})
                and not any(world.objects[project].archived for project in projects)]


def covers(record: dg.RunRecord, project_set: set[str]) -> bool:
    """Whether a run read these projects' changes: the reconcile and the full sync read them all."""
    run = record.dagster_run
    if run.job_name != INCREMENTAL:
        return True
    config = run.run_config.get("ops", {}).get("asana_raw_sync", {}).get("config", {})
    return bool(project_set & set(config.get("projects") or []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--min-tasks", type=int, default=200)
    parser.add_argument("--max-tasks", type=int, default=5_000)
    parser.add_argument("--hours", type=int, default=24, help="hours of the compressed day")
    parser.add_argument("--hour-seconds", type=float, default=60.0, help="real seconds a compressed hour lasts")
    parser.add_argument("--quiet-minutes", type=float, default=3.0)
    parser.add_argument("--code-server", choices=("standalone", "daemon"), default="standalone",
                        help="the code location served by a server of its own, as a deployment runs it, or started by "
                             "the daemon and the webserver from workspace.yaml (the daemon restarts it every minute)")
    parser.add_argument("--setup-minutes", type=float, default=240.0, help="the most the first full syncs may take")
    parser.add_argument("--drain-minutes", type=float, default=30.0, help="the most the queue may take to drain")
    args = parser.parse_args()

    budgets = sizes(args.connections, args.min_tasks, args.max_tasks)
    world = generate_world(seed=SEED, sizes=budgets)
    keys = {f"fleet-key-{n}": None for n in range(args.connections)}  # each its token, all the admin's
    config = SimulatorConfig(tokens=keys, requests_per_minute=QUOTA, latency_ms=LATENCY_MS)
    rng = random.Random(SEED)
    folder = Path(tempfile.mkdtemp(prefix="fleet-benchmark-"))
    logs = open(folder / "logs.txt", "a")  # noqa: SIM115 - the children's output, kept to the end
    print(f"{args.connections} connections of {min(budgets):,} to {max(budgets):,} tasks "
          f"({sum(budgets):,} in all), each its own token at {QUOTA} requests a minute; "
          f"a day of {args.hours} hours of {args.hour_seconds:g} s")

    idle_begun, idle_machine = time.monotonic(), busy_seconds()
    time.sleep(15)
    idle_rate = (busy_seconds() - idle_machine) / (time.monotonic() - idle_begun)
    print(f"  the machine's idle load: {idle_rate:.3f} CPU-s a second (left out of every figure)")

    with instance_home("postgres", "fleet") as (home, dagster_env), Simulator(world, config) as sim:
        database = dagster_env["DAGSTER_PG_DB"]
        url = f"postgresql://{POSTGRES['user']}:{POSTGRES['password']}@{POSTGRES['host']}:{POSTGRES['port']}/{database}"
        fleet_keys = Fernet.generate_key().decode()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ASANA_", "DAGSTER_"))} | dagster_env | {
            "DAGSTER_HOME": home, "ASANA_WAREHOUSE_DIR": str(folder / "warehouse"), "ASANA_POSTGRES_URL": url,
            "ASANA_CONNECTION_STORE": str(folder / "connections.json"), "ASANA_CONNECTION_KEYS": fleet_keys,
            "ASANA_REQUESTS_PER_MINUTE": str(QUOTA),
        }
        os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER_")})
        store = TokenStore.at(env["ASANA_CONNECTION_STORE"], keys=fleet_keys)
        # The schedules keep the wall clock's hours: every sync hour is set half a day away, so no
        # scheduled reconcile falls in the benchmark; the benchmark submits them at compressed hours.
        away = (time.gmtime().tm_hour + 12) % 24
        connections = {}  # partition key -> (workspace gid, index)
        for n, (key, workspace) in enumerate(zip(keys, world.workspaces, strict=True)):
            connection = connect_service_account(sim.base_url, key, store, workspace)
            store.update(connection.id, full_sync_hour=away)
            connections[connection.id] = (workspace, n)

        port = free_port()
        meter = Meter(idle_rate)
        deployment = []
        workspace = "workspace.yaml"  # the daemon and the webserver each start the code location's server
        if args.code_server == "standalone":  # as a deployment serves it: a server of its own
            code_port = free_port()
            workspace = "workspace.code-server.yaml"
            env |= {"DAGSTER_CODE_SERVER_HOST": "127.0.0.1", "DAGSTER_CODE_SERVER_PORT": str(code_port)}
            deployment.append(start(["dagster", "code-server", "start", "-m", "asana_assets.definitions",
                                     "-h", "127.0.0.1", "-p", str(code_port)], env, logs))
        web = start(["dagster-webserver", "-w", workspace, "-h", "127.0.0.1", "-p", str(port)], env, logs)
        daemon = start(["dagster-daemon", "run", "-w", workspace], env, logs)
        deployment = [daemon, web, *deployment]
        roots = {daemon.pid: "daemon", web.pid: "webserver", os.getpid(): "the simulator and this benchmark"}
        roots |= {process.pid: "code server" for process in deployment[2:]}
        try:
            with dg.DagsterInstance.get() as instance:
                setup = wait_for(lambda: first_syncs_done(instance, set(connections)), "the first full syncs",
                                 args.setup_minutes * 60)
                cpu = meter.read()[1]
                print(f"  setup: first full syncs of all {len(connections)} in {setup:.0f} s, "
                      f"{cpu:.0f} CPU-s ({cpu / len(connections):.1f} a connection)")
                wait_for(lambda: queue_empty(instance), "the queue to drain after the setup", 600)
                wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).status_code == 200,
                         "the webserver", 300)

                meter.start()
                before = processes()
                time.sleep(args.quiet_minutes * 60)
                parts = breakdown(before, processes(), roots)
                quiet_wall, quiet_cpu = meter.read()
                quiet_rate = quiet_cpu / quiet_wall
                print(f"  quiet: {quiet_rate:.3f} CPU-s a second for the fleet "
                      f"({quiet_rate * DAY_SECONDS / len(connections):.0f} CPU-s a connection-day): "
                      + ", ".join(f"{part} {spent / quiet_wall:.3f}" for part, spent in parts.most_common()))

                edits, submitted = day(args, world, connections, port, rng, meter)
                # Done when every edit is in its connection's tables and no run is left; an edit
                # still missing at the limit is reported as such.
                drained = wait_for(lambda: queue_empty(instance) and not missing(url, edits), "", args.drain_minutes * 60,
                                   give_up=False)
                day_wall, day_cpu = meter.read()
                ended = time.time()
                records = runs(instance)
        finally:
            for process in deployment:
                process.terminate()
            for process in deployment:
                try:
                    process.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    pass
                with contextlib.suppress(ProcessLookupError):  # what it started and left behind
                    os.killpg(process.pid, signal.SIGKILL)
        statuses = dict(sim.stats.by_status)
        tokens = list(keys)
        by_token = {tokens[n]: connection for connection, (_workspace, n) in connections.items()}
        causes = dict(sim.stats.limited)  # every 429 by cause (the refusals kept are the latest 1,000)
        refusals = [(at, cause, by_token.get(token, "?")) for at, cause, token in sim.stats.refusals]
        lost = missing(url, edits)

    report(args, connections, edits, submitted, records, lost, statuses, causes, refusals,
           quiet_rate=quiet_rate, day_wall=day_wall, day_cpu=day_cpu, drained=drained, ended=ended, folder=folder)
    shutil.rmtree(folder / "warehouse", ignore_errors=True)


def day(args, world, connections: dict, port: int, rng: random.Random, meter: Meter) -> tuple[list[dict], int]:
    """The compressed day: each hour a tenth of the connections edited, and the reconciles of that hour."""
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    by_index = {n: (key, workspace) for key, (workspace, n) in connections.items()}
    edited_per_hour = max(1, math.ceil(len(connections) / 10))
    edits, submitted = [], 0
    meter.start()
    begun = time.monotonic()
    for hour in range(args.hours):
        for n in rng.sample(sorted(by_index), edited_per_hour):
            key, workspace = by_index[n]
            gid, name, projects = rng.choice(editable_tasks(world, workspace))
            marker = f"{name} [fleet edit {hour}.{n}]"
            with world.lock:
                world.update_task(gid, name=marker, actor=world.default_user)
            edits.append({"key": key, "gid": gid, "name": marker, "projects": projects, "at": time.time()})
        for n in range(hour, len(connections), args.hours):  # each connection's reconcile at its hour
            key, _workspace = by_index[n]
            client.submit_job_execution(RECONCILE, tags={PARTITION: key})
            submitted += 1
        time.sleep(max(0.0, begun + (hour + 1) * args.hour_seconds - time.monotonic()))
    return edits, submitted


def missing(url: str, edits: list[dict]) -> list[tuple[str, str]]:
    """(connection, task gid) of every edited task whose latest name is not in the connection's
    Postgres tables."""
    latest = {(edit["key"], edit["gid"]): edit["name"] for edit in edits}  # in order: the later name wins
    found = {}
    with psycopg2.connect(url) as db, db.cursor() as cursor:
        for key in {key for key, _gid in latest}:
            cursor.execute(f'SELECT gid, name FROM "asana_{key}".tasks WHERE name LIKE %s', ("%[fleet edit %",))
            found.update({(key, gid): name for gid, name in cursor.fetchall()})
    return [task for task, name in latest.items() if found.get(task) != name]


def report(args, connections, edits, submitted, records, lost, statuses, causes, refusals, *, quiet_rate, day_wall, day_cpu,
           drained, ended, folder) -> None:
    count = len(connections)
    day_runs = [r for r in records if r.dagster_run.job_name in (INCREMENTAL, RECONCILE)]
    by_job = Counter((r.dagster_run.job_name, r.dagster_run.status.value) for r in records)
    drain = (f"every edit synced and the queue empty {drained:.0f} s after its last hour"
             if drained <= args.drain_minutes * 60 else f"the drain stopped at its limit, {drained:.0f} s after its last hour")
    print(f"  the day: {day_wall:.0f} s ({drain}), {day_cpu:.0f} CPU-s; {len(edits)} edits, {submitted} reconciles submitted")
    for (job, status), n in sorted(by_job.items()):
        took = [r.end_time - r.start_time for r in records if r.dagster_run.job_name == job
                and r.dagster_run.status.value == status and r.start_time and r.end_time]
        mean = f", {sum(took) / len(took):.1f} s each on average" if took else ""
        print(f"    {job:<24} {status:<9} {n:>4}{mean}")

    waits = []
    for edit in edits:
        ends = [r.end_time for r in day_runs if r.dagster_run.tags.get(PARTITION) == edit["key"]
                and r.dagster_run.status == dg.DagsterRunStatus.SUCCESS and r.start_time and r.start_time >= edit["at"]
                and covers(r, edit["projects"])]
        waits.append(min(ends) - edit["at"] if ends else None)
    synced = sorted(w for w in waits if w is not None)
    # An edit no run synced has waited at least until the measurement ended: the longest wait
    # counts it so, and is then a lower bound.
    unsynced = [ended - edit["at"] for edit, wait in zip(edits, waits, strict=True) if wait is None]
    longest = max(synced + unsynced, default=float("nan"))
    if edits:
        median = f"median {synced[len(synced) // 2]:.0f} s, " if synced else ""
        bound = "more than " if unsynced and longest == max(unsynced) else ""
        print(f"  edit to its finding: {median}longest {bound}{longest:.0f} s "
              f"({len(synced)} of {len(edits)} edits synced by a run that started after them)")
    for edit, wait in zip(edits, waits, strict=True):  # each unsynced edit beside its connection's later runs
        if wait is None:
            later = [f"{r.dagster_run.job_name} {r.dagster_run.status.value} ({r.start_time - edit['at']:.0f} s after)"
                     for r in day_runs if r.dagster_run.tags.get(PARTITION) == edit["key"] and r.start_time
                     and r.start_time >= edit["at"]]
            print(f"    unsynced: {edit['key']} task {edit['gid']} in {len(edit['projects'])} project(s), edited at "
                  f"{time.strftime('%H:%M:%S', time.gmtime(edit['at']))}; its later runs: {', '.join(later) or 'none'}")
    print(f"  edited tasks whose latest name is missing from the tables at the end: {len(lost)}")

    per_connection_day = (day_cpu - quiet_rate * day_wall + quiet_rate * DAY_SECONDS) / count
    rate_limited = statuses.get(429, 0)
    print(f"  CPU per connection-day: {per_connection_day:.1f} CPU-s (the day's runs, and the quiet rate over 24 h); "
          f"one core carries about {DAY_SECONDS / per_connection_day:,.0f} connections")
    print(f"  requests: {sum(statuses.values()):,}; 429s: {rate_limited}"
          + "".join(f", {n} for {cause}" for cause, n in Counter(causes).most_common()))
    for at, cause, key in refusals:  # each 429 beside the runs of its connection then in progress
        running = [f"{r.dagster_run.job_name} ({at - r.start_time:.0f} s in)" for r in records
                   if r.dagster_run.tags.get(PARTITION) == key and r.start_time and r.start_time <= at
                   and (r.end_time or math.inf) >= at]
        print(f"    {time.strftime('%H:%M:%S', time.gmtime(at))} {cause} on {key}: {', '.join(running) or 'no run'}")
    print(f"  (the processes' logs: {folder / 'logs.txt'})")
    record("fleet", connections=count, cpu_seconds_per_connection_day=round(per_connection_day, 2),
           connections_per_core=round(DAY_SECONDS / per_connection_day), longest_wait_seconds=round(longest, 1),
           edits_unsynced=len(unsynced), edits_missing=len(lost), rate_limited=rate_limited)


if __name__ == "__main__":
    main()
