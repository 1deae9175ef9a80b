"""Parquet warehouse: one file per table under ``<root>/asana/<table>.parquet``.

Writes go to a temporary file in the same folder and are renamed into place, so a reader
(an analyst's DuckDB session, a downstream asset) sees the old table or the new one, never
half a file.
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

    def write(self, table: str, data: pa.Table) -> Path:
        target = self.path(table)
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
