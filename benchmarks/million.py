"""A million tasks: the derived layer, the monitors and the evidence pack over raw tables
synthesised from a crawled organisation.

The crawl is measured elsewhere (full_sync.py, scale.py); here the raw tables of a seed
organisation are tiled into one organisation --copies times its size, vectorised, straight into
a warehouse, and the derived layer runs alone over them as scale.py's run 4 does (a process of
its own, `asana_full_sync` restricted to the compliance tables and their checks, peak memory
sampled every 10 ms).

The seed is the warehouse of a full sync, through the simulator, of a --seed-tasks world (made
here, Parquet only), or the one a `scale.py --home DIR` left (--seed-home DIR). Each copy keeps
the seed's shape: its projects, users, teams, tasks, stories, memberships and audit events get
gids of their own (a two-digit prefix per copy, so a gid stays digits and no two copies share
one, and an email of its own); the workspace is the seed's, so the copies form one organisation.
People keep their names, so a name is shared by as many users as there are copies, and texts
(ticket titles) keep the seed's emails: the offboarding monitor no longer finds a leaver's ticket
by the name or email in its title (by assignee or people field still), so its work is not quite
the seed's scaled up.

    python benchmarks/million.py                                   # 20,000 x 50: 1,000,000 tasks
    python benchmarks/million.py --seed-home /tmp/bench --copies 10  # a scale.py home of 100,000 tasks
    python benchmarks/million.py --copies 5                         # 100,000 tasks, to compare with scale.py
    python benchmarks/million.py --home /tmp/million                # keeps the tables; again: the derived layer alone

At a million tasks the derived layer's process peaks at about 11 GB: the machine needs 16 GB.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scale import SEED, derived_only, job_env, run_child
from scale import derived_seconds as derived_layer_seconds
from targets import record

from asana_assets.lib.schema import RAW_TABLES
from asana_assets.lib.storage.warehouse import Warehouse
from asana_assets.simulator import Simulator, SimulatorConfig, generate_world

TILED = (*RAW_TABLES, "audit_log_events")  # what the derived layer reads, the audit log's events included
SHARED = "workspace_gid"  # the one organisation every copy belongs to
FIRST_PREFIX = 10  # copies are prefixed 10, 11, ...: two digits each
SCHEMA = "asana"


def gid_columns(table: str, schema: pa.Schema) -> list[str]:
    """The columns of gids (or lists of them) a copy renames: all but the workspace's."""
    return [field.name for field in schema
            if (field.name == "gid" and table != "workspaces")
            or (field.name.endswith("_gid") and field.name != SHARED) or field.name.endswith("_gids")]


def renamed(column: pa.ChunkedArray, prefix: str) -> pa.Array:
    """Every gid of ``column`` (strings, or lists of strings) with ``prefix`` before it; nulls stay."""
    values = column.combine_chunks()
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        inner = pc.binary_join_element_wise(prefix, values.values, "")
        return type(values).from_arrays(values.offsets, inner, mask=values.is_null())
    return pc.binary_join_element_wise(prefix, values, "")


def tiled(table: str, data: pa.Table, copies: int) -> pa.Table:
    """``copies`` copies of a seed table, each with gids of its own; the workspaces table once."""
    if table == "workspaces":
        return data
    columns = gid_columns(table, data.schema)
    parts = []
    for copy in range(copies):
        prefix = str(FIRST_PREFIX + copy)
        part = data
        for name in columns:
            part = part.set_column(part.schema.get_field_index(name), name, renamed(data[name], prefix))
        if "email" in data.column_names:  # a user is found by email too: each copy's people are their own
            email = data["email"]
            own = pc.if_else(pc.equal(email, ""), email, renamed(email, f"{prefix}."))
            part = part.set_column(part.schema.get_field_index("email"), "email", own)
        parts.append(part)
    return pa.concat_tables(parts)


def seed_warehouse(tasks: int, home: Path) -> Path:
    """A full sync of a ``tasks`` world through the simulator into ``home``'s warehouse."""
    world = generate_world(seed=SEED, tasks=tasks)
    args = SimpleNamespace(no_postgres=True, postgres=None)
    home.mkdir()
    (home / "dagster.yaml").touch()
    with Simulator(world, SimulatorConfig(requests_per_minute=1_000_000, latency_ms=30)) as sim:
        report = run_child("full sync", job_env(args, str(home), SCHEMA, sim.base_url))
    if not report["success"]:
        raise SystemExit(f"the seed's full sync failed: {report['failures']}")
    return home / "warehouse"


def synthesise(seed: Path, copies: int, home: Path) -> int:
    """The seed's raw tables tiled into ``home``'s warehouse, table by table (one in memory at a
    time), with the seed's sync state; returns the tasks written."""
    source = Warehouse(seed, None, SCHEMA)
    target = Warehouse(home / "warehouse", None, SCHEMA, run="synthesised")
    tasks = 0
    for table in TILED:
        if not source.exists(table):
            continue
        data = tiled(table, source.read(table), copies)
        tasks = data.num_rows if table == "tasks" else tasks
        target.stage(table, data)
        del data
    target.commit()
    target.state_store().save(source.state_store().load())
    return tasks


def main() -> None:
    """Synthesise the tables (or take those --home holds), run the derived layer alone over them,
    and record its figures for a fresh synthesis of a million tasks or more (a rerun's history
    tables hold the earlier runs' parts too: another workload)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--seed-tasks", type=int, default=20_000)
    parser.add_argument("--seed-home", help="the home of a scale.py --home run, instead of a seed made here")
    parser.add_argument("--home", help="keep the synthesised warehouse in this folder; one it already holds is "
                                       "used again, without a seed (to run the derived layer again in minutes)")
    parser.add_argument("--postgres", help="also publish the derived tables to this Postgres (a schema of its own, "
                                           "dropped after); its time is printed apart, as scale.py does")
    args = parser.parse_args()
    if not 1 <= args.copies <= 90:
        parser.error("--copies: 1 to 90 (two-digit prefixes)")
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(args.home or Path(scratch, "million"))
        fresh = not (home / "warehouse" / "asana" / "tasks.parquet").exists()
        if fresh:
            started = time.perf_counter()
            seed = Path(args.seed_home) / "warehouse" if args.seed_home else seed_warehouse(
                args.seed_tasks, Path(scratch, "seed"))
            home.mkdir(parents=True, exist_ok=True)
            (home / "dagster.yaml").touch()
            tasks = synthesise(seed, args.copies, home)
            print(f"raw tables of {tasks:,} tasks synthesised ({args.copies} copies of "
                  f"{pq.read_metadata(seed / 'asana' / 'tasks.parquet').num_rows:,}) in "
                  f"{time.perf_counter() - started:.0f} s")
        else:
            print(f"the raw tables synthesised earlier in {home}, with the history its runs left")
        tasks, report = derived_only(SimpleNamespace(home=str(home), no_postgres=not args.postgres,
                                                     postgres=args.postgres))
    seconds, peak_gb = derived_layer_seconds(report), report["run_peak_mb"] / 1024
    print(f"  derived layer + monitors + evidence pack: {seconds:.1f} s, run peak {peak_gb:.2f} GB")
    if fresh and tasks >= 1_000_000 and report["success"]:
        record("million", derived_seconds=round(seconds, 1), peak_gb=round(peak_gb, 2))


if __name__ == "__main__":
    main()
