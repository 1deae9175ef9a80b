"""Postgres warehouse: the tables of ``tables.py`` as typed Postgres tables, loaded fast and idempotently.

A load copies the Arrow table into a temporary staging table with ADBC (Arrow-native binary
COPY, the fastest way measured) and merges it into the target in the same transaction, so a
reader sees the previous contents or the new ones, never half a load:

- a current-state table is upserted on its primary key (unchanged rows are not rewritten) and
  loses the rows whose key the batch lacks: deleted, or stamped ``_deleted_at`` by a soft
  delete, optionally only within a scope such as the projects an incremental sync read;
- a history table gains the rows whose key is new, so a retried run appends nothing twice;
- the quarantine, which has no key, is replaced whole.

The DDL follows the Arrow schemas: a column the schema gains is added, none is ever dropped,
and a column whose type no longer matches is refused rather than converted.

Text Postgres cannot hold (a NUL character) is written escaped: see ``text.py``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pyarrow as pa

from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.schema import FOREIGN_KEYS, HISTORY_TABLES, TABLES, describe, primary_key
from asana_assets.lib.storage.text import escape_nul

DELETED_AT = "_deleted_at"
TIMESTAMPTZ = "timestamp with time zone"
# Indexed besides the foreign keys of schema.FOREIGN_KEYS: the columns analysts join derived tables on.
JOIN_COLUMNS = ("ticket_gid", "user_gid", "run_id")
# Names as Postgres's format_type() spells them, so existing columns compare as plain strings.
SCALAR_TYPES = {
    pa.string(): "text",
    pa.large_string(): "text",
    pa.bool_(): "boolean",
    pa.date32(): "date",
    pa.int32(): "integer",
    pa.int64(): "bigint",
    pa.float64(): "double precision",
}
STAGE = "_asana_stage"
STATE_TABLE = "_sync_state"
TEMP_BUFFERS = "256MB"  # a ceiling, allocated only as the staging table grows


class SchemaConflictError(RuntimeError):
    """A column exists in Postgres with another type than its Arrow schema asks for."""


@dataclass(frozen=True)
class LoadStats:
    table: str
    staged: int  # rows in the batch after de-duplication on the key
    inserted: int
    updated: int
    deleted: int  # removed, or stamped _deleted_at by a soft delete
    seconds: float  # the whole load but its DDL


def ident(name: str) -> str:
    """A quoted identifier, as psycopg's ``sql.Identifier`` renders it."""
    return '"' + name.replace('"', '""') + '"'


STAGED = f"pg_temp.{ident(STAGE)}"


def pg_type(type_: pa.DataType) -> str:
    """The Postgres type of an Arrow type; jsonb holds whatever has no closer match."""
    if pa.types.is_timestamp(type_) and type_.tz is not None:
        return TIMESTAMPTZ
    if pa.types.is_list(type_) and pa.types.is_string(type_.value_type):
        return "text[]"
    return SCALAR_TYPES.get(type_, "jsonb")


def is_current(table: str) -> bool:
    """A current-state table: keyed, and mirroring the source rather than accumulating runs."""
    return table not in HISTORY_TABLES and bool(primary_key(table))


def columns(table: str) -> dict[str, str]:
    """Every column of the Postgres table with its type, bookkeeping columns included."""
    types = {field.name: pg_type(field.type) for field in TABLES[table]}
    if is_current(table):
        types[DELETED_AT] = TIMESTAMPTZ
    return types


def index_columns(table: str) -> list[str]:
    """Columns worth an index: foreign and join gids, less the key's first column (its index covers it)."""
    names = TABLES[table].names
    wanted = [column for column, _ in FOREIGN_KEYS.get(table, ())] + [c for c in JOIN_COLUMNS if c in names]
    return [column for column in dict.fromkeys(wanted) if primary_key(table)[:1] != (column,)]


def table_comment(table: str) -> str:
    key = ", ".join(primary_key(table))
    if table in HISTORY_TABLES:
        return f"History, appended per run; key ({key})."
    if not key:
        return "Replaced whole by each load; no key."
    return f"Current state, keyed by ({key}); rows gone from the source are deleted, or stamped {DELETED_AT}."


def column_comments(table: str) -> dict[str, str]:
    schema = TABLES[table]
    comments = {name: describe(schema, name) for name in schema.names}
    if is_current(table):
        comments[DELETED_AT] = "When a soft delete found the row gone from the source; null while it exists"
    return comments


def conform(table: str, data: pa.Table) -> pa.Table:
    """The data in its table's column order and types (a missing column is an error)."""
    schema = TABLES[table]
    return data.select(schema.names).cast(schema)


def last_per_key(data: pa.Table, key: Sequence[str]) -> pa.Table:
    """The last row of each key: ON CONFLICT DO UPDATE refuses to touch a row twice in one statement."""
    if not key:
        return data
    positions = data.select(list(key)).append_column("position", pa.array(np.arange(data.num_rows)))
    last = positions.group_by(list(key), use_threads=False).aggregate([("position", "max")])
    if last.num_rows == data.num_rows:
        return data
    return data.take(last["position_max"].sort())


def to_json_text(data: pa.Table) -> pa.Table:
    """jsonb columns as JSON text: the staging table holds text, cast to jsonb by the merge."""
    for i, field in enumerate(data.schema):
        if pg_type(field.type) == "jsonb":
            text = [None if value is None else json.dumps(value, default=str) for value in data[i].to_pylist()]
            data = data.set_column(i, pa.field(field.name, pa.string()), pa.array(text, pa.string()))
    return data


def from_json_text(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """The inverse of ``to_json_text``, then the schema's types."""
    for i, field in enumerate(schema):
        if pg_type(field.type) == "jsonb":
            values = [None if text is None else json.loads(text) for text in data[i].to_pylist()]
            data = data.set_column(i, field, pa.array(values, field.type))
    return data.cast(schema)


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy's ``postgresql+psycopg2://`` spelling (dagster.yaml's) as well as libpq's."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def bind(**values: tuple[object, pa.DataType]) -> pa.RecordBatch:
    """Bind parameters ($1, $2, ... in order) with explicit types, so an empty list still has one."""
    return pa.record_batch({name: pa.array([value], type_) for name, (value, type_) in values.items()})


class PostgresWarehouse:
    """One connection to a Postgres schema holding the warehouse tables."""

    def __init__(self, url: str, schema: str = "asana"):
        self.schema = schema
        self._connection = adbc.connect(libpq_url(url))
        with self._transaction() as cur:
            # Staging tables are temporary, held in the session's own buffers: with the default 8MB
            # a large batch spills and its merge runs 1.6x slower. Only settable before their first use.
            cur.execute("SELECT set_config('temp_buffers', $1, false)", parameters=(TEMP_BUFFERS,))
        self._ensured: set[str] = set()

    def __enter__(self) -> PostgresWarehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def name(self, table: str) -> str:
        """The table's schema-qualified, quoted name, for SQL."""
        return f"{ident(self.schema)}.{ident(table)}"

    @contextmanager
    def _transaction(self) -> Iterator[adbc.Cursor]:
        """A cursor whose statements commit together, or roll back together on any error.

        Reads go through it too: an idle open transaction would hold locks against DDL.
        """
        cursor = self._connection.cursor()
        try:
            yield cursor
            self._connection.commit()
        except BaseException:
            self._connection.rollback()
            self._ensured.clear()  # DDL rolls back too
            raise
        finally:
            cursor.close()

    def ensure(self, table: str) -> None:
        """Create the schema and the table, or add the columns its Arrow schema gained since."""
        self._ensured.discard(table)
        with self._transaction() as cur:
            self._ensure(cur, table)

    def _ensure(self, cur: adbc.Cursor, table: str) -> None:
        if table in self._ensured:
            return
        wanted = columns(table)
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(self.schema)}")
        existing = self._existing_columns(cur, table)
        self._check_types(table, wanted, existing)
        if existing:
            for column in (c for c in wanted if c not in existing):
                cur.execute(
                    f"ALTER TABLE {self.name(table)} ADD COLUMN IF NOT EXISTS {ident(column)} {wanted[column]}"
                )
        else:
            cur.execute(self._create_sql(table, wanted))
        for column in index_columns(table):
            # Partial: a null never joins, and many of these gids are mostly null (parent_gid).
            cur.execute(
                f"CREATE INDEX IF NOT EXISTS {ident(f'{table}_{column}_idx')} ON {self.name(table)}"
                f" ({ident(column)}) WHERE {ident(column)} IS NOT NULL"
            )
        self._comment(cur, table)
        self._ensured.add(table)

    def _existing_columns(self, cur: adbc.Cursor, table: str) -> dict[str, str]:
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            parameters=(self.schema, table),
        )
        return dict(cur.fetchall())

    def _check_types(self, table: str, wanted: dict[str, str], existing: dict[str, str]) -> None:
        conflicts = [
            f"{column} is {existing[column]} but the Arrow schema needs {type_}"
            for column, type_ in wanted.items()
            if existing.get(column, type_) != type_
        ]
        if conflicts:
            raise SchemaConflictError(
                f"{self.schema}.{table}: {'; '.join(conflicts)}. Columns are never converted or dropped"
                " automatically: migrate them by hand."
            )

    def _create_sql(self, table: str, wanted: dict[str, str]) -> str:
        definitions = [f"{ident(column)} {type_}" for column, type_ in wanted.items()]
        if key := primary_key(table):
            definitions.append(f"PRIMARY KEY ({', '.join(map(ident, key))})")
        return f"CREATE TABLE IF NOT EXISTS {self.name(table)} ({', '.join(definitions)})"

    def _comment(self, cur: adbc.Cursor, table: str) -> None:
        """COMMENT ON takes no bind parameters, so the server's format(%L) quotes the descriptions."""
        comments = column_comments(table)
        cur.execute(
            "SELECT format('COMMENT ON TABLE %I.%I IS %L', $1::text, $2::text, $3::text) UNION ALL"
            " SELECT format('COMMENT ON COLUMN %I.%I.%I IS %L', $1::text, $2::text, c, d)"
            " FROM unnest($4::text[], $5::text[]) AS x(c, d)",
            parameters=(self.schema, table, table_comment(table), list(comments), list(comments.values())),
        )
        for (statement,) in cur.fetchall():
            cur.execute(statement)

    def load(
        self,
        table: str,
        data: pa.Table,
        *,
        deleted_at: datetime | None = None,
        scope: tuple[str, Sequence[object]] | None = None,
    ) -> LoadStats:
        """Merge ``data`` into ``table`` in one transaction (see the module docstring).

        For a current-state table, ``deleted_at`` turns the deletion of absent rows into a soft
        delete stamping that time (a row that comes back is un-stamped), and ``scope`` =
        ``(column, values)`` limits it to the rows whose column holds one of the values, so an
        incremental sync of some projects leaves the others' rows alone.
        """
        if not is_current(table) and (deleted_at is not None or scope is not None):
            raise ValueError(f"{table} never deletes absent rows: deleted_at and scope are for current-state tables")
        with self._transaction() as cur:
            return self._load(cur, table, data, deleted_at, scope)

    def publish(self, tables: Iterable[tuple[str, pa.Table]], state: tuple[str, dict] | None = None) -> list[LoadStats]:
        """Merge every table, and save the named ``state`` document, in ONE transaction: readers
        see all of the run's tables or none of them, and a failure anywhere (a dropped
        connection, a kill) leaves the previous contents whole, new tables not created."""
        with self._transaction() as cur:
            loaded = [self._load(cur, table, data, None, None) for table, data in tables]
            if state is not None:
                self._save_state(cur, *state)
        return loaded

    def _load(self, cur: adbc.Cursor, table: str, data: pa.Table, deleted_at: datetime | None,
              scope: tuple[str, Sequence[object]] | None) -> LoadStats:
        self._ensure(cur, table)
        started = time.perf_counter()
        batch = last_per_key(conform(table, data), primary_key(table))
        cur.adbc_ingest(STAGE, to_json_text(escape_nul(batch)), mode="create", temporary=True)
        cur.execute(f"ANALYZE {STAGED}")  # temporary tables are never auto-analyzed
        if table in HISTORY_TABLES:
            inserted, updated = self._insert(cur, table, f"ON CONFLICT ({self._key(table)}) DO NOTHING")
            deleted = 0
        elif is_current(table):
            inserted, updated = self._insert(cur, table, self._upsert_clause(table))
            deleted = self._remove_absent(cur, table, deleted_at, scope)
        else:
            # DELETE rather than TRUNCATE: readers keep seeing the old rows until the commit.
            deleted = self._count(cur, f"DELETE FROM {self.name(table)}")
            inserted, updated = self._insert(cur, table, "")
        cur.execute(f"DROP TABLE {STAGED}")
        return LoadStats(table, batch.num_rows, inserted, updated, deleted, time.perf_counter() - started)

    def _key(self, table: str) -> str:
        return ", ".join(map(ident, primary_key(table)))

    def _insert(self, cur: adbc.Cursor, table: str, on_conflict: str) -> tuple[int, int]:
        """Insert the staged rows; (inserted, updated), told apart by xmax, 0 on a fresh row."""
        names = ", ".join(map(ident, TABLES[table].names))
        casts = ", ".join(f"CAST(s.{ident(field.name)} AS {pg_type(field.type)})" for field in TABLES[table])
        cur.execute(
            f"WITH merged AS (INSERT INTO {self.name(table)} AS t ({names}) SELECT {casts} FROM {STAGED} s"
            f" {on_conflict} RETURNING xmax = 0 AS fresh)"
            " SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) FROM merged"
        )
        inserted, updated = cur.fetchone()
        return inserted, updated

    def _upsert_clause(self, table: str) -> str:
        """Update a conflicting row only when it differs (or was soft-deleted): no rewrite, no bloat."""
        changing = [name for name in TABLES[table].names if name not in primary_key(table)]
        assignments = [f"{ident(name)} = EXCLUDED.{ident(name)}" for name in changing] + [f"{ident(DELETED_AT)} = NULL"]
        differs = f"t.{ident(DELETED_AT)} IS NOT NULL"
        if changing:
            old = ", ".join(f"t.{ident(name)}" for name in changing)
            new = ", ".join(f"EXCLUDED.{ident(name)}" for name in changing)
            differs = f"ROW({old}) IS DISTINCT FROM ROW({new}) OR {differs}"
        return f"ON CONFLICT ({self._key(table)}) DO UPDATE SET {', '.join(assignments)} WHERE {differs}"

    def _remove_absent(
        self, cur: adbc.Cursor, table: str, deleted_at: datetime | None, scope: tuple[str, Sequence[object]] | None
    ) -> int:
        """Delete, or stamp ``deleted_at`` on, the rows (within scope) whose key was not staged."""
        same_key = " AND ".join(f"s.{ident(c)} = t.{ident(c)}" for c in primary_key(table))
        conditions = [f"NOT EXISTS (SELECT FROM {STAGED} s WHERE {same_key})"]
        bound: dict[str, tuple[object, pa.DataType]] = {}
        if scope is not None:
            column, values = scope
            bound["scope"] = (list(values), pa.list_(TABLES[table].field(column).type))
            conditions.append(f"t.{ident(column)} = ANY(${len(bound)})")
        if deleted_at is None:
            statement = f"DELETE FROM {self.name(table)} AS t"
        else:
            bound["deleted_at"] = (deleted_at, pa.timestamp("us", tz="UTC"))
            statement = f"UPDATE {self.name(table)} AS t SET {ident(DELETED_AT)} = ${len(bound)}"
            conditions.append(f"t.{ident(DELETED_AT)} IS NULL")
        return self._count(cur, f"{statement} WHERE {' AND '.join(conditions)}", bind(**bound) if bound else None)

    @staticmethod
    def _count(cur: adbc.Cursor, statement: str, bound: pa.RecordBatch | None = None) -> int:
        """Rows a DELETE or UPDATE touched (the driver's rowcount is -1 once parameters are bound)."""
        cur.execute(f"WITH touched AS ({statement} RETURNING 1) SELECT count(*) FROM touched", parameters=bound)
        return cur.fetchone()[0]

    def load_state(self, name: str) -> dict | None:
        """A named JSON document kept beside the tables (the incremental sync's tokens)."""
        with self._transaction() as cur:
            self._ensure_state(cur)
            cur.execute(f"SELECT state::text FROM {self.name(STATE_TABLE)} WHERE name = $1", parameters=(name,))
            row = cur.fetchone()
        return json.loads(row[0]) if row else None

    def save_state(self, name: str, state: dict) -> None:
        with self._transaction() as cur:
            self._save_state(cur, name, state)

    def _save_state(self, cur: adbc.Cursor, name: str, state: dict) -> None:
        self._ensure_state(cur)
        cur.execute(
            f"INSERT INTO {self.name(STATE_TABLE)} (name, state, updated_at) VALUES ($1, $2::jsonb, now()) "
            "ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
            parameters=(name, json.dumps(state)),
        )

    def _ensure_state(self, cur: adbc.Cursor) -> None:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(self.schema)}")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self.name(STATE_TABLE)} "
            "(name text PRIMARY KEY, state jsonb NOT NULL, updated_at timestamptz NOT NULL)"
        )

    def read(self, table: str) -> pa.Table:
        """The table typed by its Arrow schema: rows not soft-deleted, in key order."""
        schema = TABLES[table]
        selected = ", ".join(
            f"{ident(field.name)}::text" if pg_type(field.type) == "jsonb" else ident(field.name) for field in schema
        )
        where = f" WHERE {ident(DELETED_AT)} IS NULL" if is_current(table) else ""
        order = f" ORDER BY {self._key(table)}" if primary_key(table) else ""
        with self._transaction() as cur:
            cur.execute(f"SELECT {selected} FROM {self.name(table)}{where}{order}")
            result = cur.fetch_arrow_table()
        return from_json_text(result, schema)


class PostgresStateStore:
    """The sync state in the warehouse's Postgres schema, beside the tables it describes, for
    deployments whose runs do not share a disk."""

    NAME = "incremental_sync"

    def __init__(self, url: str, schema: str):
        self.url, self.schema = url, schema

    def load(self) -> SyncState:
        with PostgresWarehouse(self.url, self.schema) as postgres:
            return SyncState(**(postgres.load_state(self.NAME) or {}))

    def save(self, state: SyncState) -> None:
        with PostgresWarehouse(self.url, self.schema) as postgres:
            postgres.save_state(self.NAME, state.__dict__)


class PostgresRecordStorage:
    """Connection records (JSON documents, their tokens still Fernet-encrypted) in a Postgres
    table, one row per connection, for deployments whose machines share no disk. Saved in one
    transaction.

    The table is ``connections`` in a schema of its own, ``asana_connections``: apart from the
    warehouse's tables and whoever is granted them. A store kept in ``asana.connections`` by
    earlier versions is moved there, whole, the first time the store is opened."""

    SCHEMA = "asana_connections"
    EARLIER = "asana"  # where earlier versions kept the table

    def __init__(self, url: str, schema: str | None = None) -> None:
        self._schema_name = schema or self.SCHEMA
        self.url, self.schema = libpq_url(url), ident(self._schema_name)
        self.table = f"{self.schema}.{ident('connections')}"

    def _connect(self):
        connection = adbc.connect(self.url)
        with connection.cursor() as cur:
            # One process at a time sets the store up (a key apart from `locked`'s, which a
            # process may hold while it opens this connection).
            cur.execute("SELECT pg_advisory_xact_lock(hashtext($1))", (f"{self.table} setup",))
            cur.fetchall()
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            if self._schema_name == self.SCHEMA:
                earlier = f"{ident(self.EARLIER)}.{ident('connections')}"
                cur.execute("SELECT to_regclass($1) IS NULL AND to_regclass($2) IS NOT NULL", (self.table, earlier))
                if cur.fetchone()[0]:
                    cur.execute(f"ALTER TABLE {earlier} SET SCHEMA {self.schema}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id text PRIMARY KEY, record jsonb NOT NULL)")
        connection.commit()
        return connection

    def load(self) -> dict[str, dict]:
        with self._connect() as connection, connection.cursor() as cur:
            cur.execute(f"SELECT id, record::text FROM {self.table}")
            return {cid: json.loads(record) for cid, record in cur.fetchall()}

    def save(self, records: dict[str, dict]) -> None:
        with self._connect() as connection, connection.cursor() as cur:
            cur.execute(f"DELETE FROM {self.table}")
            for cid, record in records.items():
                cur.execute(f"INSERT INTO {self.table} VALUES ($1, $2::jsonb)", (cid, json.dumps(record)))
            connection.commit()

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._connect() as connection, connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtext($1))", (self.table,))
            cur.fetchall()
            try:
                yield
            finally:
                cur.execute("SELECT pg_advisory_unlock(hashtext($1))", (self.table,))
                cur.fetchall()
