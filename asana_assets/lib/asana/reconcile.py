"""The daily reconcile: what a full crawl would find, for a small share of its requests.

Events are delivered at most once, so an incremental sync can miss a change; a full crawl
catches it, but reads every task's stories and subtasks (about 1.2 requests a task). The
reconcile reads instead, per project (archived ones included):

1. its events since the saved token, all projects first: what they name is read again (as an
   incremental sync does, so an event still pending is applied, not dropped), and the token that
   follows them is the next one (a token past its life or refused takes a fresh one: a request
   either way);
2. its sections and members, re-listed whole;
3. its tasks, listed with every stored field (one request per 100 tasks): a task whose
   ``modified_at``, place (project, section) or subtask count differs from the tables, or that
   is new, has its stories and subtasks read again; a known subtask its parent no longer lists is
   re-read;
4. once every project is listed, the tasks the tables place in a project and no listing returned
   are re-read: a 404 means deleted (with its subtasks), otherwise it moved out.

``modified_at`` moves with every new story but a move's (and a move shows as a change of place),
so comments and every change of a listed task are caught. Not caught without their events: an
edit to a subtask whose parent did not change (the parent's ``modified_at`` ignores its
subtasks), a comment edited (it changes no ``modified_at``), and a move there and back between
two reconciles; the weekly full sync catches those.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.lib.asana import models
from asana_assets.lib.asana.client import AsanaClient, SyncTokenExpiredError
from asana_assets.lib.asana.crawl import PROJECT_FIELDS
from asana_assets.lib.asana.incremental import FeedChanges, IncrementalCrawler, IncrementalResult, archived, gid_array
from asana_assets.lib.asana.state import SyncState


class ReconcileCrawler(IncrementalCrawler):
    """Every project's feed, sections, members and task listing, merged into the current tables."""

    async def _projects(self, workspace_gid: str) -> None:
        projects = await self._listing(
            "projects", models.Project, "/projects", {"workspace": workspace_gid}, PROJECT_FIELDS
        )
        gids = [project.gid for project in projects]
        # Every feed is read before any listing, so an event's task is known as changed whichever
        # project lists it, and every token is taken before the listings it stands for.
        feeds = await asyncio.gather(*(self._tolerate_gone(self._feed(gid), gid) for gid in gids))
        named, stories = self._named([changes for changes in feeds if changes])
        listed = [gid for gid in gids if gid not in self._gone]
        await asyncio.gather(*(self._tolerate_gone(self._list(gid), gid) for gid in listed))
        for gid in (self._placed(listed) | named) - self._seen_tasks:
            self._spawn(self._reread(gid))
        for gid in stories:
            self._spawn(self._story_changed(gid))

    async def _feed(self, project_gid: str) -> FeedChanges | None:
        """The project's events since its token (None without a usable token), and its next token."""
        token = self.state.token(project_gid, self.now)
        if token is not None:
            try:
                changes, self.tokens[project_gid] = await self._read_feed(project_gid, token)
                return changes
            except SyncTokenExpiredError as expired:
                if expired.sync:
                    self.tokens[project_gid] = expired.sync  # the 412 hands out a fresh one
                    return None
        self.tokens[project_gid] = await self._fresh_token(project_gid)
        return None

    def _named(self, feeds: list[FeedChanges]) -> tuple[set[str], set[str]]:
        """Apply what the feeds name: deleted tasks are removed, named ones (and the tasks of the
        stories named, when the tables hold those) are read again with their stories, wherever
        they are listed. Returns the named tasks, and the stories whose task is not known."""
        deleted = set().union(*(changes.deleted for changes in feeds))
        named = set().union(*(changes.reread for changes in feeds)) - deleted
        stories = set().union(*(changes.stories for changes in feeds))
        known = self.current["stories"].filter(pc.is_in(self.current["stories"]["gid"], gid_array(stories)))
        named |= set(known["task_gid"].drop_null().to_pylist())
        self._forget(deleted)
        self.forced |= named
        return named, stories - set(known["gid"].to_pylist())

    async def _list(self, project_gid: str) -> None:
        """Re-list a project's sections, members and tasks."""
        self.relisted.add(project_gid)
        self._refresh(project_gid)
        await self._task_pages("/tasks", {"project": project_gid}, None)
        self._synced(project_gid)

    def _placed(self, projects: Iterable[str]) -> set[str]:
        """The tasks the tables place in these projects."""
        members = self.current["task_memberships"]
        return set(members.filter(pc.is_in(members["project_gid"], gid_array(projects)))["task_gid"].to_pylist())


async def reconcile_sync(
    client: AsanaClient, state: SyncState, current: dict[str, pa.Table], workspace_gid: str | None = None,
) -> IncrementalResult:
    """Bring ``current`` in line with the source as a full crawl would, at a fraction of its
    requests; ``state`` gets every project's next token (in memory only)."""
    crawler = ReconcileCrawler(client, state, current)
    fresh = await crawler.run(workspace_gid)
    listed = fresh.tables["projects"]
    state.advance(fresh.tokens, listed["gid"].to_pylist(), crawler.now, full=False, archived=archived(listed))
    return IncrementalResult(fresh, crawler.deleted, len(crawler.forced), crawler.relisted, len(crawler.stories_read))
