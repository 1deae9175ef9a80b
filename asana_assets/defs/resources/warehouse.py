"""The warehouse resource: where a run's tables are staged and committed."""


from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from asana_assets.defs.partitions import DEFAULT
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.schema import HISTORY_TABLES, TABLES
from asana_assets.lib.storage.files import StateStore
from asana_assets.lib.storage.parquet import DEFAULT_KEEP, ParquetWarehouse
from asana_assets.lib.storage.polls import PollStore, PostgresPollStore, poll_store
from asana_assets.lib.storage.postgres import PostgresStateStore, PostgresWarehouse
from asana_assets.lib.storage.views import refresh_views

STAGED_STATE = "_sync_state.json"  # in a run's stage, until its commit


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
