"""With a Postgres URL every table lands in Postgres too, equal to its Parquet twin, and a second
sync after changes at the source updates, removes and appends exactly what it should."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asana_assets.postgres import PostgresWarehouse
from asana_assets.simulator import generate_world
from asana_assets.tables import HISTORY_TABLES, TABLES, primary_key
from asana_assets.warehouse import ParquetWarehouse
from asana_assets_tests.conftest import URL
from asana_assets_tests.pipeline import run_pipeline

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def keys(table, name) -> set:
    columns = primary_key(name) or table.column_names
    return set(zip(*(table[c].to_pylist() for c in columns)))


def test_every_table_lands_in_postgres_and_follows_the_source(schema, tmp_path):
    world = generate_world(seed=6, tasks=250, now=NOW)
    assert run_pipeline(world, tmp_path, NOW, postgres=(URL, schema)).success
    truth = world.ground_truth()
    gone = next(t for t in truth["tasks"] if not t["parent"] and not t["completed"])
    world.delete_task(gone["gid"], actor=world.default_user)
    added = world.create_task("Added between syncs", project=truth["projects"][0]["gid"], actor=world.default_user)
    assert run_pipeline(world, tmp_path, NOW + timedelta(hours=1), postgres=(URL, schema)).success

    parquet = ParquetWarehouse(tmp_path)
    with PostgresWarehouse(URL, schema) as postgres:
        for name in TABLES:
            mirrored = postgres.read(name)
            local = parquet.read_history(name, TABLES[name]) if name in HISTORY_TABLES else parquet.read(name)
            assert keys(mirrored, name) == keys(local, name), name
            assert mirrored.num_rows == local.num_rows, name
        tasks = keys(postgres.read("tasks"), "tasks")
        assert (gone["gid"],) not in tasks and (added.gid,) in tasks
        assert len(set(postgres.read("monitor_results")["run_id"].to_pylist())) == 2
        assert len(set(postgres.read("user_access")["snapshot_at"].to_pylist())) == 2
