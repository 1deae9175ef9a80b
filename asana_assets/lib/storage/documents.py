"""Named JSON documents, in a folder or in a Postgres table: the sync state, the events sensor's
poll schedule, the connection records and the token budgets.

A document is read and replaced whole. `change` reads one, edits it and writes it back while
every other process's `change` of that document waits (``flock`` on a file beside it, or a
Postgres advisory lock), so concurrent processes never undo each other's edits. A location is a
``postgresql://`` URL or a folder, told apart in `open_documents` alone.

- In a folder, a document is the file ``<name>.json`` (or the file name the store gives it),
  readable by its owner only, replaced atomically; its lock is ``<file stem>.lock``.
- In Postgres, a document is a row of a table of the store's (`Table`): its name in the key
  column, the document in a jsonb column.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import adbc_driver_postgresql.dbapi as adbc

from asana_assets.lib.storage.files import write_atomically
from asana_assets.lib.storage.locks import exclusive
from asana_assets.lib.storage.sql import ident, is_postgres, libpq_url

T = TypeVar("T")
V = TypeVar("V")
Edit = Callable[[dict, float], T]


class Documents(Protocol):
    where: str  # the store, named without credentials

    def load(self, name: str) -> dict | None:
        """The document, or None when there is none."""

    def save(self, name: str, document: dict) -> None: ...

    def change(self, name: str, edit: Edit[T]) -> T:
        """``edit(document, now)`` the document ({} when there is none) in place and save it, no
        other `change` of it in between; ``now`` is the store's clock (seconds since the epoch)."""

    def close(self) -> None: ...


class FileDocuments:
    """Documents as files of a folder (``files`` names those kept under a file name of their own)."""

    def __init__(self, folder: str | os.PathLike[str], files: Mapping[str, str] | None = None) -> None:
        self.folder = Path(folder)
        self.files = dict(files or {})
        self.where = str(self.folder)

    def path(self, name: str) -> Path:
        return self.folder / self.files.get(name, f"{name}.json")

    def load(self, name: str) -> dict | None:
        try:
            return json.loads(self.path(name).read_bytes())
        except FileNotFoundError:
            return None

    def save(self, name: str, document: dict) -> None:
        write_atomically(self.path(name), json.dumps(document, separators=(",", ":")).encode())

    def change(self, name: str, edit: Edit[T]) -> T:
        path = self.path(name)
        with exclusive(path.with_name(f"{path.stem}.lock")):
            document = self.load(name) or {}
            result = edit(document, time.time())
            self.save(name, document)
            return result

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Table:
    """A Postgres table of documents: ``key`` names a document, ``column`` (jsonb) holds it, and
    ``updated_at`` says when it was last saved where the table has that column."""

    schema: str
    name: str
    key: str = "name"
    column: str = "state"
    stamped: bool = True

    @property
    def qualified(self) -> str:
        return f"{ident(self.schema)}.{ident(self.name)}"


class PostgresDocuments:
    """Documents as rows of a Postgres table, created on first use; `change` holds a
    transaction-scoped advisory lock on the document, and ``now`` is the database's clock (the
    machines' clocks need not agree).

    ``timeout`` bounds connecting and each statement (waiting for a lock included), for callers
    that must never hang on the store; ``persistent`` keeps one connection until `close`, for
    callers that change a document many times a minute. ``adopt(cursor)`` runs once per
    connection, under the set-up lock, before the table is created: it returns the documents an
    earlier layout kept, saved in the same transaction."""

    def __init__(self, url: str, table: Table, *, timeout: float | None = None, persistent: bool = False,
                 adopt: Callable[[adbc.Cursor], Mapping[str, dict]] | None = None) -> None:
        self.url, self.table = libpq_url(url), table
        self.timeout, self.persistent, self.adopt = timeout, persistent, adopt
        address = urlsplit(self.url)  # named without its user or password
        self.where = (f"Postgres at {address.hostname}:{address.port or 5432}{address.path}"
                      f" (table {table.schema}.{table.name})")
        self._connection: adbc.Connection | None = None

    def load(self, name: str) -> dict | None:
        with self._cursor() as cur:
            return self._read(cur, name)

    def save(self, name: str, document: dict) -> None:
        with self._cursor() as cur:
            self._write(cur, name, document)

    def change(self, name: str, edit: Edit[T]) -> T:
        with self._cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", (f"{self.table.schema} {name}",))
            cur.fetchall()
            cur.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
            [now] = cur.fetchone()
            document = self._read(cur, name) or {}
            result = edit(document, now)
            self._write(cur, name, document)
        return result

    def write(self, cur: adbc.Cursor, name: str, document: dict) -> None:
        """Save the document within the caller's transaction (a publication: the sync state
        commits with the tables it describes)."""
        self._create(cur)
        self._write(cur, name, document)

    def close(self) -> None:
        if self._connection is not None:
            IDLE.give(self._pool_key(), self._connection)
            self._connection = None

    def _read(self, cur: adbc.Cursor, name: str) -> dict | None:
        t = self.table
        cur.execute(f"SELECT {ident(t.column)}::text FROM {t.qualified} WHERE {ident(t.key)} = $1", (name,))
        row = cur.fetchone()
        return json.loads(row[0]) if row else None

    def _write(self, cur: adbc.Cursor, name: str, document: dict) -> None:
        t = self.table
        names, values = [t.key, t.column], ["$1", "$2::jsonb"]
        if t.stamped:
            names, values = [*names, "updated_at"], [*values, "now()"]
        updated = ", ".join(f"{ident(n)} = EXCLUDED.{ident(n)}" for n in names[1:])
        cur.execute(
            f"INSERT INTO {t.qualified} ({', '.join(map(ident, names))}) VALUES ({', '.join(values)})"
            f" ON CONFLICT ({ident(t.key)}) DO UPDATE SET {updated}",
            (name, json.dumps(document)),
        )

    def _create(self, cur: adbc.Cursor) -> None:
        t = self.table
        stamp = ", updated_at timestamptz NOT NULL" if t.stamped else ""
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(t.schema)}")
        cur.execute(f"CREATE TABLE IF NOT EXISTS {t.qualified}"
                    f" ({ident(t.key)} text PRIMARY KEY, {ident(t.column)} jsonb NOT NULL{stamp})")

    def _pool_key(self) -> tuple[str, float | None]:
        return self.url, self.timeout

    def _connect(self) -> adbc.Connection:
        url = self.url
        if self.timeout is not None and "connect_timeout=" not in url:
            url = f"{url}{'&' if '?' in url else '?'}connect_timeout={int(self.timeout)}"
        connection = adbc.connect(url)
        if self.timeout is not None:
            try:
                with connection.cursor() as cur:
                    cur.execute(f"SET statement_timeout = '{int(self.timeout * 1000)}ms'")
                connection.commit()
            except BaseException:
                connection.close()
                raise
        return connection

    def _set_up(self, connection: adbc.Connection) -> None:
        with connection.cursor() as cur:
            # One process at a time sets the table up (CREATE ... IF NOT EXISTS races otherwise).
            cur.execute("SELECT pg_advisory_xact_lock(hashtext($1))", (f"{self.table.qualified} setup",))
            cur.fetchall()
            adopted = self.adopt(cur) if self.adopt is not None else {}
            self._create(cur)
            for name, document in adopted.items():
                self._write(cur, name, document)
        connection.commit()

    def _open(self) -> adbc.Connection:
        """A connection set up for the table: one left idle if it still answers, else a new one."""
        idle = IDLE.take(self._pool_key())
        if idle is not None:
            try:
                self._set_up(idle)
                return idle
            except adbc.Error:  # closed while idle (a server restart, an idle timeout): connect anew
                _close_quietly(idle)
        connection = self._connect()
        try:
            self._set_up(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    @contextmanager
    def _cursor(self) -> Iterator[adbc.Cursor]:
        """A cursor whose statements commit together; a connection that failed is not used again."""
        connection = self._connection or self._open()
        try:
            with connection.cursor() as cur:
                yield cur
            connection.commit()
        except BaseException:
            self._connection = None
            _close_quietly(connection)
            raise
        if self.persistent:
            self._connection = connection
        else:
            IDLE.give(self._pool_key(), connection)


class Idle:
    """This process's Postgres connections between two uses, by where they lead (URL, timeout).

    Connecting costs far more than a document's few statements (the driver reads the server's
    types first): the events sensor, which reads and saves a few documents of every connection
    each minute, spent nine tenths of its time connecting. A connection is lent to one use at a
    time and comes back only after a commit; one idle for ``seconds`` is closed rather than lent,
    and one opened before a fork is the parent's: the child neither uses nor closes it (closing
    would end the parent's session), it only keeps it from the garbage collector."""

    def __init__(self, most: int = 8, seconds: float = 300.0) -> None:
        self.most, self.seconds = most, seconds
        self._idle: dict[tuple[str, float | None], list[tuple[adbc.Connection, int, float]]] = {}
        self._parents: list[adbc.Connection] = []
        self._lock = threading.Lock()

    def take(self, key: tuple[str, float | None]) -> adbc.Connection | None:
        """The most recently used idle connection to ``key``, if any is fresh."""
        stale = []
        with self._lock:
            idle = self._idle.get(key, [])
            taken = None
            while idle and taken is None:
                connection, pid, since = idle.pop()
                if pid != os.getpid():
                    self._parents.append(connection)
                elif time.monotonic() - since < self.seconds:
                    taken = connection
                else:
                    stale.append(connection)
        for connection in stale:
            _close_quietly(connection)
        return taken

    def give(self, key: tuple[str, float | None], connection: adbc.Connection) -> None:
        """Keep ``connection`` (idle, nothing uncommitted) for the next use, or close it when enough are kept."""
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.most:
                idle.append((connection, os.getpid(), time.monotonic()))
                return
        _close_quietly(connection)


IDLE = Idle()


def _close_quietly(connection: adbc.Connection) -> None:
    """Close a connection that may already be broken."""
    try:
        connection.close()
    except adbc.Error:
        pass


def open_documents(location: str | os.PathLike[str], table: Table, *, files: Mapping[str, str] | None = None,
                   document: str | None = None, **postgres) -> Documents:
    """The documents at ``location``: in ``table`` of the Postgres a ``postgresql://`` URL names
    (``postgres``: `PostgresDocuments`'s options), else in the folder it names (with ``files``),
    or, given a ``document`` name, in the file it names, which holds that one document. Opening
    reaches nothing: the first use does."""
    if is_postgres(location):
        return PostgresDocuments(str(location), table, **postgres)
    if document is not None:
        path = Path(location)
        return FileDocuments(path.parent, {document: path.name})
    return FileDocuments(location, files)


class Document(Generic[V]):
    """One document of a store as a value of its own type (``decode`` takes None for none yet)."""

    def __init__(self, documents: Documents, name: str, decode: Callable[[dict | None], V],
                 encode: Callable[[V], dict]) -> None:
        self.documents, self.name, self.decode, self.encode = documents, name, decode, encode

    def load(self) -> V:
        return self.decode(self.documents.load(self.name))

    def save(self, value: V) -> None:
        self.documents.save(self.name, self.encode(value))
