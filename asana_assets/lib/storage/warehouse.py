"""One connection's warehouse as one run sees it: what the run writes is staged, read back
staged first, and committed all at once.

Tables land in a folder of Parquet files, and in Postgres too when a URL is set. A run stages
every table it writes, and the sync state it reached, in its staging area (see
``parquet.py``); `Warehouse.commit` makes them visible in this order, each step only once the
one before succeeded:

1. Postgres: every staged table and the sync state, in one transaction;
2. the Postgres views, re-created over those tables;
3. the Parquet version, by switching one link;
4. without Postgres, the sync state's file: after the tables, so a crash in between replays the
   run's changes rather than skipping them;
5. with a sync state (a sync's run), the full crawl's checkpoint is discarded: what it kept is
   published, or superseded (one a crash left is stale by the state's time, see ``checkpoint.py``).

A run that fails or is killed before then leaves both stores as they were.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from asana_assets.lib.asana.checkpoint import Checkpoint
from asana_assets.lib.asana.polls import PollSchedule
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.schema import HISTORY_TABLES, TABLES
from asana_assets.lib.storage.documents import (
    Document,
    Documents,
    FileDocuments,
    PostgresDocuments,
    Table,
    open_documents,
)
from asana_assets.lib.storage.memory import release_freed_memory
from asana_assets.lib.storage.parquet import DEFAULT_KEEP, ParquetWarehouse
from asana_assets.lib.storage.postgres import LoadStats, PostgresWarehouse
from asana_assets.lib.storage.views import refresh_views

STATE, POLLS = "incremental_sync", "event_polls"  # the documents kept beside the tables
STATE_TABLE = "_sync_state"  # in the warehouse's Postgres schema
STATE_FILES = {STATE: "sync_state.json"}  # in the folder state/ without Postgres
STAGED_STATE = "_sync_state"  # the sync state a run reached, in its staging area until its commit


@dataclass(frozen=True)
class Staged:
    """Where a staged table (or history part) is read once committed."""

    path: Path
    postgres_table: str | None  # schema.table, with Postgres


@dataclass(frozen=True)
class PostgresCommit:
    loads: list[LoadStats]
    views: list[str]  # re-created
    seconds: float  # the transaction and the views


@dataclass(frozen=True)
class Publication:
    """What a commit made visible."""

    tables: list[str]
    version: Path  # the Parquet version now published
    postgres: PostgresCommit | None


class _PollSchedule(Document[PollSchedule]):
    def load(self) -> PollSchedule:
        """An unreadable schedule counts as none: every project is due, and the next poll rewrites it."""
        try:
            return super().load()
        except ValueError:
            return PollSchedule()


class Warehouse:
    """One connection's warehouse, for run ``run`` (staging and reading back its staged tables
    first) or, without a run, as last committed."""

    def __init__(self, directory: str | os.PathLike[str], postgres_url: str | None, postgres_schema: str,
                 keep_versions: int = DEFAULT_KEEP, run: str | None = None) -> None:
        self.directory, self.postgres_url, self.postgres_schema = str(directory), postgres_url, postgres_schema
        self.keep_versions = keep_versions
        self.parquet = ParquetWarehouse(directory, run)

    @property
    def root(self) -> Path:
        return self.parquet.root

    # -- the documents kept beside the tables

    def documents(self) -> Documents:
        """Where the sync state and the events sensor's poll schedule live: in the warehouse's
        Postgres schema (table ``_sync_state``) when it is configured, else in its folder ``state/``."""
        return open_documents(self.postgres_url or self.root / "state", self._state_table(), files=STATE_FILES)

    def _state_table(self) -> Table:
        return Table(self.postgres_schema, STATE_TABLE)

    def state_store(self) -> Document[SyncState]:
        """The committed sync state: what the incremental sync resumes from."""
        return Document(self.documents(), STATE, lambda document: SyncState(**(document or {})), asdict)

    def poll_store(self) -> Document[PollSchedule]:
        """The events sensor's poll schedule and the tokens its polls renewed (the sensor alone writes it)."""
        return _PollSchedule(self.documents(), POLLS, PollSchedule.from_json, PollSchedule.to_json)

    def _staged_state(self) -> Document[SyncState | None]:
        return Document(FileDocuments(self._staging()), STAGED_STATE,
                        lambda document: None if document is None else SyncState(**document), asdict)

    # -- staging

    def _staging(self) -> Path:
        """The run's staging area (a warehouse without a run stages nothing)."""
        if self.parquet.staged is None:
            raise ValueError("only a run stages")
        return self.parquet.staged

    def stage(self, table: str, data: pa.Table, part: str | None = None) -> Staged:
        """Stage a table (a history table: this run's ``part`` of it)."""
        self._staging()
        self.parquet.write_part(table, part, data) if part else self.parquet.write(table, data)
        relative = f"{table}/{part}.parquet" if part else f"{table}.parquet"
        return Staged(self.parquet.published / relative,
                      f"{self.postgres_schema}.{table}" if self.postgres_url else None)

    def stage_state(self, state: SyncState) -> None:
        """Stage the sync state this run reached: committed with the tables it describes, so a
        run that dies before then is replayed from the previous state."""
        self._staged_state().save(state)

    def run_state(self) -> SyncState:
        """The sync state as this run staged it so far, else as last committed."""
        return self._staged_state().load() or self.state_store().load()

    def checkpoint(self, not_before: datetime | None = None) -> Checkpoint:
        """Where a full crawl of this connection keeps each project's read until a sync commits
        (``not_before``: when the last committed sync began)."""
        return Checkpoint(self.root, not_before)

    # -- reading, this run's staged tables first

    def exists(self, table: str) -> bool:
        return self.parquet.exists(table)

    def read(self, table: str, columns: list[str] | None = None) -> pa.Table:
        """A table (those ``columns``); a history table with all its parts."""
        if table in HISTORY_TABLES:
            return self.parquet.read_history(table, TABLES[table], columns)
        return self.parquet.read(table, columns)

    def read_history(self, table: str, columns: list[str] | None = None,
                     filters: pc.Expression | None = None) -> pa.Table:
        """Those columns and rows of a history table's parts (see ``ParquetWarehouse.read_history``)."""
        return self.parquet.read_history(table, TABLES[table], columns, filters)

    def count_history(self, table: str, keys: list[str]) -> pa.Table:
        """Rows per distinct ``keys`` of a history table (see ``ParquetWarehouse.count_history``)."""
        return self.parquet.count_history(table, TABLES[table], keys)

    def part_path(self, table: str, part: str) -> Path:
        return self.parquet.part_path(table, part)

    # -- committing

    def commit(self) -> Publication:
        """Make every table this run staged, and its sync state, visible (see the module docstring)."""
        files = self.parquet.staged_files()
        state = self._staged_state().load()
        postgres = None
        if self.postgres_url:
            postgres = self._commit_postgres(files, state)
        version = self.parquet.commit(self.keep_versions)
        if state is not None and not self.postgres_url:
            self.state_store().save(state)
        if state is not None:
            self.checkpoint().discard()
        return Publication(sorted({f.parts[0].removesuffix(".parquet") for f in files}), version, postgres)

    def _commit_postgres(self, files: list[Path], state: SyncState | None) -> PostgresCommit:
        staged = self.parquet.staged

        def tables():
            for relative in files:
                release_freed_memory()  # the table loaded before: one at a time in memory
                yield relative.parts[0].removesuffix(".parquet"), pq.read_table(staged / relative)

        documents = PostgresDocuments(self.postgres_url, self._state_table())
        started = time.perf_counter()
        with PostgresWarehouse(self.postgres_url, self.postgres_schema) as postgres:
            loads = postgres.commit(
                tables(), then=None if state is None else lambda cur: documents.write(cur, STATE, asdict(state)))
        views = refresh_views(self.postgres_url, self.postgres_schema)
        return PostgresCommit(loads, views, round(time.perf_counter() - started, 3))
