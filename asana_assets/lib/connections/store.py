"""The token store: connections and their tokens, encrypted at rest.

Tokens are encrypted with Fernet under the keys of ``ASANA_CONNECTION_KEYS`` (comma-separated,
newest first: the newest encrypts, every listed key decrypts, so a new key can be put in front
and `rotate` run before the old one is dropped), sealed together with the API base URL they
were granted for: they are sent nowhere else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from asana_assets import settings
from asana_assets.lib.connections.records import Connection, RecordStorage, StoredRecord, Tokens
from asana_assets.lib.connections.troubleshooting import RECONNECT, ConnectionExpired, ConnectionProblem
from asana_assets.lib.storage.files import JsonFileStorage
from asana_assets.lib.storage.postgres import PostgresRecordStorage

KEYS_ENV = settings.CONNECTION_KEYS.name


def storage_at(location: str | os.PathLike[str]) -> RecordStorage:
    """A ``postgresql://`` URL stores the records in Postgres; anything else is a file path."""
    text = str(location)
    return PostgresRecordStorage(text) if text.startswith(("postgresql:", "postgresql+", "postgres:")) else JsonFileStorage(text)


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
        with self._editing() as records:
            record = records.get(connection.id) or StoredRecord(connection=connection)
            record.connection = connection
            if tokens is not None:
                record.tokens = self._seal(tokens, connection.id, connection.base_url)
            records[connection.id] = record

    def save_tokens(self, connection_id: str, tokens: Tokens) -> None:
        """Replace the tokens of the connection as it is stored now (a refresh must not undo a
        change made meanwhile); they stay sealed with the base URL they were granted for."""
        with self._editing() as records:
            record = self._record(records, connection_id)
            record.tokens = self._seal(tokens, connection_id, record.connection.base_url)

    def update(self, connection_id: str, **changes: object) -> Connection:
        """Change some fields of the connection as it is stored now, not as it was read
        earlier: a sync noting its time must not undo a revocation made meanwhile."""
        with self._editing() as records:
            record = self._record(records, connection_id)
            record.connection = Connection.model_validate({**record.connection.model_dump(), **changes})
        return record.connection

    def tokens(self, connection_id: str, base_url: str | None = None) -> Tokens:
        """The connection's tokens, to be sent to ``base_url`` (default: the record's): refused,
        before anything is sent, unless that is the API base they were granted for. Whoever can
        edit the store can change a record's base URL, but not the one sealed with its tokens."""
        record = self._record(load_records(self.storage), connection_id)
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
        with self._editing() as records:
            self._record(records, connection.id)
            records[connection.id] = StoredRecord(connection=connection)

    def remove(self, connection_id: str) -> None:
        """Delete a connection's record and tokens (its synced data stays in the warehouse).
        An OAuth connection must be revoked first: deleting its refresh token here would leave
        the grant alive at Asana with no way left to revoke it."""
        with self._editing() as records:
            record = self._record(records, connection_id)
            if record.connection.auth_method == "oauth" and record.tokens is not None:
                raise ConnectionProblem(
                    f"connection {connection_id} still holds an Asana authorization",
                    f"revoke it first: `asana-connections revoke {connection_id}`",
                )
            del records[connection_id]

    def rotate(self) -> int:
        """Re-encrypt every token with the newest key; returns how many connections were.

        Tokens stored before base URLs were sealed with them are sealed with the base URL their
        record names now: run it once the records are checked (`asana-connections list`)."""
        with self._editing() as records:
            encrypted = {cid: r for cid, r in records.items() if r.tokens is not None}
            for cid, record in encrypted.items():
                tokens = self._open(record, cid)
                record.tokens = self._seal(tokens, cid, tokens.base_url or record.connection.base_url)
        return len(encrypted)

    @contextmanager
    def _editing(self) -> Iterator[dict[str, StoredRecord]]:
        """The records to change in place; saved on leaving, no other writer in between."""
        with self.storage.locked():
            records = load_records(self.storage)
            yield records
            self.storage.save({cid: record.model_dump(mode="json") for cid, record in records.items()})

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
            "base_url": tokens.base_url,
        }
    ).encode()


