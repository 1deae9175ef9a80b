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
from asana_assets.lib.storage.postgres import (
    DELETED_AT,
    LoadStats,
    PostgresWarehouse,
    SchemaConflictError,
    ident,
    libpq_url,
    pg_type,
)
from asana_assets_tests.support import POSTGRES_URL as URL

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


def test_pg_type_maps_arrow_types():
    assert pg_type(pa.int64()) == "bigint"
    assert pg_type(pa.timestamp("us")) == "jsonb"  # no time zone: not a timestamptz
    assert pg_type(pa.struct([("k", pa.string())])) == "jsonb"
    assert pg_type(pa.list_(pa.int32())) == "jsonb"
    assert all(pg_type(arrow) == postgres for arrow, postgres in PG_TYPES.items())


def test_libpq_url_accepts_sqlalchemy_spelling():
    assert libpq_url("postgresql+psycopg2://u@h:5432/d") == "postgresql://u@h:5432/d"
    assert libpq_url("postgresql://u@h/d") == "postgresql://u@h/d"


def test_ddl_types_keys_indexes_and_comments(warehouse, server, schema):
    for table in TABLES:
        warehouse.ensure(table)
        expected = {field.name: PG_TYPES[field.type] for field in TABLES[table]}
        if table not in ("quarantine", "user_access", "monitor_results"):
            expected[DELETED_AT] = "timestamp with time zone"
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
    assert table_comment.startswith("Current state, keyed by (gid)")
    assert column_comment == "First project of the task's memberships"  # a quote, safely quoted


def test_first_load_equals_the_data(warehouse):
    data = tasks(task("3", "c"), task("1", "a", notes="x"), task("2", "b", num_subtasks=4))
    stats = warehouse.load("tasks", data)
    assert counts(stats) == (3, 3, 0, 0) and stats.seconds > 0
    assert warehouse.read("tasks") == data.sort_by("gid")


def test_reload_updates_inserts_and_deletes(warehouse):
    warehouse.load("tasks", tasks(task("1", "a"), task("2", "b"), task("3", "c")))
    changed = tasks(task("1", "a"), task("2", "b, renamed", completed=True), task("4", "d"))
    assert counts(warehouse.load("tasks", changed)) == (3, 1, 1, 1)
    assert warehouse.read("tasks") == changed


def test_reloading_the_same_data_rewrites_nothing(warehouse, server, schema):
    data = tasks(task("1", "a"), task("2", "b", due_on=date(2025, 4, 1)))
    warehouse.load("tasks", data)
    versions = query(server, f"SELECT gid, xmin::text FROM {ident(schema)}.tasks ORDER BY gid")
    assert counts(warehouse.load("tasks", data)) == (2, 0, 0, 0)
    assert query(server, f"SELECT gid, xmin::text FROM {ident(schema)}.tasks ORDER BY gid") == versions
    assert warehouse.read("tasks") == data


def test_duplicate_keys_keep_the_last_row(warehouse):
    stats = warehouse.load("tasks", tasks(task("1", "first"), task("2", "b"), task("1", "last")))
    assert counts(stats) == (2, 2, 0, 0)
    assert warehouse.read("tasks")["name"].to_pylist() == ["last", "b"]


def access(snapshot_at: datetime, run_id: str, *users: str) -> pa.Table:
    return to_arrow("user_access", [
        {"snapshot_at": snapshot_at, "run_id": run_id, "user_gid": user, "user_is_active": True,
         "resource_type": "workspace", "resource_gid": "1", "role": "member"}
        for user in users
    ])


def test_history_appends_and_a_retried_run_adds_nothing(warehouse):
    first, second = access(T0, "run-1", "u1", "u2"), access(T0 + timedelta(days=1), "run-2", "u1")
    assert counts(warehouse.load("user_access", first)) == (2, 2, 0, 0)
    assert counts(warehouse.load("user_access", second)) == (1, 1, 0, 0)
    assert counts(warehouse.load("user_access", second)) == (1, 0, 0, 0)
    assert warehouse.read("user_access") == pa.concat_tables([first, second])
    with pytest.raises(ValueError, match="current-state"):
        warehouse.load("user_access", second, deleted_at=T0)


def test_quarantine_is_replaced(warehouse):
    first = to_arrow("quarantine", [{"table": "tasks", "gid": "1", "error": "bad"}, {"table": "users"}])
    second = to_arrow("quarantine", [{"table": "stories", "gid": "9", "raw": "{}", "observed_at": T0}])
    warehouse.load("quarantine", first)
    assert counts(warehouse.load("quarantine", second)) == (1, 1, 0, 2)
    assert warehouse.read("quarantine") == second


def test_schema_evolution_adds_columns_and_refuses_type_changes(warehouse, server, schema, monkeypatch):
    warehouse.load("tasks", tasks(task("1", "a")))
    tasks_schema = TABLES["tasks"]
    monkeypatch.setitem(TABLES, "tasks", tasks_schema.append(pa.field("html_notes", pa.string())))
    warehouse.ensure("tasks")
    assert catalog_types(server, schema, "tasks")["html_notes"] == "text"
    assert warehouse.read("tasks").to_pylist() == [dict(tasks(task("1", "a")).to_pylist()[0], html_notes=None)]

    monkeypatch.setitem(TABLES, "tasks", tasks_schema.remove(tasks_schema.get_field_index("notes")))
    warehouse.ensure("tasks")
    assert "notes" in catalog_types(server, schema, "tasks")  # never dropped

    retyped = tasks_schema.set(tasks_schema.get_field_index("num_subtasks"), pa.field("num_subtasks", pa.string()))
    monkeypatch.setitem(TABLES, "tasks", retyped)
    with pytest.raises(SchemaConflictError, match=rf"{schema}\.tasks: num_subtasks is integer .* needs text"):
        warehouse.ensure("tasks")


def test_a_failed_load_leaves_the_previous_contents(warehouse, monkeypatch):
    before = tasks(task("1", "a"), task("2", "b"))
    warehouse.load("tasks", before)

    def fail(*args):
        raise RuntimeError("injected between the upsert and the delete")

    with monkeypatch.context() as patch:
        patch.setattr(PostgresWarehouse, "_remove_absent", fail)
        with pytest.raises(RuntimeError, match="injected"):
            warehouse.load("tasks", tasks(task("1", "changed"), task("3", "new")))
    assert warehouse.read("tasks") == before

    with pytest.raises(adbc.IntegrityError, match="null value"):  # a key-less row violates the primary key
        warehouse.load("tasks", tasks(task("1", "changed"), task(None, "no gid")))
    assert warehouse.read("tasks") == before

    assert counts(warehouse.load("tasks", tasks(task("1", "a")))) == (1, 0, 0, 1)  # the connection recovers


def test_readers_see_the_previous_contents_until_the_commit(warehouse, server, schema, monkeypatch):
    warehouse.load("tasks", tasks(task("1", "a")))
    seen = []
    remove_absent = PostgresWarehouse._remove_absent

    def spy(self, *args):
        seen.append(query(server, f"SELECT gid, name FROM {ident(schema)}.tasks ORDER BY gid"))
        return remove_absent(self, *args)

    monkeypatch.setattr(PostgresWarehouse, "_remove_absent", spy)
    warehouse.load("tasks", tasks(task("1", "b"), task("2", "c")))
    assert seen == [[("1", "a")]]  # mid-load, after the upsert
    assert warehouse.read("tasks")["name"].to_pylist() == ["b", "c"]


def test_nulls_lists_timestamps_and_dates_round_trip(warehouse):
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
        assert warehouse.read(table) == data


def test_columns_without_a_closer_type_round_trip_as_jsonb(warehouse, server, schema, monkeypatch):
    custom = pa.struct([("field", pa.string()), ("value", pa.int64())])
    tags = TABLES["tags"].append(pa.field("custom", custom)).append(pa.field("count", pa.int64()))
    monkeypatch.setitem(TABLES, "tags", tags)
    data = to_arrow("tags", [{"gid": "1", "custom": {"field": "risk", "value": 3}, "count": 2**40}, {"gid": "2"}])
    warehouse.load("tags", data)
    assert {"custom": "jsonb", "count": "bigint"}.items() <= catalog_types(server, schema, "tags").items()
    assert warehouse.read("tags") == data


def sections(*rows: tuple[str, str, str]) -> pa.Table:
    return to_arrow("sections", [{"gid": gid, "project_gid": project, "name": name} for gid, project, name in rows])


def test_a_scoped_load_deletes_only_within_its_scope(warehouse):
    before = sections(("a", "p1", "To do"), ("b", "p1", "Done"), ("c", "p2", "To do"), ("d", "p3", "x"))
    warehouse.load("sections", before)
    synced = sections(("a", "p1", "Backlog"), ("c", "p2", "To do"))
    stats = warehouse.load("sections", synced, scope=("project_gid", ["p1", "p2"]))
    assert counts(stats) == (2, 0, 1, 1)  # b deleted; d, outside the scope, kept
    assert warehouse.read("sections") == sections(("a", "p1", "Backlog"), ("c", "p2", "To do"), ("d", "p3", "x"))
    assert counts(warehouse.load("sections", sections(), scope=("project_gid", []))) == (0, 0, 0, 0)


def test_a_soft_delete_stamps_absent_rows_and_unstamps_returning_ones(warehouse, server, schema):
    warehouse.load("sections", sections(("a", "p1", "To do"), ("b", "p1", "Done")))
    assert counts(warehouse.load("sections", sections(("a", "p1", "To do")), deleted_at=T0)) == (1, 0, 0, 1)
    stamped = f"SELECT gid, {DELETED_AT} FROM {ident(schema)}.sections ORDER BY gid"
    assert query(server, stamped) == [("a", None), ("b", T0)]
    assert warehouse.read("sections") == sections(("a", "p1", "To do"))
    assert counts(warehouse.load("sections", sections(("a", "p1", "To do")), deleted_at=T0)) == (1, 0, 0, 0)

    both = sections(("a", "p1", "To do"), ("b", "p1", "Done"))
    assert counts(warehouse.load("sections", both, deleted_at=T0)) == (2, 0, 1, 0)
    assert query(server, stamped) == [("a", None), ("b", None)]


def test_a_publish_is_one_transaction_for_every_table_and_the_state(warehouse, server, schema):
    before = tasks(task("1", "a"))
    warehouse.publish([("tasks", before)], state=("incremental_sync", {"tokens": {"p": "t1"}}))

    def tables():
        yield "tasks", tasks(task("1", "changed"), task("2", "new"))
        yield "users", to_arrow("users", [{"gid": "9", "name": "Nine"}])
        raise ConnectionError("the connection dropped before the stories were loaded")

    with pytest.raises(ConnectionError):
        warehouse.publish(tables(), state=("incremental_sync", {"tokens": {"p": "t2"}}))
    assert warehouse.read("tasks") == before  # the merged tasks rolled back
    assert query(server, "SELECT to_regclass($1) IS NULL", (f"{ident(schema)}.users",)) == [(True,)]  # never created
    assert warehouse.load_state("incremental_sync") == {"tokens": {"p": "t1"}}

    loaded = warehouse.publish([("tasks", tasks(task("1", "changed"))), ("users", to_arrow("users", [{"gid": "9"}]))],
                               state=("incremental_sync", {"tokens": {"p": "t2"}}))
    assert [(s.table, counts(s)) for s in loaded] == [("tasks", (1, 0, 1, 0)), ("users", (1, 1, 0, 0))]
    assert warehouse.load_state("incremental_sync") == {"tokens": {"p": "t2"}}
