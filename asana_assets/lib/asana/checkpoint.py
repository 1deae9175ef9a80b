"""A full crawl's checkpoint: each project's read, kept on disk as soon as it is whole, so a crawl
stopped before its sync commits (a killed process, a failed run) is resumed by the next one
rather than begun again.

The unit is the project: its sections, members, custom field settings (and the fields they
define), its tasks with their subtasks, stories, memberships, tags, followers and custom field
values, the records of them refused at the boundary, and what else the read gave (its events
token, when its listing ended, Asana's count of its tasks, listings refused or read in parts,
objects found deleted, the tasks it crawled, and those it listed that another project's read
crawled: a task in several projects is crawled once). A project read in part when the crawl stopped is
read again whole: its listing pages are not kept. The workspace's own listings (members, teams,
tags, the projects) are cheap and always read again.

Under the connection's warehouse folder::

    checkpoint/<key>/<project gid>/<table>.parquet   a finished project's rows, table by table
    checkpoint/<key>/<project gid>/project.json      the rest of its read, and each file's row count
    checkpoint/<key>/.<project gid>.<random>/        a project being written

``key`` digests what makes two crawls' rows interchangeable: this format, the workspace
selection, the raw tables' schemas and the fields the crawl asks Asana for. A crawl keeps only its
key's folder, so a checkpoint of another selection or schema version is never mixed in. A
project is written in a temporary folder, its manifest (``project.json``) last, and renamed into
place: a killed process leaves at most temporary folders, removed at the next open, and a
project folder whose manifest is missing or does not match its files (a machine that stopped
mid-write) is ignored and the project read again.

A checkpointed project is taken only while it is still true enough to publish:

- listed again by the new crawl (one no longer listed is dropped, with the rows placing other
  checkpointed tasks in it);
- read by a crawl begun after the last committed sync (a commit discards the checkpoint; this
  also covers a discard a crash missed);
- read less than ``TOKEN_LIFE`` ago: its events token, taken before its tasks were read, lets the
  next incremental sync replay what changed since only while it lives.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from asana_assets.lib.asana.state import TOKEN_LIFE
from asana_assets.lib.schema import RAW_TABLES, to_arrow

FOLDER = "checkpoint"  # under the connection's warehouse folder
FORMAT = 1  # of the files below: a change makes another key
MANIFEST = "project.json"
TIMES = ("read_at", "synced_at", "tasks_counted_at")  # ProjectRead's datetimes, ISO text in the manifest

log = logging.getLogger(__name__)


@dataclass
class ProjectRead:
    """What a project's read gave besides its rows."""

    gid: str
    workspace_gid: str
    read_at: datetime  # when the crawl that read it began: its events token was taken after
    token: str | None  # the events sync token taken before its tasks were listed
    synced_at: datetime | None  # when its task listing ended (projects.synced_at)
    num_tasks: int | None  # Asana's count of its tasks (projects.num_tasks)
    tasks_counted_at: datetime | None
    split: bool  # its tasks were read section by section
    refused: list[dict] = field(default_factory=list)  # listings Asana refused: table, status, path
    gone: list[str] = field(default_factory=list)  # objects of it found deleted (404) while read
    claimed: list[str] = field(default_factory=list)  # gids of the tasks this read crawled (once per crawl)
    shared: list[str] = field(default_factory=list)  # gids of the tasks it listed that another read crawled
    unknown_memberships: int = 0  # task memberships of a type the tables do not hold

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict) -> ProjectRead:
        times = {name: None if document[name] is None else datetime.fromisoformat(document[name]) for name in TIMES}
        return cls(**{**document, **times})


class Checkpoint:
    """The checkpoint of one connection's full crawl, under its warehouse folder ``root``.

    ``not_before``: when the last committed sync began (reads from before it are stale);
    ``now``: the clock the ages are judged by.
    """

    def __init__(self, root: str | os.PathLike[str], not_before: datetime | None = None,
                 max_age: timedelta = TOKEN_LIFE, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.base = Path(root) / FOLDER
        self.not_before, self.max_age, self.now = not_before, max_age, now
        self.folder: Path | None = None  # the key's, once opened

    def open(self, selection: str, *read: Iterable[str]) -> None:
        """Open the folder of this crawl's key (``selection``: the workspace gid, or every one;
        ``read``: the fields it asks for), removing every other key's and every project a
        killed process left half-written."""
        digest = hashlib.sha256(orjson.dumps([
            FORMAT, selection, [list(fields) for fields in read],
            {name: schema.to_string(show_field_metadata=False) for name, schema in sorted(RAW_TABLES.items())},
        ])).hexdigest()[:16]
        self.folder = self.base / digest
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for other in self.base.iterdir():
            if other != self.folder:
                _remove(other)
        for partial in self.folder.glob(".*"):
            _remove(partial)

    def reads(self) -> dict[str, ProjectRead]:
        """The projects read whole and still fresh (see the module docstring), by gid; the others'
        folders are removed."""
        found = {}
        for folder in self._opened().iterdir():
            if folder.name.startswith("."):
                continue
            read = self._read(folder)
            if read is None:
                _remove(folder)
            else:
                found[read.gid] = read
        return found

    def _read(self, folder: Path) -> ProjectRead | None:
        try:
            read = ProjectRead.from_json(orjson.loads((folder / MANIFEST).read_bytes())["read"])
            age = self.now() - read.read_at  # a time without its zone fails here too
        except (OSError, ValueError, KeyError, TypeError) as unreadable:
            log.warning("Checkpoint of project %s unreadable (%s): reading the project again", folder.name, unreadable)
            return None
        if read.gid != folder.name:
            return None
        if self.not_before is not None and read.read_at <= self.not_before:
            return None  # a sync committed since: this read is not the crawl to resume
        if age > self.max_age:
            log.info("Checkpoint of project %s read %s ago, longer than its events token lives: reading it again",
                     read.gid, age)
            return None
        return read

    def tables(self, project_gid: str) -> dict[str, pa.Table] | None:
        """A checkpointed project's rows, table by table; None (and its folder removed) when a
        file is missing or does not hold the rows its manifest counts."""
        folder = self._opened() / project_gid
        try:
            counts = orjson.loads((folder / MANIFEST).read_bytes())["rows"]
            tables = {name: pq.read_table(folder / f"{name}.parquet", schema=RAW_TABLES[name]) for name in counts}
            complete = all(tables[name].num_rows == rows for name, rows in counts.items())
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as unreadable:
            log.warning("Checkpoint of project %s unreadable (%s): reading the project again", project_gid, unreadable)
            complete = False
        if not complete:
            _remove(folder)
            return None
        return tables

    def writer(self, project_gid: str, chunk_rows: int, converted: Callable[[str, pa.Table], None]) -> ProjectWriter:
        return ProjectWriter(self._opened(), project_gid, chunk_rows, converted)

    def discard(self) -> None:
        """Remove the whole checkpoint (a sync committed)."""
        _remove(self.base)

    def _opened(self) -> Path:
        if self.folder is None:
            raise ValueError("open the checkpoint first")
        return self.folder


class ProjectWriter:
    """One project's rows as its read goes: converted to Arrow ``chunk_rows`` at a time (only
    those not yet converted are held as dicts), each group handed to ``converted`` (the crawl's
    tables: a row is converted once) and written as a row group; the project appears whole,
    under its gid, at ``finish``. A write that fails (a full disk) is logged and the project left
    out of the checkpoint: the crawl goes on with its rows, and a resumed crawl would read it again."""

    def __init__(self, folder: Path, project_gid: str, chunk_rows: int, converted: Callable[[str, pa.Table], None]):
        self.folder, self.gid, self.chunk_rows, self.converted = folder, project_gid, chunk_rows, converted
        self.pending: dict[str, list[dict]] = defaultdict(list)
        self.rows: dict[str, int] = defaultdict(int)  # written, per table
        self.files: dict[str, pq.ParquetWriter] = {}
        self.temporary: Path | None = None  # created with the first file
        self.failed = False

    def add(self, table: str, row: dict) -> None:
        pending = self.pending[table]
        pending.append(row)
        if len(pending) >= self.chunk_rows:
            self._flush(table)

    def finish(self, read: ProjectRead) -> None:
        """Hand over and write what is pending, then the manifest, and move the project into place."""
        for table in list(self.pending):
            self._flush(table)
        self._guarded(self._finish, read)

    def _finish(self, read: ProjectRead) -> None:
        for file in self.files.values():
            file.close()
        manifest = {"read": read.to_json(), "rows": dict(self.rows)}
        (self._temporary() / MANIFEST).write_bytes(orjson.dumps(manifest))
        target = self.folder / self.gid
        _remove(target)  # a project read again, whose earlier checkpoint could not be used
        os.rename(self._temporary(), target)

    def _flush(self, table: str) -> None:
        rows = self.pending.pop(table, [])
        if rows:
            data = to_arrow(table, rows)
            self.converted(table, data)
            self._guarded(self._write, table, data)

    def _write(self, table: str, data: pa.Table) -> None:
        if table not in self.files:
            self.files[table] = pq.ParquetWriter(self._temporary() / f"{table}.parquet", RAW_TABLES[table],
                                                 compression="lz4")
        self.files[table].write_table(data)
        self.rows[table] += data.num_rows

    def _temporary(self) -> Path:
        if self.temporary is None:
            self.temporary = Path(tempfile.mkdtemp(prefix=f".{self.gid}.", dir=self.folder))
        return self.temporary

    def _guarded(self, step: Callable, *args) -> None:
        """Run a step writing the checkpoint, unless one failed: then the project is left out."""
        if self.failed:
            return
        try:
            step(*args)
        except (OSError, pa.ArrowException) as failure:
            log.warning("Could not checkpoint project %s (%s): a resumed crawl would read it again", self.gid, failure)
            self.failed = True
            for file in self.files.values():
                with contextlib.suppress(OSError, pa.ArrowException):
                    file.close()  # the folder goes anyway
            if self.temporary is not None:
                _remove(self.temporary)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
