"""Dagster resources: the Asana connection, the warehouse and the compliance parameters, and
their configuration from the settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field, PrivateAttr

from asana_assets import demo, settings
from asana_assets.defs.partitions import DEFAULT, ConnectionSchedule
from asana_assets.lib.asana.audit_log import AuditLogRead, read_audit_log
from asana_assets.lib.asana.client import AsanaClient, SyncTokenExpiredError
from asana_assets.lib.asana.client import run as run_async
from asana_assets.lib.asana.crawl import SyncResult, crawl
from asana_assets.lib.asana.incremental import IncrementalResult, incremental_sync
from asana_assets.lib.asana.reconcile import reconcile_sync
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.compliance.monitors import MonitorParams
from asana_assets.lib.compliance.remediation import Remediation, remediate
from asana_assets.lib.compliance.tickets import CHANGE_TICKET_TYPES, CHANGE_TYPE_PATTERN
from asana_assets.lib.compliance.workflow import CHANGE_PROJECT_PATTERN
from asana_assets.lib.connections import oauth
from asana_assets.lib.connections.coverage import DECLARED_BY_AUTH_METHOD, Coverage, coverage
from asana_assets.lib.connections.records import Connection, StoredRecord
from asana_assets.lib.connections.store import TokenStore, load_records, storage_at
from asana_assets.lib.connections.troubleshooting import ConnectionProblem
from asana_assets.lib.schema import HISTORY_TABLES, TABLES
from asana_assets.lib.storage.files import StateStore
from asana_assets.lib.storage.parquet import DEFAULT_KEEP, ParquetWarehouse
from asana_assets.lib.storage.polls import PollStore, PostgresPollStore, poll_store
from asana_assets.lib.storage.postgres import PostgresStateStore, PostgresWarehouse
from asana_assets.lib.storage.quota import open_budget
from asana_assets.lib.storage.views import refresh_views
from asana_assets.settings import ASANA_API_BASE

STAGED_STATE = "_sync_state.json"  # in a run's stage, until its commit
PEEK_TIMEOUT = 20.0  # seconds a poll of the events feeds may wait for one response


def _database_storage(instance: dg.DagsterInstance | None) -> str | None:
    """The package that keeps the instance's runs when it is a database server's
    (dagster-postgres, dagster-mysql: a production instance); None for Dagster's own SQLite or
    in-memory storage, or without an instance."""
    if instance is None:
        return None
    package = type(instance.run_storage).__module__.split(".")[0]
    return None if package == "dagster" else package.replace("_", "-")


def _schedule(key: str, record: StoredRecord) -> ConnectionSchedule:
    """A stored connection is served until it is revoked or expired (an ``error`` status may be
    a passing outage: its next sync says)."""
    connection = record.connection
    active = connection.status not in ("revoked", "expired") and record.tokens is not None
    return ConnectionSchedule(key, active, connection.full_sync_hour, connection.poll_minutes)


class AsanaResource(dg.ConfigurableResource):
    """An Asana connection: a bare token, or a stored connection (OAuth or service-account key,
    kept encrypted by ``asana-connections``) whose access token is refreshed as needed."""

    access_token: str = Field(default="", description="Asana personal access token or service-account token")
    connection_id: str | None = Field(
        default=None, description="A stored connection to use instead of access_token (see asana-connections)"
    )
    connections_file: str = Field(
        default=settings.CONNECTION_STORE.default, description="The encrypted connection store (asana-connections --store)"
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
    quota_store: str | None = Field(
        default=None, description="Where every process using a token shares its request budget: a postgresql:// "
                                  "URL or a folder; unset: each process paces itself alone, at its share"
    )
    sensor_quota_share: float = Field(
        default=0.1, gt=0, lt=1,
        description="The events sensor's share of a token's requests a minute and reads in flight; runs share the rest",
    )
    full_sync_hour: int = Field(
        default=3, ge=0, le=23, description="UTC hour of the daily reconcile and weekly full sync (stored connections have their own)"
    )
    poll_minutes: int = Field(default=1, ge=1, description="Least minutes between two polls of the events feeds")
    # The database server the Dagster instance keeps its storage in, when it does (a production
    # instance, beside which the demo never serves); set when a run or a sensor sets this up.
    _instance_storage: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._instance_storage = _database_storage(context.instance)

    def connections(self) -> list[ConnectionSchedule]:
        """Every connection this deployment syncs: the one configured here (partition
        ``default``) and each stored connection (partition = its id). Listing needs no key.

        With no connection at all, nothing pointing at Asana and a production warehouse or
        instance, this fails with the setting to add: the demo never serves there. (A store
        configured but empty is a deployment before its first connection, not an error.)"""
        records = load_records(storage_at(self.connections_file))
        found = [_schedule(key, record) for key, record in records.items() if key != self.connection_id]
        if self.connection_id in records:  # the default is a stored connection: its status and schedule
            found.insert(0, _schedule(DEFAULT, records[self.connection_id]))
        elif self.access_token or self.connection_id or self._serves_demo():
            found.insert(0, ConnectionSchedule(DEFAULT, True, self.full_sync_hour, self.poll_minutes))
        elif not found and not self._points_at_asana() and demo.asana_setting() is None:
            raise self._no_credentials()
        return found

    def for_connection(self, key: str) -> AsanaResource:
        """This resource acting for one partition's connection. The default connection without
        credentials fails here, before a run reads or writes anything, naming the setting to add."""
        if key == DEFAULT:
            if not (self.access_token or self.connection_id or self._serves_demo()):
                raise self._no_credentials()
            return self
        records = load_records(storage_at(self.connections_file))
        if key not in records:
            raise ConnectionProblem(
                f"there is no stored connection {key}", "list them with `asana-connections list`"
            )
        return self.model_copy(update={
            "access_token": "", "connection_id": key, "workspace_gid": records[key].connection.workspace_gid,
        })

    def credentials(self) -> tuple[str, str]:
        """(API base, access token): the stored connection's (refreshed if it is about to
        expire; only ever for the base URL its tokens were granted for), else the configured
        token, else the demo's where it may serve. Raises with the fix when there is none."""
        if not self.connection_id:
            if self.access_token:
                return self.base_url, self.access_token
            if self._serves_demo():
                return demo.source(self._instance_storage)
            raise self._no_credentials()
        store, connection = self._stored()
        if connection.auth_method == "oauth":
            return connection.base_url, oauth.access_token(self._app(connection), store, connection.id)
        tokens = store.tokens(connection.id, connection.base_url)
        return connection.base_url, tokens.access_token.get_secret_value()

    def provenance(self, key: str) -> dict[str, Any]:
        """Where partition ``key``'s data comes from, for the evidence manifest: the API base
        (and whether it is the demo simulator), and the connection: its partition and, for a
        stored one, its id and workspace. Sends nothing and starts nothing."""
        stored_id = key if key != DEFAULT else self.connection_id
        connection: dict[str, Any] = {"partition": key}
        if stored_id:
            record = load_records(storage_at(self.connections_file)).get(stored_id)
            stored = record.connection if record else None  # removed since: its id is all there is
            connection |= {
                "id": stored_id,
                "auth_method": stored.auth_method if stored else None,
                "workspace_gid": stored.workspace_gid if stored else None,
                "workspace_name": stored.workspace_name if stored else None,
            }
            source = {"base_url": stored.base_url if stored else None, "demo": False}
        elif not self.access_token and self._serves_demo():
            source = {"base_url": demo.running_base_url(), "demo": True}
        else:
            source = {"base_url": self.base_url, "demo": False}
        return {"source": source, "connection": connection}

    def _stored(self) -> tuple[TokenStore, Connection]:
        store = TokenStore.at(self.connections_file)
        return store, store.get(self.connection_id)

    def _app(self, connection: Connection) -> oauth.OAuthApp:
        return oauth.OAuthApp(self.oauth_client_id, self.oauth_client_secret, self.oauth_redirect_uri, connection.base_url)

    def sync(self, tables: Iterable[str] | None = None, track_events: bool = False,
             expected_requests: int | None = None) -> SyncResult:
        """Crawl the configured workspace(s) into the given raw tables."""
        return self._run(lambda client: crawl(client, self.workspace_gid or None, tables, track_events,
                                              expected_requests))

    def sync_incremental(self, state: SyncState, current: dict[str, pa.Table],
                         projects: Iterable[str] | None = None) -> IncrementalResult:
        """Apply the changes since ``state`` to the ``current`` raw tables (only ``projects``' if given)."""
        return self._run(
            lambda client: incremental_sync(client, state, current, self.workspace_gid or None, projects)
        )

    def read_audit_log(self, workspace_gids: Iterable[str], cursors: dict[str, str], current: pa.Table | None,
                       observed_at: datetime) -> AuditLogRead:
        """The audit log events of the workspaces since their cursors, added to ``current``."""
        return self._run(lambda client: read_audit_log(client, list(workspace_gids), cursors, current, observed_at))

    def remediate(self, project_gid: str, assignee_gid: str | None, results: pd.DataFrame, known: dict[str, str],
                  run_id: str, as_of: pd.Timestamp, evidence: str) -> Remediation:
        """Open, update and close the remediation project's tasks to match ``results``."""
        return self._run(lambda client: remediate(client, project_gid, assignee_gid, results, known, run_id, as_of,
                                                  evidence))

    def sync_reconcile(self, state: SyncState, current: dict[str, pa.Table]) -> IncrementalResult:
        """Bring the ``current`` raw tables in line with the source without a full crawl (see
        lib/asana/reconcile.py); ``state`` gets every project's next token."""
        return self._run(lambda client: reconcile_sync(client, state, current, self.workspace_gid or None))

    def changed_projects(self, state: SyncState, projects: Iterable[str] | None = None,
                         within: float | None = None, renewed: dict[str, str] | None = None) -> dict[str, str | None]:
        """Look at the events feeds of ``projects`` (default: every project with a token), one
        request each, reading without consuming (a token may be sent again): per project looked
        at, a digest of what is pending, or None when nothing is; an expired token counts as
        pending. A project whose look failed, or is still unanswered ``within`` seconds, is left
        out, to be looked at again; when every look failed, the first failure is raised. A look
        finding nothing pending puts the feed's next token in ``renewed``, when given.

        A look, not a sync: it neither retries nor waits out a rate limit (the next poll will
        look again), so one slow or throttled connection never holds up the others' polls."""

        async def peek(client: AsanaClient, gid: str, token: str) -> str | None:
            try:
                events, sync, more = await client.events(gid, token)
            except SyncTokenExpiredError:
                return f"{token}:expired"
            if not events and renewed is not None:
                renewed[gid] = sync
            last = events[-1] if events else None
            return last and f"{token}:{len(events)}:{more}:{last.get('created_at')}:{last['resource']['gid']}"

        async def run(client: AsanaClient) -> dict[str, str | None]:
            now = datetime.now(UTC)
            gids = [gid for gid in (state.tokens if projects is None else projects) if gid in state.tokens]
            tasks = {asyncio.ensure_future(peek(client, gid, state.token(gid, now) or "")): gid for gid in gids}
            # The looks answered in time count (their schedule is saved); the rest stay due.
            done, late = await asyncio.wait(tasks, timeout=within) if tasks else (set(), set())
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            found = {tasks[task]: task.exception() or task.result() for task in done}
            failures = [outcome for outcome in found.values() if isinstance(outcome, BaseException)]
            looked = {gid: outcome for gid, outcome in found.items() if not isinstance(outcome, BaseException)}
            if failures and (not looked or not all(isinstance(f, Exception) for f in failures)):
                raise failures[0]
            return looked

        return self._run(run, sensor=True, max_retries=0, timeout=PEEK_TIMEOUT)

    def record_sync(self) -> None:
        """Note a successful sync on the stored connection (shown by `asana-connections list`)."""
        if self.connection_id:
            TokenStore.at(self.connections_file).update(self.connection_id, last_synced_at=datetime.now(UTC))

    def whoami(self) -> dict:
        """The user the credentials act for: the cheapest proof that the connection works."""
        return self._run(lambda client: client.get_data("/users/me", fields=("name", "email")))

    def coverage(self, workspace_gids: list[str]) -> Coverage:
        """Who the credentials act for, and whether they read every project of these workspaces.
        A stored connection declares its kind by how it was connected; a bare token declares none."""
        declared = DECLARED_BY_AUTH_METHOD[self._stored()[1].auth_method] if self.connection_id else None
        return self._run(lambda client: coverage(client, workspace_gids, declared))

    def _points_at_asana(self) -> bool:
        """A token, a stored connection, an API base or a connection store is configured here."""
        return bool(self.access_token or self.connection_id or self.base_url != ASANA_API_BASE
                    or self.connections_file != settings.CONNECTION_STORE.default)

    def _serves_demo(self) -> bool:
        """Nothing configured here, and nothing in the environment or the instance that points
        at a real Asana or warehouse: the demo simulator is the source."""
        return not self._points_at_asana() and demo.refusal(self._instance_storage) is None

    def _no_credentials(self) -> ConnectionProblem:
        """The error for a connection without credentials, naming the setting to add."""
        if not self._points_at_asana() and (refused := demo.refusal(self._instance_storage)) is not None:
            return refused
        return ConnectionProblem(
            "no Asana credentials are configured",
            f"{demo.CREDENTIALS} (connect with `asana-connections connect`, then set "
            f"{settings.CONNECTION_ID.name} to the connection's id)",
        )

    def _run(self, work, *, sensor: bool = False, **client_options):
        """``work(client)`` with this connection's credentials. An OAuth connection whose access
        token Asana refuses although it looked unexpired is refreshed and tried once more; a
        refused refresh marks the connection expired and says to reconnect, an unavailable
        token endpoint fails the run (retryable) and leaves the connection active.

        The client draws on the events sensor's share of the token's quota (``sensor``) or on the
        runs', in the budget every process using the token shares when ``quota_store`` is set."""
        stored = self._stored() if self.connection_id else None
        if stored and stored[1].auth_method == "oauth":
            store, connection = stored
            base_url, token = connection.base_url, None  # the token comes from call_with_refresh
        else:
            base_url, token = self.credentials()
        # The demo's organisation has a quota of its own, larger than a paid plan's.
        quota = demo.DEMO_REQUESTS_PER_MINUTE if self._serves_demo() else self.requests_per_minute

        share = self.sensor_quota_share if sensor else 1 - self.sensor_quota_share

        async def with_token(token: str):
            budget = open_budget(self.quota_store, token) if self.quota_store else None
            async with AsanaClient(base_url, token, max_concurrency=self.max_concurrency, requests_per_minute=quota,
                                   budget=budget, pool="sensor" if sensor else "runs", share=share,
                                   **client_options) as client:
                return await work(client)

        if token is None:
            return run_async(oauth.call_with_refresh(self._app(connection), store, connection.id, with_token))
        return run_async(with_token(token))


class WarehouseResource(dg.ConfigurableResource):
    """Where the tables land: a folder of Parquet files, and Postgres too when a URL is set.

    A run writes into a stage of its own (`for_run`) and `commit` publishes all of its tables
    at once: Postgres in one transaction (with the sync state), then the Parquet version."""

    directory: str = Field(default="warehouse", description="Root folder of the Parquet warehouse")
    postgres_url: str | None = Field(
        default=None, description="e.g. postgresql://user@host:5432/db; unset: Parquet only"
    )
    postgres_schema: str = Field(default="asana", description="Postgres schema of the tables")
    keep_versions: int = Field(
        default=DEFAULT_KEEP, ge=1, description="Parquet versions kept for rollback, the published one included"
    )
    stage: str | None = Field(default=None, description="The run whose stage this warehouse writes (set per run)")

    def for_connection(self, key: str) -> WarehouseResource:
        """One partition's warehouse: the configured one for ``default``; for a stored
        connection, a folder ``connections/<id>`` of its own and the schema ``<schema>_<id>``,
        so connections never share a table, a state or an evidence pack."""
        if key == DEFAULT:
            return self
        return self.model_copy(update={
            "directory": str(Path(self.directory) / "connections" / key),
            "postgres_schema": f"{self.postgres_schema}_{key}",
        })

    def for_run(self, run_id: str) -> WarehouseResource:
        """This warehouse writing into run ``run_id``'s stage (and reading it back first)."""
        return self.model_copy(update={"stage": run_id})

    def parquet(self) -> ParquetWarehouse:
        return ParquetWarehouse(self.directory, self.stage)

    def poll_store(self) -> PollStore | PostgresPollStore:
        """Where the events sensor keeps its poll schedule and the tokens its polls renewed."""
        return poll_store(self.directory, self.postgres_url, self.postgres_schema)

    def state_store(self) -> StateStore | PostgresStateStore:
        """Where the incremental sync keeps its events tokens, beside the tables they describe:
        in Postgres when it is configured, else in the warehouse folder."""
        if self.postgres_url:
            return PostgresStateStore(self.postgres_url, self.postgres_schema)
        return StateStore(Path(self.directory) / "state" / "sync_state.json")

    def _staged_state(self) -> StateStore:
        return StateStore(self.parquet().staged / STAGED_STATE)

    def stage_state(self, state: SyncState) -> None:
        """The sync state this run reached, saved by `commit` with the tables it describes: a
        run that dies before then is replayed from the previous state."""
        self._staged_state().save(state)

    def run_state(self) -> SyncState:
        """The sync state as this run left it so far (staged), else as last published."""
        staged = self._staged_state()
        return staged.load() if staged.path.exists() else self.state_store().load()

    def publish(self, table: str, data: pa.Table, part: str | None = None) -> dict[str, Any]:
        """Stage a table (a history table: this run's ``part``); returns its metadata."""
        store = self.parquet()
        store.write_part(table, part, data) if part else store.write(table, data)
        published = store.published / (f"{table}/{part}.parquet" if part else f"{table}.parquet")
        metadata: dict[str, Any] = {"path": dg.MetadataValue.path(str(published))}
        if self.postgres_url:
            metadata["postgres_table"] = f"{self.postgres_schema}.{table}"
        return metadata

    def commit(self) -> dict[str, Any]:
        """Publish every table this run staged, and its sync state: Postgres first, in one
        transaction, then the Parquet version in one step. A failure before the end leaves the
        previous state whole in both stores. Returns metadata about the publication."""
        store = self.parquet()
        files = store.staged_files()
        staged_state = self._staged_state()
        state = staged_state.load() if staged_state.path.exists() else None
        metadata: dict[str, Any] = {"published_tables": dg.MetadataValue.json(sorted({f.parts[0].removesuffix(".parquet") for f in files}))}
        if self.postgres_url:
            def tables():
                for relative in files:
                    yield relative.parts[0].removesuffix(".parquet"), pq.read_table(store.staged / relative)

            named_state = (PostgresStateStore.NAME, asdict(state)) if state else None
            started = time.perf_counter()
            with PostgresWarehouse(self.postgres_url, self.postgres_schema) as postgres:
                loaded = postgres.publish(tables(), state=named_state)
            metadata["postgres_views"] = dg.MetadataValue.json(refresh_views(self.postgres_url, self.postgres_schema))
            metadata["postgres_seconds"] = round(time.perf_counter() - started, 3)  # the publication, views included
            metadata["postgres_loads"] = dg.MetadataValue.json({
                s.table: {k: v for k, v in asdict(s).items() if k != "table"} for s in loaded
            })
        version = store.commit(self.keep_versions)
        if state and not self.postgres_url:
            self.state_store().save(state)  # after the tables: a crash between replays, never skips
        metadata["published_version"] = dg.MetadataValue.path(str(version))
        return metadata

    def read(self, table: str, columns: list[str] | None = None) -> pa.Table:
        """A table (those ``columns``) as of now (this run's staged one first); a history table
        with all its parts."""
        store = self.parquet()
        if table in HISTORY_TABLES:
            return store.read_history(table, TABLES[table], columns)
        return store.read(table, columns)

    def read_history(self, table: str, columns: list[str] | None = None,
                     filters: pc.Expression | None = None) -> pa.Table:
        """Those columns and rows of a history table's parts (see ``ParquetWarehouse.read_history``)."""
        return self.parquet().read_history(table, TABLES[table], columns, filters)

    def count_history(self, table: str, keys: list[str]) -> pa.Table:
        """Rows per distinct ``keys`` of a history table (see ``ParquetWarehouse.count_history``)."""
        return self.parquet().count_history(table, TABLES[table], keys)


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
    ticket_type_field: str | None = Field(
        default=None, description="The enum or multi-enum custom field that types tickets, by gid or name; unset: "
                                  "every enum and multi-enum field whose name has the word 'type'")
    change_ticket_types: list[str] = Field(
        default_factory=lambda: list(CHANGE_TICKET_TYPES),
        description="Ticket types (case-insensitive) that make a ticket a change, wherever it sits")
    change_type_pattern: str = Field(
        default=CHANGE_TYPE_PATTERN, description="Regex (case-insensitive): type options it matches make a change "
                                                 "too (default: a word starting 'change'); empty: the list alone")
    section_overrides: dict[str, str] = Field(default_factory=dict, description="Section gid -> workflow stage")
    project_section_overrides: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Project gid -> {section name -> workflow stage}"
    )
    remediation_enabled: bool = Field(
        default=False, description="Open an Asana task per alarm in remediation_project_gid (needs tasks:write, "
                                   "stories:write); never for the demo"
    )
    remediation_project_gid: str | None = Field(default=None, description="The project findings are filed in")
    remediation_assignee_gid: str | None = Field(default=None, description="Who findings' tasks are assigned to")

    def params(self) -> MonitorParams:
        return MonitorParams(**{name: getattr(self, name) for name in MonitorParams.model_fields})

    def describe(self) -> dict:
        """Every setting, for the evidence pack's manifest."""
        return {name: getattr(self, name) for name in type(self).model_fields}


def _from(setting: settings.Setting):
    """An EnvVar when the variable is set (resolved at launch, so no value is baked in), else the default.
    (A share is read now: Dagster has no EnvVar for a float.)"""
    if not setting.is_set or isinstance(setting.default, float):
        return setting.get()
    return dg.EnvVar.int(setting.name) if isinstance(setting.default, int) else dg.EnvVar(setting.name)


def _quota_store():
    """Where the token budgets are shared: the setting, else the warehouse's Postgres, else a
    folder of the warehouse (beside its sync state)."""
    if settings.QUOTA_STORE.is_set:
        return _from(settings.QUOTA_STORE)
    if settings.POSTGRES_URL.is_set:
        return _from(settings.POSTGRES_URL)
    return str(Path(settings.WAREHOUSE_DIR.get()) / "state" / "quota")


def configured_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources as the settings configure them."""
    return {
        "asana": AsanaResource(
            access_token=_from(settings.ACCESS_TOKEN),
            connection_id=_from(settings.CONNECTION_ID),
            connections_file=_from(settings.CONNECTION_STORE),
            oauth_client_id=_from(settings.OAUTH_CLIENT_ID),
            oauth_client_secret=_from(settings.OAUTH_CLIENT_SECRET),
            oauth_redirect_uri=_from(settings.OAUTH_REDIRECT_URI),
            base_url=_from(settings.BASE_URL),
            workspace_gid=_from(settings.WORKSPACE_GID),
            requests_per_minute=_from(settings.REQUESTS_PER_MINUTE),
            max_concurrency=_from(settings.MAX_CONCURRENCY),
            quota_store=_quota_store(),
            sensor_quota_share=_from(settings.SENSOR_QUOTA_SHARE),
            full_sync_hour=_from(settings.FULL_SYNC_HOUR),
            poll_minutes=_from(settings.POLL_MINUTES),
        ),
        "warehouse": WarehouseResource(
            directory=_from(settings.WAREHOUSE_DIR),
            postgres_url=_from(settings.POSTGRES_URL),
            postgres_schema=_from(settings.POSTGRES_SCHEMA),
        ),
        "compliance": ComplianceResource(),
    }
