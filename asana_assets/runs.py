"""Runs started by ``asana-connections sync``: one per connection at a time, never stuck.

The command runs outside the run queue, so it keeps the queue's rule itself with a claim per
connection (a lock file under ``$DAGSTER_HOME`` that the kernel releases when the holder dies).
Holding the claim proves that no other command's run of that connection is alive: a run a
command started and that is still marked in progress was left by a process that died
(``kill -9``, the OOM killer), and is marked failed, with that reason, before the new run
starts. A run the daemon launched is its own (Dagster's run monitoring fails it if its worker
dies), and a command waits for it.

The instance's first use (creating and migrating its storage) is serialized by a lock too, so
two commands started at once on a new ``$DAGSTER_HOME`` cannot both migrate it.

The command shows the run's own messages; Dagster's events (stack traces, the steps a failure
skips) stay in the run's log, which ``asana-connections runs --log`` prints.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from asana_assets.lib.connections.troubleshooting import ConnectionProblem
from asana_assets.lib.storage.locks import Claim, ClaimHeld, exclusive, is_held, try_claim

LAUNCHED_BY = "asana/launched_by"
COMMAND = "asana-connections"
_BUSY = dg.DagsterRunStatus
IN_PROGRESS = [_BUSY.QUEUED, _BUSY.NOT_STARTED, _BUSY.STARTING, _BUSY.STARTED, _BUSY.CANCELING]
DIED = "the process running it died (killed, or out of memory): marked failed by asana-connections"


def _claims(home: Path) -> Path:
    return home / ".asana_claims"


def _claim_path(home: Path, key: str) -> Path:
    return _claims(home) / f"{key}.lock"


@contextmanager
def instance(home: str | None) -> Iterator[dg.DagsterInstance]:
    """The instance at ``home`` (``$DAGSTER_HOME``), first used under a lock; an ephemeral one
    without a home."""
    if not home:
        with dg.DagsterInstance.ephemeral() as ephemeral:
            yield ephemeral
        return
    with exclusive(Path(home) / ".asana_instance.lock"):
        opened = dg.DagsterInstance.get()
        opened.get_run_records(limit=1)  # creates and migrates the storage, if it is new
    with opened:
        yield opened


def recorded_where(home: str | None) -> tuple[str, bool]:
    """Where a command's run is recorded, and whether that record outlives the command."""
    if home:
        return f"The run is recorded on the Dagster instance at {home} ($DAGSTER_HOME).", True
    return ("Warning: DAGSTER_HOME is not set, so the run is recorded on a temporary instance that is deleted when "
            "this command ends, its log with it. To keep runs, set DAGSTER_HOME to a folder (`make demo` uses "
            ".demo_home)."), False


class _OwnMessage(logging.Formatter):
    """A run's message as the project's progress lines show theirs: time, level, step, text."""

    def format(self, record: logging.LogRecord) -> str:
        meta = record.dagster_meta  # type: ignore[attr-defined]
        return f"{self.formatTime(record, '%H:%M:%S')} {record.levelname} {meta['step_key']}: {meta['orig_message']}"


def _own_message(record: logging.LogRecord) -> bool:
    """A step's own message (progress, a warning); not an event, nor an error, which the command's
    summary states (the engine's are its stack traces and the steps a failure skips)."""
    return record.levelno < logging.ERROR and record.dagster_meta.get("dagster_event") is None  # type: ignore[attr-defined]


@dg.logger(description="The run's own messages on stderr; Dagster's events stay in the run's log.")
def own_messages(_context: dg.InitLoggerContext) -> logging.Logger:
    # Outside the logging tree, as Dagster's own console logger: the tree's asana_assets handler
    # would print each line twice, and every run would add a handler to a shared logger.
    logger = logging.Logger("asana_assets.run", logging.INFO)  # noqa: LOG001
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_own_message)
    handler.setFormatter(_OwnMessage())
    logger.addHandler(handler)
    return logger


def log_lines(inst: dg.DagsterInstance, run_id: str) -> Iterator[str]:
    """A run's log from INFO up, each error with its stack trace."""
    if inst.get_run_by_id(run_id) is None:
        raise ConnectionProblem(f"there is no run {run_id} on this instance",
                                "check DAGSTER_HOME: runs are recorded on the instance it names")
    for entry in inst.all_logs(run_id):
        if entry.level < logging.INFO:
            continue
        when = datetime.fromtimestamp(entry.timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
        yield f"{when} {logging.getLevelName(entry.level)} {entry.step_key or '-'}: {entry.message}"
        error = getattr(entry.dagster_event and entry.dagster_event.event_specific_data, "error", None)
        if error is not None:
            yield error.to_string().rstrip()


def check_evaluations(inst: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    """Every check a run evaluated, those a failing step recorded before it stopped included."""
    entries = inst.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return [entry.dagster_event.event_specific_data for entry in entries]


def in_progress(inst: dg.DagsterInstance, key: str | None = None) -> list[dg.RunRecord]:
    tags = {"dagster/partition": key} if key else {}
    return list(inst.get_run_records(filters=dg.RunsFilter(tags=tags, statuses=IN_PROGRESS)))


def _launched_by_command(record: dg.RunRecord) -> bool:
    return record.dagster_run.tags.get(LAUNCHED_BY) == COMMAND


def claim(inst: dg.DagsterInstance, home: str | None, key: str, log=print) -> Claim | None:
    """Claim connection ``key`` for a sync, or raise with what holds it and what to do.

    Runs this command left in progress when its process died are marked failed on the way."""
    held = None
    if home:
        try:
            held = try_claim(_claim_path(Path(home), key), f"asana-connections sync {key}")
        except ClaimHeld as busy:
            since = busy.holder.get("since", "an unknown time")
            raise ConnectionProblem(
                f"connection {key} is being synced by another asana-connections process "
                f"(pid {busy.holder.get('pid', '?')}, since {since})",
                "wait for it to finish; `asana-connections runs` lists what is in progress",
            ) from None
    for record in in_progress(inst, key):
        if _launched_by_command(record) and held is not None:
            inst.report_run_failed(record.dagster_run, DIED)
            log(f"Run {record.dagster_run.run_id} of connection {key} was left in progress by a process that "
                "died; marked it failed.")
            continue
        if held is not None:
            held.release()
        raise ConnectionProblem(
            f"connection {key} has a run in progress ({record.dagster_run.run_id}, {record.dagster_run.status.value})",
            "wait for it to finish, or cancel it in the UI; `asana-connections runs` lists what is in progress",
        )
    return held


def describe_runs(inst: dg.DagsterInstance, home: str | None) -> list[str]:
    """One line per run in progress: connection, status, who launched it, whether it is alive."""
    lines = []
    for record in in_progress(inst):
        run = record.dagster_run
        key = run.tags.get("dagster/partition", "?")
        started = datetime.fromtimestamp(record.start_time, UTC).isoformat() if record.start_time else "not started"
        if _launched_by_command(record):
            alive = bool(home) and is_held(_claim_path(Path(home), key))
            state = "alive" if alive else f"stuck: its process is gone (clear it: asana-connections runs --clear {run.run_id})"
            who = "asana-connections"
        else:
            who, state = "the daemon or the UI", "followed by Dagster's run monitoring"
        lines.append(f"{run.run_id}  connection {key}  {run.status.value}  since {started}  launched by {who}  {state}")
    return lines


def clear(inst: dg.DagsterInstance, home: str | None, run_id: str) -> str:
    """Mark a stuck command run failed; refuses a run whose process is alive."""
    record = next((r for r in in_progress(inst) if r.dagster_run.run_id == run_id), None)
    if record is None:
        raise ConnectionProblem(f"no run {run_id} is in progress", "list them with `asana-connections runs`")
    key = record.dagster_run.tags.get("dagster/partition", "?")
    if _launched_by_command(record) and home and is_held(_claim_path(Path(home), key)):
        raise ConnectionProblem(f"run {run_id} is alive (its process holds connection {key})",
                                "wait for it, or stop that process")
    why = "its process was gone" if _launched_by_command(record) else "an operator cleared it"
    inst.report_run_failed(record.dagster_run, f"marked failed by `asana-connections runs --clear`: {why}")
    return key
