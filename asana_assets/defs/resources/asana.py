"""The Asana resources: one connection's credentials (or the demo's), to run library code with."""


from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from asana_assets import demo, settings
from asana_assets.defs.partitions import DEFAULT, ConnectionSchedule
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.connections import oauth
from asana_assets.lib.connections.coverage import DECLARED_BY_AUTH_METHOD
from asana_assets.lib.connections.records import Connection, StoredRecord
from asana_assets.lib.connections.session import RUNS, OAuthRefresher, Quota, run_with_client
from asana_assets.lib.connections.store import TokenStore, load_records, storage_at
from asana_assets.lib.connections.troubleshooting import ConnectionProblem, Source

T = TypeVar("T")
Work = Callable[[AsanaClient], Awaitable[T]]


def _schedule(key: str, record: StoredRecord) -> ConnectionSchedule:
    """A stored connection is served until it is revoked or expired (an ``error`` status may be
    a passing outage: its next sync says)."""
    connection = record.connection
    active = connection.status not in ("revoked", "expired") and record.tokens is not None
    return ConnectionSchedule(key, active, connection.full_sync_hour, connection.poll_minutes)


class AsanaResource(dg.ConfigurableResource):
    """An Asana connection: a bare token, or a stored connection (OAuth or service-account key,
    kept encrypted by ``asana-connections``) whose access token is refreshed as needed. Library
    code runs with it through `run`."""

    access_token: str = Field(default=settings.ACCESS_TOKEN.default, description=settings.ACCESS_TOKEN.meaning)
    connection_id: str | None = Field(default=settings.CONNECTION_ID.default, description=settings.CONNECTION_ID.meaning)
    connections_file: str = Field(
        default=settings.CONNECTION_STORE.default, description=settings.CONNECTION_STORE.meaning
    )
    oauth_client_id: str = Field(default=settings.OAUTH_CLIENT_ID.default, description=settings.OAUTH_CLIENT_ID.meaning)
    oauth_client_secret: str = Field(
        default=settings.OAUTH_CLIENT_SECRET.default, description=settings.OAUTH_CLIENT_SECRET.meaning
    )
    oauth_redirect_uri: str = Field(
        default=settings.OAUTH_REDIRECT_URI.default, description=settings.OAUTH_REDIRECT_URI.meaning
    )
    base_url: str = Field(default=settings.BASE_URL.default, description=settings.BASE_URL.meaning)
    workspace_gid: str | None = Field(default=settings.WORKSPACE_GID.default, description=settings.WORKSPACE_GID.meaning)
    requests_per_minute: int = Field(
        default=settings.REQUESTS_PER_MINUTE.default, description=settings.REQUESTS_PER_MINUTE.meaning
    )
    max_concurrency: int = Field(default=settings.MAX_CONCURRENCY.default, description=settings.MAX_CONCURRENCY.meaning)
    # The setting's own default (the warehouse's Postgres or folder) is worked out where the
    # resources are configured (configured.py); a resource made without it paces itself alone.
    quota_store: str | None = Field(
        default=None, description="Where every process using a token shares its request budget: a postgresql:// "
                                  "URL or a folder; None: each process paces itself alone, at its share"
    )
    sensor_quota_share: float = Field(
        default=settings.SENSOR_QUOTA_SHARE.default, gt=0, lt=1, description=settings.SENSOR_QUOTA_SHARE.meaning
    )
    full_sync_hour: int = Field(
        default=settings.FULL_SYNC_HOUR.default, ge=0, le=23, description=settings.FULL_SYNC_HOUR.meaning
    )
    poll_minutes: int = Field(default=settings.POLL_MINUTES.default, ge=1, description=settings.POLL_MINUTES.meaning)

    def connections(self) -> list[ConnectionSchedule]:
        """Every connection this deployment syncs: the one configured here (partition
        ``default``) and each stored connection (partition = its id). Listing needs no key.

        With no connection at all and nothing pointing at Asana, this fails with the setting to
        add. (A store configured but empty is a deployment before its first connection, not an
        error.)"""
        records = load_records(storage_at(self.connections_file))
        found = [_schedule(key, record) for key, record in records.items() if key != self.connection_id]
        if self.connection_id in records:  # the default is a stored connection: its status and schedule
            found.insert(0, _schedule(DEFAULT, records[self.connection_id]))
        elif self.access_token or self.connection_id:
            found.insert(0, self._default())
        elif not found and not self._points_at_asana():
            raise _no_credentials()
        return found

    def for_connection(self, key: str) -> AsanaResource:
        """This resource acting for one partition's connection. The default connection without
        credentials fails here, before a run reads or writes anything, naming the setting to add."""
        if key == DEFAULT:
            if not (self.access_token or self.connection_id):
                raise _no_credentials()
            return self
        records = load_records(storage_at(self.connections_file))
        if key not in records:
            raise ConnectionProblem(
                f"there is no stored connection {key}", "list them with `asana-connections list`"
            )
        return self.model_copy(update={
            "access_token": "", "connection_id": key, "workspace_gid": records[key].connection.workspace_gid,
        })

    def run(self, work: Work[T], *, pool: str = RUNS, **client_options: Any) -> T:
        """``work(client)`` with this connection's credentials (a stored OAuth connection's
        refreshed as needed, see `run_with_client`), drawing on ``pool``'s share of the token's
        quota; ``client_options`` go to the client (e.g. ``max_retries``)."""
        if not self.connection_id:
            if not self.access_token:
                raise _no_credentials()
            return run_with_client(self.base_url, self.access_token, self._quota(), work, pool=pool, **client_options)
        store, connection = self._stored()
        if connection.auth_method == "oauth":
            credential = OAuthRefresher(self._app(connection), store, connection.id)
        else:  # only ever sent to the base URL its tokens were granted for
            credential = store.tokens(connection.id, connection.base_url).access_token.get_secret_value()
        return run_with_client(connection.base_url, credential, self._quota(), work, pool=pool, **client_options)

    def source(self) -> Source:
        """The base URL, workspace and token this connection reads with, each named by its setting."""
        workspace = settings.WORKSPACE_GID.name
        if not self.connection_id:
            return Source(self.base_url, settings.BASE_URL.name, self.workspace_gid, workspace, settings.ACCESS_TOKEN.name)
        connection = self._stored()[1]
        from_setting = self.workspace_gid != connection.workspace_gid  # the default connection's, overridden
        return Source(connection.base_url, None, self.workspace_gid, workspace if from_setting else None)

    def declared_kind(self) -> str | None:
        """What the connection says it acts for (a service account, a person), from how a stored
        connection was connected; None for a bare token, which declares nothing."""
        return DECLARED_BY_AUTH_METHOD[self._stored()[1].auth_method] if self.connection_id else None

    def provenance(self, key: str) -> dict[str, Any]:
        """Where partition ``key``'s data comes from, for the evidence manifest: the API base
        (and whether it is the demo simulator), and the connection: its partition and, for a
        stored one, its id and workspace. Sends nothing and starts nothing."""
        stored_id = key if key != DEFAULT else self.connection_id
        connection: dict[str, Any] = {"partition": key}
        if not stored_id:
            return {"source": {"base_url": self.base_url, "demo": False}, "connection": connection}
        record = load_records(storage_at(self.connections_file)).get(stored_id)
        stored = record.connection if record else None  # removed since: its id is all there is
        connection |= {
            "id": stored_id,
            "auth_method": stored.auth_method if stored else None,
            "workspace_gid": stored.workspace_gid if stored else None,
            "workspace_name": stored.workspace_name if stored else None,
        }
        return {"source": {"base_url": stored.base_url if stored else None, "demo": False}, "connection": connection}

    def record_sync(self) -> None:
        """Note a successful sync on the stored connection (shown by `asana-connections list`)."""
        if self.connection_id:
            TokenStore.at(self.connections_file).update(self.connection_id, last_synced_at=datetime.now(UTC))

    def _default(self) -> ConnectionSchedule:
        return ConnectionSchedule(DEFAULT, True, self.full_sync_hour, self.poll_minutes)

    def _quota(self) -> Quota:
        return Quota(self.requests_per_minute, self.max_concurrency, self.sensor_quota_share, self.quota_store)

    def _stored(self) -> tuple[TokenStore, Connection]:
        store = TokenStore.at(self.connections_file)
        return store, store.get(self.connection_id)

    def _app(self, connection: Connection) -> oauth.OAuthApp:
        return oauth.OAuthApp(self.oauth_client_id, self.oauth_client_secret, self.oauth_redirect_uri, connection.base_url)

    def _points_at_asana(self) -> bool:
        """An API base other than Asana's, or a connection store (configured, or the default file
        present): a deployment being set up, before its first connection."""
        return (self.base_url != settings.BASE_URL.default or self.connections_file != settings.CONNECTION_STORE.default
                or Path(self.connections_file).exists())


class DemoAsanaResource(AsanaResource):
    """The demo simulator's organisation as the one connection (partition ``default``), chosen by
    ASANA_DEMO (see demo.py): it refuses, naming the setting, while anything else points at a real
    Asana or a warehouse's Postgres. Its organisation has a quota of its own."""

    requests_per_minute: int = Field(
        default=demo.DEMO_REQUESTS_PER_MINUTE, description="The demo organisation's request budget per minute"
    )

    def connections(self) -> list[ConnectionSchedule]:
        _refuse_beside_a_real_asana()
        return [self._default()]

    def for_connection(self, key: str) -> DemoAsanaResource:
        _refuse_beside_a_real_asana()
        if key != DEFAULT:
            raise ConnectionProblem(f"the demo has no connection {key}", f"sync the demo's partition {DEFAULT}")
        return self

    def run(self, work: Work[T], *, pool: str = RUNS, **client_options: Any) -> T:
        base_url, token = demo.source()
        return run_with_client(base_url, token, self._quota(), work, pool=pool, **client_options)

    def source(self) -> Source:
        return Source(demo.source()[0])

    def declared_kind(self) -> str | None:
        return None

    def provenance(self, key: str) -> dict[str, Any]:
        return {"source": {"base_url": demo.running_base_url(), "demo": True}, "connection": {"partition": key}}

    def record_sync(self) -> None:
        """The demo's connection is stored nowhere: nothing to note."""


def _refuse_beside_a_real_asana() -> None:
    """The demo's refusal, when anything else points at a real Asana or warehouse."""
    if (refused := demo.refusal()) is not None:
        raise refused


def _no_credentials() -> ConnectionProblem:
    """The error for a connection without credentials, naming the settings to add."""
    return ConnectionProblem(
        "no Asana credentials are configured",
        f"set {settings.ACCESS_TOKEN.name} or {settings.CONNECTION_ID.name} (connect with `asana-connections "
        f"connect`, then set {settings.CONNECTION_ID.name} to the connection's id); for the demo simulator, set "
        f"{settings.DEMO.name}=1",
    )
