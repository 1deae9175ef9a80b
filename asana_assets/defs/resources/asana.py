"""The Asana resource: one connection's credentials, and the library operations run with them."""


from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
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
from asana_assets.lib.compliance.remediation import Remediation, remediate
from asana_assets.lib.connections import oauth
from asana_assets.lib.connections.coverage import DECLARED_BY_AUTH_METHOD, Coverage, coverage
from asana_assets.lib.connections.records import Connection, StoredRecord
from asana_assets.lib.connections.store import TokenStore, load_records, storage_at
from asana_assets.lib.connections.troubleshooting import ConnectionProblem
from asana_assets.lib.storage.quota import open_budget
from asana_assets.settings import ASANA_API_BASE

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
