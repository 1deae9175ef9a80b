"""Parquet warehouse under ``<root>/asana/``.

A current-state table is one file, ``<table>.parquet``. A history table (snapshots, monitor
results) is a folder with one file per run, ``<table>/<part>.parquet``, so a run appends
without rewriting history and a retried run replaces only its own part. Readers such as
DuckDB take ``<table>/*.parquet``.

Writes go to a temporary file in the same folder and are renamed into place, so a reader
sees the old table or the new one, never half a file.

A run writes into a *stage* of its own, ``<root>/versions/<run>.partial/``, which it reads
back in preference to the published tables; `commit` completes the stage with the published
tables it did not rewrite (hard links, no copy), renames it to a version and switches the
``<root>/asana`` link to it in one step. Readers therefore see all of a run's tables or none
of them, a run that fails commits nothing (its snapshot included), and the previous versions
stay for rollback (point the link back) until the retention drops them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

SCHEMA = "asana"
VERSIONS = "versions"
PARTIAL = ".partial"
DEFAULT_KEEP = 3  # versions kept, the published one included


class ParquetWarehouse:
    def __init__(self, root: str | os.PathLike[str], stage: str | None = None):
        self.root = Path(root)
        self.stage = stage

    @property
    def published(self) -> Path:
        """The published tables: a link to the current version (a plain folder before the first commit)."""
        return self.root / SCHEMA

    @property
    def staged(self) -> Path | None:
        return self.root / VERSIONS / f"{self.stage}{PARTIAL}" if self.stage else None

    def _home(self, relative: str) -> Path:
        """Where a file is read: this run's stage when it wrote it there, else the published tables."""
        if self.staged is not None and (self.staged / relative).exists():
            return self.staged / relative
        return self.published / relative

    def path(self, table: str) -> Path:
        return self._home(f"{table}.parquet")

    def part_path(self, table: str, part: str) -> Path:
        """Where a history table's part is read (this run's stage first)."""
        return self._home(f"{table}/{part}.parquet")

    def folder(self, table: str) -> Path:
        return self.published / table

    def write(self, table: str, data: pa.Table) -> Path:
        return self._write((self.staged or self.published) / f"{table}.parquet", data)

    def write_part(self, table: str, part: str, data: pa.Table) -> Path:
        return self._write((self.staged or self.published) / table / f"{part}.parquet", data)

    def read_history(self, table: str, schema: pa.Schema, columns: list[str] | None = None,
                     filters: pc.Expression | None = None) -> pa.Table:
        """Every part of a history table (empty, with its schema, before the first run); this
        run's staged part replaces a published part of the same name. ``columns`` and
        ``filters`` read only those columns and rows: a part whose statistics rule the filter
        out (one run's part, when filtering on another run) is not read beyond its footer, so a
        reader of one run does not pay for the whole history."""
        files = self._parts(table)
        if not files:
            return (schema if columns is None else pa.schema([schema.field(c) for c in columns])).empty_table()
        # Read with the table's schema: a part written before a column was added reads null there.
        return ds.dataset(files, schema=schema, format="parquet").to_table(columns=columns, filter=filters)

    def count_history(self, table: str, schema: pa.Schema, keys: list[str]) -> pa.Table:
        """How many rows of a history table have each distinct value of ``keys`` (the ``keys``
        and ``rows``). Counted part by part with the text keys read dictionary-encoded: a part
        decodes each distinct text once rather than once per row, so counting a growing history
        (a run's part holds a row per judged resource) stays cheap."""
        fields = [schema.field(k) for k in keys]
        text = [f.name for f in fields if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        encoded = pa.schema([f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in text else f for f in fields])
        parquet = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=text))
        # Each row group of a part has a dictionary of its own: unified before grouping.
        counts = [ds.dataset([part], schema=encoded, format=parquet).to_table().unify_dictionaries().group_by(keys)
                  .aggregate([([], "count_all")]) for part in self._parts(table)]
        counted = pa.schema([*fields, pa.field("count_all", pa.int64())])
        merged = pa.concat_tables([c.cast(counted) for c in counts]) if counts else counted.empty_table()
        # A run's rows are in its own part; summed again all the same, should two parts share a key.
        return merged.group_by(keys).aggregate([("count_all", "sum")]).rename_columns([*keys, "rows"])

    def _parts(self, table: str) -> list[Path]:
        """A history table's parts, by name; this run's staged part replaces a published one of that name."""
        parts = {p.name: p for p in self.folder(table).glob("*.parquet")}
        if self.staged is not None:
            parts |= {p.name: p for p in (self.staged / table).glob("*.parquet")}
        return [parts[name] for name in sorted(parts)]

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

    def read(self, table: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path(table), columns=columns)

    def exists(self, table: str) -> bool:
        return self.path(table).exists()

    def staged_files(self) -> list[Path]:
        """What this run wrote, relative to its stage: ``t.parquet`` and ``h/<part>.parquet``."""
        if self.staged is None or not self.staged.exists():
            return []
        return sorted(p.relative_to(self.staged) for p in self.staged.rglob("*.parquet"))

    def commit(self, keep: int = DEFAULT_KEEP) -> Path:
        """Commit this run's stage in one step (see the module docstring); returns the version."""
        if self.staged is None:
            raise ValueError("only a staged warehouse commits")
        versions = self.root / VERSIONS
        self.staged.mkdir(parents=True, exist_ok=True)
        self._adopt_plain_folder(versions)
        if self.published.exists():  # complete the stage with what this run did not rewrite
            for source in self.published.rglob("*.parquet"):
                target = self.staged / source.relative_to(self.published)
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.link(source, target)
        version = versions / f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{self.stage}"
        os.rename(self.staged, version)
        link = self.root / f".{SCHEMA}.{uuid.uuid4().hex}"
        os.symlink(Path(VERSIONS) / version.name, link)
        os.replace(link, self.published)  # the one step readers see
        self._prune(versions, version, keep)
        return version

    def _adopt_plain_folder(self, versions: Path) -> None:
        """A warehouse written before versions existed: its folder becomes the first version."""
        if self.published.exists() and not self.published.is_symlink():
            first = versions / f"00000000T000000000000Z-{uuid.uuid4().hex[:8]}"
            os.rename(self.published, first)
            link = self.root / f".{SCHEMA}.{uuid.uuid4().hex}"
            os.symlink(Path(VERSIONS) / first.name, link)
            os.replace(link, self.published)

    def _prune(self, versions: Path, current: Path, keep: int) -> None:
        """Keep the newest ``keep`` versions; drop stages left by runs that died (one run per
        connection at a time, so no other stage is live)."""
        entries = sorted(versions.iterdir())
        for stale in (p for p in entries if p.name.endswith(PARTIAL)):
            shutil.rmtree(stale, ignore_errors=True)
        done = [p for p in entries if not p.name.endswith(PARTIAL) and p != current]
        for old in done[: max(0, len(done) - (keep - 1))]:
            shutil.rmtree(old, ignore_errors=True)

