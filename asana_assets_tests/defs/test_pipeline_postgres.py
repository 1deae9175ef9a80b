"""With a Postgres URL every table lands in Postgres too, equal to its Parquet twin, and a second
sync after changes at the source updates, removes and appends exactly what it should."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from asana_assets.defs.partitions import DEFAULT, register
from asana_assets.lib.schema import HISTORY_TABLES, RAW_TABLES, TABLES, primary_key
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.lib.storage.postgres import PostgresWarehouse
from asana_assets.simulator import Simulator, generate_world
from asana_assets_tests.support import POSTGRES_URL as URL
from asana_assets_tests.support import REPO, kill_at
from asana_assets_tests.support.pipeline import SIMULATOR, full_sync_job, run_pipeline
from asana_assets_tests.support.postgres import PostgresTables
from asana_assets_tests.support.truth import assert_matches_truth
from asana_assets_tests.support.worlds import change_the_world

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PARTITION = {"dagster/partition": DEFAULT}


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
    with PostgresTables(URL, schema) as postgres:
        for name in TABLES:
            mirrored = postgres.read(name)
            local = parquet.read_history(name, TABLES[name]) if name in HISTORY_TABLES else parquet.read(name)
            assert keys(mirrored, name) == keys(local, name), name
            assert mirrored.num_rows == local.num_rows, name
        tasks = keys(postgres.read("tasks"), "tasks")
        assert (gone["gid"],) not in tasks and (added.gid,) in tasks
        assert len(set(postgres.read("monitor_results")["run_id"].to_pylist())) == 2
        assert len(set(postgres.read("user_access")["snapshot_at"].to_pylist())) == 2


def test_a_run_that_dies_mid_load_and_is_re_executed_loses_and_duplicates_nothing(
    schema, tmp_path, monkeypatch
):
    """The run fails while loading monitor_results into Postgres (the publication's transaction
    rolls back, as a killed connection's would); re-executing it from the failure completes the
    same evaluation: one snapshot, one set of results, Postgres equal to Parquet."""
    world = generate_world(seed=6, tasks=200, now=NOW)
    failures = iter([True])
    real_load = PostgresWarehouse._load

    def dying_load(self, cur, table, data, *options):
        if table == "monitor_results" and next(failures, False):
            raise ConnectionError("the connection dropped mid-load")
        return real_load(self, cur, table, data, *options)

    monkeypatch.setattr(PostgresWarehouse, "_load", dying_load)
    with Simulator(world, SIMULATOR) as sim, dg.instance_for_test() as instance:
        for name, value in (("ASANA_BASE_URL", sim.base_url), ("WAREHOUSE_DIR", str(tmp_path)),
                            ("POSTGRES_URL", URL), ("POSTGRES_SCHEMA", schema)):
            monkeypatch.setenv(f"TEST_{name}", value)
        job = dg.reconstructable(full_sync_job)
        register(instance, [DEFAULT])
        with dg.execute_job(job, instance, raise_on_error=False, tags=PARTITION) as failed:
            assert not failed.success
        # Nothing of the failed run is visible in either store: no Parquet version, no Postgres table.
        assert not (tmp_path / "asana").exists()
        with PostgresTables(URL, schema) as postgres:
            with pytest.raises(Exception, match="does not exist"):
                postgres.read("tasks")
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        with dg.execute_job(job, instance, reexecution_options=options, tags=PARTITION) as retried:
            assert retried.success

    parquet = ParquetWarehouse(tmp_path)
    with PostgresTables(URL, schema) as postgres:
        for name in HISTORY_TABLES:
            mirrored, local = postgres.read(name), parquet.read_history(name, TABLES[name])
            assert set(mirrored["run_id"].to_pylist()) == set(local["run_id"].to_pylist()) == {failed.run_id}
            assert keys(mirrored, name) == keys(local, name) and mirrored.num_rows == local.num_rows


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["multiprocess", "celery"])
def test_the_same_code_runs_each_step_in_its_own_process(executor, schema, tmp_path, monkeypatch):
    """Scale-out is an executor swap: with the multiprocess executor every step runs in a process
    of its own; with dagster-celery's, every step is a task on the RabbitMQ broker, run by a
    separate Celery worker as it would be on another machine. The warehouse ends up the same."""
    world = generate_world(seed=6, tasks=120, now=NOW)
    with Simulator(world, SIMULATOR) as sim, dg.instance_for_test() as instance:
        for name, value in (("ASANA_BASE_URL", sim.base_url), ("WAREHOUSE_DIR", str(tmp_path)),
                            ("POSTGRES_URL", URL), ("POSTGRES_SCHEMA", schema), ("EXECUTOR", executor)):
            monkeypatch.setenv(f"TEST_{name}", value)
        selection = [dg.AssetKey(["asana", t])
                     for t in (*RAW_TABLES, "collections", "workflow_states", "ticket_events", "tickets")]
        job = dg.reconstructable(full_sync_job)
        if executor == "multiprocess":
            # A step here starts a fresh interpreter, seconds each: the assets' steps show it, without
            # their 40 checks' (which the Celery workers run, as tasks, in the other case).
            job = job.get_subset(asset_selection=frozenset(selection), asset_check_selection=frozenset())
            selection = None  # the job is the selection (the run's own would bring the checks back)
        register(instance, [DEFAULT])
        with celery_worker() if executor == "celery" else contextlib.nullcontext() as worker:
            with dg.execute_job(job, instance, asset_selection=selection, tags=PARTITION) as result:
                assert result.success
                steps = {(e.step_key, e.pid) for e in result.all_events if e.is_step_materialization}
            workers = worker() if worker else None
    pids = {pid for _, pid in steps}
    assert pids and os.getpid() not in pids  # the steps ran outside the process that ran the job
    if workers:
        assert pids <= workers  # in the Celery worker's processes
    else:
        assert len(pids) == len(steps) > 1  # a process per step
    with PostgresTables(URL, schema) as postgres:
        tickets = postgres.read("tickets")
    assert tickets.num_rows == len(world.ground_truth()["tasks"])


@contextlib.contextmanager
def celery_worker():
    """A Celery worker (two processes) on the test broker, in the environment the steps need;
    yields a function that gives the pids of its processes. It consumes the broker's ``dagster``
    queue, which no other worker may consume meanwhile."""
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "dagster_celery.app", "worker", "--loglevel=WARNING",
         "--concurrency=2", "--pool=prefork", "-Q", "dagster"],
        env={**os.environ, "DAGSTER_CELERY_BROKER_HOST": "127.0.0.1"}, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)
        assert worker.poll() is None, "the Celery worker did not start"
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
        yield lambda: {worker.pid, *map(int, children.read_text().split())}
    finally:
        worker.terminate()
        worker.wait(timeout=60)


@pytest.mark.slow
def test_a_run_killed_mid_load_and_rerun_loses_and_duplicates_nothing(schema, tmp_path):
    """SIGKILL while the incremental run's publication is loading ``tasks``: Postgres rolls the
    whole publication back (tables loaded before it in the same transaction too), Parquet is not
    switched, the saved tokens stay where they were, and the rerun replays the same events into
    tables equal to the source."""
    world = generate_world(seed=7, tasks=200, now=NOW)
    assert run_pipeline(world, tmp_path, NOW, postgres=(URL, schema)).success
    change_the_world(world)
    added = next(t["gid"] for t in world.ground_truth()["tasks"] if t["name"] == "Created between syncs")
    marker = tmp_path / "stalled"
    with PostgresTables(URL, schema) as postgres:
        tokens_before = postgres.document("incremental_sync")
    with Simulator(world, SIMULATOR) as sim:
        env = {**os.environ, "TEST_MARKER": str(marker), "TEST_ASANA_BASE_URL": sim.base_url,
               "TEST_WAREHOUSE_DIR": str(tmp_path), "TEST_POSTGRES_URL": URL, "TEST_POSTGRES_SCHEMA": schema,
               "TEST_AS_OF": (NOW + timedelta(hours=1)).isoformat()}
        run = subprocess.Popen([sys.executable, "-m", "asana_assets_tests.support.killed_run"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_at(run, marker, "the tasks load")
    with PostgresTables(URL, schema) as postgres:
        assert (added,) not in keys(postgres.read("tasks"), "tasks")  # the open transaction was rolled back
        assert added not in set(postgres.read("task_memberships")["task_gid"].to_pylist())  # loaded before it: too
        assert postgres.document("incremental_sync") == tokens_before  # not advanced by the killed run
    assert added not in set(ParquetWarehouse(tmp_path).read("task_memberships")["task_gid"].to_pylist())
    assert run_pipeline(world, tmp_path, NOW + timedelta(hours=2), postgres=(URL, schema), mode="incremental").success
    truth = world.ground_truth()
    assert_matches_truth({t: ParquetWarehouse(tmp_path).read(t) for t in RAW_TABLES}, truth)
    with PostgresTables(URL, schema) as postgres:
        assert_matches_truth({t: postgres.read(t) for t in RAW_TABLES}, truth)
        assert postgres.document("incremental_sync") != tokens_before  # advanced by the rerun only
        for name in TABLES:
            mirrored = postgres.read(name)
            assert len(keys(mirrored, name)) == mirrored.num_rows, name  # no duplicate
