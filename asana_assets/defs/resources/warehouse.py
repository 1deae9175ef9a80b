"""The warehouse resource: where the tables land, configured; it hands out each connection's
`Warehouse` (``lib/storage/warehouse.py``), which stages and commits a run's tables."""


from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from asana_assets import settings
from asana_assets.defs.partitions import DEFAULT
from asana_assets.lib.asana.polls import PollSchedule
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.storage.documents import Document
from asana_assets.lib.storage.parquet import DEFAULT_KEEP
from asana_assets.lib.storage.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """Where the tables land: a folder of Parquet files, and Postgres too when a URL is set."""

    directory: str = Field(default=settings.WAREHOUSE_DIR.default, description="Root folder of the Parquet warehouse")
    postgres_url: str | None = Field(
        default=settings.POSTGRES_URL.default, description="e.g. postgresql://user@host:5432/db; unset: Parquet only"
    )
    postgres_schema: str = Field(default=settings.POSTGRES_SCHEMA.default, description="Postgres schema of the tables")
    keep_versions: int = Field(
        default=DEFAULT_KEEP, ge=1, description="Parquet versions kept for rollback, the published one included"
    )

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

    def warehouse(self, run: str | None = None) -> Warehouse:
        """This warehouse for run ``run`` (staging its tables), or as last committed."""
        return Warehouse(self.directory, self.postgres_url, self.postgres_schema, self.keep_versions, run)

    def poll_store(self) -> Document[PollSchedule]:
        """Where the events sensor keeps its poll schedule and the tokens its polls renewed."""
        return self.warehouse().poll_store()

    def state_store(self) -> Document[SyncState]:
        """Where the incremental sync keeps its events tokens, beside the tables they describe:
        in Postgres when it is configured, else in the warehouse folder."""
        return self.warehouse().state_store()
