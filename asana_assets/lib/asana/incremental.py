"""Incremental sync: read only what changed since the last sync, from each project's events feed.

A full crawl (``crawl(..., track_events=True)``) leaves one events sync token per project. An
incremental sync then:

- re-lists the small workspace-level collections (members, teams, tags, projects), which have
  no events feed of their own;
- reads each project's events in order (see ``FeedChanges``): the last action on a task wins,
  so a task deleted then restored is re-read, and a task whose last event is ``deleted`` is
  removed with its subtasks. It re-reads the tasks the events name (the task, its stories, its
  subtasks; a 404 means deleted, a 403 that the task left the token's view, e.g. moved into a
  private project its user is not in: it leaves the tables as from a full crawl, which would not
  list it, but is reported apart, never as deleted) and the parent of a subtask that came, left
  or came back;
- re-lists a project's sections and members when any of its events is about something other
  than a task or a story (a section added, renamed or removed; a membership, however the
  resource is named; the project itself), or when a task re-read sits in a section the tables
  do not hold;
- re-lists a project whose token expired (412, or older than its 24 h life), or whose feed held
  an event it cannot read, and reconciles: tasks it no longer lists are re-read, so a deletion or
  a move out is never missed; stories and subtasks are re-read only for tasks whose
  ``modified_at``, place (project, section) or subtask count moved, since ``modified_at``
  ignores moves (a move there and back between two syncs is left to the weekly full sync), and a
  known subtask its parent no longer lists is re-read (a 404 means deleted);
- merges the changes into the current tables: rows of re-read tasks are replaced, rows of
  deleted tasks and their subtasks removed, the sections and members of re-listed projects
  replaced; broken references are then quarantined from the merged tables, as a full crawl does.

The tokens are saved only after the tables are written, so a crashed run is replayed from the
same tokens by the next one and, the merge being idempotent, loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.lib.asana import models
from asana_assets.lib.asana.client import AsanaClient, ForbiddenError, NotFoundError, SyncTokenExpiredError
from asana_assets.lib.asana.crawl import (
    REFUSED,
    TASK_FIELDS,
    UNRESOLVED,
    SyncResult,
    WorkspaceCrawler,
    gid_array,
    with_unresolved,
)
from asana_assets.lib.asana.models import gid_of
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.schema import RAW_TABLES, REGISTRY

log = logging.getLogger(__name__)


def _resynced(how: str) -> tuple[str, ...]:
    return tuple(name for name in RAW_TABLES if REGISTRY[name].resync == how)


# Re-listed whole on every incremental sync: their size follows people and projects, not tasks.
WORKSPACE_TABLES = _resynced("workspace")
# A project's containers: re-listed whole, per project, when they may have changed.
CONTAINER_TABLES = _resynced("project")
TASK_TABLES = _resynced("task")  # re-read with their task
TASK_SUBTYPES = frozenset({"default_task", "milestone", "approval"})
# Where a quarantined record names its container: it is replaced when that container is read again.
_CONTAINER_OF = {"stories": "target", "sections": "project", "project_memberships": "parent"}


@dataclass
class FeedChanges:
    """What a project's events name, read in order.

    An event's resource is a task or a story when its ``resource_type`` (or the deprecated
    ``type``) says so, or, lacking both, when its ``resource_subtype`` is a task's; anything
    else (a section, ``project_membership``, ``membership`` of any subtype, the project, a type
    never seen) changes what the project holds, so its sections and members are re-listed.
    """

    tasks: dict[str, Any] = field(default_factory=dict)  # task gid -> the action of its last event
    parents: set[str] = field(default_factory=set)  # tasks an event names as parent: a subtask or story came or went
    stories: set[str] = field(default_factory=set)  # stories named without their task
    containers: bool = False  # sections or members may have changed
    unreadable: bool = False  # an event without a usable resource gid: reconcile the project

    def read(self, events: Iterable[Any]) -> FeedChanges:
        for event in events:
            self._read(event if isinstance(event, dict) else {})
        return self

    def _read(self, event: dict) -> None:
        resource, parent = _object(event.get("resource")), _object(event.get("parent"))
        gid = _gid(resource)
        if gid is None:
            self.unreadable = True
            return
        parent_task = _gid(parent) if parent.get("resource_type") == "task" else None
        kind = resource.get("resource_type") or event.get("type")
        if kind is None and resource.get("resource_subtype") in TASK_SUBTYPES:
            kind = "task"
        if kind == "task":
            self.tasks[gid] = event.get("action")  # a later event overrides an earlier one
        elif kind == "story" and not parent:
            self.stories.add(gid)  # an edited comment: its task is found from the story
        elif kind != "story" or parent_task is None:
            self.containers = True  # not a task's story: it may be about what the project holds
        if parent_task is not None:
            self.parents.add(parent_task)

    @property
    def deleted(self) -> set[str]:
        """Tasks whose last event deleted them."""
        return {gid for gid, action in self.tasks.items() if action == "deleted"}

    @property
    def reread(self) -> set[str]:
        """Tasks to read again: those named (restored included) and parents, unless deleted."""
        return (set(self.tasks) | self.parents) - self.deleted


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _gid(resource: dict) -> str | None:
    gid = resource.get("gid")
    return gid if isinstance(gid, str) and gid.isdigit() else None


class IncrementalCrawler(WorkspaceCrawler):
    """A crawl that reads only the projects' changes and merges them into the current tables."""

    def __init__(self, client: AsanaClient, state: SyncState, current: dict[str, pa.Table],
                 projects: Iterable[str] | None = None):
        super().__init__(client, RAW_TABLES, track_events=True)
        self.state = state
        # Poll only these projects (the ones a sensor saw change); the others keep their rows and tokens.
        self.only = set(projects) if projects else None
        self.current = current
        self.now = datetime.now(UTC)
        self.deleted: set[str] = set()
        self.hidden: set[str] = set()  # tasks that exist but the token may no longer read (403)
        self.stories_read: set[str] = set()
        self.relisted: set[str] = set()  # projects whose sections, members and tasks were re-listed
        # Per container table, the projects whose rows of it were re-listed.
        self.refreshed: dict[str, set[str]] = {table: set() for table in CONTAINER_TABLES}
        self.forced: set[str] = set()  # tasks an event named: re-read whatever their modified_at
        self.touched: set[str] = set()  # projects a task entered or left: counted again
        tasks, places = current["tasks"], current["task_memberships"]
        self.known_modified = dict(zip(tasks["gid"].to_pylist(), tasks["modified_at"].to_pylist()))
        self.known_subtasks = dict(zip(tasks["gid"].to_pylist(), tasks["num_subtasks"].to_pylist()))
        children = tasks.filter(pc.is_valid(tasks["parent_gid"])).group_by("parent_gid").aggregate([("gid", "list")])
        self.known_children: dict[str, list[str]] = dict(
            zip(children["parent_gid"].to_pylist(), children["gid_list"].to_pylist())
        )
        self.known_sections = set(current["sections"]["gid"].to_pylist())
        # modified_at ignores moves between sections and projects: compare where tasks sit too.
        self.known_places: dict[str, set] = {}
        for gid, project, section in zip(*(places[c].to_pylist() for c in ("task_gid", "project_gid", "section_gid"))):
            self.known_places.setdefault(gid, set()).add((project, section))

    # -- what to read -----------------------------------------------------------------
    async def _read(self, workspaces: list[models.Workspace]) -> None:
        """Read the changes, then Asana's task count of every listed project a task entered or
        left (new, moved, deleted or out of view) that no listing counted already: once the rows
        are read, so both describe the same moment. The other projects keep their count (see
        ``_keep_unread``): an edit leaves a count as it was."""
        await super()._read(workspaces)
        for gid in self._with_subtasks(self.deleted) | self.hidden:
            self.touched |= self._known_projects(gid)
        projects = self.rows["projects"]
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            for gid in sorted(self.touched - self._gone):
                if (gid,) in projects and projects[(gid,)].get("tasks_counted_at") is None:
                    self._spawn(self._count_tasks(gid), gid)

    def _known_projects(self, gid: str) -> set[str]:
        """The projects the current tables place a task in."""
        return {project for project, _section in self.known_places.get(gid, ())}

    async def _projects(self, workspace_gid: str) -> None:
        projects = await self._list_projects(workspace_gid)
        for project in projects:
            token = self.state.token(project.gid, self.now)
            if token is None:
                self._spawn(self._relist(project.gid), project.gid, "tasks")
            elif self.only is None or project.gid in self.only:
                self._spawn(self._poll(project.gid, token), project.gid)
        for gid in self._placed(self._vanished(workspace_gid, {project.gid for project in projects})):
            self._spawn(self._reread(gid))

    def _vanished(self, workspace_gid: str, listed: set[str]) -> set[str]:
        """The workspace's projects the tables hold and its listing no longer names (deleted, or
        out of the token's view): their tasks are read again, since no feed of theirs will name
        them (a 404 removes a task trashed with its project; another project may still hold it)."""
        projects = self.current["projects"]
        mine = projects.filter(pc.equal(projects["workspace_gid"], workspace_gid))["gid"].to_pylist()
        return set(mine) - listed

    def _placed(self, projects: Iterable[str]) -> set[str]:
        """The tasks the tables place in these projects."""
        members = self.current["task_memberships"]
        return set(members.filter(pc.is_in(members["project_gid"], gid_array(projects)))["task_gid"].to_pylist())

    async def _poll(self, project_gid: str, sync: str) -> None:
        """Read the project's events since its token; re-read what they name."""
        changes, token, expired = await self._read_feed(project_gid, sync)
        self._forget(changes.deleted)
        for gid in changes.reread:
            self._spawn(self._reread(gid))
        for gid in changes.stories:
            self._spawn(self._story_changed(gid))
        if expired is not None:
            await self._relist(project_gid)  # the feed is gone: reconcile from a listing
            return
        self.tokens[project_gid] = token
        if changes.unreadable:
            self._spawn(self._relist(project_gid), project_gid, "tasks")
        elif changes.containers:
            self._refresh(project_gid)
        self._synced(project_gid)

    async def _read_feed(self, project_gid: str, sync: str) -> tuple[FeedChanges, str | None,
                                                                    SyncTokenExpiredError | None]:
        """What the project's events since ``sync`` name, the token that follows them, and the
        412 that cut the feed short (then no token follows): the events of the pages read before
        it still count, since no later read of the feed will name them again."""
        changes = FeedChanges()
        while True:
            try:
                events, sync, more = await self.client.events(project_gid, sync)
            except SyncTokenExpiredError as expired:
                return changes, None, expired
            changes.read(events)
            if not more:
                return changes, sync, None

    def _forget(self, gids: set[str], hidden: bool = False) -> None:
        """Tasks deleted at the source (or ``hidden`` from the token): removed from the tables,
        and their parents (in the current tables) re-read, since their subtask counts changed.
        Asana deletes a task's subtasks with it, but a task out of view may have subtasks the
        token still reads (in a project of its own): those are read again, not removed."""
        if not gids:
            return
        (self.hidden if hidden else self.deleted).update(gids)
        tasks = self.current["tasks"]
        parents = tasks.filter(pc.is_in(tasks["gid"], gid_array(gids)))["parent_gid"].drop_null()
        for gid in set(parents.to_pylist()) - gids:
            self._spawn(self._reread(gid))
        if hidden:
            children = tasks.filter(pc.fill_null(pc.is_in(tasks["parent_gid"], gid_array(gids)), False))["gid"]
            for gid in set(children.to_pylist()) - self.deleted - self.hidden:
                self._spawn(self._reread(gid))

    def _refresh(self, project_gid: str, tables: Iterable[str] = CONTAINER_TABLES) -> None:
        """Re-list a project's sections, custom field settings and members, or those of ``tables``
        (each once per sync)."""
        for table in tables:
            if project_gid in self.refreshed[table]:
                continue
            self.refreshed[table].add(project_gid)
            if table == "sections":
                self._spawn(self._sections(project_gid), project_gid, table)
            elif table == "custom_field_settings":
                workspace_gid = self.rows["projects"].get((project_gid,), {}).get("workspace_gid")
                self._spawn(self._custom_field_settings(project_gid, workspace_gid), project_gid, table)
            else:
                self._spawn(self._project_members(project_gid), project_gid)

    async def _relist(self, project_gid: str) -> None:
        """Re-list a project whole, then re-read the tasks it used to hold and no longer lists."""
        self.relisted.add(project_gid)
        self._refresh(project_gid)
        await self._project_tasks(project_gid)
        members = self.current["task_memberships"]
        before = members.filter(pc.equal(members["project_gid"], project_gid))["task_gid"].to_pylist()
        for gid in set(before) - self._seen_tasks:
            self._spawn(self._reread(gid))

    async def _reread(self, gid: str) -> None:
        """Fetch one task as it is now; 404 means it was deleted. A task already read this sync
        is not fetched again, but its stories and subtasks are, if its reading skipped them."""
        if gid in self._seen_tasks:
            self._force(gid)
            return
        try:
            raw = await self.client.get_data(f"/tasks/{gid}", fields=TASK_FIELDS)
        except NotFoundError:
            self._forget({gid})
            return
        except ForbiddenError:
            log.info("Asana task %s is out of this connection's view (403): leaving it out, as a full sync would", gid)
            self._forget({gid}, hidden=True)
            return
        self.forced.add(gid)
        self._task(raw, None)
        row = self.rows["tasks"].get((gid,))
        if row is not None and row["parent_gid"] and gid not in self.known_modified:
            self._spawn(self._reread(row["parent_gid"]))  # a subtask new to the tables: its parent counts it

    def _force(self, gid: str) -> None:
        """Read a task's stories and subtasks whatever its own reading found (once per sync)."""
        self.forced.add(gid)
        if gid not in self.stories_read:
            self.stories_read.add(gid)
            row = self.rows["tasks"].get((gid,))
            self._children(gid, None if row is None else row["num_subtasks"])

    async def _story_changed(self, gid: str) -> None:
        """A story named without its task: find the task in the tables, else ask the story."""
        stories = self.current["stories"]
        known = stories.filter(pc.equal(stories["gid"], gid))["task_gid"].drop_null().to_pylist()
        if not known:
            try:
                story = await self.client.get_data(f"/stories/{gid}", fields=("target",))
            except (NotFoundError, ForbiddenError):
                return  # gone or out of view, and never in the tables: nothing to remove
            known = [task for task in [_gid(_object(_object(story).get("target")))] if task]
        for task in known:
            await self._reread(task)

    def _add(self, table: str, row: dict) -> None:
        super()._add(table, row)
        if table == "task_memberships" and row["section_gid"] and row["section_gid"] not in self.known_sections:
            self._refresh(row["project_gid"])  # its section-added event was lost, or is in a feed not polled

    def _crawl_children(self, gid: str, task: models.Task | None) -> bool:
        """Stories and subtasks only for a task that changed: named by an event, new, moved, or
        with subtasks added or removed (which leave its ``modified_at`` alone)."""
        changed = (
            gid in self.forced or task is None or self.known_modified.get(gid) != task.modified_at
            or self.known_places.get(gid, set()) != {(m.project.gid, gid_of(m.section)) for m in task.memberships}
            or self.known_subtasks.get(gid) != task.num_subtasks
        )
        if changed:
            self.stories_read.add(gid)
            # Only a task entering or leaving a project changes that project's count.
            after = set() if task is None else {m.project.gid for m in task.memberships}
            self.touched |= self._known_projects(gid) ^ after
        return changed

    def _has_subtasks(self, gid: str, num_subtasks: int | None) -> bool:
        return super()._has_subtasks(gid, num_subtasks) or gid in self.known_children

    async def _subtasks(self, gid: str) -> None:
        """List a task's subtasks; a subtask the tables hold under it and the listing lacks was
        deleted or moved to another parent: re-read it (a 404 removes it)."""
        await super()._subtasks(gid)
        for child in self.known_children.get(gid, ()):
            if child not in self._seen_tasks and child not in self.deleted | self.hidden:
                self._spawn(self._reread(child))

    # -- merging ----------------------------------------------------------------------
    def _finish(self, fresh: dict[str, pa.Table]) -> dict[str, pa.Table]:
        """The current tables with this sync's changes applied, broken references quarantined."""
        read_now = set(fresh["tasks"]["gid"].to_pylist())  # it exists, and the token reads it
        self.deleted -= read_now
        self.hidden -= read_now
        removed = self._with_subtasks(self.deleted) | self.hidden
        q = fresh["quarantine"]
        refused = set(q.filter(pc.equal(q["table"], "tasks"))["gid"].drop_null().to_pylist())
        read = (set(fresh["tasks"]["gid"].to_pylist()) | refused) - removed
        gone = set(self.current["projects"]["gid"].to_pylist()) - set(fresh["projects"]["gid"].to_pylist())
        out = {name: fresh[name] for name in WORKSPACE_TABLES}
        out["projects"] = _keep_unread(fresh["projects"], self.current["projects"])
        for name in CONTAINER_TABLES:
            out[name] = _replace(self.current[name], fresh[name], "project_gid", self.refreshed[name])
        out["custom_fields"] = _replace(
            self.current["custom_fields"], fresh["custom_fields"], "gid", set(fresh["custom_fields"]["gid"].to_pylist()))
        for name in TASK_TABLES:
            key = "gid" if name == "tasks" else "task_gid"
            out[name] = _replace(self.current[name], fresh[name], key, read | removed)
        out["stories"] = _replace(self.current["stories"], fresh["stories"], "task_gid", self.stories_read | removed)
        for name in ("sections", "project_memberships", "task_memberships"):
            out[name] = out[name].filter(pc.invert(pc.is_in(out[name]["project_gid"], gid_array(gone))))
        scopes = {"tasks": read | removed, "stories": self.stories_read | removed,
                  "sections": self.refreshed["sections"],
                  "project_memberships": self.refreshed["project_memberships"]}
        kept = _unreplaced(self.current["quarantine"], scopes, {**self.refreshed, "tasks": self.relisted})
        out["quarantine"] = _replace(kept, q, "gid", set())  # the rows kept, plus this sync's refusals
        return with_unresolved({name: out[name] for name in RAW_TABLES}, self.started_at)

    def _with_subtasks(self, gids: set[str]) -> set[str]:
        """Deleted tasks and, level by level, their subtasks (Asana deletes those with them)."""
        tasks, out, level = self.current["tasks"], set(gids), set(gids)
        while level:
            children = tasks.filter(pc.fill_null(pc.is_in(tasks["parent_gid"], gid_array(level)), False))["gid"]
            level = set(children.to_pylist()) - out
            out |= level
        return out


def _replace(current: pa.Table, fresh: pa.Table, column: str, scope: set[str]) -> pa.Table:
    """Rows of ``current`` outside ``scope`` (by ``column``), plus every fresh row."""
    if scope:
        current = current.filter(pc.invert(pc.fill_null(pc.is_in(current[column], gid_array(scope)), False)))
    return pa.concat_tables([current, fresh.select(current.column_names).cast(current.schema)])


def _unreplaced(quarantine: pa.Table, scopes: dict[str, set[str]], listed: dict[str, set[str]]) -> pa.Table:
    """The quarantine rows this sync does not produce again: not a broken reference (recomputed),
    not from a workspace-level listing (re-listed whole), not of a container read again, not a
    refused listing of a project asked for again (``listed``: table -> the projects whose listing
    of it this sync asked for; the refusals stand until then, as the rows they lack are missing).

    A loop over rows, as the quarantine holds only refused records.
    """
    keep = []
    for table, gid, error, raw in zip(*(quarantine[c].to_pylist() for c in ("table", "gid", "error", "raw"))):
        if (error or "").startswith(REFUSED):
            keep.append(gid not in listed.get(_record(raw).get("listing"), ()))
            continue
        owner = gid if table == "tasks" else _container(raw, _CONTAINER_OF.get(table))
        replaced = (error or "").startswith(UNRESOLVED) or table in WORKSPACE_TABLES or owner in scopes.get(table, ())
        keep.append(not replaced)
    return quarantine.filter(pa.array(keep, pa.bool_()))


def _record(raw: str) -> dict:
    """A quarantined record, as the object it was (empty when it was not one)."""
    try:
        return _object(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return {}


def _container(raw: str, key: str | None) -> str | None:
    """The gid a refused record names under ``key``, if it names one."""
    return None if key is None else _gid(_object(_record(raw).get(key)))


def _keep_unread(fresh: pa.Table, current: pa.Table) -> pa.Table:
    """A project not listed this time keeps the time of its last successful sync; one not
    counted this time keeps its task count (a count asked for and refused replaces it: null)."""
    kept = ["synced_at", "num_tasks", "tasks_counted_at"]
    before = current.select(["gid", *kept]).rename_columns(["gid", *(f"previous_{c}" for c in kept)])
    joined = fresh.join(before, "gid", join_type="left outer").sort_by("gid")
    counted = pc.is_valid(joined["tasks_counted_at"])
    values = {
        "synced_at": pc.coalesce(joined["synced_at"], joined["previous_synced_at"]),
        **{c: pc.if_else(counted, joined[c], joined[f"previous_{c}"]) for c in ("num_tasks", "tasks_counted_at")},
    }
    for column, value in values.items():
        joined = joined.set_column(joined.schema.get_field_index(column), fresh.schema.field(column), value)
    return joined.select(fresh.column_names).cast(fresh.schema)


@dataclass
class IncrementalResult:
    result: SyncResult
    deleted: set[str]
    reread: int  # tasks fetched one by one, or named by an event
    relisted: set[str]
    changed: int = 0  # tasks whose stories and subtasks were read again
    hidden: set[str] = field(default_factory=set)  # tasks that left the token's view (403), left out


def archived(projects: pa.Table) -> list[str]:
    """The archived projects of a ``projects`` table."""
    return projects.filter(pc.fill_null(projects["archived"], False))["gid"].to_pylist()


async def incremental_sync(
    client: AsanaClient, state: SyncState, current: dict[str, pa.Table], workspace_gid: str | None = None,
    projects: Iterable[str] | None = None,
) -> IncrementalResult:
    """Apply the changes since ``state`` to ``current`` (polling only ``projects`` when given);
    ``state`` is advanced in memory only."""
    crawler = IncrementalCrawler(client, state, current, projects)
    fresh = await crawler.run(workspace_gid)
    listed = fresh.tables["projects"]
    state.advance(fresh.tokens, listed["gid"].to_pylist(), crawler.now, full=False, archived=archived(listed))
    return IncrementalResult(fresh, crawler.deleted, len(crawler.forced), crawler.relisted, len(crawler.stories_read),
                             crawler.hidden)


def record_full_sync(state: SyncState, result: SyncResult) -> None:
    """After a full crawl with track_events: its tokens become the starting point."""
    state.tokens = {}
    listed = result.tables["projects"]
    state.advance(result.tokens, listed["gid"].to_pylist(), result.started_at, full=True, archived=archived(listed))
    state.last_full_sync_requests = int(result.client_stats.get("requests", 0))
