"""A full crawl's checkpoint: each project's read, kept on disk part by part as soon as each is
whole, so a crawl stopped before its sync commits (a killed process, a failed run) is resumed by
the next one rather than begun again.

A project's read is kept in two kinds of unit:

- a part: a run of consecutive pages of its task listing (``PART_PAGES`` in ``crawl.py``), once
  every task they list is read with everything under it (subtasks, stories, memberships, tags,
  followers, custom field values, the records of them refused at the boundary), with what else
  it gave (the tasks it crawled, objects found deleted, memberships of an unknown type). A part
  is kept while the project is still being read, so a crawl stopped in the middle of a project
  of 100,000 tasks loses at most the parts in flight;
- the project itself, once its read is whole: its own rows (sections, members, custom field
  settings and the fields they define) and the rest of its read (its events token, when its
  listing ended, Asana's count of its tasks, listings refused or read in parts, the tasks it
  listed that another project's read crawled: a task in several projects is crawled once),
  with the names of its parts.

A project kept whole is taken as it is. A project with only parts is read again, but with the
events token of the crawl that read its parts, and its listing is read again from the first
page: listing offsets expire, and positions shift as tasks come and go, so a part is named by its
tasks, never by an offset. A part is taken only when the new listing names every task it
crawled; the others are read again (``crawl.py``, ``_settle``). The workspace's own listings
(members, teams, tags, the projects) are cheap and always read again.

Under the connection's warehouse folder::

    checkpoint/<key>/<project gid>/<table>.parquet         a finished project's own rows, table by table
    checkpoint/<key>/<project gid>/project.json            the rest of its read, its files' row counts, its parts
    checkpoint/<key>/parts/<project gid>/<name>/           a part: its rows, and part.json
    checkpoint/<key>/.<project gid>.<random>/              a project being written
    checkpoint/<key>/parts/<project gid>/.<random>/        a part being written

``key`` digests what makes two crawls' rows interchangeable: this format, the workspace
selection, the raw tables' schemas and the fields the crawl asks Asana for. A crawl keeps only its
key's folder, so a checkpoint of another selection or schema version is never mixed in. A
project or part is written in a temporary folder, its manifest last, and renamed into place: a
killed process leaves at most temporary folders, removed at the next open, and a folder whose
manifest is missing or does not match its files (a machine that stopped mid-write) is ignored and
what it held read again.

What is checkpointed is taken only while it is still true enough to publish:

- its project is listed again by the new crawl (one no longer listed is dropped, and so is every
  kept row placing a task in a project no longer listed);
- read by a crawl begun after the last committed sync (a commit discards the checkpoint; this
  also covers a discard a crash missed);
- its events token was taken less than ``TOKEN_LIFE`` ago: that token, taken before the project's
  tasks were listed, lets the next incremental sync replay what changed since only while it lives.
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
from typing import Self

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from asana_assets.lib.asana.state import TOKEN_LIFE
from asana_assets.lib.schema import RAW_TABLES, to_arrow

FOLDER = "checkpoint"  # under the connection's warehouse folder
FORMAT = 2  # of the files below: a change makes another key
MANIFEST = "project.json"
PART_MANIFEST = "part.json"
PARTS = "parts"  # the folder of the parts, in the key's
TIMES = ("read_at", "synced_at", "tasks_counted_at")  # the reads' datetimes, ISO text in the manifests

log = logging.getLogger(__name__)


class _Manifested:
    """A read's manifest entry: its fields as JSON, its datetimes as ISO text."""

    def to_json(self) -> dict:
        return asdict(self)  # each subclass is a dataclass

    @classmethod
    def from_json(cls, document: dict) -> Self:
        times = {name: None if document[name] is None else datetime.fromisoformat(document[name])
                 for name in TIMES if name in document}
        return cls(**{**document, **times})


@dataclass
class ProjectRead(_Manifested):
    """What a project's read gave besides its rows."""

    gid: str
    workspace_gid: str
    read_at: datetime  # when the crawl that took its events token began: the token was taken after
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
    parts: list[str] = field(default_factory=list)  # the names of its parts, which hold its tasks' rows


@dataclass
class PartRead(_Manifested):
    """What a part of a project's read (a run of its listing's pages) gave besides its rows."""

    project_gid: str
    read_at: datetime  # as ProjectRead's: when the crawl that took the project's token began
    token: str | None
    tasks: list[str]  # the listed tasks it crawled, each with everything under it
    claimed: list[str] = field(default_factory=list)  # every task it crawled: those, and their subtasks
    shared: list[str] = field(default_factory=list)  # subtasks it met that another read crawled
    gone: list[str] = field(default_factory=list)
    unknown_memberships: int = 0


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
        ``read``: the fields it asks for), removing every other key's and every project or part
        a killed process left half-written."""
        digest = hashlib.sha256(orjson.dumps([
            FORMAT, selection, [list(fields) for fields in read],
            {name: schema.to_string(show_field_metadata=False) for name, schema in sorted(RAW_TABLES.items())},
        ])).hexdigest()[:16]
        self.folder = self.base / digest
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for other in self.base.iterdir():
            if other != self.folder:
                _remove(other)
        for partial in [*self.folder.glob(".*"), *self.folder.glob(f"{PARTS}/*/.*")]:
            _remove(partial)

    def reads(self) -> dict[str, ProjectRead]:
        """The projects read whole and still fresh (see the module docstring), by gid; the others'
        folders are removed."""
        found = {}
        for folder in self._opened().iterdir():
            if folder.name.startswith(".") or folder.name == PARTS:
                continue
            read = self._read(folder, MANIFEST, ProjectRead)
            if read is None or read.gid != folder.name:
                _remove(folder)
            else:
                found[read.gid] = read
        return found

    def parts(self, project_gid: str) -> dict[str, PartRead]:
        """The parts of a project's read that are still fresh, by name; the others are removed."""
        found = {}
        folder = self._opened() / PARTS / project_gid
        for part in folder.iterdir() if folder.is_dir() else ():
            if part.name.startswith("."):
                continue
            read = self._read(part, PART_MANIFEST, PartRead)
            if read is None or read.project_gid != project_gid:
                _remove(part)
            else:
                found[part.name] = read
        return found

    def _read(self, folder: Path, manifest: str, kind: type[ProjectRead | PartRead]):
        try:
            read = kind.from_json(orjson.loads((folder / manifest).read_bytes())["read"])
            age = self.now() - read.read_at  # a time without its zone fails here too
        except (OSError, ValueError, KeyError, TypeError) as unreadable:
            log.warning("Checkpoint %s unreadable (%s): reading it again", folder.name, unreadable)
            return None
        if self.not_before is not None and read.read_at <= self.not_before:
            return None  # a sync committed since: this read is not the crawl to resume
        if age > self.max_age:
            log.info("Checkpoint %s read %s ago, longer than its events token lives: reading it again",
                     folder.name, age)
            return None
        return read

    def tables(self, project_gid: str) -> dict[str, pa.Table] | None:
        """A project kept whole: its parts' rows, then its own (read after them: a key in both
        keeps the project's row), table by table; None (and its folder removed) when a file is
        missing or does not hold the rows its manifest counts."""
        folder = self._opened() / project_gid
        try:
            names = orjson.loads((folder / MANIFEST).read_bytes())["read"]["parts"]
        except (OSError, ValueError, KeyError, TypeError) as unreadable:
            log.warning("Checkpoint of project %s unreadable (%s): reading the project again", project_gid, unreadable)
            names = None
        pieces = None if names is None else [
            *(_tables(self._part_folder(project_gid, name), PART_MANIFEST) for name in names),
            _tables(folder, MANIFEST)]
        if pieces is None or any(piece is None for piece in pieces):
            _remove(folder)  # its parts stay: the project is resumed from them
            return None
        return {name: pa.concat_tables([piece[name] for piece in pieces if name in piece])
                for name in {name for piece in pieces for name in piece}}

    def part_tables(self, project_gid: str, name: str) -> dict[str, pa.Table] | None:
        """A part's rows, table by table; None (and its folder removed) when unreadable."""
        folder = self._part_folder(project_gid, name)
        tables = _tables(folder, PART_MANIFEST)
        if tables is None:
            _remove(folder)
        return tables

    def writer(self, project_gid: str, chunk_rows: int, converted: Callable[[str, pa.Table], None]) -> ReadWriter:
        """The writer of a project's own rows, kept at ``finish`` as the project's whole read."""
        return ReadWriter(self._opened() / project_gid, MANIFEST, f"project {project_gid}", chunk_rows, converted)

    def part_writer(self, project_gid: str, chunk_rows: int, converted: Callable[[str, pa.Table], None]) -> ReadWriter:
        """The writer of a new part of a project's read."""
        target = self._part_folder(project_gid, os.urandom(8).hex())
        return ReadWriter(target, PART_MANIFEST, f"a part of project {project_gid}", chunk_rows, converted,
                          make=(target.parent.parent, target.parent))

    def drop_part(self, project_gid: str, name: str) -> None:
        _remove(self._part_folder(project_gid, name))

    def discard(self) -> None:
        """Remove the whole checkpoint (a sync committed)."""
        _remove(self.base)

    def _part_folder(self, project_gid: str, name: str) -> Path:
        return self._opened() / PARTS / project_gid / name

    def _opened(self) -> Path:
        if self.folder is None:
            raise ValueError("open the checkpoint first")
        return self.folder


def _tables(folder: Path, manifest: str) -> dict[str, pa.Table] | None:
    """The rows of a project or part, table by table; None when a file is missing or does not
    hold the rows its manifest counts."""
    try:
        counts = orjson.loads((folder / manifest).read_bytes())["rows"]
        tables = {name: pq.read_table(folder / f"{name}.parquet", schema=RAW_TABLES[name]) for name in counts}
        if all(tables[name].num_rows == rows for name, rows in counts.items()):
            return tables
        log.warning("Checkpoint %s holds other rows than its manifest counts: reading it again", folder.name)
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as unreadable:
        log.warning("Checkpoint %s unreadable (%s): reading it again", folder.name, unreadable)
    return None


class ReadWriter:
    """The rows of a project's or a part's read as it goes: converted to Arrow ``chunk_rows`` at a
    time (only those not yet converted are held as dicts), each group handed to ``converted``
    (the crawl's tables: a row is converted once) and written as a row group; they appear whole,
    in the ``target`` folder, at ``finish``. A write that fails (a full disk) is logged and the
    read left out of the checkpoint: the crawl goes on with its rows, and a resumed crawl would
    read it again. ``make``: the folders to create, in order, before the first write (never the
    key's: a write into a key's folder removed meanwhile fails)."""

    def __init__(self, target: Path, manifest: str, label: str, chunk_rows: int,
                 converted: Callable[[str, pa.Table], None], make: tuple[Path, ...] = ()):
        self.target, self.manifest, self.label, self.make = target, manifest, label, make
        self.chunk_rows, self.converted = chunk_rows, converted
        self.pending: dict[str, list[dict]] = defaultdict(list)
        self.rows: dict[str, int] = defaultdict(int)  # written, per table
        self.files: dict[str, pq.ParquetWriter] = {}
        self.temporary: Path | None = None  # created with the first file
        self.failed = False

    @property
    def name(self) -> str:
        return self.target.name

    def add(self, table: str, row: dict) -> None:
        pending = self.pending[table]
        pending.append(row)
        if len(pending) >= self.chunk_rows:
            self._flush(table)

    def finish(self, read: ProjectRead | PartRead) -> bool:
        """Hand over and write what is pending, then the manifest, and move the read into place;
        whether it is kept."""
        for table in list(self.pending):
            self._flush(table)
        self._guarded(self._finish, read)
        return not self.failed

    def abandon(self, why: str) -> None:
        """Leave the read out of the checkpoint (what it holds is no longer the whole of it); its
        rows are still handed over."""
        self._fail(why)

    def _finish(self, read: ProjectRead | PartRead) -> None:
        for file in self.files.values():
            file.close()
        manifest = {"read": read.to_json(), "rows": dict(self.rows)}
        (self._temporary() / self.manifest).write_bytes(orjson.dumps(manifest))
        _remove(self.target)  # read again, its earlier checkpoint unusable
        os.rename(self._temporary(), self.target)

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
            for folder in self.make:
                folder.mkdir(exist_ok=True, mode=0o700)
            self.temporary = Path(tempfile.mkdtemp(prefix=f".{self.name}.", dir=self.target.parent))
        return self.temporary

    def _guarded(self, step: Callable, *args) -> None:
        """Run a step writing the checkpoint, unless one failed: then the read is left out."""
        if self.failed:
            return
        try:
            step(*args)
        except (OSError, pa.ArrowException) as failure:
            self._fail(str(failure))

    def _fail(self, why: str) -> None:
        if self.failed:
            return
        log.warning("Could not checkpoint %s (%s): a resumed crawl would read it again", self.label, why)
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
