"""Findings as Asana tasks (opt-in): each alarm a task in a remediation project, kept up to date
while the alarm lasts and completed with a comment once a run judges the resource ok.

A task is keyed by (monitor, resource). Its gid is remembered in the sync state, and its notes
carry a marker line naming the key, so a lost state is rebuilt from the project's open tasks
instead of opening a second task. Only an ``ok`` row for the resource in this run completes a
task: a lapse in evaluation is never a remediation, so skip (the rule no longer applies, say a
renamed change project), unknown, info, error, a monitor NOT EVALUATED and a missing row all
leave it open. A resource deleted at the source has no row any more: a person completes its task
in Asana, having checked, as a reviewer would anyway. An open task whose resource is unknown in
this run gets notes saying the run could not decide it and why (the finding it was opened for
stays in its name), so its notes never show a stale alarm as current.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import pandas as pd

from asana_assets.lib.asana.client import AsanaClient, NotFoundError

MARKER = "asana-assets finding"
MARKER_LINE = re.compile(rf"^{MARKER}: (?P<key>\S+)$", re.MULTILINE)


def finding_key(monitor_id, resource_type, resource_gid):
    """What identifies a finding across runs: its monitor and the resource it names (strings,
    or Series of them)."""
    return monitor_id + "/" + resource_type + "/" + resource_gid


@dataclass
class Remediation:
    """What one pass did: keys opened, updated (still alarming), undecided (open, their resource
    unknown in this run: notes rewritten to say so) and closed, and the open tasks (key -> gid)."""

    tasks: dict[str, str]
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    reconciled: int = 0  # open tasks found by their marker rather than in the state


def _keyed(results: pd.DataFrame) -> pd.DataFrame:
    return results.assign(key=finding_key(results["monitor_id"], results["resource_type"], results["resource_gid"]))


def alarms(results: pd.DataFrame) -> pd.DataFrame:
    """This run's alarms, one row per finding key."""
    return _keyed(results[results["status"].eq("alarm")]).drop_duplicates("key").set_index("key")


def _rows_of(results: pd.DataFrame, keys: set[str]) -> pd.DataFrame:
    keyed = _keyed(results)
    return keyed[keyed["key"].isin(keys)]


def cleared(results: pd.DataFrame, keys: set[str]) -> set[str]:
    """The open findings this run shows resolved: their resource judged ok, and by no other row.
    Any other status, or no row at all, keeps a finding open (see the module's docstring)."""
    rows = _rows_of(results, keys)
    ok = rows["status"].eq("ok")
    return set(rows.loc[ok, "key"]) - set(rows.loc[~ok, "key"])


def undecided(results: pd.DataFrame, keys: set[str]) -> pd.DataFrame:
    """The open findings whose resource this run could not decide (unknown), one row per key."""
    rows = _rows_of(results, keys)
    return rows[rows["status"].eq("unknown")].drop_duplicates("key").set_index("key")


def notes(key: str, row: pd.Series, run_id: str, as_of: pd.Timestamp, evidence: str) -> str:
    """The task's notes: the finding (an alarm row) or why this run could not decide it (an
    unknown row), where to see it, and the marker line."""
    controls = ", ".join(row["control_refs"]) if row["control_refs"] is not None else ""
    run = f"run {run_id} as of {as_of.isoformat()}"
    state = ([f"Finding: {row['reason']}", f"Last seen: {run}"] if row["status"] == "alarm" else [
        f"Undecided: {row['reason']}",
        (f"Latest run: {run} could not decide this resource (unknown); the task stays open until a run "
         "judges it ok. The finding it was opened for is in its name."),
    ])
    return "\n".join([
        f"Monitor: {row['monitor_id']} ({row['severity']})",
        f"Controls: {controls}",
        f"Resource: {row['resource_type']} {row['resource_gid']}",
        f"Link: {row['resource_url'] or ''}",
        *state,
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
    outcome = Remediation(tasks, reconciled=reconciled)

    async def open_or_update(key: str) -> None:
        body = {"notes": notes(key, found.loc[key], run_id, as_of, evidence)}
        if key in tasks:
            try:
                await client.write("PUT", f"/tasks/{tasks[key]}", body)
                outcome.updated.append(key)
                return
            except NotFoundError:  # deleted in Asana while the alarm lasts: file it again
                del tasks[key]
        row = found.loc[key]
        created = await client.write("POST", "/tasks", {
            **body, "name": f"[{row['monitor_id']}] {row['reason']}"[:250], "projects": [project_gid],
            **({"assignee": assignee_gid} if assignee_gid else {}),
        })
        tasks[key] = created["gid"]
        outcome.opened.append(key)

    async def mark_undecided(key: str) -> None:
        try:
            await client.write("PUT", f"/tasks/{tasks[key]}",
                               {"notes": notes(key, pending.loc[key], run_id, as_of, evidence)})
            outcome.undecided.append(key)
        except NotFoundError:  # deleted in Asana, and no alarm to file again
            del tasks[key]

    async def close(key: str) -> None:
        # The comment first: a retry after a failure in between comments again, never closes silently.
        try:
            await client.write("POST", f"/tasks/{tasks[key]}/stories", {
                "text": f"Cleared: run {run_id} as of {as_of.isoformat()} judged this resource ok. "
                        f"Evidence: {evidence}"})
            await client.write("PUT", f"/tasks/{tasks[key]}", {"completed": True})
            outcome.closed.append(key)
        except NotFoundError:  # deleted in Asana: nothing left to close
            pass
        del tasks[key]

    standing = set(tasks) - set(found.index)
    ending, pending = cleared(results, standing), undecided(results, standing)
    async with asyncio.TaskGroup() as group:
        for key in found.index:
            group.create_task(open_or_update(key))
        for key in pending.index:
            group.create_task(mark_undecided(key))
        for key in ending:
            group.create_task(close(key))
    for keys in (outcome.opened, outcome.updated, outcome.undecided, outcome.closed):
        keys.sort()
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
