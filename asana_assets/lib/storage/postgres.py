"""Postgres warehouse: the tables of ``schema.py`` as typed Postgres tables, loaded fast and idempotently.

Every load runs in one transaction (a commit: every table of a run, and whatever the caller
writes with them, in one), so a reader sees the previous contents or the new ones, never half a
load; other writers of its tables wait for it. Rows travel by ADBC (Arrow-native binary COPY,
the fastest way measured), prepared (escaped, hashed) by a thread while the previous batch is
sent:

- into a new or empty table, straight into the table, its primary key and indexes built after
  its rows in the same transaction (once costs less than row by row; an empty table's are
  dropped first, unless another table's foreign key depends on its key);
- into a current-state table holding rows, only the rows that changed: each row carries a
  128-bit hash of its columns (``_row_hash``), the load reads the table's keys and hashes, and
  stages the rows whose hash differs or is new; they are upserted on the primary key (a row is
  rewritten only when it differs), and the rows whose key the batch lacks are deleted;
- into a history table, a new run's rows straight in; the rows of a run it already holds (a
  retried commit) only for the keys it lacks, so nothing is appended twice;
- the quarantine, which has no key, is replaced whole.

The DDL follows the Arrow schemas: a column the schema gains is added, none is ever dropped,
and a column whose type no longer matches is refused rather than converted. A current-state
table also has a ``_deleted_at`` column, always null, which the views and readers filter on.

Text Postgres cannot hold (a NUL character) is written escaped: see ``text.py``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.lib.schema import FOREIGN_KEYS, HISTORY_TABLES, REGISTRY, TABLES, describe, primary_key
from asana_assets.lib.storage.sql import ident, libpq_url
from asana_assets.lib.storage.text import escape_nul

DELETED_AT = "_deleted_at"
ROW_HASH = "_row_hash"
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
    pa.binary(): "bytea",
}
STAGE = "_asana_stage"
GONE = "_asana_gone"
TEMP_BUFFERS = "256MB"  # a ceiling, allocated only as the staging table grows
# Sorts for the primary key and indexes of a first load: with the default 64MB a large table's
# key spills to disk. Set for the publication's transaction only.
MAINTENANCE_WORK_MEM = "256MB"
# Two SipHash-2-4 keys (16 bytes each): two 64-bit hashes of a row make its 128-bit _row_hash.
HASH_KEYS = ("asana-assets-r01", "asana-assets-r02")
# Row encoding for the hash. Escaped text holds no NUL, so these marks cannot occur in a value:
# fields are separated by FIELD, a null field is NULL; a list is its length, LENGTH, then its
# items separated by ITEM (a null item is NULL). No two rows share an encoding.
FIELD, NULL, ITEM, LENGTH = "\x00\x00", "\x00\x01", "\x00\x02", "\x00\x03"
# Rows prepared (escaped, hashed) at a time, by a thread of their own while the previous ones are
# sent: bounds the preparation's memory and lets the client and the server work side by side.
BATCH_ROWS = 32_768
PREPARING_THREADS = 2


class SchemaConflictError(RuntimeError):
    """A column exists in Postgres with another type than its Arrow schema asks for."""


@dataclass(frozen=True)
class LoadStats:
    table: str
    staged: int  # rows in the batch after de-duplication on the key
    inserted: int
    updated: int
    deleted: int  # rows whose key the batch lacks, removed
    seconds: float  # the whole load, a new table's key and indexes included


STAGED = f"pg_temp.{ident(STAGE)}"


def pg_type(type_: pa.DataType) -> str:
    """The Postgres type of an Arrow type of the tables' schemas (any other is refused)."""
    if pa.types.is_timestamp(type_) and type_.tz is not None:
        return TIMESTAMPTZ
    if pa.types.is_list(type_) and pa.types.is_string(type_.value_type):
        return "text[]"
    if type_ not in SCALAR_TYPES:
        raise TypeError(f"no Postgres type for the Arrow type {type_} (a timestamp needs a time zone)")
    return SCALAR_TYPES[type_]


def is_current(table: str) -> bool:
    """A current-state table: keyed, and mirroring the source rather than accumulating runs."""
    return table not in HISTORY_TABLES and bool(primary_key(table))


def loaded_columns(table: str) -> list[str]:
    """The columns a load writes: the schema's, and a current-state table's row hash."""
    return [*TABLES[table].names, *([ROW_HASH] if is_current(table) else [])]


def columns(table: str) -> dict[str, str]:
    """Every column of the Postgres table with its type, bookkeeping columns included."""
    types = {field.name: pg_type(field.type) for field in TABLES[table]}
    if is_current(table):
        types[DELETED_AT] = TIMESTAMPTZ
        types[ROW_HASH] = "bytea"
    return types


def index_columns(table: str) -> list[str]:
    """Columns worth an index: foreign and join gids, less the key's first column (its index covers it)."""
    names = TABLES[table].names
    wanted = [column for column, _ in FOREIGN_KEYS.get(table, ())] + [c for c in JOIN_COLUMNS if c in names]
    return [column for column in dict.fromkeys(wanted) if primary_key(table)[:1] != (column,)]


def table_comment(table: str) -> str:
    """The table's description (its record's), then how it is kept."""
    key = ", ".join(primary_key(table))
    if table in HISTORY_TABLES:
        kept = f"History, appended per run; key ({key})."
    elif not key:
        kept = "Replaced whole by each load; no key."
    else:
        kept = f"Current state, keyed by ({key}); rows gone from the source are deleted."
    return f"{REGISTRY[table].description} {kept}"


def column_comments(table: str) -> dict[str, str]:
    schema = TABLES[table]
    comments = {name: describe(schema, name) for name in schema.names}
    if is_current(table):
        comments[DELETED_AT] = "Always null: a row gone from the source is deleted"
        comments[ROW_HASH] = "128-bit hash of the row's other columns as loaded: a reload sends only rows whose hash differs"
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


def _encoded(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """A column's values as text, null where null; distinct values give distinct text."""
    type_ = column.type
    if pa.types.is_list(type_):  # of strings
        column = column.combine_chunks()
        lengths = pc.list_value_length(column)
        offsets = pa.array(np.concatenate([[0], np.cumsum(pc.fill_null(lengths, 0).to_numpy())]), pa.int32())
        items = pa.ListArray.from_arrays(offsets, pc.fill_null(column.flatten(), NULL), mask=column.is_null())
        return pc.binary_join_element_wise(lengths.cast(pa.string()), pc.binary_join(items, ITEM), LENGTH)
    if pa.types.is_timestamp(type_):
        column = column.cast(pa.int64())
    elif pa.types.is_date(type_):
        column = column.cast(pa.int32())
    return column.cast(pa.string())


def row_hashes(data: pa.Table) -> pa.Array:
    """A 128-bit hash of each row (16 bytes), of its NUL-escaped values.

    The row is encoded as one string (see FIELD), hashed twice with SipHash under two keys: no
    two rows met in practice share a hash, and crafting two that do is out of reach.
    """
    if not data.num_rows:
        return pa.array([], pa.binary())
    values = row_text(data).cast(pa.large_binary()).to_numpy(zero_copy_only=False)  # bytes: hashed without re-encoding
    digests = np.column_stack([pd.util.hash_array(values, hash_key=k, categorize=False) for k in HASH_KEYS])
    raw = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(digests), [None, pa.py_buffer(digests.astype("<u8"))])
    return raw.cast(pa.binary())


def row_text(columns: pa.Table) -> pa.ChunkedArray:
    """Each row of the columns as one string (see FIELD): equal rows, and only they, give equal strings."""
    fields = [_encoded(column) for column in columns.columns]
    return pc.binary_join_element_wise(*fields, FIELD, null_handling="replace", null_replacement=NULL)


def prepared(table: str, data: pa.Table) -> pa.Table:
    """Rows as they go to Postgres: text NUL-escaped and, for a current-state table, the row hash."""
    data = escape_nul(data)
    return data.append_column(ROW_HASH, row_hashes(data)) if is_current(table) else data


@contextmanager
def preparing(table: str, data: pa.Table) -> Iterator[pa.RecordBatchReader]:
    """The data `prepared`, as a stream of batches that threads prepare ahead of their reader
    (a few batches ahead at most: a slow reader does not hold the whole table twice)."""
    pool = ThreadPoolExecutor(PREPARING_THREADS, thread_name_prefix="prepare")

    def batches() -> Iterator[pa.RecordBatch]:
        ahead: deque[Future[pa.Table]] = deque()
        for chunk in data.to_batches(max_chunksize=BATCH_ROWS):
            ahead.append(pool.submit(lambda c: prepared(table, pa.Table.from_batches([c])), chunk))
            if len(ahead) > 2 * PREPARING_THREADS:
                yield from ahead.popleft().result().to_batches()
        while ahead:
            yield from ahead.popleft().result().to_batches()

    try:
        yield pa.RecordBatchReader.from_batches(prepared(table, data.schema.empty_table()).schema, batches())
    finally:
        pool.shutdown(cancel_futures=True)


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
        """Create the schema and the table with its key, indexes and comments, or add the columns
        its Arrow schema gained since."""
        self._ensured.discard(table)
        with self._transaction() as cur:
            if self._ensure(cur, table):
                self._complete(cur, table, add_key=True)

    def _ensure(self, cur: adbc.Cursor, table: str) -> bool:
        """Make the table match its schema. True when it created it: then it is empty and has no
        key, indexes or comments until `_complete` adds them (after a first load)."""
        if table in self._ensured:
            return False
        wanted = columns(table)
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(self.schema)}")
        existing = self._existing_columns(cur, table)
        self._check_types(table, wanted, existing)
        self._ensured.add(table)
        if not existing:
            definitions = ", ".join(f"{ident(column)} {type_}" for column, type_ in wanted.items())
            cur.execute(f"CREATE TABLE {self.name(table)} ({definitions})")
            return True
        for column in (c for c in wanted if c not in existing):
            cur.execute(f"ALTER TABLE {self.name(table)} ADD COLUMN IF NOT EXISTS {ident(column)} {wanted[column]}")
        self._complete(cur, table, add_key=False)
        return False

    def _complete(self, cur: adbc.Cursor, table: str, add_key: bool) -> None:
        """The primary key (when asked: a table `_ensure` created or `_unindex` stripped); the
        indexes and comments of any table (idempotent)."""
        cur.execute(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
        if add_key and (key := primary_key(table)):
            cur.execute(f"ALTER TABLE {self.name(table)} ADD PRIMARY KEY ({', '.join(map(ident, key))})")
        for column in index_columns(table):
            # Partial: a null never joins, and many of these gids are mostly null (parent_gid).
            cur.execute(
                f"CREATE INDEX IF NOT EXISTS {ident(f'{table}_{column}_idx')} ON {self.name(table)}"
                f" ({ident(column)}) WHERE {ident(column)} IS NOT NULL"
            )
        self._comment(cur, table)

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

    def load(self, table: str, data: pa.Table) -> LoadStats:
        """Merge ``data`` into ``table`` in one transaction (see the module docstring)."""
        with self._transaction() as cur:
            return self._load(cur, table, data)

    def commit(self, tables: Iterable[tuple[str, pa.Table]],
                then: Callable[[adbc.Cursor], None] | None = None) -> list[LoadStats]:
        """Merge every table, then run ``then`` (a document saved with them), in ONE transaction:
        readers see all of the run's tables or none of them, and a failure anywhere (a dropped
        connection, a kill) leaves the previous contents whole, new tables not created."""
        with self._transaction() as cur:
            loaded = [self._load(cur, table, data) for table, data in tables]
            if then is not None:
                then(cur)
        return loaded

    def _load(self, cur: adbc.Cursor, table: str, data: pa.Table) -> LoadStats:
        started = time.perf_counter()
        created = self._ensure(cur, table)
        if not created:
            # Other writers wait for this transaction (readers do not): what it reads stays true.
            cur.execute(f"LOCK TABLE {self.name(table)} IN SHARE ROW EXCLUSIVE MODE")
        key = primary_key(table)
        data = last_per_key(conform(table, data), key)
        first = created or self._is_empty(cur, table)
        rebuild = created or (first and self._unindex(cur, table))
        if table in HISTORY_TABLES and (first or not self._holds_any(cur, table, data)):
            # A run's new part: appended as it is, in key order so that the key's index grows in order.
            data, first = data.sort_by([(column, "ascending") for column in key]), True
        inserted = updated = deleted = 0
        with preparing(table, data) as rows:
            if first:
                cur.adbc_ingest(table, rows, mode="append", db_schema_name=self.schema)
                inserted = data.num_rows
            elif is_current(table):
                inserted, updated, deleted = self._merge(cur, table, rows)
            elif table in HISTORY_TABLES:  # a run committed again: only the keys it lacks
                self._stage(cur, rows)
                inserted, updated = self._insert(cur, table, f"ON CONFLICT ({self._key(table)}) DO NOTHING")
            else:
                # DELETE rather than TRUNCATE: readers keep seeing the old rows until the commit.
                deleted = self._count(cur, f"DELETE FROM {self.name(table)}")
                cur.adbc_ingest(table, rows, mode="append", db_schema_name=self.schema)
                inserted = data.num_rows
        if rebuild:
            self._complete(cur, table, add_key=True)
        return LoadStats(table, data.num_rows, inserted, updated, deleted, time.perf_counter() - started)

    def _is_empty(self, cur: adbc.Cursor, table: str) -> bool:
        cur.execute(f"SELECT NOT EXISTS (SELECT FROM {self.name(table)})")
        return cur.fetchone()[0]

    def _holds_any(self, cur: adbc.Cursor, table: str, data: pa.Table) -> bool:
        """Whether the history table holds rows of the batch's runs: rows sharing a value of the
        key's first column (a run's id or snapshot time, one per part)."""
        column = primary_key(table)[0]
        values = bind(values=(pc.unique(data[column]).to_pylist(), pa.list_(data.schema.field(column).type)))
        cur.execute(f"SELECT EXISTS (SELECT FROM {self.name(table)} WHERE {ident(column)} = ANY($1))", parameters=values)
        return cur.fetchone()[0]

    def _unindex(self, cur: adbc.Cursor, table: str) -> bool:
        """Drop an empty table's primary key and indexes, so that its first load builds them once,
        after its rows (True); not when another table's foreign key depends on them (False).
        Readers of the empty table wait for the commit (DDL locks the table)."""
        cur.execute(
            "SELECT c.conname, EXISTS (SELECT FROM pg_constraint f WHERE f.confrelid = c.conrelid)"
            " FROM pg_constraint c WHERE c.conrelid = $1::regclass AND c.contype = 'p'",
            parameters=(self.name(table),),
        )
        key = cur.fetchall()
        if any(referenced for _, referenced in key):
            return False
        for name, _ in key:
            cur.execute(f"ALTER TABLE {self.name(table)} DROP CONSTRAINT {ident(name)}")
        for column in index_columns(table):
            cur.execute(f"DROP INDEX IF EXISTS {ident(self.schema)}.{ident(f'{table}_{column}_idx')}")
        return True

    def _stage(self, cur: adbc.Cursor, rows: pa.Table | pa.RecordBatchReader, name: str = STAGE) -> None:
        """The rows in a temporary table, analyzed (temporary tables are never auto-analyzed)."""
        cur.adbc_ingest(name, rows, mode="create", temporary=True)
        cur.execute(f"ANALYZE pg_temp.{ident(name)}")

    def _merge(self, cur: adbc.Cursor, table: str, rows: pa.RecordBatchReader) -> tuple[int, int, int]:
        """Upsert the rows whose hash differs from the table's (new, changed, or loaded before
        hashes existed), then delete the rows whose key the batch lacks."""
        key = list(primary_key(table))
        cur.execute(f"SELECT {self._key(table)}, {ident(ROW_HASH)} FROM {self.name(table)}")  # while the rows are prepared
        held = cur.fetch_arrow_table()
        batch = rows.read_all()
        held = held.rename_columns([*key, ROW_HASH]).cast(pa.schema([*batch.select(key).schema, (ROW_HASH, pa.binary())]))
        # Where each row of the batch is in the table (null: new; keys with a null never match).
        found = pc.index_in(row_text(batch.select(key)), value_set=row_text(held.select(key)))
        same = pc.fill_null(pc.equal(batch[ROW_HASH], pc.take(held[ROW_HASH], found)), False)
        inserted = updated = 0
        if not pc.all(same).as_py():
            self._stage(cur, batch.filter(pc.invert(same)))
            inserted, updated = self._insert(cur, table, self._upsert_clause(table))
        kept = np.zeros(held.num_rows, bool)
        kept[pc.drop_null(found).to_numpy()] = True
        deleted = self._remove_absent(cur, table, held.select(key).filter(pa.array(~kept)))
        return inserted, updated, deleted

    def _key(self, table: str) -> str:
        return ", ".join(map(ident, primary_key(table)))

    def _insert(self, cur: adbc.Cursor, table: str, on_conflict: str) -> tuple[int, int]:
        """Insert the staged rows, then drop the stage; (inserted, updated), told apart by xmax,
        0 on a fresh row."""
        types = columns(table)
        names = loaded_columns(table)
        casts = ", ".join(f"CAST(s.{ident(name)} AS {types[name]})" for name in names)
        cur.execute(
            f"WITH merged AS (INSERT INTO {self.name(table)} AS t ({', '.join(map(ident, names))})"
            f" SELECT {casts} FROM {STAGED} s {on_conflict} RETURNING xmax = 0 AS fresh)"
            " SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) FROM merged"
        )
        inserted, updated = cur.fetchone()
        cur.execute(f"DROP TABLE {STAGED}")
        return inserted, updated

    def _upsert_clause(self, table: str) -> str:
        """Update a conflicting row only when it differs: no rewrite, no bloat."""
        changing = [name for name in loaded_columns(table) if name not in primary_key(table)]
        assignments = [f"{ident(name)} = EXCLUDED.{ident(name)}" for name in changing]
        old = ", ".join(f"t.{ident(name)}" for name in changing)
        new = ", ".join(f"EXCLUDED.{ident(name)}" for name in changing)
        differs = f"ROW({old}) IS DISTINCT FROM ROW({new})"
        return f"ON CONFLICT ({self._key(table)}) DO UPDATE SET {', '.join(assignments)} WHERE {differs}"

    def _remove_absent(self, cur: adbc.Cursor, table: str, gone: pa.Table) -> int:
        """Delete the rows whose key is in ``gone``."""
        if not gone.num_rows:
            return 0
        self._stage(cur, gone, GONE)
        matches = " AND ".join(f"g.{ident(c)} = t.{ident(c)}" for c in primary_key(table))
        removed = self._count(cur, f"DELETE FROM {self.name(table)} AS t USING pg_temp.{ident(GONE)} g WHERE {matches}")
        cur.execute(f"DROP TABLE pg_temp.{ident(GONE)}")
        return removed

    @staticmethod
    def _count(cur: adbc.Cursor, statement: str, bound: pa.RecordBatch | None = None) -> int:
        """Rows a DELETE or UPDATE touched (the driver's rowcount is -1 once parameters are bound)."""
        cur.execute(f"WITH touched AS ({statement} RETURNING 1) SELECT count(*) FROM touched", parameters=bound)
        return cur.fetchone()[0]
