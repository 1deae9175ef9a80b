"""Findings as Asana tasks (opt-in): each alarm a task in a remediation project, kept up to date
while the alarm lasts and completed with a comment when it clears.

A task is keyed by (monitor, resource). Its gid is remembered in the sync state, and its notes
carry a marker line naming the key, so a lost state is rebuilt from the project's open tasks
instead of opening a second task. An alarm clears only when its monitor judged the resource
again and found it ok, or judged its population and the resource is no longer in it: a monitor
that erred or did not run leaves its tasks open (a lapse in evaluation is never a remediation).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import pandas as pd

from asana_assets.lib.asana.client import AsanaClient, NotFoundError

MAX_WRITES = 15  # Asana's limit on writes in flight per token
MARKER = "asana-assets finding"
MARKER_LINE = re.compile(rf"^{MARKER}: (?P<key>\S+)$", re.MULTILINE)


def finding_key(monitor_id, resource_type, resource_gid):
    """What identifies a finding across runs: its monitor and the resource it names (strings,
    or Series of them)."""
    return monitor_id + "/" + resource_type + "/" + resource_gid


@dataclass
class Remediation:
    """What one pass did: keys opened, updated and closed, and the open tasks (key -> gid)."""

    tasks: dict[str, str]
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    reconciled: int = 0  # open tasks found by their marker rather than in the state


def _keyed(results: pd.DataFrame) -> pd.DataFrame:
    return results.assign(key=finding_key(results["monitor_id"], results["resource_type"], results["resource_gid"]))


def alarms(results: pd.DataFrame) -> pd.DataFrame:
    """This run's alarms, one row per finding key."""
    return _keyed(results[results["status"].eq("alarm")]).drop_duplicates("key").set_index("key")


def cleared(results: pd.DataFrame, keys: set[str]) -> set[str]:
    """The open findings this run shows resolved: the resource judged ok, or out of the
    monitor's population (skip, or no row at all from a monitor that ran without error)."""
    judged = _keyed(results)
    status = judged.drop_duplicates("key").set_index("key")["status"]
    evaluated = set(judged["monitor_id"]) - set(judged.loc[judged["status"].eq("error"), "monitor_id"])
    return {key for key in keys if (status[key] in ("ok", "skip") if key in status.index
                                    else key.split("/", 1)[0] in evaluated)}


def notes(key: str, row: pd.Series, run_id: str, as_of: pd.Timestamp, evidence: str) -> str:
    """The task's notes: the finding, where to see it, and the marker line."""
    controls = ", ".join(row["control_refs"]) if row["control_refs"] is not None else ""
    return "\n".join([
        f"Monitor: {row['monitor_id']} ({row['severity']})",
        f"Controls: {controls}",
        f"Resource: {row['resource_type']} {row['resource_gid']}",
        f"Link: {row['resource_url'] or ''}",
        f"Finding: {row['reason']}",
        f"Last seen: run {run_id} as of {as_of.isoformat()}",
        f"Evidence: {evidence}",
        "",
        f"{MARKER}: {key}",
    ])


async def remediate(client: AsanaClient, project_gid: str, assignee_gid: str | None, results: pd.DataFrame,
                    known: dict[str, str], run_id: str, as_of: pd.Timestamp, evidence: str) -> Remediation:
    """Open, update and close the project's tasks to match this run's ``results``."""
    found = alarms(results)
    tasks = dict(known)
    reconciled = 0
    if not known or set(found.index) - set(known):
        # A lost (or partly lost) state: the open tasks with a marker say what is already there.
        marked = await _open_marked_tasks(client, project_gid)
        reconciled = len(set(marked) - set(known))
        tasks = {**marked, **known}
    slots = asyncio.Semaphore(MAX_WRITES)
    outcome = Remediation(tasks, reconciled=reconciled)

    async def write(method: str, path: str, data: dict) -> dict:
        async with slots:
            return await client.write(method, path, data)

    async def open_or_update(key: str) -> None:
        body = {"notes": notes(key, found.loc[key], run_id, as_of, evidence)}
        if key in tasks:
            try:
                await write("PUT", f"/tasks/{tasks[key]}", body)
                outcome.updated.append(key)
                return
            except NotFoundError:  # deleted in Asana while the alarm lasts: file it again
                del tasks[key]
        row = found.loc[key]
        created = await write("POST", "/tasks", {
            **body, "name": f"[{row['monitor_id']}] {row['reason']}"[:250], "projects": [project_gid],
            **({"assignee": assignee_gid} if assignee_gid else {}),
        })
        tasks[key] = created["gid"]
        outcome.opened.append(key)

    async def close(key: str) -> None:
        # The comment first: a retry after a failure in between comments again, never closes silently.
        try:
            await write("POST", f"/tasks/{tasks[key]}/stories", {
                "text": f"Cleared: run {run_id} as of {as_of.isoformat()} no longer finds this. Evidence: {evidence}"})
            await write("PUT", f"/tasks/{tasks[key]}", {"completed": True})
            outcome.closed.append(key)
        except NotFoundError:  # deleted in Asana: nothing left to close
            pass
        del tasks[key]

    ending = cleared(results, set(tasks) - set(found.index))
    async with asyncio.TaskGroup() as group:
        for key in found.index:
            group.create_task(open_or_update(key))
        for key in ending:
            group.create_task(close(key))
    outcome.opened.sort(), outcome.updated.sort(), outcome.closed.sort()
    return outcome


async def _open_marked_tasks(client: AsanaClient, project_gid: str) -> dict[str, str]:
    """The project's incomplete tasks whose notes carry a marker: key -> task gid."""
    found: dict[str, str] = {}
    async for page in client.pages(f"/projects/{project_gid}/tasks", {"completed_since": "now"},
                                   fields=("notes", "completed")):
        for task in page:
            match = MARKER_LINE.search(task.get("notes") or "")
            if match and not task.get("completed"):
                found.setdefault(match["key"], task["gid"])
    return found
