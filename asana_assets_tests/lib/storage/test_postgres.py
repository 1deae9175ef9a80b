"""The Postgres warehouse against a real server, each test in a throwaway schema.

The server is ``ASANA_TEST_POSTGRES_URL`` (default: local trust auth). Without one the tests
skip, except in CI, where they fail.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
import pytest

from asana_assets.lib.schema import TABLES, primary_key, to_arrow
from asana_assets.lib.storage import postgres
from asana_assets.lib.storage.documents import PostgresDocuments, Table
from asana_assets.lib.storage.postgres import (
    DELETED_AT,
    ROW_HASH,
    LoadStats,
    PostgresWarehouse,
    SchemaConflictError,
    pg_type,
    row_hashes,
)
from asana_assets.lib.storage.sql import ident, libpq_url
from asana_assets.lib.storage.text import escape_nul
from asana_assets_tests.support import POSTGRES_URL as URL
from asana_assets_tests.support.postgres import PostgresTables

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
PG_TYPES = {
    pa.string(): "text",
    pa.bool_(): "boolean",
    pa.timestamp("us", tz="UTC"): "timestamp with time zone",
    pa.date32(): "date",
    pa.int32(): "integer",
    pa.float64(): "double precision",
    pa.list_(pa.string()): "text[]",
}


@pytest.fixture
def warehouse(schema):
    # The spelling dagster.yaml uses for its own storage must be accepted too.
    with PostgresWarehouse(URL.replace("postgresql://", "postgresql+psycopg2://"), schema) as warehouse:
        yield warehouse


@pytest.fixture
def written(schema):
    """The schema's tables as loaded."""
    with PostgresTables(URL, schema) as tables:
        yield tables


def query(server, sql: str, parameters=None) -> list[tuple]:
    with server.cursor() as cur:
        cur.execute(sql, parameters)
        rows = cur.fetchall() if cur.description else []
    server.commit()
    return rows


def catalog_types(server, schema: str, table: str) -> dict[str, str]:
    return dict(query(
        server,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        (f"{ident(schema)}.{ident(table)}",),
    ))


def task(gid: str, name: str, **fields) -> dict:
    return {"gid": gid, "name": name, "workspace_gid": "1", "created_at": T0, "completed": False} | fields


def tasks(*rows: dict) -> pa.Table:
    return to_arrow("tasks", rows)


def counts(stats: LoadStats) -> tuple[int, int, int, int]:
    return stats.staged, stats.inserted, stats.updated, stats.deleted


def test_pg_type_maps_arrow_types_and_refuses_the_others():
    assert pg_type(pa.int64()) == "bigint"
    assert all(pg_type(arrow) == postgres for arrow, postgres in PG_TYPES.items())
    for unmapped in (pa.timestamp("us"), pa.struct([("k", pa.string())]), pa.list_(pa.int32())):
        with pytest.raises(TypeError, match="no Postgres type"):
            pg_type(unmapped)


def test_libpq_url_accepts_sqlalchemy_spelling():
    assert libpq_url("postgresql+psycopg2://u@h:5432/d") == "postgresql://u@h:5432/d"
    assert libpq_url("postgresql://u@h/d") == "postgresql://u@h/d"


def test_ddl_types_keys_indexes_and_comments(warehouse, server, schema):
    for table in TABLES:
        warehouse.ensure(table)
        expected = {field.name: PG_TYPES[field.type] for field in TABLES[table]}
        if table not in ("quarantine", "user_access", "monitor_results"):
            expected[DELETED_AT] = "timestamp with time zone"
            expected[ROW_HASH] = "bytea"
        assert catalog_types(server, schema, table) == expected, table

    keys = dict(query(
        server,
        "SELECT c.relname, array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
        " WHERE n.nspname = $1 AND i.indisprimary GROUP BY c.relname",
        (schema,),
    ))
    assert keys == {table: list(primary_key(table)) for table in TABLES if table != "quarantine"}

    indexes = {(table, definition.split(" USING btree ")[1]) for table, definition in query(
        server, "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname NOT LIKE '%pkey'",
        (schema,),
    )}
    assert ("tasks", "(parent_gid) WHERE (parent_gid IS NOT NULL)") in indexes
    assert ("tasks", "(assignee_gid) WHERE (assignee_gid IS NOT NULL)") in indexes
    assert {d for t, d in indexes if t == "task_memberships"} == {
        "(project_gid) WHERE (project_gid IS NOT NULL)", "(section_gid) WHERE (section_gid IS NOT NULL)",
    }  # task_gid leads the primary key, whose index serves it
    assert {d for t, d in indexes if t == "user_access"} == {
        "(run_id) WHERE (run_id IS NOT NULL)", "(user_gid) WHERE (user_gid IS NOT NULL)",
    }
    assert ("ticket_events", "(ticket_gid) WHERE (ticket_gid IS NOT NULL)") in indexes

    name = f"{ident(schema)}.tickets"
    [(table_comment, column_comment)] = query(
        server, "SELECT obj_description(to_regclass($1), 'pg_class'), col_description(to_regclass($1), 7)", (name,)
    )
    assert table_comment == ("One row per task (subtasks included) in a ticketing common model, with a canonical "
                             "status. Current state, keyed by (gid); rows gone from the source are deleted.")
    assert column_comment == "First project of the task's memberships"  # a quote, safely quoted


def test_first_load_equals_the_data(warehouse, written):
    data = tasks(task("3", "c"), task("1", "a", notes="x"), task("2", "b", num_subtasks=4))
    stats = warehouse.load("tasks", data)
    assert counts(stats) == (3, 3, 0, 0) and stats.seconds > 0
    assert written.read("tasks") == data.sort_by("gid")


def test_reload_updates_inserts_and_deletes(warehouse, written):
    warehouse.load("tasks", tasks(task("1", "a"), task("2", "b"), task("3", "c")))
    changed = tasks(task("1", "a"), task("2", "b, renamed", completed=True), task("4", "d"))
    assert counts(warehouse.load("tasks", changed)) == (3, 1, 1, 1)
    assert written.read("tasks") == changed


def test_reloading_the_same_data_rewrites_nothing(warehouse, server, schema, written):
    data = tasks(task("1", "a"), task("2", "b", due_on=date(2025, 4, 1)))
    warehouse.load("tasks", data)
    versions = query(server, f"SELECT gid, xmin::text FROM {ident(schema)}.tasks ORDER BY gid")
    assert counts(warehouse.load("tasks", data)) == (2, 0, 0, 0)
    assert query(server, f"SELECT gid, xmin::text FROM {ident(schema)}.tasks ORDER BY gid") == versions
    assert written.read("tasks") == data


def test_duplicate_keys_keep_the_last_row(warehouse, written):
    stats = warehouse.load("tasks", tasks(task("1", "first"), task("2", "b"), task("1", "last")))
    assert counts(stats) == (2, 2, 0, 0)
    assert written.read("tasks")["name"].to_pylist() == ["last", "b"]


def access(snapshot_at: datetime, run_id: str, *users: str) -> pa.Table:
    return to_arrow("user_access", [
        {"snapshot_at": snapshot_at, "run_id": run_id, "user_gid": user, "user_is_active": True,
         "resource_type": "workspace", "resource_gid": "1", "role": "member"}
        for user in users
    ])


def test_history_appends_and_a_retried_run_adds_nothing(warehouse, written):
    first, second = access(T0, "run-1", "u1", "u2"), access(T0 + timedelta(days=1), "run-2", "u1")
    assert counts(warehouse.load("user_access", first)) == (2, 2, 0, 0)
    assert counts(warehouse.load("user_access", second)) == (1, 1, 0, 0)
    assert counts(warehouse.load("user_access", second)) == (1, 0, 0, 0)
    assert written.read("user_access") == pa.concat_tables([first, second])


def test_quarantine_is_replaced(warehouse, written):
    first = to_arrow("quarantine", [{"table": "tasks", "gid": "1", "error": "bad"}, {"table": "users"}])
    second = to_arrow("quarantine", [{"table": "stories", "gid": "9", "raw": "{}", "observed_at": T0}])
    warehouse.load("quarantine", first)
    assert counts(warehouse.load("quarantine", second)) == (1, 1, 0, 2)
    assert written.read("quarantine") == second


def test_schema_evolution_adds_columns_and_refuses_type_changes(warehouse, server, schema, monkeypatch, written):
    warehouse.load("tasks", tasks(task("1", "a")))
    tasks_schema = TABLES["tasks"]
    monkeypatch.setitem(TABLES, "tasks", tasks_schema.append(pa.field("html_notes", pa.string())))
    warehouse.ensure("tasks")
    assert catalog_types(server, schema, "tasks")["html_notes"] == "text"
    assert written.read("tasks").to_pylist() == [dict(tasks(task("1", "a")).to_pylist()[0], html_notes=None)]

    monkeypatch.setitem(TABLES, "tasks", tasks_schema.remove(tasks_schema.get_field_index("notes")))
    warehouse.ensure("tasks")
    assert "notes" in catalog_types(server, schema, "tasks")  # never dropped

    retyped = tasks_schema.set(tasks_schema.get_field_index("num_subtasks"), pa.field("num_subtasks", pa.string()))
    monkeypatch.setitem(TABLES, "tasks", retyped)
    with pytest.raises(SchemaConflictError, match=rf"{schema}\.tasks: num_subtasks is integer .* needs text"):
        warehouse.ensure("tasks")


def test_a_failed_load_leaves_the_previous_contents(warehouse, monkeypatch, written):
    before = tasks(task("1", "a"), task("2", "b"))
    warehouse.load("tasks", before)

    def fail(*args):
        raise RuntimeError("injected between the upsert and the delete")

    with monkeypatch.context() as patch:
        patch.setattr(PostgresWarehouse, "_remove_absent", fail)
        with pytest.raises(RuntimeError, match="injected"):
            warehouse.load("tasks", tasks(task("1", "changed"), task("3", "new")))
    assert written.read("tasks") == before

    with pytest.raises(adbc.IntegrityError, match="null value"):  # a key-less row violates the primary key
        warehouse.load("tasks", tasks(task("1", "changed"), task(None, "no gid")))
    assert written.read("tasks") == before

    assert counts(warehouse.load("tasks", tasks(task("1", "a")))) == (1, 0, 0, 1)  # the connection recovers


def test_readers_see_the_previous_contents_until_the_commit(warehouse, server, schema, monkeypatch, written):
    warehouse.load("tasks", tasks(task("1", "a")))
    seen = []
    remove_absent = PostgresWarehouse._remove_absent

    def spy(self, *args):
        seen.append(query(server, f"SELECT gid, name FROM {ident(schema)}.tasks ORDER BY gid"))
        return remove_absent(self, *args)

    monkeypatch.setattr(PostgresWarehouse, "_remove_absent", spy)
    warehouse.load("tasks", tasks(task("1", "b"), task("2", "c")))
    assert seen == [[("1", "a")]]  # mid-load, after the upsert
    assert written.read("tasks")["name"].to_pylist() == ["b", "c"]


def test_nulls_lists_timestamps_and_dates_round_trip(warehouse, written):
    tickets = to_arrow("tickets", [
        {"gid": "1", "name": 'comma, "quote", {brace}\nnewline \\ backslash', "description": "",
         "collection_gids": ["p1", "p2"], "tags": ["a,b", 'c"d', None, ""], "due_on": date(2025, 12, 31),
         "due_at": datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "completed": True},
        {"gid": "2", "collection_gids": [], "tags": None, "completed": None},
    ])
    history = to_arrow("ticket_status_history", [
        {"interval_id": "1/p/0", "ticket_gid": "1", "project_gid": "p", "state": "OPEN", "entered_at": T0,
         "duration_seconds": 0.25},
    ])
    sections = to_arrow("sections", [{"gid": "s", "project_gid": "p", "position": 2_000_000_000}])
    for table, data in (("tickets", tickets), ("ticket_status_history", history), ("sections", sections)):
        warehouse.load(table, data)
        assert written.read(table) == data


def test_a_column_without_a_postgres_type_is_refused_before_anything_is_created(warehouse, server, schema,
                                                                                monkeypatch):
    custom = pa.struct([("field", pa.string()), ("value", pa.int64())])
    monkeypatch.setitem(TABLES, "tags", TABLES["tags"].append(pa.field("custom", custom)))
    with pytest.raises(TypeError, match="no Postgres type"):
        warehouse.load("tags", to_arrow("tags", [{"gid": "1", "custom": {"field": "risk", "value": 3}}]))
    assert query(server, "SELECT to_regclass($1) IS NULL", (f"{ident(schema)}.tags",)) == [(True,)]


def sections(*rows: tuple[str, str, str]) -> pa.Table:
    return to_arrow("sections", [{"gid": gid, "project_gid": project, "name": name} for gid, project, name in rows])


def test_a_commit_is_one_transaction_for_every_table_and_what_follows_them(warehouse, written, server, schema):
    documents = PostgresDocuments(URL, Table(schema, "_sync_state"))

    def state(tokens: dict):
        return lambda cur: documents.write(cur, "incremental_sync", {"tokens": tokens})

    before = tasks(task("1", "a"))
    warehouse.commit([("tasks", before)], then=state({"p": "t1"}))

    def tables():
        yield "tasks", tasks(task("1", "changed"), task("2", "new"))
        yield "users", to_arrow("users", [{"gid": "9", "name": "Nine"}])
        raise ConnectionError("the connection dropped before the stories were loaded")

    with pytest.raises(ConnectionError):
        warehouse.commit(tables(), then=state({"p": "t2"}))
    assert written.read("tasks") == before  # the merged tasks rolled back
    assert query(server, "SELECT to_regclass($1) IS NULL", (f"{ident(schema)}.users",)) == [(True,)]  # never created
    assert documents.load("incremental_sync") == {"tokens": {"p": "t1"}}

    loaded = warehouse.commit([("tasks", tasks(task("1", "changed"))), ("users", to_arrow("users", [{"gid": "9"}]))],
                               then=state({"p": "t2"}))
    assert [(s.table, counts(s)) for s in loaded] == [("tasks", (1, 0, 1, 0)), ("users", (1, 1, 0, 0))]
    assert documents.load("incremental_sync") == {"tokens": {"p": "t2"}}


def catalog(server, schema: str, table: str) -> dict:
    """What a table is besides its rows: columns in order with types, primary key, indexes, comments."""
    name = f"{ident(schema)}.{ident(table)}"
    return {
        "columns": query(server, "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute"
                                 " WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                         (name,)),
        "key": query(server, "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint"
                             " WHERE conrelid = to_regclass($1) AND contype = 'p'", (name,)),
        "indexes": query(server, "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2"
                                 " ORDER BY indexname", (schema, table)),
        "comments": query(server, "SELECT objsubid, description FROM pg_description"
                                  " WHERE objoid = to_regclass($1) ORDER BY objsubid", (name,)),
    }


def test_a_first_load_builds_the_same_table_new_or_empty(warehouse, server, schema, written):
    """A first load ingests straight into the table and builds its key and indexes after the rows:
    into a new table, or into an empty one (whose key and indexes it drops and builds again), the
    table ends up as `ensure` creates it, holding the rows."""
    data = {"tasks": tasks(task("2", "b", parent_gid="1", assignee_gid="u1"), task("1", "a"), task("3", "c", notes="x")),
            "sections": sections(("s1", "p1", "To do"), ("s2", "p1", "Done"))}
    empty, made = f"{schema}_empty", f"{schema}_made"
    try:
        with (PostgresWarehouse(URL, empty) as emptied, PostgresWarehouse(URL, made) as ensured,
              PostgresTables(URL, empty) as emptied_tables):
            for table, rows in data.items():
                assert counts(warehouse.load(table, rows)) == (rows.num_rows, rows.num_rows, 0, 0)  # new
                emptied.ensure(table)
                assert counts(emptied.load(table, rows)) == (rows.num_rows, rows.num_rows, 0, 0)  # empty
                ensured.ensure(table)
                assert written.read(table) == emptied_tables.read(table) == rows.sort_by("gid")
                expected = catalog(server, made, table)
                for loaded in (schema, empty):
                    found = catalog(server, loaded, table)
                    found["indexes"] = [(n, d.replace(f" {loaded}.", f" {made}.")) for n, d in found["indexes"]]
                    assert found == expected, (loaded, table)
        tasks_catalog = catalog(server, schema, "tasks")
    finally:
        for name in (empty, made):
            query(server, f"DROP SCHEMA IF EXISTS {ident(name)} CASCADE")
    # What `ensure` makes, as written by hand from the schema:
    assert tasks_catalog["key"] == [("tasks_pkey", "PRIMARY KEY (gid)")]
    assert [name for name, _ in tasks_catalog["indexes"]] == [
        "tasks_assignee_gid_idx", "tasks_parent_gid_idx", "tasks_pkey", "tasks_workspace_gid_idx",
    ]
    assert tasks_catalog["columns"][0] == ("gid", "text", True)
    assert tasks_catalog["columns"][-2:] == [(DELETED_AT, "timestamp with time zone", False), (ROW_HASH, "bytea", False)]
    assert tasks_catalog["comments"][0] == (
        0, "Every task, subtasks included (parent_gid), with assignee, completion and approval status. "
           "Current state, keyed by (gid); rows gone from the source are deleted.")
    assert len(tasks_catalog["comments"]) == 1 + len(TABLES["tasks"]) + 2  # the table, every column


def test_an_empty_table_another_table_references_keeps_its_key(warehouse, server, schema):
    warehouse.ensure("tasks")
    query(server, f"CREATE TABLE {ident(schema)}.notes (task_gid text REFERENCES {ident(schema)}.tasks (gid))")
    assert counts(warehouse.load("tasks", tasks(task("1", "a")))) == (1, 1, 0, 0)
    assert catalog(server, schema, "tasks")["key"] == [("tasks_pkey", "PRIMARY KEY (gid)")]
    query(server, f"INSERT INTO {ident(schema)}.notes VALUES ('1')")  # the reference holds


def test_a_first_load_with_a_null_key_fails_and_leaves_nothing(warehouse, server, schema):
    with pytest.raises(adbc.IntegrityError, match="null values"):
        warehouse.load("tasks", tasks(task("1", "a"), task(None, "no gid")))
    assert query(server, "SELECT to_regclass($1) IS NULL", (f"{ident(schema)}.tasks",)) == [(True,)]
    warehouse.ensure("tasks")
    with pytest.raises(adbc.IntegrityError, match="null value"):
        warehouse.load("tasks", tasks(task(None, "no gid")))
    assert catalog(server, schema, "tasks")["key"] == [("tasks_pkey", "PRIMARY KEY (gid)")]  # dropped, restored


def test_a_failed_commit_restores_an_empty_tables_key_and_indexes(warehouse, server, schema, written):
    warehouse.ensure("tasks")
    before = catalog(server, schema, "tasks")

    def tables():
        yield "tasks", tasks(task("1", "a"))
        raise ConnectionError("the connection dropped after the tasks were loaded")

    with pytest.raises(ConnectionError):
        warehouse.commit(tables())
    assert catalog(server, schema, "tasks") == before
    assert written.read("tasks").num_rows == 0


def test_a_reload_sends_exactly_the_rows_that_differ(warehouse, server, schema, written):
    """Each row below differs from its first version in one way a careless comparison could miss
    (null against empty text, an empty list against a list of one empty string or of one null,
    text moved between adjacent columns, a microsecond, a NUL); each must be updated, the others
    left alone (same row version)."""
    def ticket(gid: str, **fields) -> dict:
        return {"gid": gid, "name": "n", "description": "d", "tags": ["a"], "due_at": T0, "completed": False} | fields

    first = to_arrow("tickets", [
        ticket("1"), ticket("2", description=None), ticket("3", tags=[]), ticket("4", tags=[]), ticket("5"),
        ticket("6", name="ab", description=""), ticket("7"), ticket("8", name="x\x00y"), ticket("9"), ticket("10"),
    ])
    second = to_arrow("tickets", [
        ticket("1"),  # unchanged
        ticket("2", description=""),  # null -> empty text
        ticket("3", tags=[""]),  # [] -> [""]
        ticket("4", tags=[None]),  # [] -> [null]
        ticket("5", tags=None),  # ["a"] -> null
        ticket("6", name="a", description="b"),  # "ab","" -> "a","b"
        ticket("7", due_at=T0 + timedelta(microseconds=1)),
        ticket("8", name="x\x00z"),  # past the NUL
        ticket("9", completed=None),  # false -> null
        # 10 gone; 11 new
        ticket("11"),
    ])
    warehouse.load("tickets", first)
    versions = dict(query(server, f"SELECT gid, xmin::text FROM {ident(schema)}.tickets"))
    assert counts(warehouse.load("tickets", second)) == (10, 1, 8, 1)
    after = dict(query(server, f"SELECT gid, xmin::text FROM {ident(schema)}.tickets"))
    assert [gid for gid in after if after[gid] == versions.get(gid)] == ["1"]
    expected = second.to_pylist()
    expected[7]["name"] = "x\\0z"  # escaped in Postgres
    assert written.read("tickets").to_pylist() == sorted(expected, key=lambda row: row["gid"])
    assert counts(warehouse.load("tickets", second)) == (10, 0, 0, 0)


def test_rows_loaded_before_row_hashes_existed_are_hashed_by_the_next_load(warehouse, server, schema, written):
    data = tasks(task("1", "a"), task("2", "b"))
    warehouse.load("tasks", data)
    query(server, f"ALTER TABLE {ident(schema)}.tasks DROP COLUMN {ROW_HASH}")  # as an older release made it
    with PostgresWarehouse(URL, schema) as later:
        assert counts(later.load("tasks", data)) == (2, 0, 2, 0)  # the column added, every row hashed
        assert counts(later.load("tasks", data)) == (2, 0, 0, 0)
        assert written.read("tasks") == data


def test_row_hashes_tell_apart_every_difference_and_nothing_else():
    rows = [
        {"gid": "1", "name": None}, {"gid": "1", "name": ""}, {"gid": "1", "name": "\\0"}, {"gid": "1", "name": "0"},
        {"gid": "1", "name": "a", "notes": None}, {"gid": "1", "name": None, "notes": "a"},
        {"gid": "1", "name": "ab", "notes": ""}, {"gid": "1", "name": "a", "notes": "b"},
        {"gid": "1", "completed": False}, {"gid": "1", "completed": True}, {"gid": "1", "num_subtasks": 0},
        {"gid": "1", "created_at": T0}, {"gid": "1", "created_at": T0 + timedelta(microseconds=1)},
        {"gid": "1", "due_on": date(2025, 1, 1)}, {"gid": "1", "due_on": date(2025, 1, 2)},
    ]
    data = escape_nul(tasks(*rows))
    hashes = row_hashes(data).to_pylist()
    assert len(set(hashes)) == len(rows) and all(len(h) == 16 for h in hashes)
    assert row_hashes(pa.concat_tables([data, data])).to_pylist() == hashes * 2  # the same row, the same hash
    lists = to_arrow("tickets", [{"gid": "1", "tags": tags} for tags in (None, [], [""], [None], ["", ""], ["a"],
                                                                          ["a", None], [None, "a"], ["ab"], ["a", "b"])])
    assert len(set(row_hashes(lists).to_pylist())) == lists.num_rows


def test_rows_are_prepared_in_batches_with_the_same_result(warehouse, monkeypatch, written):
    """Rows go to Postgres in batches (slices of the table): every batch, lists and NULs
    included, is escaped and hashed as the whole table would be."""
    monkeypatch.setattr(postgres, "BATCH_ROWS", 3)
    rows = [{"gid": str(i), "name": f"t{i}\x00" if i % 4 == 0 else f"t{i}", "tags": [f"a{i}", None][: i % 3],
             "completed": i % 2 == 0} for i in range(10)]
    assert counts(warehouse.load("tickets", to_arrow("tickets", rows))) == (10, 10, 0, 0)
    rows[7]["tags"] = ["changed"]
    assert counts(warehouse.load("tickets", to_arrow("tickets", rows))) == (10, 0, 1, 0)
    stored = written.read("tickets").to_pylist()
    assert [row["tags"] for row in stored] == [[], ["a1"], ["a2", None], [], ["a4"], ["a5", None], [], ["changed"],
                                               ["a8", None], []]
    assert [row["name"] for row in stored][:5] == ["t0\\0", "t1", "t2", "t3", "t4\\0"]


def test_a_history_part_is_appended_whole_unless_its_run_is_there(warehouse, server, schema):
    """A new run's rows are copied straight in; a run already there (published again, or with
    rows it lacked) gains only the keys it lacks."""
    first = access(T0, "run-1", "u2", "u1")
    assert counts(warehouse.load("user_access", first)) == (2, 2, 0, 0)
    second = access(T0 + timedelta(days=1), "run-2", "u3", "u1", "u2")
    assert counts(warehouse.load("user_access", second)) == (3, 3, 0, 0)
    again = access(T0 + timedelta(days=1), "run-2", "u1", "u4")  # one key it has, one it lacks
    assert counts(warehouse.load("user_access", again)) == (2, 1, 0, 0)
    stored = query(server, f"SELECT run_id, user_gid FROM {ident(schema)}.user_access ORDER BY run_id, user_gid")
    assert stored == [("run-1", "u1"), ("run-1", "u2"), ("run-2", "u1"), ("run-2", "u2"), ("run-2", "u3"),
                      ("run-2", "u4")]
