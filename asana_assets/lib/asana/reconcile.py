"""The daily reconcile: what a full crawl would find, for a small share of its requests.

Events are delivered at most once, so an incremental sync can miss a change; a full crawl
catches it, but reads every task's stories and subtasks (about 1.2 requests a task). The
reconcile reads instead, per project (archived ones included):

1. its events since the saved token, all projects first: what they name is read again (as an
   incremental sync does, so an event still pending is applied, not dropped), and the token that
   follows them is the next one (a token past its life or refused takes a fresh one: a request
   either way);
2. its members, re-listed whole: the access review reads them and nothing else shows them;
3. its tasks, listed with every stored field and the names of their sections and custom fields
   (one request per 100 tasks): a task whose ``modified_at``, place (project, section) or subtask
   count differs from the tables, or that is new, has its stories and subtasks read again; a
   known subtask its parent no longer lists is re-read;
4. its sections and custom field settings, re-listed only when something says they changed: the
   project is new or its ``modified_at`` moved, its events name something other than a task or a
   story, a listed task sits in a section the tables lack or name otherwise, a section that held
   tasks holds none (it may have been removed), or a listed task carries a field it did not carry
   and none of its projects has (a field added to the project), or a field named otherwise;
5. once every project is listed, the tasks the tables place in a project and no listing returned
   are re-read: a 404 means deleted (with its subtasks), otherwise it moved out.

``modified_at`` moves with every new story but a move's (and a move shows as a change of place),
so comments and every change of a listed task are caught. Not caught without their events (the
weekly full sync catches them): an edit to a subtask whose parent did not change (the parent's
``modified_at`` ignores its subtasks), a comment edited (it changes no ``modified_at``), a move
there and back between two reconciles; a section that holds no task added, renamed or removed,
and sections reordered; a field added to a project without tasks, and a field's settings or
options changed (its name and a task's values excepted).

A project whose token is younger than ``KEEP_TOKEN_FOR`` keeps it and its feed is not read: the
events sensor renews the token of every project it polls that has nothing pending
(`PollSchedule.tokens`), and an event pending there makes the sensor start an incremental sync,
which applies it (a change it names that the listing already caught is read once more, nothing
worse). Older tokens (archived projects, which the sensor does not poll, or every project where
no sensor runs) are read and renewed: a token lives 24 hours and the next reconcile comes 24
hours later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.lib.asana import models
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.crawl import gid_array
from asana_assets.lib.asana.incremental import FeedChanges, IncrementalCrawler, IncrementalResult, archived
from asana_assets.lib.asana.state import TOKEN_LIFE, SyncState

KEEP_TOKEN_FOR = TOKEN_LIFE / 2  # a younger token outlives the next reconcile's first hours


class ReconcileCrawler(IncrementalCrawler):
    """Every project's feed, members and task listing, merged into the current tables; its
    sections and custom field settings when something says they changed."""

    def __init__(self, client: AsanaClient, state: SyncState, current: dict[str, pa.Table]):
        super().__init__(client, state, current)
        sections, fields = current["sections"], current["custom_fields"]
        self.section_names = dict(zip(sections["gid"].to_pylist(), sections["name"].to_pylist()))
        self.field_names = dict(zip(fields["gid"].to_pylist(), fields["name"].to_pylist()))
        self.project_fields = _grouped(current["custom_field_settings"], "project_gid", "custom_field_gid")
        self.task_fields = _grouped(current["task_custom_fields"], "task_gid", "custom_field_gid")
        self.occupied: set[str] = set()  # sections the listed tasks sit in
        self.stale_sections: set[str] = set()  # projects whose sections a listed task shows changed
        self.common: dict[str, set[str]] = {}  # project -> the fields every task listed in it carries
        self.gained: dict[str, set[str]] = {}  # field -> projects lacking it of tasks that newly carry it
        self.renamed: set[str] = set()  # fields a listed task names otherwise

    async def _projects(self, workspace_gid: str) -> None:
        gids = [project.gid for project in await self._list_projects(workspace_gid)]
        # Every feed is read before any listing, so an event's task is known as changed whichever
        # project lists it, and every token is taken before the listings it stands for.
        feeds = await asyncio.gather(*(self._tolerate_gone(self._feed(gid), gid) for gid in gids))
        named, stories = self._named([changes for changes in feeds if changes])
        listed = [gid for gid in gids if gid not in self._gone]
        edited = self._edited(listed)
        for gid, changes in zip(gids, feeds, strict=True):
            if gid in self._gone:
                continue
            # Members always: the access review reads them, and no listing shows them.
            self._refresh(gid, ("project_memberships",))
            if gid in edited or (changes is not None and (changes.containers or changes.unreadable)):
                self._refresh(gid)
        await asyncio.gather(*(self._tolerate_gone(self._list(gid), gid, "tasks") for gid in listed))
        for gid in (self.stale_sections | self._emptied(listed)) & set(listed):
            self._refresh(gid, ("sections",))
        for gid in self._new_fields(listed):
            self._refresh(gid, ("custom_field_settings",))
        # Also the tasks of a project gone since the tables were written, or during this run.
        for gid in (self._placed([*gids, *self._vanished(workspace_gid, set(gids))]) | named) - self._seen_tasks:
            self._spawn(self._reread(gid))
        for gid in stories:
            self._spawn(self._story_changed(gid))

    async def _feed(self, project_gid: str) -> FeedChanges | None:
        """The project's events since its token (those read before a 412 included), and its next
        token; None without a usable token, or for a young one, which is kept (its pending events
        are the next incremental's)."""
        age = self.state.age(project_gid, self.now)
        if age is not None and age < KEEP_TOKEN_FOR:
            return None
        token = self.state.token(project_gid, self.now)
        if token is None:
            self.tokens[project_gid] = await self._fresh_token(project_gid)
            return None
        changes, sync, expired = await self._read_feed(project_gid, token)
        # An expired token (412) hands out a fresh one; what the pages before it named still counts.
        if expired is not None:
            sync = expired.sync or await self._fresh_token(project_gid)
        self.tokens[project_gid] = sync
        return changes

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

    def _edited(self, projects: list[str]) -> set[str]:
        """The projects new to the tables or whose ``modified_at`` moved."""
        before = dict(zip(*(self.current["projects"][c].to_pylist() for c in ("gid", "modified_at"))))
        return {gid for gid in projects
                if gid not in before or before[gid] != self.rows["projects"][(gid,)]["modified_at"]}

    async def _list(self, project_gid: str) -> None:
        """List a project's tasks."""
        self.relisted.add(project_gid)
        await self._list_project_tasks(project_gid)
        self._synced(project_gid)

    def _crawl_children(self, gid: str, task: models.Task | None) -> bool:
        """Note, for each task read, the projects whose sections or fields it shows changed."""
        if task is not None:
            self._note(task)
        return super()._crawl_children(gid, task)

    def _note(self, task: models.Task) -> None:
        """What a listed task shows of its projects' sections and fields."""
        projects = {m.project.gid for m in task.memberships}
        for m in task.memberships:
            if m.section is not None:
                self.occupied.add(m.section.gid)
                if self.section_names.get(m.section.gid, _UNKNOWN) != m.section.name:
                    self.stale_sections.add(m.project.gid)  # new, or renamed
        fields = {value.gid for value in task.custom_fields}
        for gid in projects:
            self.common[gid] = self.common[gid] & fields if gid in self.common else set(fields)
        carried = self.task_fields.get(task.gid, set())
        for value in task.custom_fields:
            if value.gid not in carried:
                lacking = {gid for gid in projects if value.gid not in self.project_fields.get(gid, ())}
                self.gained.setdefault(value.gid, set()).update(lacking)
            if value.gid in self.field_names and self.field_names[value.gid] != value.name:
                self.renamed.add(value.gid)

    def _new_fields(self, projects: list[str]) -> set[str]:
        """The projects whose custom field settings to re-list: those that may have a field added
        (a task in them newly carries a field they lack, and every task listed in them carries
        it, as every task of a project carries the project's fields), and, per renamed field,
        one project that has it (its settings hold the field's definition)."""
        out = {gid for field, gids in self.gained.items() for gid in gids if field in self.common.get(gid, ())}
        settings = self.current["custom_field_settings"]
        holders = _grouped(settings, "custom_field_gid", "project_gid")
        for field in self.renamed:
            listed = sorted(holders.get(field, set()) & set(projects))
            out |= set(listed[:1])
        return out & set(projects)

    def _emptied(self, projects: Iterable[str]) -> set[str]:
        """The projects with a section that held tasks in the tables and holds none now: emptied,
        it may have been removed too."""
        members = self.current["task_memberships"]
        held = members.filter(pc.and_(
            pc.is_in(members["project_gid"], gid_array(projects)),
            pc.invert(pc.fill_null(pc.is_in(members["section_gid"], gid_array(self.occupied)), True)),
        ))
        return set(held["project_gid"].to_pylist())

_UNKNOWN = object()  # a section gid the tables do not hold: never equal to a listed name


def _grouped(table: pa.Table, key: str, value: str) -> dict[str, set[str]]:
    """``value``s per ``key`` of a table."""
    groups = table.group_by(key).aggregate([(value, "list")])
    return {k: set(v) for k, v in zip(groups[key].to_pylist(), groups[f"{value}_list"].to_pylist())}


async def reconcile_sync(
    client: AsanaClient, state: SyncState, current: dict[str, pa.Table], workspace_gid: str | None = None,
) -> IncrementalResult:
    """Bring ``current`` in line with the source as a full crawl would, at a fraction of its
    requests; ``state`` gets every project's next token (in memory only)."""
    crawler = ReconcileCrawler(client, state, current)
    fresh = await crawler.run(workspace_gid)
    listed = fresh.tables["projects"]
    state.advance(fresh.tokens, listed["gid"].to_pylist(), crawler.now, full=False, archived=archived(listed))
    return IncrementalResult(fresh, crawler.deleted, len(crawler.forced), crawler.relisted, len(crawler.stories_read),
                             crawler.hidden)
