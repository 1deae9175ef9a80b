"""Parquet warehouse under ``<root>/asana/``.

A current-state table is one file, ``<table>.parquet``. A history table (snapshots, monitor
results) is a folder with one file per run, ``<table>/<part>.parquet``, so a run appends
without rewriting history and a retried run replaces only its own part. Readers such as
DuckDB take ``<table>/*.parquet``.

Writes go to a temporary file in the same folder and are renamed into place, so a reader
sees the old table or the new one, never half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = "asana"


class ParquetWarehouse:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def path(self, table: str) -> Path:
        return self.root / SCHEMA / f"{table}.parquet"

    def folder(self, table: str) -> Path:
        return self.root / SCHEMA / table

    def write(self, table: str, data: pa.Table) -> Path:
        return self._write(self.path(table), data)

    def write_part(self, table: str, part: str, data: pa.Table) -> Path:
        return self._write(self.folder(table) / f"{part}.parquet", data)

    def read_history(self, table: str, schema: pa.Schema) -> pa.Table:
        """Every part of a history table (empty, with its schema, before the first run)."""
        parts = sorted(self.folder(table).glob("*.parquet"))
        return pa.concat_tables([pq.read_table(p) for p in parts]) if parts else schema.empty_table()

    def _write(self, target: Path, data: pa.Table) -> Path:
        table = target.stem
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{table}.", suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(data, tmp, compression="zstd")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def read(self, table: str) -> pa.Table:
        return pq.read_table(self.path(table))

    def exists(self, table: str) -> bool:
        return self.path(table).exists()
