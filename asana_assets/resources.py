"""Dagster resources: the Asana connection and the warehouse, configured from the environment."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from asana_assets import oauth
from asana_assets.client import ASANA_API_BASE, AsanaClient, AuthenticationError, SyncTokenExpiredError
from asana_assets.connections import (
    DEFAULT_STORE, Connection, ConnectionProblem, StoredRecord, TokenStore, storage_at,
)
from asana_assets.oauth import OAuthApp
from asana_assets.incremental import (
    IncrementalResult, PostgresStateStore, StateStore, SyncState, incremental_sync,
)
from asana_assets.client import run as run_async
from asana_assets.monitors import MonitorParams
from asana_assets.partitions import DEFAULT, Tenant
from asana_assets.sync import SyncResult, crawl
from asana_assets.tables import HISTORY_TABLES, TABLES
from asana_assets.postgres import PostgresWarehouse
from asana_assets.warehouse import ParquetWarehouse
from asana_assets.workflow import CHANGE_PROJECT_PATTERN


PEEK_TIMEOUT = 20.0  # seconds a poll of the events feeds may wait for one response


def _tenant(key: str, record: StoredRecord) -> Tenant:
    """A stored connection is served until it is revoked or expired (an ``error`` status may be
    a passing outage: its next sync says)."""
    connection = record.connection
    active = connection.status not in ("revoked", "expired") and record.tokens is not None
    return Tenant(key, active, connection.full_sync_hour, connection.poll_minutes)


class AsanaResource(dg.ConfigurableResource):
    """An Asana connection: a bare token, or a stored connection (OAuth or service-account key,
    kept encrypted by ``asana-connections``) whose access token is refreshed as needed."""

    access_token: str = Field(default="", description="Asana personal access token or service-account token")
    connection_id: str | None = Field(
        default=None, description="A stored connection to use instead of access_token (see asana-connections)"
    )
    connections_file: str = Field(
        default=DEFAULT_STORE, description="The encrypted connection store (asana-connections --store)"
    )
    oauth_client_id: str = Field(default="", description="The OAuth app, to refresh an OAuth connection's token")
    oauth_client_secret: str = Field(default="", description="The OAuth app's secret")
    oauth_redirect_uri: str = Field(default="", description="The OAuth app's redirect URI")
    base_url: str = Field(default=ASANA_API_BASE, description="API base, e.g. https://app.asana.com/api/1.0")
    workspace_gid: str | None = Field(
        default=None, description="Workspace to sync; empty syncs every workspace the token sees"
    )
    requests_per_minute: int = Field(
        default=1500, description="Request budget: 1500 on paid plans, 150 on free ones"
    )
    max_concurrency: int = Field(default=50, description="Requests in flight (Asana allows 50 GETs)")
    full_sync_hour: int = Field(
        default=3, ge=0, le=23, description="UTC hour of the daily full sync (stored connections have their own)"
    )
    poll_minutes: int = Field(default=1, ge=1, description="Least minutes between two polls of the events feeds")

    def client(self, **options) -> AsanaClient:
        base_url, token = self.credentials()
        return AsanaClient(
            base_url, token, max_concurrency=self.max_concurrency, requests_per_minute=self.requests_per_minute,
            **options,
        )

    def tenants(self) -> list[Tenant]:
        """Every connection this deployment syncs: the one configured here (partition
        ``default``) and each stored connection (partition = its id). Listing needs no key."""
        records = storage_at(self.connections_file).load()
        found = [_tenant(key, record) for key, record in records.items() if key != self.connection_id]
        if self.connection_id in records:  # the default is a stored connection: its status and schedule
            found.insert(0, _tenant(DEFAULT, records[self.connection_id]))
        elif self.access_token or self.connection_id:
            found.insert(0, Tenant(DEFAULT, True, self.full_sync_hour, self.poll_minutes))
        return found

    def for_connection(self, key: str) -> AsanaResource:
        """This resource acting for one partition's connection."""
        if key == DEFAULT:
            return self
        records = storage_at(self.connections_file).load()
        if key not in records:
            raise ConnectionProblem(
                f"there is no stored connection {key}", "list them with `asana-connections list`"
            )
        return self.model_copy(update={
            "access_token": "", "connection_id": key, "workspace_gid": records[key].connection.workspace_gid,
        })

    def credentials(self) -> tuple[str, str]:
        """(API base, access token): the stored connection's (refreshed if it is about to
        expire), else the configured token. Raises with the fix when there is none."""
        if not self.connection_id:
            if not self.access_token:
                raise ConnectionProblem(
                    "no Asana credentials are configured",
                    "set ASANA_ACCESS_TOKEN, or connect with `asana-connections connect` and set ASANA_CONNECTION_ID",
                )
            return self.base_url, self.access_token
        store, connection = self._stored()
        if connection.auth_method == "oauth":
            return connection.base_url, oauth.access_token(self._app(connection), store, connection.id)
        return connection.base_url, store.tokens(connection.id).access_token.get_secret_value()

    def _stored(self) -> tuple[TokenStore, Connection]:
        store = TokenStore.at(self.connections_file)
        return store, store.get(self.connection_id)

    def _app(self, connection: Connection) -> OAuthApp:
        return OAuthApp(self.oauth_client_id, self.oauth_client_secret, self.oauth_redirect_uri, connection.base_url)

    def sync(self, tables: Iterable[str] | None = None, track_events: bool = False) -> SyncResult:
        """Crawl the configured workspace(s) into the given raw tables."""
        return self._run(lambda client: crawl(client, self.workspace_gid or None, tables, track_events))

    def sync_incremental(self, state: SyncState, current: dict[str, pa.Table],
                         projects: Iterable[str] | None = None) -> IncrementalResult:
        """Apply the changes since ``state`` to the ``current`` raw tables (only ``projects``' if given)."""
        return self._run(
            lambda client: incremental_sync(client, state, current, self.workspace_gid or None, projects)
        )

    def changed_projects(self, state: SyncState) -> dict[str, str]:
        """Projects with events since their token (read without consuming them: a token may be
        sent again), each with a digest of what is pending; an expired token counts as changed.

        A look, not a sync: it neither retries nor waits out a rate limit (the next poll will
        look again), so one slow or throttled connection never holds up the others' polls."""

        async def peek(client: AsanaClient, gid: str, token: str) -> tuple[str, str | None]:
            try:
                events, _, more = await client.events(gid, token)
            except SyncTokenExpiredError:
                return gid, f"{token}:expired"
            last = events[-1] if events else None
            pending = last and f"{token}:{len(events)}:{more}:{last.get('created_at')}:{last['resource']['gid']}"
            return gid, pending

        async def run(client: AsanaClient) -> dict[str, str]:
            now = datetime.now(UTC)
            tokens = {gid: state.token(gid, now) or "" for gid in state.tokens}
            found = await asyncio.gather(*(peek(client, gid, token) for gid, token in tokens.items()))
            return {gid: digest for gid, digest in found if digest}

        return self._run(run, max_retries=0, timeout=PEEK_TIMEOUT)

    def record_sync(self) -> None:
        """Note a successful sync on the stored connection (shown by `asana-connections list`)."""
        if self.connection_id:
            TokenStore.at(self.connections_file).update(self.connection_id, last_synced_at=datetime.now(UTC))

    def whoami(self) -> dict:
        """The user the credentials act for: the cheapest proof that the connection works."""
        return self._run(lambda client: client.get_data("/users/me", fields=("name", "email")))

    def _run(self, work, **client_options):
        async def run():
            async with self.client(**client_options) as client:
                return await work(client)

        try:
            return run_async(run())
        except AuthenticationError:
            if not self.connection_id:
                raise
            store, connection = self._stored()
            if connection.auth_method != "oauth":
                raise
            # Asana refused an access token that looked unexpired: refresh once and retry; a
            # refused refresh marks the connection expired and says to reconnect.
            oauth.refresh(self._app(connection), store, connection.id)
            return run_async(run())


class WarehouseResource(dg.ConfigurableResource):
    """Where the tables land: a folder of Parquet files, and Postgres too when a URL is set."""

    directory: str = Field(default="warehouse", description="Root folder of the Parquet warehouse")
    postgres_url: str | None = Field(
        default=None, description="e.g. postgresql://user@host:5432/db; unset: Parquet only"
    )
    postgres_schema: str = Field(default="asana", description="Postgres schema of the tables")

    def for_connection(self, key: str) -> WarehouseResource:
        """One partition's warehouse: the configured one for ``default``; for a stored
        connection, a folder ``connections/<id>`` of its own and the schema ``<schema>_<id>``,
        so tenants never share a table, a state or an evidence pack."""
        if key == DEFAULT:
            return self
        return self.model_copy(update={
            "directory": str(Path(self.directory) / "connections" / key),
            "postgres_schema": f"{self.postgres_schema}_{key}",
        })

    def parquet(self) -> ParquetWarehouse:
        return ParquetWarehouse(self.directory)

    def state_store(self) -> StateStore | PostgresStateStore:
        """Where the incremental sync keeps its events tokens, beside the tables they describe:
        in Postgres when it is configured, else in the warehouse folder."""
        if self.postgres_url:
            return PostgresStateStore(self.postgres_url, self.postgres_schema)
        return StateStore(self.parquet().root / "state" / "sync_state.json")

    def publish(self, table: str, data: pa.Table, part: str | None = None) -> dict[str, Any]:
        """Write a table (a history table: this run's ``part``) to Parquet, and to Postgres when
        configured, in one transaction there; returns materialization metadata about both."""
        store = self.parquet()
        path = store.write_part(table, part, data) if part else store.write(table, data)
        metadata: dict[str, Any] = {"path": dg.MetadataValue.path(str(path))}
        if self.postgres_url:
            with PostgresWarehouse(self.postgres_url, self.postgres_schema) as postgres:
                loaded = postgres.load(table, data)
            metadata["postgres_table"] = f"{self.postgres_schema}.{table}"
            metadata["postgres_load"] = dg.MetadataValue.json(
                {k: v for k, v in asdict(loaded).items() if k != "table"}
            )
        return metadata

    def read(self, table: str) -> pa.Table:
        """A table as of now; a history table with all its parts."""
        store = self.parquet()
        return store.read_history(table, TABLES[table]) if table in HISTORY_TABLES else store.read(table)


class ComplianceResource(dg.ConfigurableResource, MonitorParams):
    """What the compliance layer treats as a change, how sections map to stages, and the
    monitors' parameters (see MonitorParams for those and their defaults)."""

    as_of: str | None = Field(default=None, description="Evaluate as of this ISO time (default: the run's start)")
    change_projects: list[str] | None = Field(
        default=None, description="Change projects by gid or name; unset: names matching change_project_pattern"
    )
    change_project_pattern: str = Field(
        default=CHANGE_PROJECT_PATTERN, description="Regex (case-insensitive) for change project names"
    )
    section_overrides: dict[str, str] = Field(default_factory=dict, description="Section gid -> workflow stage")
    project_section_overrides: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Project gid -> {section name -> workflow stage}"
    )

    def params(self) -> MonitorParams:
        return MonitorParams(**{name: getattr(self, name) for name in MonitorParams.model_fields})

    def describe(self) -> dict:
        """Every setting, for the evidence pack's manifest."""
        return {name: getattr(self, name) for name in type(self).model_fields}
