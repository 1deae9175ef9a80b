"""A full crawl of one or more Asana workspaces into typed Arrow tables.

The crawl is a pipeline, not a sequence of phases: every page of tasks immediately schedules
the stories and subtasks of its tasks, so the client's concurrency pool stays full from the
first project to the last. Each record is validated at the boundary; a record that fails goes
to the quarantine table with its error and its children are still crawled, so one bad record
never costs the rest. Once every table is read, a record that points at what the tables lack
(a section not listed, a member of no known type) is named in the quarantine too, and kept in
its table: a broken reference is loud, never a silent gap in what is derived from it.

The projects are read in order, each whole before the next where the client's pool allows (see
``_Turns``), and with a ``Checkpoint`` each project's read is kept as it goes, every few pages of
its task listing (a part) and then whole: a crawl stopped before its sync commits is resumed by
the next one, which reads the workspace's own listings again, not the projects kept whole, and of
a project kept in part only the tasks no part holds (``lib/asana/checkpoint.py`` says when what
is kept is taken). Its tables are those of an uninterrupted crawl: rows are kept one per key, a
task in several projects once, and a kept project no longer listed is dropped.

A listing Asana refuses as too large (a project's tasks, a workspace's projects) is read in parts
instead (section by section, team by team), and the result says which were. A project listing
Asana refuses outright (402: the plan lacks the feature; 403: no access) is noted in the result
and, as a ``projects`` quarantine row, beside the tables, and the crawl goes on: what it held is
missing, and says so. A 401, or a refusal of a workspace's own listings, still stops the crawl.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from asana_assets.lib.asana import models
from asana_assets.lib.asana.checkpoint import Checkpoint, PartRead, ProjectRead, ReadWriter
from asana_assets.lib.asana.client import (
    AsanaClient,
    AsanaConnectionError,
    AsanaError,
    ForbiddenError,
    NotFoundError,
    PaymentRequiredError,
    ResultTooLargeError,
    ServerError,
    SyncTokenExpiredError,
)
from asana_assets.lib.schema import RAW_TABLES, REGISTRY, primary_key, to_arrow

# opt_fields per resource: exactly what the tables store, so one list call per page suffices.
WORKSPACE_FIELDS = ("name", "is_organization", "email_domains")
MEMBERSHIP_FIELDS = (
    "user.name", "user.email", "workspace", "is_active", "is_admin", "is_guest", "is_view_only", "created_at",
)
# The spec gives a user's photo on the users listing, not on a membership's user: the avatars
# come from there (a user it leaves out, a deprovisioned one, keeps none).
USER_PHOTO_FIELDS = ("photo.image_128x128",)
TEAM_FIELDS = ("name", "description", "organization", "visibility", "permalink_url")
TEAM_MEMBERSHIP_FIELDS = ("user", "team", "is_admin", "is_guest", "is_limited_access")
PROJECT_FIELDS = (
    "name", "notes", "archived", "color", "created_at", "modified_at", "owner", "team",
    "workspace", "privacy_setting", "default_access_level", "completed", "completed_at",
    "due_on", "start_on", "permalink_url",
)
# The source's own count of a project's tasks, which the tickets_synced monitor compares with
# the rows (every field of this endpoint is opt-in, and each is costly).
TASK_COUNT_FIELDS = ("num_tasks",)
SECTION_FIELDS = ("name", "created_at", "project")
TAG_FIELDS = ("name", "color", "notes", "created_at", "workspace", "permalink_url")
TASK_FIELDS = (
    "name", "notes", "resource_subtype", "approval_status", "assignee", "created_by",
    "completed", "completed_at", "completed_by", "created_at", "modified_at", "due_on",
    "due_at", "start_on", "parent", "workspace", "memberships.project", "memberships.section",
    "tags", "permalink_url", "num_subtasks", "followers",
    # section and field names: the reconcile re-lists a project's sections or fields when they differ
    "memberships.section.name", "custom_fields.name",
    # each custom field value, in the same listing (no request per task)
    "custom_fields.resource_subtype", "custom_fields.display_value", "custom_fields.text_value",
    "custom_fields.number_value", "custom_fields.enum_value.name", "custom_fields.multi_enum_values.name",
    "custom_fields.date_value", "custom_fields.people_value", "custom_fields.reference_value",
    "custom_fields.enabled",
)
CUSTOM_FIELD_SETTING_FIELDS = (
    "project", "parent", "is_important", "custom_field.name", "custom_field.resource_subtype",
    "custom_field.type", "custom_field.description", "custom_field.enum_options.name",
    "custom_field.precision", "custom_field.format",
    "custom_field.is_formula_field",  # not custom_field.enabled: the spec gives it on values only
)
STORY_FIELDS = (
    "created_at", "created_by", "type", "resource_subtype", "text", "source", "target",
    "old_section", "new_section", "assignee", "old_approval_status", "new_approval_status",
    "old_name", "new_name", "old_dates", "new_dates", "project", "custom_field",
    *(f"{side}_{value}" for side in ("old", "new") for value in (
        "text_value", "number_value", "enum_value.name", "multi_enum_values.name", "date_value", "people_value",
    )),
)

# Quarantine errors of broken references start with this: they are recomputed from the final
# tables on every sync, unlike the records refused at the boundary.
UNRESOLVED = "unresolved reference: "
# Quarantine errors of a project's listing Asana refused (402, 403) start with this; the row's
# gid is the project's, its raw record names the listing (the table it fills), path and status.
REFUSED = "listing refused: "
# The listings read in parts when Asana refuses them whole (SyncResult.split).
TASKS_BY_SECTION = "tasks_by_section"  # a project's tasks, by its sections
PROJECTS_BY_TEAM = "projects_by_team"  # a workspace's projects, by its teams
NAMED_REFUSALS = 10  # projects a run's metadata names per refused listing
MEMBER_TYPES = ("user", "team")  # what a project membership's member can be

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 5.0  # the least time between two progress lines

# The crawl's steps, each under the step whose records it lists from (None: a workspace's own).
# A table names the step that reads it (schema.TableSpec.crawled_by); a subset of tables runs only
# the steps on their way.
STEPS: dict[str, str | None] = {
    "memberships": None, "teams": None, "team_memberships": "teams", "tags": None, "projects": None,
    "project_memberships": "projects", "custom_field_settings": "projects", "sections": "projects",
    "tasks": "projects", "stories": "tasks",
}
# The tables that grow with the stories and tasks (schema.TableSpec.streamed) are converted to
# Arrow every CHUNK_ROWS rows, so a large crawl does not hold them all as Python dicts beside
# their Arrow copy.
CHUNK_ROWS = 10_000
# A project's checkpoint writes its rows in groups of this many (it holds no more unwritten).
CHECKPOINT_ROWS = 2_000
# A part of a project's checkpoint holds this many pages of its task listing (500 tasks): a
# crawl stopped mid-project loses no more than the parts in flight, and a part costs a few files.
PART_PAGES = 5
# What a project's read asks Asana for: a checkpoint read with other fields is not resumed.
PROJECT_READ = (TASK_COUNT_FIELDS, SECTION_FIELDS, TASK_FIELDS, CUSTOM_FIELD_SETTING_FIELDS, STORY_FIELDS)


def _path(step: str | None) -> set[str]:
    """The step and every step above it."""
    return set() if step is None else {step} | _path(STEPS[step])


_NEEDS = {step: {t for t in RAW_TABLES if step in _path(REGISTRY[t].crawled_by)} for step in STEPS}


@dataclass(frozen=True, slots=True)
class Refusal:
    """A listing of one project Asana refused: 402 (the plan lacks the feature) or 403 (no access).
    ``table`` is what the listing fills: its rows of the project are missing."""

    table: str
    project_gid: str
    status: int | None
    path: str


@dataclass
class SyncResult:
    """Typed tables of one crawl, with the quarantine and the crawl's own figures."""

    tables: dict[str, pa.Table]
    workspace_gids: list[str]
    started_at: datetime
    duration_s: float
    client_stats: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # project gid -> events sync token
    # Listings Asana refused whole and the crawl read in parts: kind (TASKS_BY_SECTION,
    # PROJECTS_BY_TEAM) -> the gids of the projects or workspaces so read.
    split: dict[str, list[str]] = field(default_factory=dict)
    refused: list[Refusal] = field(default_factory=list)  # also in the quarantine (REFUSED)
    # Projects taken from a checkpoint, whole or in part, read by an earlier run: gid -> when the
    # crawl that took their events tokens began (the tokens were taken after it).
    resumed: dict[str, datetime] = field(default_factory=dict)
    resumed_parts: int = 0  # parts of projects' reads taken from the checkpoint

    def quarantined(self, table: str) -> int:
        q = self.tables["quarantine"]
        return int(pc.sum(pc.equal(q["table"], table)).as_py() or 0)

    def listings(self) -> dict[str, Any]:
        """How the listings were read, as plain values for run metadata: per kind, how many were
        read in parts; per refused listing and status, how many projects, naming the first few (a
        plan without a feature refuses it in every project; the quarantine names them all)."""
        refused: dict[str, list[str]] = defaultdict(list)
        for r in self.refused:
            refused[f"{r.table} (HTTP {r.status})"].append(r.project_gid)
        return {
            "split": {kind: len(gids) for kind, gids in sorted(self.split.items())},
            "refused": {listing: {"projects": len(gids), "first": sorted(gids)[:NAMED_REFUSALS]}
                        for listing, gids in sorted(refused.items())},
        }


@dataclass(eq=False)
class _Pipeline:
    """One project's read in progress: its fetches not yet done, its turn among the projects, and
    what it read besides rows, for its checkpoint (``writer``, None without one)."""

    gid: str
    workspace_gid: str
    rank: int
    writer: ReadWriter | None
    token_at: datetime  # when the crawl that took its events token began
    pending: int = 0
    claimed: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    unknown_memberships: int = 0
    parts: list[str] = field(default_factory=list)  # the names of its parts kept, taken or written
    begun: int = 0  # the parts of its read begun by this crawl
    # An earlier run's parts of its read, until its listing is read again: by name, and the tasks
    # they hold by gid (with the part's name); the listed tasks they hold that the listing named.
    offered: dict[str, PartRead] = field(default_factory=dict)
    covered: dict[str, str] = field(default_factory=dict)
    named: set[str] = field(default_factory=set)


@dataclass(eq=False)
class _Part:
    """A part of a project's read in progress: a few pages of its task listing, whole once every
    fetch their tasks led to is done (``sealed``: its pages are all listed)."""

    pipeline: _Pipeline
    writer: ReadWriter
    rank: int  # its order among its project's parts
    pages: int = 0
    pending: int = 0
    sealed: bool = False
    tasks: list[str] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    unknown_memberships: int = 0


# The project read a fetch belongs to (None outside one), and the part of it (None outside one,
# or without a checkpoint). asyncio hands each task a copy of the context it was created in, so
# every fetch a project's read leads to, at any depth (its tasks' stories, their subtasks'),
# finds its project and part here without passing them along.
_PIPELINE: contextvars.ContextVar[_Pipeline | None] = contextvars.ContextVar("pipeline", default=None)
_PART: contextvars.ContextVar[_Part | None] = contextvars.ContextVar("part", default=None)


@contextlib.contextmanager
def _within(part: _Part | None):
    """Run what follows (and every fetch it spawns) as part of ``part``."""
    token = _PART.set(part)
    try:
        yield
    finally:
        _PART.reset(token)


class _Turns:
    """Lets the projects' fetches start in the projects' order: an earlier project's before a
    later one's; within a project its own before its parts' and an earlier part's before a later
    one's (``rank``: the project's, then the part's, -1 outside one); then in the order they were
    spawned.

    ``slots`` fetches run at once, more than the client's reads in flight, so its pool stays full
    whatever the projects' sizes; the projects are then read nearly one after another, and a crawl
    stopped halfway has about half of them whole (which a checkpoint keeps) rather than every one
    in part. So are a project's parts: its listing runs ahead, but a part's subtasks' stories,
    spawned last, still come before the next part's tasks'."""

    def __init__(self, slots: int):
        self.free = slots
        self.waiting: list[tuple[tuple[int, int], int, asyncio.Future]] = []  # a heap: (rank, order, waiter)
        self.order = itertools.count()

    async def take(self, rank: tuple[int, int]) -> None:
        if self.free:  # a free slot means no one waits: slots given back go to the waiting first
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (rank, next(self.order), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if not waiter.cancelled():
                self.give()  # handed a slot while being cancelled: it goes to the next
            raise

    def give(self) -> None:
        while self.waiting:
            waiter = heapq.heappop(self.waiting)[2]
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class WorkspaceCrawler:
    """Crawls workspaces with one client; collects rows keyed by primary key."""

    def __init__(self, client: AsanaClient, tables: Iterable[str] | None = None, track_events: bool = False,
                 expected_requests: int | None = None, checkpoint: Checkpoint | None = None):
        self.client = client
        self.expected_requests = expected_requests  # the last full crawl's, for the time left
        self.wanted = set(tables) if tables is not None else set(RAW_TABLES)
        # With track_events, each project's events sync token is taken before its tasks are
        # listed, so a later incremental sync sees every change made from then on.
        self.track_events = track_events
        self.tokens: dict[str, str] = {}
        self.rows: dict[str, dict[tuple, dict]] = defaultdict(dict)  # the tables not streamed
        self.streamed = {table: _Chunks(table) for table in RAW_TABLES if REGISTRY[table].streamed}
        self.read: dict[str, int] = defaultdict(int)  # rows added per table, a key read twice counted twice
        self.started_at = datetime.now(UTC)
        self.quarantine: list[dict] = []
        self.split: dict[str, list[str]] = defaultdict(list)
        self.refused: list[Refusal] = []
        self._seen_tasks: set[str] = set()
        # The tasks an earlier run's parts crawled, held for them (in _seen_tasks) until their
        # projects' listings decide whether they are taken; those another read met meanwhile.
        self._held: set[str] = set()
        self._deferred: set[str] = set()
        self._listed: dict[str, set[str]] = {}  # workspace gid -> the gids of the projects it lists
        self.unknown_memberships = 0  # task memberships of a type the tables do not hold (see _unplaced)
        self._gone: set[str] = set()
        self._photos: dict[str, str] = {}  # user gid -> avatar URL (see _user_photos)
        self._tasks: asyncio.TaskGroup | None = None
        self._turns = _Turns(2 * client.max_concurrency)
        self._ranks = itertools.count()  # the projects' order
        if checkpoint is not None and not (track_events and self.wanted == set(RAW_TABLES)):
            raise ValueError("only a whole crawl that takes events tokens is checkpointed")
        self.checkpoint = checkpoint
        self._checkpointed: dict[str, ProjectRead] = {}  # the checkpoint's projects, by gid
        # Rows already in Arrow, per table: a checkpoint's, and those of the projects read with a
        # checkpoint, converted as they were written there.
        self.parts: dict[str, list[pa.Table]] = defaultdict(list)
        self.resumed: dict[str, datetime] = {}  # see SyncResult.resumed
        self.resumed_parts = 0

    def needs(self, crawl: str) -> bool:
        return bool(_NEEDS[crawl] & self.wanted)

    async def run(self, workspace_gid: str | None = None) -> SyncResult:
        start = time.perf_counter()
        if self.checkpoint is not None:
            self.checkpoint.open(workspace_gid or "*", *PROJECT_READ)
            self._checkpointed = self.checkpoint.reads()
        reporter = asyncio.create_task(self._report_progress(start))
        try:
            workspaces = await self._workspaces(workspace_gid)
            await self._read(workspaces)
        except BaseExceptionGroup as group:
            # One clear error (401: reconnect, 403: admin needed...) rather than a group of
            # the same failure seen by fifty concurrent requests.
            raise _first_leaf(group) from group
        finally:
            reporter.cancel()
        self._drop_gone()
        if self.unknown_memberships:
            log.warning("%d task memberships of a type without a project or section: not task_memberships "
                        "rows (their tasks are kept)", self.unknown_memberships)
        return SyncResult(
            tables=self._finish(self._tables()),
            workspace_gids=[ws.gid for ws in workspaces],
            started_at=self.started_at,
            duration_s=time.perf_counter() - start,
            client_stats=_figures(self.client.stats),
            tokens=dict(self.tokens),
            split={kind: sorted(gids) for kind, gids in self.split.items()},
            refused=list(self.refused),
            resumed=dict(self.resumed),
            resumed_parts=self.resumed_parts,
        )

    async def _report_progress(self, start: float) -> None:
        """A line every few seconds while a crawl runs long: what was read, the pace, and the time
        left when the last full crawl's size is known."""
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            elapsed = time.perf_counter() - start
            requests = self.client.stats.requests
            rate = requests / elapsed
            left = ""
            if self.expected_requests and rate and requests < self.expected_requests:
                left = f", about {(self.expected_requests - requests) / rate:.0f} s left"
            log.info("Crawling: %d tasks and %d stories read, %d requests in %.0f s (%.1f/s)%s",
                     self.read["tasks"], self.read["stories"], requests, elapsed, rate, left)

    # -- scheduling -------------------------------------------------------------------
    async def _read(self, workspaces: list[models.Workspace]) -> None:
        """Read everything the wanted tables need, in one task group."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            for ws in workspaces:
                self._workspace(ws)

    def _spawn(self, coro, container: str | None = None, refusable: str | None = None) -> None:
        """Run a fetch in the crawl's task group.

        A 404 on a container's listing means it was deleted while the crawl ran: the
        container is dropped from the tables and the crawl goes on with the rest. A 402 or 403
        on a project's listing that fills the ``refusable`` table is noted, and the crawl goes on.
        A fetch of a project's read waits for its turn (``_Turns``), and counts until it is done:
        the read is whole once every fetch it led to is.
        """
        assert self._tasks is not None
        chain: list[Coroutine] = [coro]
        if container:
            chain.append(self._tolerate_gone(coro, container, refusable))
        pipeline, part = _PIPELINE.get(), _PART.get()
        if pipeline is not None:
            chain.append(self._in_turn(pipeline, part, chain[-1]))
            pipeline.pending += 1
            if part is not None:
                part.pending += 1
        task = self._tasks.create_task(chain[-1])
        # A crawl that fails cancels the fetches not yet started: their coroutines end unawaited.
        task.add_done_callback(lambda _task: [c.close() for c in chain])

    async def _in_turn(self, pipeline: _Pipeline, part: _Part | None, coro: Coroutine) -> Any:
        """Run a fetch of a project's read in its turn; the last of a sealed part to end
        checkpoints the part, and the last of the project the project (the fetches it spawned
        were counted before it ends; one that fails leaves the read unfinished, and the crawl
        fails with it)."""
        await self._turns.take((pipeline.rank, -1 if part is None else part.rank))
        try:
            result = await coro
        finally:
            self._turns.give()
        if part is not None:
            part.pending -= 1
            if not part.pending and part.sealed:
                self._keep_part(part)
        pipeline.pending -= 1
        if not pipeline.pending and pipeline.writer is not None:
            self._keep(pipeline, pipeline.writer)
        return result

    async def _tolerate_gone(self, coro, container: str, refusable: str | None = None) -> Any:
        """``coro``'s result; None when ``container`` is gone, or when Asana refuses its
        ``refusable`` listing."""
        try:
            return await coro
        except NotFoundError:
            log.info("Asana object %s is gone (404): leaving it out of this sync", container)
            self._gone.add(container)
            if (pipeline := _PIPELINE.get()) is not None:
                pipeline.gone.append(container)
            if (part := _PART.get()) is not None:
                part.gone.append(container)
            return None
        except (ForbiddenError, PaymentRequiredError) as refused:
            if refusable is None:
                raise
            self._refuse(refusable, container, refused)
            return None

    def _refuse(self, table: str, project_gid: str, error: AsanaError) -> None:
        """Note a project's listing Asana refused: in the result, and in the quarantine, where the
        warehouse keeps it beside the rows it lacks."""
        log.warning("Asana refused the %s of project %s (HTTP %s): they are missing from this sync",
                    table, project_gid, error.status)
        refusal = Refusal(table, project_gid, error.status, error.path)
        self.refused.append(refusal)
        if (pipeline := _PIPELINE.get()) is not None:
            pipeline.refused.append(refusal)
        record = {"listing": table, "path": refusal.path, "status": refusal.status}
        self._quarantine("projects", record, f"{REFUSED}{table}: {error}", gid=project_gid)

    def _drop_gone(self) -> None:
        """Remove objects deleted during the crawl, and the rows that hang off them (those of the
        streamed tables when they are converted)."""
        if not self._gone:
            return
        for table, rows in self.rows.items():
            columns = REGISTRY[table].owners
            self.rows[table] = {
                key: row for key, row in rows.items() if not any(row.get(c) in self._gone for c in columns)
            }

    async def _workspaces(self, workspace_gid: str | None) -> list[models.Workspace]:
        if workspace_gid:
            raws = [await self.client.get_data(f"/workspaces/{workspace_gid}", fields=WORKSPACE_FIELDS)]
        else:
            raws = await self.client.list_all("/workspaces", fields=WORKSPACE_FIELDS)
        accepted = (self._accept("workspaces", models.Workspace, raw) for raw in raws)
        return [ws for ws in accepted if ws is not None]

    def _workspace(self, ws: models.Workspace) -> None:
        self._add("workspaces", ws.row())
        if self.needs("memberships"):
            self._spawn(self._workspace_memberships(ws.gid))
        if "users" in self.wanted:
            self._spawn(self._user_photos(ws.gid))
        if self.needs("teams"):
            self._spawn(self._teams(ws.gid))
        if self.needs("tags"):
            self._spawn(self._listing("tags", models.Tag, f"/workspaces/{ws.gid}/tags", None, TAG_FIELDS))
        if self.needs("projects"):
            self._spawn(self._projects(ws.gid))

    # -- records ----------------------------------------------------------------------
    def _accept(self, table: str, model: type[models.Record], raw: Any):
        """Validate one record; a refused record goes to the quarantine, never a crash."""
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            self._quarantine(table, raw, _explain(exc))
            return None

    def _quarantine(self, table: str, raw: Any, error: str, gid: str | None = None) -> None:
        """Keep a refused record; ``gid`` names its object when the record itself has no gid."""
        if gid is None and isinstance(raw, dict):
            gid = raw.get("gid")
        row = {
            "table": table,
            "gid": gid if isinstance(gid, str) else None,
            "error": error,
            "raw": orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode(),
            "observed_at": self.started_at,
        }
        if not self._checkpointed_row("quarantine", row):
            self.quarantine.append(row)

    def _add(self, table: str, row: dict) -> None:
        """Keep one row per primary key, so a page read twice never duplicates a row."""
        if table not in self.wanted:
            return
        self.read[table] += 1
        if self._checkpointed_row(table, row):
            return
        if table in self.streamed:
            self.streamed[table].add(row)
        else:
            self.rows[table][tuple(row[k] for k in primary_key(table))] = row

    def _checkpointed_row(self, table: str, row: dict) -> bool:
        """Whether the row is of a project read with a checkpoint: it goes there (to its part's,
        when in one), and comes back converted (``parts``)."""
        if (part := _PART.get()) is not None:
            part.writer.add(table, row)
            return True
        if (pipeline := _PIPELINE.get()) is None or pipeline.writer is None:
            return False
        pipeline.writer.add(table, row)
        return True

    def _tables(self) -> dict[str, pa.Table]:
        """What this crawl read: its rows, and the records it refused. Each table's dicts are
        freed once converted, so no two tables' rows are held twice at once."""
        tables = {}
        for name in RAW_TABLES:
            parts, owners = self.parts.pop(name, []), REGISTRY[name].owners
            if name == "quarantine":  # no key: every refusal stays
                tables[name] = pa.concat_tables([*parts, to_arrow(name, self.quarantine)])
            elif name in self.streamed:
                tables[name] = self.streamed.pop(name).table(owners, self._gone, parts)
            elif parts:
                tables[name] = _merged(name, [*parts, to_arrow(name, self.rows.pop(name, {}).values())],
                                       owners, self._gone)
            else:
                tables[name] = to_arrow(name, self.rows.pop(name, {}).values())
        return tables

    def _finish(self, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        """The tables a sync delivers: here, the crawl's, with their broken references quarantined."""
        return with_unresolved(tables, self.started_at, self.wanted)

    async def _listing(self, table, model, path, params, fields) -> list:
        """List a collection into its table; returns the accepted records."""
        accepted = []
        async for page in self.client.pages(path, params, fields=fields):
            for raw in page:
                record = self._accept(table, model, raw)
                if record is not None:
                    self._add(table, record.row())
                    accepted.append(record)
        return accepted

    # -- people -----------------------------------------------------------------------
    async def _workspace_memberships(self, workspace_gid: str) -> None:
        path = f"/workspaces/{workspace_gid}/workspace_memberships"
        async for page in self.client.pages(path, None, fields=MEMBERSHIP_FIELDS):
            for raw in page:
                m = self._accept("workspace_memberships", models.WorkspaceMembership, raw)
                if m is not None:
                    self._add("workspace_memberships", m.row())
                    self._add("users", {**m.user.row(), "photo_url": self._photos.get(m.user.gid)})

    async def _user_photos(self, workspace_gid: str) -> None:
        """Each user's avatar, onto their row whether it is read before or after this."""
        async for page in self.client.pages("/users", {"workspace": workspace_gid}, fields=USER_PHOTO_FIELDS):
            for raw in page:
                user = self._accept("users", models.User, raw)
                if user is not None and (url := user.row()["photo_url"]) is not None:
                    self._photos[user.gid] = url
                    if (row := self.rows["users"].get((user.gid,))) is not None:
                        row["photo_url"] = url

    async def _teams(self, workspace_gid: str) -> None:
        teams = await self._listing(
            "teams", models.Team, f"/workspaces/{workspace_gid}/teams", None, TEAM_FIELDS
        )
        if self.needs("team_memberships"):
            for team in teams:
                self._spawn(self._listing(
                    "team_memberships", models.TeamMembership,
                    f"/teams/{team.gid}/team_memberships", None, TEAM_MEMBERSHIP_FIELDS,
                ), team.gid)

    # -- projects and their contents --------------------------------------------------
    async def _projects(self, workspace_gid: str) -> None:
        projects = await self._list_projects(workspace_gid)
        self._listed[workspace_gid] = {project.gid for project in projects}
        restored = self._resume(workspace_gid, self._listed[workspace_gid])
        for project in projects:
            if project.gid in restored:
                continue
            pipeline = _Pipeline(project.gid, workspace_gid, next(self._ranks), None, self.started_at)
            if self.checkpoint is not None:
                pipeline.writer = self.checkpoint.writer(project.gid, CHECKPOINT_ROWS, self._converted)
                # A part is read on only with the events token taken before it was read, and
                # only if no read taken already holds one of its tasks: that read (a project kept
                # whole since, say) has the newer copy, so the part is read again.
                parts = {name: read for name, read in self.checkpoint.parts(project.gid).items()
                         if read.token is not None}
                for name in [name for name, read in parts.items() if not self._seen_tasks.isdisjoint(read.claimed)]:
                    self.checkpoint.drop_part(project.gid, name)
                    del parts[name]
                pipeline.offered = parts
                pipeline.covered = {task: name for name, read in pipeline.offered.items() for task in read.tasks}
                for read in pipeline.offered.values():
                    self._held.update(read.claimed)
                    self._seen_tasks.update(read.claimed)
            self._start(pipeline)

    def _converted(self, table: str, data: pa.Table) -> None:
        """Take rows a checkpoint's writer converted to Arrow."""
        self.parts[table].append(data)

    def _start(self, pipeline: _Pipeline) -> None:
        """Start a project's read in a context of its own, where each fetch it leads to finds it."""
        def start() -> None:
            _PIPELINE.set(pipeline)
            self._read_project(pipeline.gid, pipeline.workspace_gid)

        contextvars.copy_context().run(start)

    def _read_project(self, project_gid: str, workspace_gid: str) -> None:
        if self.needs("sections"):
            self._spawn(self._sections(project_gid), project_gid, "sections")
        if self.needs("custom_field_settings"):
            self._spawn(self._custom_field_settings(project_gid, workspace_gid), project_gid, "custom_field_settings")
        if self.needs("project_memberships"):
            # Not refusable: access snapshots are history, and a project read without its members
            # would record every one of them as revoked.
            self._spawn(self._project_members(project_gid), project_gid)
        if self.needs("tasks"):
            self._spawn(self._project_tasks(project_gid), project_gid, "tasks")

    # -- the checkpoint ---------------------------------------------------------------
    def _keep(self, pipeline: _Pipeline, writer: ReadWriter) -> None:
        """Checkpoint a project whose read is whole."""
        project = self.rows["projects"].get((pipeline.gid,), {})
        writer.finish(ProjectRead(
            gid=pipeline.gid, workspace_gid=pipeline.workspace_gid, read_at=pipeline.token_at,
            token=self.tokens.get(pipeline.gid), synced_at=project.get("synced_at"),
            num_tasks=project.get("num_tasks"), tasks_counted_at=project.get("tasks_counted_at"),
            split=pipeline.gid in self.split.get(TASKS_BY_SECTION, ()),
            refused=[{"table": r.table, "status": r.status, "path": r.path} for r in pipeline.refused],
            gone=pipeline.gone, claimed=pipeline.claimed, shared=pipeline.shared,
            unknown_memberships=pipeline.unknown_memberships, parts=pipeline.parts,
        ))

    def _next_part(self, part: _Part | None) -> _Part | None:
        """The part a project's next listing page goes into: ``part`` until it holds
        ``PART_PAGES`` pages, then a new one (None without a checkpoint)."""
        if part is not None and part.pages < PART_PAGES:
            part.pages += 1
            return part
        self._seal(part)
        pipeline = _PIPELINE.get()
        if self.checkpoint is None or pipeline is None or pipeline.writer is None:
            return None
        pipeline.begun += 1
        writer = self.checkpoint.part_writer(pipeline.gid, CHECKPOINT_ROWS, self._converted)
        return _Part(pipeline, writer, rank=pipeline.begun, pages=1)

    def _seal(self, part: _Part | None) -> None:
        """No more pages go into ``part``: it is kept once its fetches are done."""
        if part is not None:
            part.sealed = True
            if not part.pending:
                self._keep_part(part)

    def _keep_part(self, part: _Part) -> None:
        """Checkpoint a part whose read is whole; one that could not be kept leaves its project out
        of the checkpoint (the project's would lack its rows)."""
        pipeline = part.pipeline
        read = PartRead(project_gid=pipeline.gid, read_at=pipeline.token_at, token=self.tokens.get(pipeline.gid),
                        tasks=part.tasks, claimed=part.claimed, shared=part.shared, gone=part.gone,
                        unknown_memberships=part.unknown_memberships)
        if part.writer.finish(read):
            pipeline.parts.append(part.writer.name)
        elif pipeline.writer is not None:
            pipeline.writer.abandon("a part of its read could not be kept")

    def _settle(self, pipeline: _Pipeline) -> None:
        """Once a project's listing is read again (whole, or as far as Asana let it be: a listing
        cut short keeps what it read), take each of an earlier run's parts of its read whose tasks
        it named all, and read the named tasks of the others again, in a part of their own. What a
        part not taken held is no longer held: a task of it that another read met meanwhile is
        read by itself."""
        again: list[str] = []
        taken = 0
        for name, read in pipeline.offered.items():
            # One found deleted is not named, unless restored since: then the part is read again.
            whole = pipeline.named.issuperset(set(read.tasks) - set(read.gone)) and pipeline.named.isdisjoint(read.gone)
            tables = self.checkpoint.part_tables(pipeline.gid, name) if whole and self.checkpoint else None
            claimed = set(read.claimed)
            self._held -= claimed
            if tables is None:
                if self.checkpoint is not None:
                    self.checkpoint.drop_part(pipeline.gid, name)
                again += [task for task in read.tasks if task in pipeline.named]
                self._seen_tasks -= claimed
                for task in sorted(claimed & self._deferred - set(again)):
                    contextvars.Context().run(self._spawn, self._shared_task(task))  # outside any project's read
            else:
                self._take_part(pipeline, name, read, tables)
                taken += 1
        if pipeline.offered:
            log.info("Resuming the read of project %s: %d of %d part(s) of an earlier run's taken from the "
                     "checkpoint, %d of their task(s) to read again", pipeline.gid, taken, len(pipeline.offered),
                     len(again))
        pipeline.offered, pipeline.covered = {}, {}
        if again:
            part = self._next_part(None)
            with _within(part):
                for task in again:
                    self._spawn(self._shared_task(task))
            self._seal(part)

    def _take_part(self, pipeline: _Pipeline, name: str, read: PartRead, tables: dict[str, pa.Table]) -> None:
        """Add an earlier run's part of a project's read to this crawl's, as if read now; a task
        it met that another read crawled (a subtask in two places) is read by itself unless a read
        of this crawl holds it, since that read may be gone or not kept."""
        self._places_listed(tables, self._listed[pipeline.workspace_gid])
        for table, data in tables.items():
            self.parts[table].append(data)
        self._gone.update(read.gone)
        self.unknown_memberships += read.unknown_memberships
        pipeline.claimed += read.claimed
        pipeline.gone += read.gone
        pipeline.unknown_memberships += read.unknown_memberships
        pipeline.parts.append(name)
        self.resumed_parts += 1
        for task in read.shared:
            self._spawn(self._shared_task(task))

    def _resume(self, workspace_gid: str, listed: set[str]) -> set[str]:
        """Take the workspace's projects the checkpoint holds whole and the listing still names;
        returns their gids.

        A checkpointed project no longer listed is dropped, and so are the checkpointed rows
        placing a task in any project no longer listed (``_places_listed``). A task a taken
        project listed but another project's read crawled (a task in two projects is crawled
        once) is read again by itself unless a taken read holds it: the project that crawled it
        may be dropped, or not kept, and no longer list it.
        """
        mine = {gid: read for gid, read in self._checkpointed.items() if read.workspace_gid == workspace_gid}
        if not mine:
            return set()
        assert self.checkpoint is not None
        restored: set[str] = set()
        for gid in sorted(set(mine) & listed):
            tables = self.checkpoint.tables(gid)
            if tables is None:
                continue  # unreadable: read again
            self._places_listed(tables, listed)
            self._take(mine[gid], tables)
            restored.add(gid)
        unheld = {task for gid in restored for task in mine[gid].shared} - self._seen_tasks
        for task in sorted(unheld):
            self._spawn(self._shared_task(task))
        log.info("Resuming the crawl of workspace %s: %d project(s) taken from the checkpoint of an earlier run, "
                 "%d no longer listed dropped, %d to read, and %d task(s) they share with those", workspace_gid,
                 len(restored), len(set(mine) - listed), len(listed) - len(restored), len(unheld))
        return restored

    async def _shared_task(self, gid: str) -> None:
        """Read a task a project lists by itself, as its listing would have (once per crawl): one
        a taken project lists, or one an earlier run's part held that is not taken."""
        if gid in self._seen_tasks:
            self._met(gid, listed=True)
            return  # a project read now listed it first
        if (raw := await self._task_record(gid)) is not None:
            self._task(raw, None)

    def _places_listed(self, tables: dict[str, pa.Table], listed: set[str]) -> None:
        """Drop from a checkpoint's ``tables`` the rows placing a task in a project the workspace
        no longer lists (deleted since, say), and read those tasks' places again: the record says
        which remain (a project out of the listing's view, say)."""
        places = tables.get("task_memberships")
        if places is None or not places.num_rows:
            return
        elsewhere = pc.invert(pc.is_in(places["project_gid"], value_set=gid_array(listed)))
        for task in sorted(set(places.filter(elsewhere)["task_gid"].to_pylist())):
            self._spawn(self._reread_places(task))
        tables["task_memberships"] = places.filter(pc.invert(elsewhere))

    async def _reread_places(self, gid: str) -> None:
        """A task's places (its task_memberships rows) from its record read again; the rest of
        what a checkpoint held of it stays, as for any task it holds."""
        if (raw := await self._task_record(gid)) is None:
            return
        try:
            task = models.Task.model_validate(raw)
        except ValidationError as exc:
            log.warning("Asana task %s no longer validates (%s): its places in projects no longer listed are left "
                        "out", gid, _explain(exc))
            return
        for m in task.membership_rows():
            self._add("task_memberships", m)

    async def _task_record(self, gid: str) -> Any:
        """A task's record, as a listing gives it; None when it is gone or out of view, as its
        listing now would leave it out."""
        try:
            return await self.client.get_data(f"/tasks/{gid}", fields=TASK_FIELDS)
        except (NotFoundError, ForbiddenError) as gone:
            log.info("Asana task %s is gone or out of view (%s): leaving it out, as its listing now would",
                     gid, type(gone).__name__)
            return None

    def _take(self, read: ProjectRead, tables: dict[str, pa.Table]) -> None:
        """Add a checkpointed project's read to this crawl's, as if read now."""
        for name, data in tables.items():
            self.parts[name].append(data)
        self._seen_tasks.update(read.claimed)
        self._gone.update(read.gone)
        self.refused += [Refusal(r["table"], read.gid, r["status"], r["path"]) for r in read.refused]
        if read.split:
            self.split[TASKS_BY_SECTION].append(read.gid)
        self.unknown_memberships += read.unknown_memberships
        if read.token is not None:
            self.tokens[read.gid] = read.token
        self.resumed[read.gid] = read.read_at
        project = self.rows["projects"].get((read.gid,))
        if project is not None:
            project.update(synced_at=read.synced_at, num_tasks=read.num_tasks, tasks_counted_at=read.tasks_counted_at)

    async def _list_projects(self, workspace_gid: str) -> list[models.Project]:
        """The workspace's projects, into their table: listed whole, else team by team when Asana
        refuses the whole listing as too large or keeps failing on it (its docs: it "may timeout
        for large domains. Try filtering by team"). By team, a project in no team the token sees
        is not listed: the references to it then show as unresolved."""
        listed: dict[Any, models.Project | None] = {}
        try:
            await self._project_pages("/projects", {"workspace": workspace_gid}, listed)
        except (ResultTooLargeError, ServerError, AsanaConnectionError) as failed:
            teams = _part_gids(await self.client.list_all(f"/workspaces/{workspace_gid}/teams"), failed)
            log.warning("Asana could not list the projects of workspace %s whole (%s): listing them by team",
                        workspace_gid, type(failed).__name__)
            self.split[PROJECTS_BY_TEAM].append(workspace_gid)
            await _all(self._project_pages(f"/teams/{team}/projects", None, listed) for team in teams)
        return [project for project in listed.values() if project is not None]

    async def _project_pages(self, path: str, params: dict | None, listed: dict[Any, models.Project | None]) -> None:
        """Validate and keep the projects of a listing not already in ``listed`` (by gid, or by
        record when it has none): a listing read again in parts repeats what it read first."""
        async for page in self.client.pages(path, params, fields=PROJECT_FIELDS):
            for raw in page:
                key = raw.get("gid") if isinstance(raw, dict) else None
                key = key if isinstance(key, str) else orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
                if key in listed:
                    continue
                listed[key] = project = self._accept("projects", models.Project, raw)
                if project is not None:
                    self._add("projects", project.row())

    async def _project_tasks(self, project_gid: str) -> None:
        """List a project's tasks; the time it completes is the project's last successful sync.

        A project an earlier run read in part keeps the events token that run took before
        reading it, so the next incremental sync replays every change made since those parts
        were read; the listing then names the tasks they hold (``_settle``)."""
        pipeline = _PIPELINE.get()
        if pipeline is not None and pipeline.offered:
            oldest = min(pipeline.offered.values(), key=lambda read: read.read_at)
            self.tokens[project_gid] = str(oldest.token)
            pipeline.token_at = self.resumed[project_gid] = oldest.read_at
        elif self.track_events:
            self.tokens[project_gid] = await self._fresh_token(project_gid)
        try:
            await self._list_project_tasks(project_gid)
        except (NotFoundError, ForbiddenError, PaymentRequiredError):
            # Its listing is refused or gone part-way (the crawl goes on without the rest): what
            # it named stands, as in a crawl not resumed. Any other failure fails the crawl, and
            # leaves the parts to the next one.
            if pipeline is not None:
                self._settle(pipeline)
            raise
        if pipeline is not None:
            self._settle(pipeline)
        self._synced(project_gid)
        await self._count_tasks(project_gid)

    async def _list_project_tasks(self, project_gid: str) -> None:
        """Read a project's tasks: listed whole, else section by section when Asana refuses the
        listing as too large (each task of a project sits in one of its sections; a task already
        read is not read again). Asana's count of the project's tasks still judges the result."""
        try:
            await self._task_pages("/tasks", {"project": project_gid}, None)
        except ResultTooLargeError as failed:
            sections = _part_gids(await self.client.list_all(f"/projects/{project_gid}/sections"), failed)
            log.warning("Asana refused the tasks of project %s as too large: listing them by section", project_gid)
            self.split[TASKS_BY_SECTION].append(project_gid)
            await _all(self._task_pages(f"/sections/{section}/tasks", None, None) for section in sections)

    def _synced(self, project_gid: str) -> None:
        project = self.rows["projects"].get((project_gid,))
        if project is not None:
            project["synced_at"] = datetime.now(UTC)

    async def _count_tasks(self, project_gid: str) -> None:
        """Store the number of tasks Asana counts in a listed project, with when it was asked
        for. A refusal (the endpoint has its own limits and plans) or a malformed answer leaves
        the number null, so the monitor reads it as unknown, never as a match."""
        project = self.rows["projects"].get((project_gid,))
        if project is None:
            return  # the projects table is not wanted, or the project was not listed
        asked_at = datetime.now(UTC)
        try:
            raw = await self.client.get_data(f"/projects/{project_gid}/task_counts", fields=TASK_COUNT_FIELDS)
        except (ForbiddenError, PaymentRequiredError) as refused:
            log.warning("Asana refused the task count of project %s (%s)", project_gid, type(refused).__name__)
            counts = None
        else:
            try:
                counts = models.TaskCounts.model_validate(raw)
            except ValidationError as exc:
                self._quarantine("projects", raw, "task_counts: " + _explain(exc), gid=project_gid)
                counts = None
        project["num_tasks"] = None if counts is None else counts.num_tasks
        project["tasks_counted_at"] = asked_at

    async def _fresh_token(self, resource_gid: str) -> str:
        """A new events sync token: the API hands one out with a 412 to a call without one."""
        try:
            await self.client.events(resource_gid, None)
        except SyncTokenExpiredError as expired:
            return expired.sync
        raise RuntimeError(f"the events API gave no sync token for {resource_gid}")

    async def _project_members(self, project_gid: str) -> None:
        """A project's members, users and teams, from the memberships API (the per-project
        project_memberships listing is deprecated). Its compact record (parent, member with its
        resource_type, access_level) is what the table stores: the spec's opt_fields for it
        name only the pagination fields."""
        await self._listing("project_memberships", models.ProjectMembership, "/memberships",
                            {"parent": project_gid}, None)

    async def _custom_field_settings(self, project_gid: str, workspace_gid: str | None) -> None:
        """A project's custom field settings; the fields they embed are the definitions."""
        path = f"/projects/{project_gid}/custom_field_settings"
        async for page in self.client.pages(path, None, fields=CUSTOM_FIELD_SETTING_FIELDS):
            for raw in page:
                setting = self._accept("custom_field_settings", models.CustomFieldSetting, raw)
                if setting is not None:
                    self._add("custom_field_settings", {**setting.row(), "project_gid": project_gid})
                    self._add("custom_fields", setting.custom_field.row(workspace_gid))

    async def _sections(self, project_gid: str) -> None:
        path = f"/projects/{project_gid}/sections"
        position = 0
        async for page in self.client.pages(path, None, fields=SECTION_FIELDS):
            for raw in page:
                s = self._accept("sections", models.Section, raw)
                if s is not None:
                    self._add("sections", {
                        "gid": s.gid,
                        "project_gid": project_gid,
                        "name": s.name,
                        "position": position,
                        "created_at": s.created_at,
                    })
                    position += 1

    async def _task_pages(self, path: str, params: dict | None, parent_gid: str | None) -> None:
        """Read a listing of tasks; a project's (no ``parent_gid``) goes into parts, a few pages
        each, kept with a checkpoint as each is whole."""
        part = None
        try:
            async for page in self.client.pages(path, params, fields=TASK_FIELDS):
                if parent_gid is None:
                    part = self._next_part(part)
                with _within(part) if parent_gid is None else contextlib.nullcontext():
                    for raw in page:
                        self._task(raw, parent_gid)
        finally:
            self._seal(part)  # a listing cut short (a refusal the crawl goes on after) keeps what it read

    def _task(self, raw: Any, parent_gid: str | None) -> None:
        """Store one task and schedule its stories and subtasks (once per gid)."""
        gid = raw.get("gid") if isinstance(raw, dict) else None
        if isinstance(gid, str):
            pipeline, part = _PIPELINE.get(), _PART.get()
            if parent_gid is None and pipeline is not None and gid in pipeline.covered:
                pipeline.named.add(gid)
                return  # an earlier run's part holds it whole (see _settle)
            if gid in self._seen_tasks:
                self._met(gid, listed=parent_gid is None)
                return  # a task in two projects is listed twice; crawl it once
            self._seen_tasks.add(gid)
            if pipeline is not None:
                pipeline.claimed.append(gid)
            if part is not None:
                part.claimed.append(gid)
                if parent_gid is None:
                    part.tasks.append(gid)
        # A listed record without a gid is no part's (none can name it): it is kept with the
        # project, whose listing, read again on a resume, meets it again.
        outside = parent_gid is None and not isinstance(gid, str)
        with _within(None) if outside else contextlib.nullcontext():
            task = self._task_rows(raw, parent_gid)
        if not isinstance(gid, str) or not gid.isdigit() or not self._crawl_children(gid, task):
            return  # without a usable gid its children cannot be reached
        self._children(gid, None if task is None else task.num_subtasks)

    def _task_rows(self, raw: Any, parent_gid: str | None) -> models.Task | None:
        """Store a task's record: its row and those of its memberships, tags, field values and
        followers (None when the record is refused)."""
        task = self._accept("tasks", models.Task, raw)
        if task is not None:
            row = task.row()
            row["parent_gid"] = row["parent_gid"] or parent_gid
            self._add("tasks", row)
            for m in task.membership_rows():
                self._add("task_memberships", m)
            self._unplaced(task)
            for t in task.tag_rows():
                self._add("task_tags", t)
            for v in task.custom_field_rows():
                self._add("task_custom_fields", v)
            for f in task.follower_rows():
                self._add("task_followers", f)
        return task

    def _met(self, gid: str, listed: bool) -> None:
        """Note a task met again, crawled by another read (or held for an earlier run's part);
        ``listed``: by a project's listing (which decides again on a resume), not as a subtask."""
        if gid in self._held:
            self._deferred.add(gid)
        if (pipeline := _PIPELINE.get()) is not None:
            pipeline.shared.append(gid)
        if (part := _PART.get()) is not None and not listed:
            part.shared.append(gid)

    def _unplaced(self, task: models.Task) -> None:
        """A membership without a project (the spec says more types may come) is no row, and the
        task stays. One that names a section holds what the tables model: it is quarantined,
        never lost; any other is counted, and logged when the crawl ends."""
        for membership in task.unplaced:
            if membership.section is None:
                self.unknown_memberships += 1
                if (pipeline := _PIPELINE.get()) is not None:
                    pipeline.unknown_memberships += 1
                if (part := _PART.get()) is not None:
                    part.unknown_memberships += 1
                continue
            self._quarantine("task_memberships", membership.model_dump(mode="json", exclude_none=True),
                             f"memberships: section {membership.section.gid} without a project: not a "
                             "task_memberships row (the task is kept)", gid=task.gid)

    def _crawl_children(self, gid: str, task: models.Task | None) -> bool:
        """Whether to fetch a task's stories and subtasks: always, in a full crawl."""
        return True

    def _children(self, gid: str, num_subtasks: int | None) -> None:
        """Schedule a task's stories and subtasks."""
        if self.needs("stories"):
            self._spawn(self._stories(gid), gid)
        if self._has_subtasks(gid, num_subtasks):
            self._spawn(self._subtasks(gid), gid)

    def _has_subtasks(self, gid: str, num_subtasks: int | None) -> bool:
        """num_subtasks lets leaves skip a request; unknown (a quarantined task) means look."""
        return num_subtasks is None or num_subtasks > 0

    async def _subtasks(self, gid: str) -> None:
        await self._task_pages(f"/tasks/{gid}/subtasks", None, gid)

    async def _stories(self, task_gid: str) -> None:
        async for page in self.client.pages(f"/tasks/{task_gid}/stories", None, fields=STORY_FIELDS):
            for raw in page:
                story = self._accept("stories", models.Story, raw)
                if story is not None:
                    row = story.row()
                    row["task_gid"] = task_gid
                    self._add("stories", row)


class _Chunks:
    """One table's rows as Arrow tables of CHUNK_ROWS rows, converted as they come."""

    def __init__(self, table: str):
        self.name = table
        self.pending: list[dict] = []
        self.chunks: list[pa.Table] = []

    def add(self, row: dict) -> None:
        self.pending.append(row)
        if len(self.pending) >= CHUNK_ROWS:
            self._convert()

    def _convert(self) -> None:
        if self.pending:
            self.chunks.append(to_arrow(self.name, self.pending))
            self.pending = []

    def table(self, owners: tuple[str, ...], gone: set[str], before: Iterable[pa.Table] = ()) -> pa.Table:
        """The rows, after those ``before`` (a checkpoint's), as ``_merged`` keeps them."""
        self._convert()
        parts, self.chunks = [*before, *self.chunks], []
        return _merged(self.name, parts, owners, gone)


def _merged(name: str, parts: list[pa.Table], owners: tuple[str, ...], gone: set[str]) -> pa.Table:
    """One row per primary key, as a dict keyed by it keeps them: the last row read, in the place
    of the first; then without the rows whose ``owners`` columns name a ``gone`` object."""
    data = pa.concat_tables(parts) if parts else to_arrow(name, [])
    data = _last_per_key(data, primary_key(name))
    if gone:
        hit = [pc.fill_null(pc.is_in(data[c], value_set=gid_array(gone)), False) for c in owners]
        mask = hit[0]
        for more in hit[1:]:
            mask = pc.or_(mask, more)
        data = data.filter(pc.invert(mask))
    return data.combine_chunks()


def _last_per_key(data: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """``data`` with, per ``key``, its last row in the place of its first."""
    positions = data.select(list(key)).append_column("_at", pa.array(np.arange(data.num_rows, dtype=np.int64)))
    groups = positions.group_by(list(key), use_threads=False).aggregate([("_at", "min"), ("_at", "max")])
    if groups.num_rows == data.num_rows:
        return data  # no key read twice
    return data.take(pc.take(groups["_at_max"], pc.sort_indices(groups["_at_min"])))


def with_others_refused(current: pa.Table, fresh: pa.Table) -> pa.Table:
    """A sync's quarantine: ``fresh``'s rows about the raw tables, and ``current``'s about the
    tables other assets fill (the audit log's), which a sync neither reads again nor may drop."""
    raw = pa.array(list(RAW_TABLES))
    ours = fresh.filter(pc.fill_null(pc.is_in(fresh["table"], value_set=raw), True))
    others = current.filter(pc.invert(pc.fill_null(pc.is_in(current["table"], value_set=raw), True)))
    return pa.concat_tables([ours, others.cast(ours.schema)])


def with_unresolved(tables: dict[str, pa.Table], observed_at: datetime,
                    wanted: Iterable[str] = RAW_TABLES) -> dict[str, pa.Table]:
    """``tables`` with a quarantine row for every broken reference among the ``wanted`` tables."""
    found = unresolved_references(tables, observed_at, wanted)
    return {**tables, "quarantine": pa.concat_tables([tables["quarantine"], found.cast(tables["quarantine"].schema)])}


def unresolved_references(tables: dict[str, pa.Table], observed_at: datetime,
                          wanted: Iterable[str] = RAW_TABLES) -> pa.Table:
    """Quarantine rows for records whose references the tables cannot resolve.

    - a task membership in a project not listed, or in a section its project does not list
      (the ticket's workflow state would be unknown);
    - a story moving a task from or to a section no project lists (its status history would
      have a gap);
    - a project membership whose member is neither a user nor a team (access would miss it).

    A rule runs only when every table it reads was wanted, so a partial crawl is not flagged
    for what it did not read. Only the offending rows are formatted, one by one.
    """
    wanted = set(wanted)
    found: list[dict] = []
    if {"task_memberships", "projects", "sections"} <= wanted:
        m, sections = tables["task_memberships"], tables["sections"]
        known_project = pc.is_in(m["project_gid"], value_set=tables["projects"]["gid"])
        found += _flagged("task_memberships", m, "task_gid", pc.invert(known_project),
                          ["project ", m["project_gid"], " is not listed"])
        place = pc.binary_join_element_wise(m["project_gid"], m["section_gid"], ":")
        listed = pc.binary_join_element_wise(sections["project_gid"], sections["gid"], ":")
        unlisted = pc.and_(pc.and_(known_project, pc.is_valid(place)), pc.invert(pc.is_in(place, value_set=listed)))
        found += _flagged("task_memberships", m, "task_gid", unlisted,
                          ["section ", m["section_gid"], " is not a listed section of project ", m["project_gid"]])
    if {"stories", "sections"} <= wanted:
        s, listed = tables["stories"], tables["sections"]["gid"]
        for column in ("old_section_gid", "new_section_gid"):
            unknown = pc.and_(pc.is_valid(s[column]), pc.invert(pc.is_in(s[column], value_set=listed)))
            found += _flagged("stories", s, "gid", unknown,
                              [column.removesuffix("_gid") + " ", s[column], " is not a listed section"])
    if "project_memberships" in wanted:
        pm = tables["project_memberships"]
        typed = pc.is_in(pm["member_type"], value_set=pa.array(MEMBER_TYPES))
        found += _flagged("project_memberships", pm, "gid", pc.invert(pc.fill_null(typed, False)), [
            "member ", pm["member_gid"], " is of type ", pc.fill_null(pm["member_type"], "(none)"),
            ", neither user nor team",
        ])
    return to_arrow("quarantine", [{**row, "observed_at": observed_at} for row in found])


def _flagged(table: str, data: pa.Table, gid_column: str, mask: pa.ChunkedArray, reason: list) -> list[dict]:
    """The rows of ``data`` where ``mask`` holds, as quarantine rows; ``reason`` joins text and columns."""
    mask = pc.fill_null(mask, False)
    bad = data.filter(mask)
    if not bad.num_rows:
        return []
    parts = [part.filter(mask) if isinstance(part, pa.ChunkedArray) else part for part in reason]
    errors = pc.binary_join_element_wise(UNRESOLVED, *parts, "").to_pylist()
    return [
        {"table": table, "gid": row[gid_column], "error": error,
         "raw": orjson.dumps(row, option=orjson.OPT_SORT_KEYS).decode()}
        for row, error in zip(bad.to_pylist(), errors, strict=True)
    ]


def gid_array(values: Iterable[str]) -> pa.Array:
    return pa.array(sorted(values), pa.string())


def _part_gids(records: list, failed: AsanaError) -> list[str]:
    """The gids of the parts a listing refused whole is read in; ``failed`` when there are none,
    or one lacks a gid, since the parts would then miss what the listing holds."""
    gids = [record.get("gid") if isinstance(record, dict) else None for record in records]
    if not gids or not all(isinstance(gid, str) and gid.isdigit() for gid in gids):
        raise failed
    return gids


async def _all(coros: Iterable) -> None:
    """Run ``coros`` at once, each to its end (none is left running), then raise the first failure."""
    for outcome in await asyncio.gather(*coros, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _figures(stats) -> dict[str, Any]:
    """The client's counters as plain numbers, for logs and materialization metadata."""
    return {
        "requests": stats.requests,
        "rate_limited": stats.rate_limited,
        "retries": stats.retries,
        "transport_errors": stats.transport_errors,
        "retry_after_seconds": round(stats.retry_after_seconds, 3),
        "cost_cuts": stats.cost_cuts,
    }


def _explain(exc: ValidationError) -> str:
    """One line per failing field: where it is and what is wrong (no input echo)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}" for err in exc.errors()
    )


async def crawl(
    client: AsanaClient, workspace_gid: str | None = None, tables: Iterable[str] | None = None,
    track_events: bool = False, expected_requests: int | None = None, checkpoint: Checkpoint | None = None,
) -> SyncResult:
    """Crawl the workspace(s) the client's token sees into the requested tables; with a
    ``checkpoint`` (a whole crawl that takes events tokens), resume an earlier run's and keep
    each project's read as it is whole."""
    return await WorkspaceCrawler(client, tables, track_events, expected_requests, checkpoint).run(workspace_gid)
