"""The token store: connections and their tokens, encrypted at rest.

Tokens are encrypted with Fernet under the keys of ``ASANA_CONNECTION_KEYS`` (comma-separated,
newest first: the newest encrypts, every listed key decrypts, so a new key can be put in front
and `rotate` run before the old one is dropped), sealed together with the API base URL they
were granted for: they are sent nowhere else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import TypeVar

import adbc_driver_postgresql.dbapi as adbc
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from asana_assets import settings
from asana_assets.lib.connections.records import Connection, StoredRecord, Tokens
from asana_assets.lib.connections.troubleshooting import RECONNECT, ConnectionExpired, ConnectionProblem
from asana_assets.lib.storage.documents import Documents, Table, open_documents
from asana_assets.lib.storage.sql import ident

KEYS_ENV = settings.CONNECTION_KEYS.name
RECORDS = "connections"  # the document: every record by connection id
# In Postgres, the table asana_connections.connections: a schema of its own, apart from the
# warehouse's tables and whoever is granted them.
SCHEMA, TABLE = "asana_connections", "connections"
EARLIER = "asana"  # the schema where earlier versions kept the table
T = TypeVar("T")


class RecordStorage:
    """The records, as one document: a file, or a row of a Postgres table."""

    def __init__(self, documents: Documents) -> None:
        self.documents = documents

    def load(self) -> dict[str, dict]:
        return self.documents.load(RECORDS) or {}

    def change(self, edit: Callable[[dict[str, dict]], T]) -> T:
        """``edit`` the records in place, no other writer (process or thread) in between: runs of
        several connections update the store at once, and one must not undo another's change."""
        return self.documents.change(RECORDS, lambda records, _now: edit(records))


def storage_at(location: str | os.PathLike[str]) -> RecordStorage:
    """The records at a file path, or in Postgres at a ``postgresql://`` URL."""
    table = Table(SCHEMA, TABLE, key="id", column="record", stamped=False)
    return RecordStorage(open_documents(location, table, document=RECORDS, adopt=lambda cur: _adopt(cur, table)))


def _adopt(cur: adbc.Cursor, table: Table) -> Mapping[str, dict]:
    """The records as earlier versions kept them, brought in by the set-up transaction (all of
    it or nothing): the table in the warehouse's schema is moved to the store's, and its rows,
    one per connection, become the records document."""
    earlier = f"{ident(EARLIER)}.{ident(table.name)}"
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(table.schema)}")
    cur.execute("SELECT to_regclass($1) IS NULL AND to_regclass($2) IS NOT NULL", (table.qualified, earlier))
    if cur.fetchone()[0]:
        cur.execute(f"ALTER TABLE {earlier} SET SCHEMA {ident(table.schema)}")
    cur.execute("SELECT to_regclass($1) IS NOT NULL", (table.qualified,))
    if not cur.fetchone()[0]:
        return {}
    cur.execute(f"SELECT id, record::text FROM {table.qualified}")
    rows = {cid: json.loads(record) for cid, record in cur.fetchall()}
    if set(rows) <= {RECORDS}:
        return {}
    cur.execute(f"DELETE FROM {table.qualified} WHERE id <> $1", (RECORDS,))
    return {RECORDS: {cid: record for cid, record in rows.items() if cid != RECORDS} | rows.get(RECORDS, {})}


def load_records(storage: RecordStorage) -> dict[str, StoredRecord]:
    """The stored records, validated; reading them needs no key (their tokens stay encrypted)."""
    return {cid: StoredRecord.model_validate(record) for cid, record in storage.load().items()}


class TokenStore:
    """Connections and their encrypted tokens over a `RecordStorage`."""

    def __init__(self, storage: RecordStorage, keys: str | None = None) -> None:
        keys = settings.CONNECTION_KEYS.get() if keys is None else keys
        fernets = [Fernet(key.strip()) for key in keys.split(",") if key.strip()]
        if not fernets:
            raise ConnectionProblem(
                f"no encryption key for stored connections ({KEYS_ENV} is empty)",
                f"create one with `asana-connections new-key` and set {KEYS_ENV} to it",
            )
        self.storage = storage
        self._fernet = MultiFernet(fernets)

    @classmethod
    def at(cls, location: str | os.PathLike[str], keys: str | None = None) -> TokenStore:
        """The store at a file path, or in Postgres at a ``postgresql://`` URL."""
        return cls(storage_at(location), keys)

    def connections(self) -> list[Connection]:
        return [record.connection for record in load_records(self.storage).values()]

    def get(self, connection_id: str) -> Connection:
        return self._record(load_records(self.storage), connection_id).connection

    def save(self, connection: Connection, tokens: Tokens | None = None) -> None:
        """Add or update a connection; its tokens are replaced only when given, sealed with the
        connection's base URL."""
        def edit(records: dict[str, StoredRecord]) -> None:
            record = records.get(connection.id) or StoredRecord(connection=connection)
            record.connection = connection
            if tokens is not None:
                record.tokens = self._seal(tokens, connection.id, connection.base_url)
            records[connection.id] = record

        self._edit(edit)

    def change_tokens(
        self, connection_id: str, base_url: str, change: Callable[[Connection, Tokens], Tokens]
    ) -> Tokens:
        """``change(connection, tokens)`` the connection's tokens for ``base_url`` (checked as
        `tokens` checks them) and keep what it returns, sealed with the base URL they were granted
        for; no other writer, process or thread, in between. So a refresh made in one process is
        waited for by the others, which then find it done, and undoes no change made meanwhile."""
        def edit(records: dict[str, StoredRecord]) -> Tokens:
            record = self._record(records, connection_id)
            tokens = self._checked(record, connection_id, base_url)
            changed = change(record.connection, tokens)
            if changed != tokens:
                record.tokens = self._seal(changed, connection_id, record.connection.base_url)
            return changed

        return self._edit(edit)

    def update(self, connection_id: str, **changes: object) -> Connection:
        """Change some fields of the connection as it is stored now, not as it was read
        earlier: a sync noting its time must not undo a revocation made meanwhile."""
        def edit(records: dict[str, StoredRecord]) -> Connection:
            record = self._record(records, connection_id)
            record.connection = Connection.model_validate({**record.connection.model_dump(), **changes})
            return record.connection

        return self._edit(edit)

    def tokens(self, connection_id: str, base_url: str | None = None) -> Tokens:
        """The connection's tokens, to be sent to ``base_url`` (default: the record's): refused,
        before anything is sent, unless that is the API base they were granted for. Whoever can
        edit the store can change a record's base URL, but not the one sealed with its tokens."""
        return self._checked(self._record(load_records(self.storage), connection_id), connection_id, base_url)

    def _checked(self, record: StoredRecord, connection_id: str, base_url: str | None) -> Tokens:
        tokens = self._open(record, connection_id)
        if tokens.base_url is None:
            raise ConnectionProblem(
                f"connection {connection_id}'s tokens were stored before tokens were sealed with their base URL",
                f"check that `asana-connections list` shows the base URL it was connected to, then run "
                f"`asana-connections rotate-key` to seal them with it; or {RECONNECT}",
            )
        for url in (record.connection.base_url, base_url or record.connection.base_url):
            if not _same_url(url, tokens.base_url):
                raise _elsewhere(connection_id, url, tokens.base_url)
        return tokens

    def forget_tokens(self, connection: Connection) -> None:
        """Drop a connection's secrets and keep its record, for the history."""
        def edit(records: dict[str, StoredRecord]) -> None:
            self._record(records, connection.id)
            records[connection.id] = StoredRecord(connection=connection)

        self._edit(edit)

    def remove(self, connection_id: str) -> None:
        """Delete a connection's record and tokens (its synced data stays in the warehouse).
        An OAuth connection must be revoked first: deleting its refresh token here would leave
        the grant alive at Asana with no way left to revoke it."""
        def edit(records: dict[str, StoredRecord]) -> None:
            record = self._record(records, connection_id)
            if record.connection.auth_method == "oauth" and record.tokens is not None:
                raise ConnectionProblem(
                    f"connection {connection_id} still holds an Asana authorization",
                    f"revoke it first: `asana-connections revoke {connection_id}`",
                )
            del records[connection_id]

        self._edit(edit)

    def rotate(self) -> int:
        """Re-encrypt every token with the newest key; returns how many connections were.

        Tokens stored before base URLs were sealed with them are sealed with the base URL their
        record names now: run it once the records are checked (`asana-connections list`)."""
        def edit(records: dict[str, StoredRecord]) -> int:
            encrypted = {cid: r for cid, r in records.items() if r.tokens is not None}
            for cid, record in encrypted.items():
                tokens = self._open(record, cid)
                record.tokens = self._seal(tokens, cid, tokens.base_url or record.connection.base_url)
            return len(encrypted)

        return self._edit(edit)

    def _edit(self, edit: Callable[[dict[str, StoredRecord]], T]) -> T:
        """``edit`` the records in place; saved unless it raises, no other writer in between."""
        def stored(raw: dict[str, dict]) -> T:
            records = {cid: StoredRecord.model_validate(record) for cid, record in raw.items()}
            result = edit(records)
            raw.clear()
            raw.update({cid: record.model_dump(mode="json") for cid, record in records.items()})
            return result

        return self.storage.change(stored)

    @staticmethod
    def _record(records: dict[str, StoredRecord], connection_id: str) -> StoredRecord:
        try:
            return records[connection_id]
        except KeyError:
            raise ConnectionProblem(
                f"there is no connection {connection_id}", "list them with `asana-connections list`"
            ) from None

    def _open(self, record: StoredRecord, connection_id: str) -> Tokens:
        if record.tokens is None:
            raise ConnectionExpired()
        try:
            return Tokens.model_validate_json(self._fernet.decrypt(record.tokens.encode()))
        except InvalidToken:
            raise ConnectionProblem(
                f"none of the keys in {KEYS_ENV} decrypts connection {connection_id}'s tokens",
                f"put back the key they were encrypted with (keys are listed newest first), or {RECONNECT}",
            ) from None

    def _seal(self, tokens: Tokens, connection_id: str, base_url: str) -> str:
        """The tokens and the base URL they may be sent to, encrypted together with the newest key."""
        if tokens.base_url is not None and not _same_url(tokens.base_url, base_url):
            raise _elsewhere(connection_id, base_url, tokens.base_url)
        return self._fernet.encrypt(_plain(tokens.model_copy(update={"base_url": base_url}))).decode()


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _elsewhere(connection_id: str, named: str, granted: str) -> ConnectionProblem:
    return ConnectionProblem(
        f"connection {connection_id} names the base URL {named}, but its tokens were granted for {granted}; "
        "nothing was sent",
        f"put its base_url back to {granted} in the connection store (it was changed there), "
        f"or {RECONNECT} at the new address",
    )


def _plain(tokens: Tokens) -> bytes:
    return json.dumps(
        {
            "access_token": tokens.access_token.get_secret_value(),
            "refresh_token": tokens.refresh_token.get_secret_value() if tokens.refresh_token else None,
            "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
            "issued_at": tokens.issued_at.isoformat() if tokens.issued_at else None,
            "base_url": tokens.base_url,
        }
    ).encode()


