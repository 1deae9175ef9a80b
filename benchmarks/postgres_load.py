"""Postgres load throughput against a bare ADBC ingest of the same rows, measured in the same run.

For ``stories`` and ``tasks`` of deterministic, realistic rows: the bare ingest into a new,
unindexed table; the warehouse's first load into a new table and into an existing empty one
(keys, indexes and comments included); and the reload of the same rows with 1% of them changed.
Each prints its seconds (wall time, commit included; the median of ``--rounds`` rounds), rows
per second, its ratio to the bare ingest of the same round (the median over rounds) with the
target, and the rows inserted, updated and deleted. "bare, then key and indexes" adds to the
bare ingest the server's time to build the table's primary key and indexes: the floor of a first
load. Every round loads into fresh schemas, dropped at the end.

    ASANA_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test python benchmarks/postgres_load.py
    python benchmarks/postgres_load.py --rows 100000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from targets import record

from asana_assets.lib.schema import TABLES, primary_key
from asana_assets.lib.storage.postgres import MAINTENANCE_WORK_MEM, PostgresWarehouse, ident, index_columns, libpq_url
from asana_assets.lib.storage.text import escape_nul

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
SEED = 7
CHANGED = 0.01
YEAR_US = 365 * 86_400 * 1_000_000
# Ratios to the bare ingest the loads aim at (printed, never asserted).
TARGETS = {"first load, new table": "1.50", "first load, empty table": "1.50", "reload, 1% changed": "1.00"}
RECORDED = {"first load, new table": "first", "reload, 1% changed": "reload"}  # for `make bench`'s summary
STORY_SUBTYPES = np.array(
    ["comment_added", "assigned", "section_changed", "due_date_changed", "name_changed", "marked_complete"]
)


def gids(base: int, numbers: np.ndarray) -> pa.Array:
    """Asana-like 16-digit gids."""
    return pa.array((base + numbers).astype(str))


def maybe(values: pa.Array, present: np.ndarray) -> pa.Array:
    """``values`` where ``present``, else null."""
    return pc.if_else(pa.array(present), values, pa.nulls(len(values), values.type))


def timestamps(rng: np.random.Generator, n: int, offset_us: int = 0) -> pa.Array:
    """Times spread over 2024 (plus an offset)."""
    us = np.datetime64("2024-01-01", "us") + (rng.integers(0, YEAR_US, n) + offset_us).astype("timedelta64[us]")
    return pa.array(us).cast(pa.timestamp("us", tz="UTC"))


def typed(table: str, columns: dict[str, pa.Array], n: int) -> pa.Table:
    """The table's schema, with the columns not generated left null."""
    schema = TABLES[table]
    return pa.table([columns.get(f.name, pa.nulls(n, f.type)) for f in schema], schema=schema)


def stories(n: int, rng: np.random.Generator) -> pa.Table:
    subtype = STORY_SUBTYPES[rng.integers(0, len(STORY_SUBTYPES), n)]
    comment, moved = subtype == "comment_added", subtype == "section_changed"
    system_made = rng.random(n) < 0.1
    return typed("stories", {
        "gid": gids(1_206_000_000_000_000, np.arange(n)),
        "task_gid": gids(1_205_000_000_000_000, rng.integers(0, max(1, n // 10), n)),
        "created_at": timestamps(rng, n),
        "created_by_gid": maybe(gids(1_204_000_000_000_000, rng.integers(0, 500, n)), ~system_made),
        "type": pa.array(np.where(comment, "comment", "system")),
        "resource_subtype": pa.array(subtype),
        "text": pa.array([f"Story {i}: moved to \"In review\", see the checklist" for i in range(n)]),
        "source": pa.array(np.array(["web", "api", "email", "mobile"])[rng.integers(0, 4, n)]),
        "old_section_gid": maybe(gids(1_203_000_000_000_000, rng.integers(0, 2_000, n)), moved),
        "new_section_gid": maybe(gids(1_203_000_000_000_000, rng.integers(0, 2_000, n)), moved),
        "assignee_gid": maybe(gids(1_204_000_000_000_000, rng.integers(0, 500, n)), subtype == "assigned"),
    }, n)


def tasks(n: int, rng: np.random.Generator) -> pa.Table:
    numbers = np.arange(n)
    subtask = rng.random(n) < 0.2
    completed = rng.random(n) < 0.6
    created = timestamps(rng, n)
    return typed("tasks", {
        "gid": gids(1_205_000_000_000_000, numbers),
        "workspace_gid": pa.array(np.full(n, "1201000000000000")),
        "parent_gid": maybe(gids(1_205_000_000_000_000, rng.integers(0, n, n)), subtask),
        "resource_subtype": pa.array(np.where(rng.random(n) < 0.05, "approval", "default_task")),
        "name": pa.array([f"Ticket {i}: rotate the credentials" for i in range(n)]),
        "notes": pa.array([f"Steps for ticket {i}, owner to confirm." for i in range(n)]),
        "assignee_gid": maybe(gids(1_204_000_000_000_000, rng.integers(0, 500, n)), rng.random(n) < 0.8),
        "created_by_gid": gids(1_204_000_000_000_000, rng.integers(0, 500, n)),
        "completed": pa.array(completed),
        "completed_at": maybe(timestamps(rng, n, YEAR_US), completed),
        "completed_by_gid": maybe(gids(1_204_000_000_000_000, rng.integers(0, 500, n)), completed),
        "created_at": created,
        "modified_at": timestamps(rng, n, YEAR_US),
        "due_on": maybe(pa.array(np.datetime64("2025-01-01") + rng.integers(0, 365, n)).cast(pa.date32()),
                        rng.random(n) < 0.5),
        "permalink_url": pa.array(np.char.add("https://app.asana.com/0/0/", numbers.astype(str))),
        "num_subtasks": pa.array(rng.integers(0, 4, n).astype(np.int32)),
    }, n)


def with_changes(data: pa.Table, column: str, rng: np.random.Generator) -> pa.Table:
    """1% of the rows with ``column`` edited, as the next sync would see them."""
    changed = rng.random(data.num_rows) < CHANGED
    edited = pc.if_else(pa.array(changed), pc.binary_join_element_wise(data[column], "edited", " "), data[column])
    return data.set_column(data.schema.get_field_index(column), data.schema.field(column), edited)


def bare_ingest(cur, schema: str, table: str, data: pa.Table) -> tuple[float, float]:
    """Seconds to ADBC-ingest the rows (NUL-escaped, as they go to Postgres) into a new, unindexed
    table, committed: what the server takes at best, the yardstick of the loads. Then the seconds
    to build the table's primary key and indexes on it: with the ingest, the floor of a first load."""
    started = time.perf_counter()
    cur.adbc_ingest(table, escape_nul(data), mode="create", db_schema_name=schema)
    cur.connection.commit()
    ingested = time.perf_counter()
    name = f"{ident(schema)}.{ident(table)}"
    cur.execute(f"SET maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
    cur.execute(f"ALTER TABLE {name} ADD PRIMARY KEY ({', '.join(map(ident, primary_key(table)))})")
    for column in index_columns(table):
        cur.execute(f"CREATE INDEX ON {name} ({ident(column)}) WHERE {ident(column)} IS NOT NULL")
    cur.connection.commit()
    return ingested - started, time.perf_counter() - ingested


def timed_load(warehouse: PostgresWarehouse, table: str, data: pa.Table):
    started = time.perf_counter()
    stats = warehouse.load(table, data)
    return time.perf_counter() - started, stats


def measure(url: str, table: str, data: pa.Table, changed: pa.Table) -> dict[str, tuple[float, object]]:
    """One round in fresh schemas: the bare ingest (and its key and indexes), a first load into a
    new table, a first load into an existing empty one (`ensure` made it), and the reload of the
    new table with 1% changed."""
    schemas = [f"bench_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    try:
        with adbc.connect(libpq_url(url)) as connection, connection.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {ident(schemas[0])}")
            connection.commit()
            bare, indexing = bare_ingest(cur, schemas[0], table, data)
        with PostgresWarehouse(url, schemas[1]) as warehouse:
            first = timed_load(warehouse, table, data)
            reload = timed_load(warehouse, table, changed)
        with PostgresWarehouse(url, schemas[2]) as warehouse:
            warehouse.ensure(table)
            empty = timed_load(warehouse, table, data)
    finally:
        with adbc.connect(libpq_url(url)) as connection, connection.cursor() as cur:
            for schema in schemas:
                cur.execute(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")
            connection.commit()
    return {"bare ingest": (bare, None), "bare, then key and indexes": (bare + indexing, None),
            "first load, new table": first, "first load, empty table": empty, "reload, 1% changed": reload}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000, help="rows per table")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per table; medians are reported")
    args = parser.parse_args()
    url = os.environ.get("ASANA_TEST_POSTGRES_URL", DEFAULT_URL)
    rng = np.random.default_rng(SEED)
    print(f"{'table':8} {'load':27} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'x bare':>7} {'target':>7}"
          "   inserted / updated / deleted")
    for table, make, edited in (("stories", stories, "text"), ("tasks", tasks, "name")):
        data = make(args.rows, rng)
        changed = with_changes(data, edited, rng)
        rounds = [measure(url, table, data, changed) for _ in range(args.rounds)]
        for label, (_, stats) in rounds[0].items():
            seconds = statistics.median(r[label][0] for r in rounds)
            ratio = statistics.median(r[label][0] / r["bare ingest"][0] for r in rounds)  # each round's own yardstick
            counts = f"   {stats.inserted:,} / {stats.updated:,} / {stats.deleted:,}" if stats else ""
            print(f"{table:8} {label:27} {data.num_rows:>9,} {seconds:>8.2f} {data.num_rows / seconds:>9,.0f}"
                  f" {ratio:>7.2f} {TARGETS.get(label, ''):>7}{counts}")
            if label in RECORDED:
                record("postgres_load", **{f"{RECORDED[label]}_{table}": ratio})


if __name__ == "__main__":
    main()
