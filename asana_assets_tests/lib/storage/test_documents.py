"""The document store: named JSON documents in a folder or in a Postgres table, read and
replaced whole, and changed under a lock that concurrent writers respect."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from asana_assets.lib.storage.documents import FileDocuments, PostgresDocuments, Table, open_documents
from asana_assets.lib.storage.sql import ident
from asana_assets_tests.lib.storage.test_postgres import query
from asana_assets_tests.support import POSTGRES_URL as URL


@pytest.fixture(params=["folder", "postgres"])
def documents(request, tmp_path) -> Iterator[FileDocuments | PostgresDocuments]:
    if request.param == "folder":
        yield FileDocuments(tmp_path / "docs")
        return
    schema = request.getfixturevalue("schema")  # skips without Postgres
    store = PostgresDocuments(URL, Table(schema, "documents"))
    yield store
    store.close()


def test_a_document_is_none_until_saved_then_read_back_whole(documents):
    assert documents.load("state") is None
    documents.save("state", {"tokens": {"p1": {"sync": "t", "taken_at": "2026-01-01T00:00:00+00:00"}}, "n": 1})
    documents.save("other", {"n": 2})
    assert documents.load("state") == {"tokens": {"p1": {"sync": "t", "taken_at": "2026-01-01T00:00:00+00:00"}}, "n": 1}
    documents.save("state", {"n": 3})
    assert documents.load("state") == {"n": 3} and documents.load("other") == {"n": 2}


def test_a_change_edits_the_document_and_returns_what_the_edit_returns(documents):
    def add(document, now):
        document["n"] = document.get("n", 0) + 1
        return document["n"], now

    assert documents.change("counter", add)[0] == 1  # from none: an empty document
    count, now = documents.change("counter", add)
    assert count == 2 and documents.load("counter") == {"n": 2}
    assert abs(now - time.time()) < 60  # the store's clock: the wall clock, or the database's


def test_an_edit_that_fails_saves_nothing(documents):
    documents.save("state", {"n": 1})

    def fail(document, _now):
        document["n"] = 2
        raise RuntimeError("the edit failed")

    with pytest.raises(RuntimeError, match="the edit failed"):
        documents.change("state", fail)
    assert documents.load("state") == {"n": 1}


def test_concurrent_changes_lose_no_update(documents):
    """Writers at once (each with a connection or a lock file of its own) each add to the same
    document; none undoes another's addition."""
    if isinstance(documents, PostgresDocuments):
        stores = [PostgresDocuments(URL, documents.table) for _ in range(4)]
    else:
        stores = [FileDocuments(documents.folder) for _ in range(4)]

    def add(store):
        for _ in range(10):
            store.change("counter", lambda document, _now: document.update(n=document.get("n", 0) + 1))

    writers = [threading.Thread(target=add, args=(store,)) for store in stores]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert documents.load("counter") == {"n": 40}


def test_in_a_folder_a_document_is_a_private_file_and_its_lock_is_beside_it(tmp_path):
    documents = FileDocuments(tmp_path, files={"incremental_sync": "sync_state.json"})
    documents.change("event_polls", lambda document, _now: document.update(projects={}))
    documents.save("incremental_sync", {"tokens": {}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["event_polls.json", "event_polls.lock", "sync_state.json"]
    assert json.loads((tmp_path / "sync_state.json").read_text()) == {"tokens": {}}
    assert stat.S_IMODE(os.stat(tmp_path / "event_polls.json").st_mode) == 0o600


def test_a_file_location_holds_one_document(tmp_path):
    path = tmp_path / "asana_connections.json"
    path.write_text('{\n  "c1": {"connection": {"id": "c1"}}\n}')  # as earlier versions wrote it
    documents = open_documents(path, Table("s", "t"), document="connections")
    assert documents.load("connections") == {"c1": {"connection": {"id": "c1"}}}
    documents.change("connections", lambda records, _now: records.pop("c1"))
    assert json.loads(path.read_text()) == {}


@pytest.mark.parametrize("location", ["postgresql://u@h:5432/d", "postgres://u@h/d", "postgresql+psycopg2://u@h/d"])
def test_a_postgres_url_opens_the_table_and_names_it_without_credentials(location):
    documents = open_documents(f"{location}?password=secret", Table("asana_quota", "budgets"))
    assert isinstance(documents, PostgresDocuments)
    assert "secret" not in documents.where and "table asana_quota.budgets" in documents.where


@pytest.mark.parametrize("location", ["warehouse/state", "postgresql", "./postgresql://x"])
def test_any_other_location_is_a_folder(location):
    documents = open_documents(location, Table("s", "t"))
    assert isinstance(documents, FileDocuments) and documents.folder == Path(location)


def test_in_postgres_a_document_is_a_row_of_the_tables_layout(schema, server):
    stamped = PostgresDocuments(URL, Table(schema, "_sync_state"))
    stamped.save("incremental_sync", {"tokens": {}})
    assert query(server, f"SELECT name, state::text, updated_at IS NOT NULL FROM {ident(schema)}._sync_state") == [
        ("incremental_sync", '{"tokens": {}}', True)]
    plain = PostgresDocuments(URL, Table(schema, "budgets", key="fingerprint", stamped=False))
    plain.change("ab12", lambda document, _now: document.update(paused_until=1.5))
    assert query(server, "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0"
                         " ORDER BY attnum", (f"{ident(schema)}.budgets",)) == [("fingerprint",), ("state",)]
    assert query(server, f"SELECT fingerprint, state::text FROM {ident(schema)}.budgets") == [
        ("ab12", '{"paused_until": 1.5}')]


def test_rows_written_before_the_document_store_are_read(schema, server):
    """The sync state's table as earlier versions created and filled it."""
    query(server, f"CREATE SCHEMA {ident(schema)}")
    query(server, f"CREATE TABLE {ident(schema)}._sync_state "
                  "(name text PRIMARY KEY, state jsonb NOT NULL, updated_at timestamptz NOT NULL)")
    query(server, f"INSERT INTO {ident(schema)}._sync_state VALUES ('incremental_sync', $1::jsonb, now())",
          (json.dumps({"tokens": {"p": {"sync": "s", "taken_at": "2026-01-01T00:00:00+00:00"}}}),))
    documents = PostgresDocuments(URL, Table(schema, "_sync_state"))
    assert documents.load("incremental_sync") == {"tokens": {"p": {"sync": "s", "taken_at": "2026-01-01T00:00:00+00:00"}}}


def test_a_timeout_bounds_the_wait_for_a_held_document(schema):
    """A store that must never hang (the token budgets) gives up on a document held too long."""
    table = Table(schema, f"held_{uuid.uuid4().hex[:6]}")
    holder, impatient = PostgresDocuments(URL, table), PostgresDocuments(URL, table, timeout=1)
    entered, release = threading.Event(), threading.Event()

    def hold(_document, _now):
        entered.set()
        release.wait(10)

    thread = threading.Thread(target=holder.change, args=("doc", hold))
    thread.start()
    try:
        assert entered.wait(10)
        started = time.monotonic()
        with pytest.raises(Exception, match="statement timeout"):
            impatient.change("doc", lambda document, _now: None)
        assert time.monotonic() - started < 5
    finally:
        release.set()
        thread.join()
    impatient.change("doc", lambda document, _now: document.update(n=1))  # once released, and on a new connection
    assert holder.load("doc") == {"n": 1}


# -- connections between uses: the store's costliest step is connecting

@pytest.fixture
def connects(monkeypatch) -> list[str]:
    """A pool of this test's own, and every connection opened, by URL."""
    from asana_assets.lib.storage import documents

    monkeypatch.setattr(documents, "IDLE", documents.Idle())
    opened, connect = [], documents.adbc.connect

    def counted(url, *args, **kwargs):
        opened.append(url)
        return connect(url, *args, **kwargs)

    monkeypatch.setattr(documents.adbc, "connect", counted)
    return opened


def _backend(documents: PostgresDocuments) -> int:
    with documents._cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def test_uses_one_after_another_share_one_connection(schema, connects):
    first, second = PostgresDocuments(URL, Table(schema, "first")), PostgresDocuments(URL, Table(schema, "second"))
    first.save("a", {"n": 1})
    second.change("b", lambda document, _now: document.update(n=2))
    assert (first.load("a"), second.load("b"), first.load("missing")) == ({"n": 1}, {"n": 2}, None)
    assert len(connects) == 1  # five uses of two tables, one connection
    budget = PostgresDocuments(URL, Table(schema, "budgets"), persistent=True, timeout=5)
    budget.save("c", {})
    budget.close()
    assert budget.load("c") == {} and len(connects) == 2  # another timeout is another session's setting


def test_a_use_that_fails_gives_its_connection_up(schema, connects):
    def refuse(_document, _now):
        raise ValueError("refused")

    documents = PostgresDocuments(URL, Table(schema, "docs"))
    with pytest.raises(ValueError):
        documents.change("a", refuse)  # its transaction is not left to the next use
    documents.save("a", {"n": 1})
    assert len(connects) == 2 and documents.load("a") == {"n": 1} and len(connects) == 2


def test_a_connection_closed_while_idle_is_replaced(schema, server, connects):
    documents = PostgresDocuments(URL, Table(schema, "docs"))
    idle = _backend(documents)
    assert query(server, "SELECT pg_terminate_backend($1::int)", (idle,)) == [(True,)]
    documents.save("a", {"n": 1})  # the idle connection answers no more: a new one, and no error
    assert documents.load("a") == {"n": 1} and len(connects) == 2 and _backend(documents) != idle


def test_a_connection_idle_too_long_is_closed(schema, server, connects, monkeypatch):
    from asana_assets.lib.storage import documents as module

    monkeypatch.setattr(module, "IDLE", module.Idle(seconds=0))
    documents = PostgresDocuments(URL, Table(schema, "docs"))
    first = _backend(documents)
    second = _backend(documents)
    assert first != second and len(connects) == 2
    deadline = time.monotonic() + 5
    while query(server, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", (first,)) != [(0,)]:
        assert time.monotonic() < deadline, "the stale connection was left open"
        time.sleep(0.05)


def test_a_forked_child_leaves_the_parents_connection_alone(schema, server, connects, monkeypatch):
    from asana_assets.lib.storage import documents as module

    documents = PostgresDocuments(URL, Table(schema, "docs"))
    parents = _backend(documents)
    monkeypatch.setattr(module.os, "getpid", lambda: -1)  # as in a child forked from here
    assert _backend(documents) != parents and len(connects) == 2
    # neither used nor closed by the child: the parent's session is still there
    assert query(server, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", (parents,)) == [(1,)]
