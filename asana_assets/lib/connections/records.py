"""Connection records: what a connection is (safe to show), and its secrets.

A `Connection` holds only what is safe to show; its `Tokens` are kept encrypted by the
`TokenStore` (``store.py``), in a local JSON file or in Postgres. The API base the
tokens were granted for is encrypted with them: the record's `base_url` can be edited by anyone
who can write the store, the sealed one cannot.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, SecretStr


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
    issued_at: datetime | None = None  # when the access token was issued; None: stored before this was kept
    # The API base they were granted for, and the only one they are ever sent to. None: stored
    # before base URLs were sealed with the tokens (see TokenStore.tokens).
    base_url: str | None = None


class StoredRecord(BaseModel):
    connection: Connection
    tokens: str | None = None  # Fernet ciphertext of the Tokens; None once revoked
