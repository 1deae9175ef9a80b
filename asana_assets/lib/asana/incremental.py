"""Incremental sync: read only what changed since the last sync, from each project's events feed.

A full crawl (``crawl(..., track_events=True)``) leaves one events sync token per project. An
incremental sync then:

- re-lists the small workspace-level collections (members, teams, tags, projects), which have
  no events feed of their own;
- polls each project's events and re-reads only the tasks they name (the task, its stories,
  and the subtasks of a changed parent); a task that answers 404 was deleted;
- re-lists a project whose token expired (412, or older than its 24 h life) and reconciles:
  tasks it no longer lists are re-read, so a deletion or a move out is never missed; stories
  are re-read only for tasks whose ``modified_at`` or place (project, section) moved, since
  ``modified_at`` ignores moves (a move there and back between two syncs is left to the daily
  full sync);
- merges the changes into the current tables: rows of re-read tasks are replaced, rows of
  deleted tasks and their subtasks removed.

The tokens are saved only after the tables are written, so a crashed run is replayed from the
same tokens by the next one and, the merge being idempotent, loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.lib.asana import models
from asana_assets.lib.asana.client import AsanaClient, NotFoundError, SyncTokenExpiredError
from asana_assets.lib.asana.crawl import (
    PROJECT_FIELDS,
    PROJECT_MEMBERSHIP_FIELDS,
    TASK_FIELDS,
    SyncResult,
    WorkspaceCrawler,
)
from asana_assets.lib.asana.models import gid_of
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.schema import RAW_TABLES

# Re-listed whole on every incremental sync: their size follows people and projects, not tasks.
WORKSPACE_TABLES = ("workspaces", "users", "workspace_memberships", "teams", "team_memberships", "tags", "projects")
TASK_TABLES = ("tasks", "task_memberships", "task_tags")


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
        self.stories_read: set[str] = set()
        self.relisted: set[str] = set()  # projects whose sections, members and tasks were re-listed
        self.forced: set[str] = set()  # tasks an event named: re-read whatever their modified_at
        tasks, places = current["tasks"], current["task_memberships"]
        self.known_modified = dict(zip(tasks["gid"].to_pylist(), tasks["modified_at"].to_pylist()))
        # modified_at ignores moves between sections and projects: compare where tasks sit too.
        self.known_places: dict[str, set] = {}
        for gid, project, section in zip(*(places[c].to_pylist() for c in ("task_gid", "project_gid", "section_gid"))):
            self.known_places.setdefault(gid, set()).add((project, section))

    # -- what to read -----------------------------------------------------------------
    async def _projects(self, workspace_gid: str) -> None:
        projects = await self._listing(
            "projects", models.Project, "/projects", {"workspace": workspace_gid}, PROJECT_FIELDS
        )
        for project in projects:
            token = self.state.token(project.gid, self.now)
            if token is None:
                self._spawn(self._relist(project.gid), project.gid)
            elif self.only is None or project.gid in self.only:
                self._spawn(self._poll(project.gid, token), project.gid)

    async def _poll(self, project_gid: str, sync: str) -> None:
        """Read the project's events since its token; re-read what they name."""
        named: set[str] = set()
        members_changed = False
        while True:
            try:
                events, sync, more = await self.client.events(project_gid, sync)
            except SyncTokenExpiredError:
                await self._relist(project_gid)  # the feed is gone: reconcile from a listing
                return
            for event in events:
                resource, parent = event.get("resource") or {}, event.get("parent") or {}
                kind = resource.get("resource_type")
                if kind == "task":
                    (self.deleted if event.get("action") == "deleted" else named).add(resource["gid"])
                elif kind == "story" and parent.get("resource_type") == "task":
                    named.add(parent["gid"])
                elif kind == "project_membership":
                    members_changed = True
            if not more:
                break
        self.tokens[project_gid] = sync
        for gid in named - self.deleted:
            self._spawn(self._reread(gid))
        if members_changed:
            self._spawn(self._project_members(project_gid))
        self._synced(project_gid)

    async def _relist(self, project_gid: str) -> None:
        """Re-list a project whole, then re-read the tasks it used to hold and no longer lists."""
        self.relisted.add(project_gid)
        self._spawn(self._sections(project_gid), project_gid)
        self._spawn(self._project_members(project_gid))
        await self._project_tasks(project_gid)
        members = self.current["task_memberships"]
        before = members.filter(pc.equal(members["project_gid"], project_gid))["task_gid"].to_pylist()
        for gid in set(before) - self._seen_tasks:
            self._spawn(self._reread(gid))

    async def _project_members(self, project_gid: str) -> None:
        self.relisted.add(project_gid)
        await self._listing(
            "project_memberships", models.ProjectMembership,
            f"/projects/{project_gid}/project_memberships", None, PROJECT_MEMBERSHIP_FIELDS,
        )

    async def _reread(self, gid: str) -> None:
        """Fetch one task as it is now; 404 means it was deleted."""
        if gid in self._seen_tasks:
            return
        try:
            raw = await self.client.get_data(f"/tasks/{gid}", fields=TASK_FIELDS)
        except NotFoundError:
            self.deleted.add(gid)
            return
        self.forced.add(gid)
        self._task(raw, None)

    def _crawl_children(self, gid: str, task: models.Task | None) -> bool:
        """Stories and subtasks only for a task that changed: named by an event, new, or moved."""
        changed = (
            gid in self.forced or task is None or self.known_modified.get(gid) != task.modified_at
            or self.known_places.get(gid, set()) != {(m.project.gid, gid_of(m.section)) for m in task.memberships}
        )
        if changed:
            self.stories_read.add(gid)
        return changed

    # -- merging ----------------------------------------------------------------------
    def merge(self, fresh: dict[str, pa.Table]) -> dict[str, pa.Table]:
        """The current tables with this sync's changes applied."""
        removed = self._with_subtasks(self.deleted)
        q = fresh["quarantine"]
        refused = set(q.filter(pc.equal(q["table"], "tasks"))["gid"].drop_null().to_pylist())
        read = (set(fresh["tasks"]["gid"].to_pylist()) | refused) - removed
        projects = set(fresh["projects"]["gid"].to_pylist())
        out = {name: fresh[name] for name in WORKSPACE_TABLES}
        out["projects"] = _keep_sync_times(fresh["projects"], self.current["projects"])
        out["sections"] = _replace(self.current["sections"], fresh["sections"], "project_gid", self.relisted)
        out["project_memberships"] = _replace(
            self.current["project_memberships"], fresh["project_memberships"], "project_gid", self.relisted)
        for name in TASK_TABLES:
            key = "gid" if name == "tasks" else "task_gid"
            out[name] = _replace(self.current[name], fresh[name], key, read | removed)
        out["stories"] = _replace(self.current["stories"], fresh["stories"], "task_gid", self.stories_read | removed)
        out["quarantine"] = _replace(self.current["quarantine"], fresh["quarantine"], "gid", read | removed)
        for name in ("sections", "project_memberships", "task_memberships"):
            out[name] = out[name].filter(pc.is_in(out[name]["project_gid"], _gids(projects)))
        return {name: out[name] for name in RAW_TABLES}

    def _with_subtasks(self, gids: set[str]) -> set[str]:
        """Deleted tasks and, level by level, their subtasks (Asana deletes those with them)."""
        tasks, out, level = self.current["tasks"], set(gids), set(gids)
        while level:
            children = tasks.filter(pc.fill_null(pc.is_in(tasks["parent_gid"], _gids(level)), False))["gid"]
            level = set(children.to_pylist()) - out
            out |= level
        return out


def _replace(current: pa.Table, fresh: pa.Table, column: str, scope: set[str]) -> pa.Table:
    """Rows of ``current`` outside ``scope`` (by ``column``), plus every fresh row."""
    if scope:
        current = current.filter(pc.invert(pc.fill_null(pc.is_in(current[column], _gids(scope)), False)))
    return pa.concat_tables([current, fresh.select(current.column_names).cast(current.schema)])


def _keep_sync_times(fresh: pa.Table, current: pa.Table) -> pa.Table:
    """A project not read this time keeps the time of its last successful sync."""
    before = current.select(["gid", "synced_at"]).rename_columns(["gid", "previous"])
    joined = fresh.join(before, "gid", join_type="left outer").sort_by("gid")
    synced = pc.coalesce(joined["synced_at"], joined["previous"])
    return joined.drop_columns(["previous"]).set_column(
        joined.schema.get_field_index("synced_at"), fresh.schema.field("synced_at"), synced
    ).select(fresh.column_names).cast(fresh.schema)


def _gids(values: Iterable[str]) -> pa.Array:
    return pa.array(sorted(values), pa.string())


@dataclass
class IncrementalResult:
    result: SyncResult
    deleted: set[str]
    reread: int
    relisted: set[str]


async def incremental_sync(
    client: AsanaClient, state: SyncState, current: dict[str, pa.Table], workspace_gid: str | None = None,
    projects: Iterable[str] | None = None,
) -> IncrementalResult:
    """Apply the changes since ``state`` to ``current`` (polling only ``projects`` when given);
    ``state`` is advanced in memory only."""
    crawler = IncrementalCrawler(client, state, current, projects)
    fresh = await crawler.run(workspace_gid)
    fresh.tables = crawler.merge(fresh.tables)
    state.advance(fresh.tokens, fresh.tables["projects"]["gid"].to_pylist(), crawler.now, full=False)
    return IncrementalResult(fresh, crawler.deleted, len(crawler.forced), crawler.relisted)


def record_full_sync(state: SyncState, result: SyncResult) -> None:
    """After a full crawl with track_events: its tokens become the starting point."""
    state.tokens = {}
    state.advance(result.tokens, result.tables["projects"]["gid"].to_pylist(), result.started_at, full=True)
