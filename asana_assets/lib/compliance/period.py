"""The evidence of an audit period: what SOC 2 Type II or ISO 27001 fieldwork asks for a period
(``2026-01-01`` to ``2026-06-30``) rather than for one run.

Everything is read from the warehouse, which keeps every run's ``monitor_results`` and
``user_access`` parts and every audit log event it read (Asana keeps the log 90 days; the
warehouse keeps what it read beyond that). The rules, each a plain function over frames:

- **Verdict of a control's monitor over the period** (``period_verdicts``): each resource's
  worst status over the runs evaluated in the period (a resource that alarmed in any run is an
  exception of the period), judged as one run's rows are (``monitors.verdict``); no run in the
  period, or no judged resource, is NOT EVALUATED. Where the evidence kept does not reach over
  the whole period (``evidence_gaps``: the period starts before the first run kept, two runs
  within it lie further apart than a day's sync allows, or it ends long after the last run in
  it, or, for a monitor reading the audit log, starts before its oldest kept event), a PASS
  becomes QUALIFIED: nothing shows the control for that part.
- **Populations**: every change whose implementation started in the period; every access change
  made in it (its audit log time, else the snapshot that first showed it); every deactivation
  (leaver) in it, each with what the monitors said of it in the period's runs.
- **Sample** (``draw``): ``numpy.random.default_rng(seed).choice`` over the population sorted by
  id, of the size ``sample_size`` reads from a table of population sizes, so anyone with the
  seed and the population draws the same items.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from asana_assets.lib.compliance import activity, monitors
from asana_assets.lib.compliance.monitors import MONITORS, NOT_EVALUATED, PASS, STATUSES, verdict
from asana_assets.lib.compliance.report import AUDIT_LOG_GAPS, utc_time
from asana_assets.lib.compliance.tickets import implementation_start, lookup

QUALIFIED = "QUALIFIED"
QUALIFIED_MEANING = ("no resource alarms in the runs kept, but the evidence kept does not cover the whole period "
                     "(the reason says which part): not a PASS")
DEFAULT_SEED = 1
# Sample sizes by population size: (largest population, sample size), the last row for any
# larger one (largest None). The upper figure of each range commonly used for a manual control
# by how often it operates: once 1, quarterly (2-4) 2, monthly (5-12) 2-5, weekly (13-52) 5-15,
# daily (53-365) 20-40, several times a day 25-60.
SAMPLE_SIZES: tuple[tuple[int | None, int], ...] = ((1, 1), (4, 2), (12, 5), (52, 15), (365, 40), (None, 60))
# A period ending this long after its last run, or two runs this far apart, leaves the time
# after the run uncovered (syncs run daily).
END_GAP = pd.Timedelta(days=2)
# Worst first: the status a resource keeps over the period's runs.
STATUS_RANK = {status: rank for rank, status in enumerate(STATUSES)}
NOT_JUDGED = "not judged"  # a population item no run of the period judged
# Monitors whose population comes from the audit log: a period before its oldest kept event hides from them.
AUDIT_MONITORS = frozenset(m.id for m in MONITORS.values() if m.id in AUDIT_LOG_GAPS or m.table == "audit_log_events")
CHANGE_MONITORS = ("changes_approved", "approval_segregation")
LEAVER_MONITORS = ("offboarding_access_removed", "offboarding_ticket", "activity_after_deactivation")


@dataclass(frozen=True)
class Period:
    """From the start of ``first`` to the end of ``last`` (whole UTC days, both included)."""

    first: date
    last: date

    @classmethod
    def of(cls, first: date | str, last: date | str) -> Period:
        """The period between two dates (``YYYY-MM-DD``); a clear error for anything else."""
        def day(value: date | str, which: str) -> date:
            if isinstance(value, date):
                return value
            try:
                return date.fromisoformat(str(value))
            except ValueError:
                raise ValueError(f"--{which} must be a date as YYYY-MM-DD, not {value!r}") from None

        period = cls(day(first, "from"), day(last, "to"))
        if period.first > period.last:
            raise ValueError(f"the period ends ({period.last}) before it starts ({period.first})")
        return period

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.first, tz="UTC")

    @property
    def end(self) -> pd.Timestamp:
        """Exclusive: midnight after the last day."""
        return pd.Timestamp(self.last, tz="UTC") + pd.Timedelta(days=1)

    @property
    def name(self) -> str:
        return f"period_{self.first.isoformat()}_{self.last.isoformat()}"

    def contains(self, times: pd.Series) -> pd.Series:
        """Whether each time falls in the period (a null time does not)."""
        times = pd.to_datetime(times, utc=True)
        return ((times >= self.start) & (times < self.end)).fillna(False).astype(bool)


# -- sample ------------------------------------------------------------------------------------
def parse_sample_sizes(text: str) -> tuple[tuple[int | None, int], ...]:
    """``1:1,4:2,12:5,52:15,365:40,*:60`` (largest population: sample size, ``*`` for any
    larger) as a table; a clear error for a malformed or unordered one."""
    rows: list[tuple[int | None, int]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if not (m := re.fullmatch(r"(\d+|\*)\s*:\s*(\d+)", item)):
            raise ValueError(f"sample sizes: {item!r} is not <largest population>:<sample size> (e.g. 12:5, *:60)")
        rows.append((None if m[1] == "*" else int(m[1]), int(m[2])))
    bounds = [b for b, _ in rows]
    if not rows or bounds[-1] is not None or None in bounds[:-1] or bounds[:-1] != sorted(set(bounds[:-1])):
        raise ValueError("sample sizes: list increasing largest populations and end with *:<size>, e.g. "
                         "1:1,4:2,12:5,52:15,365:40,*:60")
    if any(size < 1 for _, size in rows):
        raise ValueError("sample sizes: every sample size is at least 1")
    return tuple(rows)


def format_sample_sizes(sizes: Sequence[tuple[int | None, int]]) -> str:
    return ",".join(f"{'*' if bound is None else bound}:{size}" for bound, size in sizes)


def sample_size(population: int, sizes: Sequence[tuple[int | None, int]] = SAMPLE_SIZES) -> int:
    """How many items of a population of that size to test: the table's row for it, never more
    than the population (0 for none)."""
    if population <= 0:
        return 0
    size = next(size for bound, size in sizes if bound is None or population <= bound)
    return min(size, population)


def draw(ids: pd.Series, seed: int, sizes: Sequence[tuple[int | None, int]] = SAMPLE_SIZES) -> list[str]:
    """The sampled ids: ``numpy.random.default_rng(seed).choice(N, n, replace=False)`` over the
    distinct ids sorted as text, returned in that order. Same seed and population, same sample."""
    population = np.sort(pd.Series(ids, dtype=object).dropna().astype(str).unique())
    n = sample_size(len(population), sizes)
    picks = np.sort(np.random.default_rng(seed).choice(len(population), size=n, replace=False))
    return population[picks].tolist()


# -- verdicts ----------------------------------------------------------------------------------
def worst_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Per monitor and resource, the row of its worst status over the runs (``STATUSES`` order,
    a status that is none of them ranked as an error), the latest run's among equals."""
    if results.empty:
        return results
    rank = results["status"].map(STATUS_RANK).fillna(STATUS_RANK["error"])
    at = pd.to_datetime(results["evaluated_at"], utc=True)
    ordered = results.assign(_rank=rank.to_numpy(), _at=at.to_numpy()).sort_values(
        ["_rank", "_at"], ascending=[True, False], kind="stable")
    keys = ["monitor_id", "resource_type", "resource_gid"]
    return ordered.drop_duplicates(keys).drop(columns=["_rank", "_at"]).sort_values(keys, ignore_index=True)


@dataclass(frozen=True)
class Kept:
    """What the warehouse keeps that bounds the evidence: when its runs were evaluated (every
    run's, not only the period's) and its oldest audit log event (None: none kept)."""

    runs: pd.Series  # evaluated_at per run_id
    oldest_audit_event: pd.Timestamp | None


def evidence_gaps(period: Period, kept: Kept, now: pd.Timestamp) -> dict[str, list[str]]:
    """Per monitor, the parts of the period the evidence kept does not reach (empty: none)."""
    runs = pd.to_datetime(kept.runs, utc=True)
    inside = runs[period.contains(runs)]
    common: list[str] = []
    if runs.empty:
        common.append("the warehouse keeps no monitor run")
    elif runs.min() > period.start:
        common.append(f"the period starts {_day(period.start)}, before the first monitor run kept "
                      f"({utc_time(runs.min())}): nothing shows the controls before then")
    # Between two runs further apart within the period than a daily sync allows, a violation
    # could come and go unseen.
    ordered = runs.sort_values()
    until = min(period.end, now)
    for earlier, later in zip(ordered.iloc[:-1], ordered.iloc[1:], strict=True):
        if min(later, until) - max(earlier, period.start) > END_GAP:
            common.append(f"no monitor run from {utc_time(earlier)} to {utc_time(later)}: nothing shows the "
                          "controls between them")
    if len(inside) and until - inside.max() > END_GAP:
        common.append(f"the last run in the period is {utc_time(inside.max())}: nothing shows the controls from then "
                      f"to {_day(until)}")
    audit = []
    if kept.oldest_audit_event is None:
        audit.append("the warehouse keeps no audit log event")
    elif kept.oldest_audit_event > period.start:
        audit.append(f"the oldest audit log event kept is {utc_time(kept.oldest_audit_event)}, after the period starts: "
                     "what the audit log showed before it is not kept")
    return {m: common + (audit if m in AUDIT_MONITORS else []) for m in MONITORS}


def period_verdicts(results: pd.DataFrame, gaps: Mapping[str, list[str]]) -> dict[str, tuple[str, str]]:
    """(verdict, why) of every monitor over the period's runs (``results``: their rows). A PASS
    whose monitor has a gap is QUALIFIED; every other verdict keeps its name, the gap added to why."""
    worst = worst_rows(results)
    runs = results["run_id"].nunique() if len(results) else 0
    out = {}
    for monitor_id in MONITORS:
        if not runs:
            result, why = NOT_EVALUATED, "Not evaluated: no monitor run in the period."
        else:
            result, why = verdict(worst[worst["monitor_id"] == monitor_id])
            why = f"Over {runs} run(s), each resource at its worst: {why}"
        if gaps[monitor_id]:
            result = QUALIFIED if result == PASS else result
            why += " Evidence kept does not cover the whole period: " + "; ".join(gaps[monitor_id]) + "."
        out[monitor_id] = (result, why)
    return out


# -- populations -------------------------------------------------------------------------------
def judged(worst: pd.DataFrame, monitor_ids: Sequence[str], gids: pd.Series) -> pd.DataFrame:
    """Per gid, what each monitor said of it in the period (its worst status and reason):
    ``<monitor>_status`` (``NOT_JUDGED`` where no run judged it) and ``<monitor>_reason``."""
    out = {}
    for monitor_id in monitor_ids:
        rows = worst[worst["monitor_id"] == monitor_id].drop_duplicates("resource_gid").set_index("resource_gid")
        out[f"{monitor_id}_status"] = lookup(gids, rows["status"]).fillna(NOT_JUDGED).to_numpy()
        out[f"{monitor_id}_reason"] = lookup(gids, rows["reason"]).to_numpy()
    return pd.DataFrame(out, index=gids.index)


def changes_in_period(t: Mapping[str, pd.DataFrame], period: Period, worst: pd.DataFrame) -> tuple[
        pd.DataFrame, pd.DataFrame]:
    """The change tickets whose implementation started in the period, as the monitors read them
    (approval that counts, approver, completion), with what the change monitors said; and the
    change tickets whose start the data cannot tell while a run of the period judged them unknown
    (listed apart: they may belong to the period). ``t``: tickets, tasks, task_memberships,
    ticket_events, workflow_states, approvals."""
    tix, states, events = t["tickets"], t["workflow_states"], t["ticket_events"]
    timeline, done = monitors.history_inputs(t, states, events)
    impl = implementation_start(tix["gid"], timeline, done)
    counting = monitors.counting_approval(t["approvals"], impl, timeline, t["tasks"])
    at_completion = monitors.assignee_at_completion(tix, events, done)
    changes = monitors.change_population(tix, impl, counting, at_completion).reset_index(drop=True)
    typed = tix.drop_duplicates("gid").set_index("gid")
    changes = changes.assign(ticket_type=lookup(changes["gid"], typed["ticket_type"]).to_numpy(),
                             primary_project_gid=lookup(changes["gid"], typed["primary_project_gid"]).to_numpy())
    changes = pd.concat([changes, judged(worst, CHANGE_MONITORS, changes["gid"])], axis=1)
    started = period.contains(changes["implementation_start"])
    undecided = changes["implementation_start"].isna() & changes["changes_approved_status"].eq("unknown")
    order = ["implementation_start", "gid"]
    return (changes[started].sort_values(order, ignore_index=True),
            changes[undecided].sort_values("gid", ignore_index=True))


def overlapping(period: Period, earliest: pd.Series, latest: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(in the period, may be before it, may be after it) for events known only to lie after
    ``earliest`` (null: any time before) and at or before ``latest``. An event that may fall in
    the period belongs to it, so a window across a period's edge hides it from neither side."""
    earliest, latest = pd.to_datetime(earliest, utc=True), pd.to_datetime(latest, utc=True)
    inside = ((latest >= period.start) & (earliest.isna() | (earliest < period.end))).fillna(False).astype(bool)
    before = (earliest.isna() | (earliest < period.start)).fillna(True).astype(bool)
    after = (latest >= period.end).fillna(False).astype(bool)
    return inside, before, after


def access_changes_in_period(changes: pd.DataFrame, period: Period, worst: pd.DataFrame) -> pd.DataFrame:
    """Every access change that may have been made in the period: at its audit log time, else
    anywhere in its snapshot window (``changed_at`` is the snapshot that first showed it,
    ``window_end``; ``may_predate``/``may_postdate`` when the window reaches past the period),
    with the review monitor's status."""
    at = pd.to_datetime(changes["occurred_at"], utc=True)
    inside, before, after = overlapping(period, at.fillna(pd.to_datetime(changes["window_start"], utc=True)),
                                        at.fillna(pd.to_datetime(changes["window_end"], utc=True)))
    undated = at.isna()
    rows = changes.assign(changed_at=at.fillna(pd.to_datetime(changes["window_end"], utc=True)),
                          may_predate=undated & before, may_postdate=undated & after)[inside].reset_index(drop=True)
    rows = pd.concat([rows, judged(worst, ["membership_changes"], rows["change_id"])], axis=1)
    return rows.sort_values(["changed_at", "change_id"], ignore_index=True)


def leavers_in_period(t: Mapping[str, pd.DataFrame], period: Period, worst: pd.DataFrame) -> pd.DataFrame:
    """Every deactivation (``activity.deactivations``) that may have happened in the period
    (``may_predate``/``may_postdate`` when its window reaches past the period), with what the
    offboarding monitors said. ``t``: user_access (every snapshot), membership_changes,
    audit_log_events (None: never read), workspace_memberships."""
    turns = activity.deactivations(t["user_access"], t["membership_changes"], t.get("audit_log_events"),
                                   t["workspace_memberships"])
    turns = turns[turns["change"].eq(activity.DEACTIVATED)]
    inside, before, after = overlapping(period, turns["earliest"], turns["latest"])
    out = turns.assign(may_predate=before, may_postdate=after)[inside].reset_index(drop=True)
    out["leaver_id"] = out["user_gid"] + "/" + out["workspace_gid"]
    out = pd.concat([out, judged(worst, LEAVER_MONITORS, out["leaver_id"])], axis=1)
    return out.sort_values(["latest", "leaver_id"], ignore_index=True)


def _day(ts) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%d")
