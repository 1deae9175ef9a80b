"""What the warehouse committed to Postgres, read back as the tests compare it: each table typed
by its Arrow schema, in key order, and the documents kept beside the tables."""

from __future__ import annotations

import json

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa

from asana_assets.lib.schema import TABLES, primary_key
from asana_assets.lib.storage.sql import ident, libpq_url
from asana_assets.lib.storage.warehouse import STATE_TABLE


class PostgresTables:
    """One connection to a warehouse schema, for reading (``with PostgresTables(url, schema) as p``)."""

    def __init__(self, url: str, schema: str) -> None:
        self.schema = schema
        self._connection = adbc.connect(libpq_url(url))

    def __enter__(self) -> PostgresTables:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._connection.close()

    def _query(self, sql: str, parameters=None):
        with self._connection.cursor() as cur:
            cur.execute(sql, parameters)
            result = cur.fetch_arrow_table()
        self._connection.commit()
        return result

    def read(self, table: str) -> pa.Table:
        """The table's columns (not the bookkeeping ones), in key order."""
        schema = TABLES[table]
        key = ", ".join(map(ident, primary_key(table)))
        order = f" ORDER BY {key}" if key else ""
        selected = ", ".join(map(ident, schema.names))
        return self._query(f"SELECT {selected} FROM {ident(self.schema)}.{ident(table)}{order}").cast(schema)

    def document(self, name: str) -> dict | None:
        """A document of the schema's _sync_state table (the sync state: ``incremental_sync``)."""
        rows = self._query(f"SELECT state::text AS state FROM {ident(self.schema)}.{ident(STATE_TABLE)} WHERE name = $1",
                           (name,))["state"].to_pylist()
        return json.loads(rows[0]) if rows else None
