"""A run's warehouse: what it stages is read back first and made visible only by its commit,
Postgres (tables and sync state in one transaction) before the Parquet version, the sync state's
file last."""

from __future__ import annotations

import json

import pytest

from asana_assets.lib.asana.polls import PollSchedule
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.schema import to_arrow
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.lib.storage.postgres import PostgresWarehouse
from asana_assets.lib.storage.warehouse import Warehouse
from asana_assets_tests.support import POSTGRES_URL as URL
from asana_assets_tests.support.postgres import PostgresTables

TOKENS = {"p1": {"sync": "s1", "taken_at": "2026-03-01T09:00:00+00:00"}}


def users(*names: str):
    return to_arrow("users", [{"gid": str(i), "name": name} for i, name in enumerate(names, 1)])


def test_staged_tables_are_read_back_first_and_visible_only_once_committed(tmp_path):
    run, committed = Warehouse(tmp_path, None, "asana", run="r1"), Warehouse(tmp_path, None, "asana")
    staged = run.stage("users", users("Ada"))
    run.stage("user_access", to_arrow("user_access", [{"run_id": "r1", "user_gid": "1"}]), part="p1")
    assert run.read("users") == users("Ada") and run.read("user_access").num_rows == 1
    assert not committed.exists("users") and committed.read("user_access").num_rows == 0
    assert staged.path == tmp_path / "asana" / "users.parquet" and staged.postgres_table is None

    publication = run.commit()
    assert publication.tables == ["user_access", "users"] and publication.postgres is None
    assert publication.version.name.endswith("-r1")
    assert committed.read("users") == users("Ada") and committed.read("user_access").num_rows == 1


def test_only_a_run_stages(tmp_path):
    with pytest.raises(ValueError, match="only a run stages"):
        Warehouse(tmp_path, None, "asana").stage("users", users("Ada"))


def test_without_postgres_the_sync_state_is_saved_after_the_tables(tmp_path, monkeypatch):
    before = SyncState(tokens=TOKENS)
    Warehouse(tmp_path, None, "asana").state_store().save(before)
    run = Warehouse(tmp_path, None, "asana", run="r1")
    assert run.run_state() == before  # nothing staged yet: as committed
    reached = SyncState(tokens=TOKENS, last_sync_at="2026-03-01T10:00:00+00:00")
    run.stage_state(reached)
    run.stage("users", users("Ada"))
    assert run.run_state() == reached and run.state_store().load() == before

    def failing_commit(*_args):
        raise OSError("the disk filled up")

    with monkeypatch.context() as patch:
        patch.setattr(ParquetWarehouse, "commit", failing_commit)
        with pytest.raises(OSError):
            run.commit()
    assert run.state_store().load() == before  # the tables were not committed: neither is the state
    run.commit()
    saved = json.loads((tmp_path / "state" / "sync_state.json").read_text())
    assert saved["tokens"] == TOKENS and saved["last_sync_at"] == "2026-03-01T10:00:00+00:00"


def test_with_postgres_the_tables_and_state_commit_in_one_transaction_before_parquet(tmp_path, schema, monkeypatch):
    run = Warehouse(tmp_path, URL, schema, run="r1")
    run.stage("users", users("Ada", "Bob"))
    run.stage_state(SyncState(tokens=TOKENS))
    assert run.stage("workspaces", to_arrow("workspaces", [{"gid": "w"}])).postgres_table == f"{schema}.workspaces"

    def dying_load(self, cur, table, data):
        raise ConnectionError("the connection dropped")

    with monkeypatch.context() as patch:
        patch.setattr(PostgresWarehouse, "_load", dying_load)
        with pytest.raises(ConnectionError):
            run.commit()
    assert not Warehouse(tmp_path, None, schema).exists("users")  # Parquet waits for Postgres
    assert run.state_store().load() == SyncState()

    publication = run.commit()
    assert [(s.table, s.inserted) for s in publication.postgres.loads] == [("users", 2), ("workspaces", 1)]
    assert publication.postgres.views == []  # no view's tables are all there
    with PostgresTables(URL, schema) as postgres:
        assert postgres.read("users") == users("Ada", "Bob")
        assert postgres.document("incremental_sync")["tokens"] == TOKENS
    assert Warehouse(tmp_path, None, schema).read("users") == users("Ada", "Bob")
    assert not (tmp_path / "state").exists()  # the state lives beside the tables, in Postgres


def test_documents_written_by_earlier_versions_are_read(tmp_path):
    """The files earlier versions wrote (same paths, their own formatting)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "sync_state.json").write_text(json.dumps({"tokens": TOKENS, "archived": ["p2"]}, indent=2, sort_keys=True))
    polls = {"projects": {"p1": [1.0, 2.0, 4]}, "tokens": TOKENS}
    (state / "event_polls.json").write_text(json.dumps(polls, separators=(",", ":")))
    warehouse = Warehouse(tmp_path, None, "asana")
    assert warehouse.state_store().load() == SyncState(tokens=TOKENS, archived=["p2"])
    assert warehouse.poll_store().load() == PollSchedule({"p1": [1.0, 2.0, 4]}, TOKENS)


def test_an_unreadable_poll_schedule_counts_as_none_and_an_unreadable_state_does_not(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "event_polls.json").write_text("{half")
    (state / "sync_state.json").write_text("{half")
    warehouse = Warehouse(tmp_path, None, "asana")
    assert warehouse.poll_store().load() == PollSchedule()  # every project due: the sensor rewrites it
    with pytest.raises(ValueError):
        warehouse.state_store().load()  # the tokens are never silently dropped
