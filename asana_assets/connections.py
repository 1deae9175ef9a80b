"""Connections to an Asana workspace: validated records, tokens encrypted at rest, troubleshooting.

A `Connection` holds only what is safe to show; its tokens live in a `TokenStore`, encrypted with
Fernet under keys from ``ASANA_CONNECTION_KEYS`` (comma-separated, newest first: the newest
encrypts, every listed key decrypts, so a new key can be put in front and `rotate` run before
the old one is dropped). Records sit behind `RecordStorage`, a local JSON file for now.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import BaseModel, Field, SecretStr

from .client import (
    AsanaClient,
    AsanaConnectionError,
    AsanaError,
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    run,
)
from .warehouse import write_atomically

KEYS_ENV = "ASANA_CONNECTION_KEYS"
STORE_ENV = "ASANA_CONNECTION_STORE"
DEFAULT_STORE = "asana_connections.json"
RECONNECT = "reconnect the integration"
CREDENTIAL = {"oauth": "Asana login", "service_account": "key"}  # how refusals name what was used


def _now() -> datetime:
    return datetime.now(UTC)


class Connection(BaseModel):
    """One connection as users see it. It never holds a secret."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    auth_method: Literal["oauth", "service_account"]
    base_url: str
    workspace_gid: str
    workspace_name: str = ""
    scopes: list[str] = Field(default_factory=list)
    user_gid: str
    user_name: str
    user_email: str
    created_at: datetime = Field(default_factory=_now)
    last_validated_at: datetime | None = None
    last_synced_at: datetime | None = None
    status: Literal["active", "expired", "revoked", "error"] = "active"
    last_error: str | None = None  # in plain words: what went wrong and what to do
    # Its schedule: the daily full reconciliation's UTC hour, and how often its events are polled.
    full_sync_hour: int = Field(default=3, ge=0, le=23)
    poll_minutes: int = Field(default=1, ge=1)


class Tokens(BaseModel):
    """A connection's secrets. `SecretStr` keeps them out of reprs, logs and tracebacks."""

    access_token: SecretStr
    refresh_token: SecretStr | None = None  # OAuth only
    expires_at: datetime | None = None  # None: a service-account key does not expire


class StoredRecord(BaseModel):
    connection: Connection
    tokens: str | None = None  # Fernet ciphertext of the Tokens; None once revoked


class RecordStorage(Protocol):
    """Where records live. Small on purpose, so a database table can stand in for the file."""

    def load(self) -> dict[str, StoredRecord]: ...

    def save(self, records: dict[str, StoredRecord]) -> None: ...

    def locked(self) -> AbstractContextManager[None]:
        """Keep every other writer (process or thread) out: runs of several connections update
        the store at once, and a load-change-save must not undo another's."""


class JsonFileStorage:
    """Records in one JSON file, readable only by its owner (0600), replaced atomically."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, StoredRecord]:
        if not self.path.exists():
            return {}
        raw = json.loads(self.path.read_bytes())
        return {cid: StoredRecord.model_validate(record) for cid, record in raw.items()}

    def save(self, records: dict[str, StoredRecord]) -> None:
        payload = json.dumps({cid: r.model_dump(mode="json") for cid, r in records.items()}, indent=2).encode()
        write_atomically(self.path, payload)

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # and with it the lock


class PostgresStorage:
    """Records in a Postgres table (one row per connection, its tokens still Fernet-encrypted),
    for deployments whose machines share no disk. Saved in one transaction."""

    def __init__(self, url: str, schema: str = "asana") -> None:
        from asana_assets.postgres import ident, libpq_url  # Postgres only when configured

        self.url, self.table = libpq_url(url), f"{ident(schema)}.{ident('connections')}"
        self.schema = ident(schema)

    def _connect(self):
        import adbc_driver_postgresql.dbapi as adbc

        connection = adbc.connect(self.url)
        with connection.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id text PRIMARY KEY, record jsonb NOT NULL)")
        connection.commit()
        return connection

    def load(self) -> dict[str, StoredRecord]:
        with self._connect() as connection, connection.cursor() as cur:
            cur.execute(f"SELECT id, record::text FROM {self.table}")
            return {cid: StoredRecord.model_validate_json(record) for cid, record in cur.fetchall()}

    def save(self, records: dict[str, StoredRecord]) -> None:
        with self._connect() as connection, connection.cursor() as cur:
            cur.execute(f"DELETE FROM {self.table}")
            for cid, record in records.items():
                cur.execute(f"INSERT INTO {self.table} VALUES ($1, $2::jsonb)", (cid, record.model_dump_json()))
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


def storage_at(location: str | os.PathLike[str]) -> RecordStorage:
    """A ``postgresql://`` URL stores the records in Postgres; anything else is a file path."""
    text = str(location)
    return PostgresStorage(text) if text.startswith(("postgresql:", "postgresql+", "postgres:")) else JsonFileStorage(text)


class ConnectionProblem(Exception):
    """A connection failure with what caused it and what to do, both in plain words."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause}: {fix}")
        self.cause, self.fix = cause, fix


class ConnectionRefused(ConnectionProblem):
    """The credentials work but cannot be used: wrong workspace, or the user is not an admin."""


class ConnectionExpired(ConnectionProblem):
    def __init__(self) -> None:
        super().__init__("Asana no longer accepts this connection's authorization", RECONNECT)


class TokenStore:
    """Connections and their encrypted tokens over a `RecordStorage`."""

    def __init__(self, storage: RecordStorage, keys: str | None = None) -> None:
        keys = os.environ.get(KEYS_ENV, "") if keys is None else keys
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
        return [record.connection for record in self.storage.load().values()]

    def get(self, connection_id: str) -> Connection:
        return self._record(self.storage.load(), connection_id).connection

    def save(self, connection: Connection, tokens: Tokens | None = None) -> None:
        """Add or update a connection; its tokens are replaced only when given."""
        with self._editing() as records:
            record = records.get(connection.id) or StoredRecord(connection=connection)
            record.connection = connection
            if tokens is not None:
                record.tokens = self._fernet.encrypt(_plain(tokens)).decode()
            records[connection.id] = record

    def update(self, connection_id: str, **changes: object) -> Connection:
        """Change some fields of the connection as it is stored now, not as it was read
        earlier: a sync noting its time must not undo a revocation made meanwhile."""
        with self._editing() as records:
            record = self._record(records, connection_id)
            record.connection = Connection.model_validate({**record.connection.model_dump(), **changes})
        return record.connection

    def tokens(self, connection_id: str) -> Tokens:
        record = self._record(self.storage.load(), connection_id)
        if record.tokens is None:
            raise ConnectionExpired()
        try:
            return Tokens.model_validate_json(self._fernet.decrypt(record.tokens.encode()))
        except InvalidToken:
            raise ConnectionProblem(
                f"none of the keys in {KEYS_ENV} decrypts connection {connection_id}'s tokens",
                f"put back the key they were encrypted with (keys are listed newest first), or {RECONNECT}",
            ) from None

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
        """Re-encrypt every token with the newest key; returns how many connections were."""
        with self._editing() as records:
            encrypted = [r for r in records.values() if r.tokens is not None]
            for record in encrypted:
                record.tokens = self._fernet.rotate(record.tokens.encode()).decode()
        return len(encrypted)

    @contextmanager
    def _editing(self) -> Iterator[dict[str, StoredRecord]]:
        """The records to change in place; saved on leaving, no other writer in between."""
        with self.storage.locked():
            records = self.storage.load()
            yield records
            self.storage.save(records)

    @staticmethod
    def _record(records: dict[str, StoredRecord], connection_id: str) -> StoredRecord:
        try:
            return records[connection_id]
        except KeyError:
            raise ConnectionProblem(
                f"there is no connection {connection_id}", "list them with `asana-connections list`"
            ) from None


def _plain(tokens: Tokens) -> bytes:
    return json.dumps(
        {
            "access_token": tokens.access_token.get_secret_value(),
            "refresh_token": tokens.refresh_token.get_secret_value() if tokens.refresh_token else None,
            "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
        }
    ).encode()


# ---------------------------------------------------------------------- validation
class Access(NamedTuple):
    """Who a token acts for and the workspace it will sync."""

    user_gid: str
    user_name: str
    user_email: str
    workspace_gid: str
    workspace_name: str


def check_access(base_url: str, token: str, workspace_gid: str | None, credential: str) -> Access:
    """The token's user and workspace, refused unless that user is an admin of the workspace.

    ``credential`` names what was used in a refusal ("key"). The API shows workspace admins
    (``is_admin`` on the membership) but not the owner, so an owner who is not also an admin is
    refused: Asana's owners are normally admins too.
    """
    return run(_check_access(base_url, token, workspace_gid, credential))


async def _check_access(base_url: str, token: str, workspace_gid: str | None, credential: str) -> Access:
    async with AsanaClient(base_url, token, max_retries=2) as client:
        me = await client.get_data("/users/me", fields=["name", "email"])
        memberships = await client.get_data(
            "/users/me/workspace_memberships", fields=["workspace.name", "is_admin", "is_active"]
        )
    memberships = [m for m in memberships if m.get("is_active", True)]
    seen = ", ".join(f"{m['workspace']['name']} ({m['workspace']['gid']})" for m in memberships) or "none"
    chosen = [m for m in memberships if workspace_gid in (None, m["workspace"]["gid"])]
    if len(chosen) != 1:
        where = f"workspace {workspace_gid}" if workspace_gid else "exactly one workspace"
        raise ConnectionRefused(
            f"this {credential}'s user is not a member of {where} (it sees: {seen})",
            "name a workspace it sees, or connect with a member of that workspace",
        )
    workspace = chosen[0]["workspace"]
    if not chosen[0].get("is_admin"):
        raise ConnectionRefused(
            f"this {credential}'s user is not an admin of workspace {workspace['name']} ({workspace['gid']})",
            f"connect with a workspace admin or owner's {credential}",
        )
    return Access(me["gid"], me.get("name", ""), me.get("email", ""), workspace["gid"], workspace["name"])


def connect_service_account(
    base_url: str, key: str, store: TokenStore, workspace_gid: str | None = None
) -> Connection:
    """Validate a service-account key (user, workspace, admin) and only then store it."""
    access = check_access(base_url, key, workspace_gid, CREDENTIAL["service_account"])
    connection = Connection(
        auth_method="service_account",
        base_url=base_url,
        workspace_gid=access.workspace_gid,
        workspace_name=access.workspace_name,
        user_gid=access.user_gid,
        user_name=access.user_name,
        user_email=access.user_email,
        last_validated_at=_now(),
    )
    store.save(connection, Tokens(access_token=SecretStr(key)))
    return connection


def record_validation(store: TokenStore, connection: Connection, token: str) -> Connection:
    """Re-check a connection's access and record the outcome on it: failures are recorded, not raised."""
    try:
        check_access(connection.base_url, token, connection.workspace_gid, CREDENTIAL[connection.auth_method])
    except (AsanaError, ConnectionProblem) as error:
        expired = isinstance(error, AuthenticationError | ConnectionExpired)
        update = {"status": "expired" if expired else "error", "last_error": describe(error)}
    else:
        update = {"status": "active", "last_error": None, "last_validated_at": _now()}
    connection = connection.model_copy(update=update)
    store.save(connection)
    return connection


# ---------------------------------------------------------------------- troubleshooting
class Trouble(NamedTuple):
    cause: str
    fix: str

    def __str__(self) -> str:
        return f"{self.cause}: {self.fix}"


def describe(failure: BaseException) -> str:
    """One line for users and for `Connection.last_error`: cause, then what to do."""
    return str(troubleshoot(failure))


def troubleshoot(failure: BaseException) -> Trouble:
    """What went wrong and what to do about it, in the product's words, for any failure."""
    if isinstance(failure, ConnectionProblem):
        return Trouble(failure.cause, failure.fix)
    if isinstance(failure, AuthenticationError):
        return Trouble("401 Unauthorized: Asana rejected the token (invalid, expired or revoked)", RECONNECT)
    if isinstance(failure, ForbiddenError):
        return Trouble(
            "403 Forbidden: the connected user may not read this",
            "ensure the connected user has admin or workspace-owner access in Asana and can see the projects",
        )
    if isinstance(failure, NotFoundError):
        return Trouble(
            f"404 Not Found: the project or task is no longer available ({failure.path})",
            "verify it still exists and is shared with the connected user; the sync goes on with the rest",
        )
    if isinstance(failure, RateLimitedError):
        return Trouble(
            "429 Too Many Requests: Asana rate-limited the connection",
            f"retry after {failure.retry_after:g} s, as Asana's Retry-After asks (syncs wait and retry by themselves)",
        )
    if isinstance(failure, ServerError | AsanaConnectionError):
        return Trouble("Asana could not be reached or kept failing", "retry after some time")
    if isinstance(failure, AsanaError):
        return Trouble(f"Asana refused a request (HTTP {failure.status})", "retry; if it persists, contact support")
    # Other errors may carry anything in their text, a token included, so only their type is shown.
    return Trouble(f"unexpected error ({type(failure).__name__})", "retry; if it persists, contact support")
