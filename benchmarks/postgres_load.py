"""Postgres load throughput: a first load, then an idempotent reload with 1% of the rows changed.

For ``stories`` and ``tasks`` of deterministic, realistic rows, each load prints its rows,
seconds and rows per second with the rows it inserted, updated and deleted. The loads go to a
fresh schema, dropped at the end.

    ASANA_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test python benchmarks/postgres_load.py
    python benchmarks/postgres_load.py --rows 100000
"""

from __future__ import annotations

import argparse
import os
import uuid

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.lib.schema import TABLES
from asana_assets.lib.storage.postgres import PostgresWarehouse, ident, libpq_url

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
SEED = 7
CHANGED = 0.01
YEAR_US = 365 * 86_400 * 1_000_000
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


def report(stats, label: str) -> None:
    print(f"{stats.table:8} {label:26} {stats.staged:>9,} rows {stats.seconds:7.2f} s "
          f"{stats.staged / stats.seconds:>10,.0f} rows/s   "
          f"inserted {stats.inserted:,} updated {stats.updated:,} deleted {stats.deleted:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000, help="rows per table")
    args = parser.parse_args()
    url = os.environ.get("ASANA_TEST_POSTGRES_URL", DEFAULT_URL)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(SEED)
    try:
        with PostgresWarehouse(url, schema) as warehouse:
            for table, make, edited in (("stories", stories, "text"), ("tasks", tasks, "name")):
                data = make(args.rows, rng)
                warehouse.ensure(table)
                report(warehouse.load(table, data), "first load")
                report(warehouse.load(table, with_changes(data, edited, rng)), "reload, 1% changed")
    finally:
        with adbc.connect(libpq_url(url)) as connection, connection.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")
            connection.commit()


if __name__ == "__main__":
    main()
