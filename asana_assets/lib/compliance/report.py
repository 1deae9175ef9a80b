"""What an auditor reads first: the facts of one run's evidence (``Evidence``) and the report
``report.html`` built from them.

The report is one self-contained file: inline CSS, charts drawn here as inline SVG, no script,
no stylesheet, font or image from elsewhere, so it opens offline and archives as it is. Every
value that comes from Asana is HTML-escaped; links are kept only when they are http(s) URLs.
``summary.md`` (``evidence.summary``) shows the same facts in Markdown.

Every verdict holds only for what the connection could see (``RunCoverage``): where the coverage
is partial, or was not recorded, the verdicts it affects say so beside them, so no PASS reads as
unconditional.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from asana_assets.lib.asana.account import FIX as COVERAGE_FIX
from asana_assets.lib.asana.account import UNKNOWN as UNKNOWN_KIND
from asana_assets.lib.asana.account import account_kind
from asana_assets.lib.compliance.monitors import (
    CONTROLS,
    ERROR,
    FAIL,
    INCOMPLETE,
    JUDGED,
    MONITORS,
    NOT_EVALUATED,
    PASS,
    STATUSES,
    UNKNOWN_FIX,
    refused_listings,
    verdict,
)
from asana_assets.lib.compliance.review import DECISIONS, item_gid
from asana_assets.lib.compliance.rule_output import COLUMNS, NAMED
from asana_assets.lib.compliance.tickets import isin, lookup
from asana_assets.lib.compliance.workflow import STAGES

# What an auditor must look at, in the order listed: unknown rows too, since what the data could
# not decide may hide a violation.
EXCEPTION_STATUSES = ("alarm", "error", "unknown")
# What each verdict means, worst first, as the report and summary.md explain them.
VERDICT_MEANINGS = {
    FAIL: "at least one alarm",
    ERROR: "at least one resource could not be judged (error)",
    INCOMPLETE: f"the data could not decide some resources; not passed: {UNKNOWN_FIX}",
    NOT_EVALUATED: ("no resource was judged (none, or only ones not yet due or out of scope): the run shows "
                    "nothing about the control"),
    PASS: "resources were judged and none alarms",
}
# What each status means, as the summary explains them.
STATUS_MEANINGS = {
    "alarm": "non-compliant",
    "error": "the resource could not be judged (the rule failed)",
    "unknown": "the data cannot decide it (never read as ok; the reason names what is missing)",
    "info": "not yet due (e.g. inside a grace period)",
    "ok": "compliant",
    "skip": "the rule does not apply (the reason says why)",
}
# The stages the time-in-state charts show, in workflow order; DONE is left out (a finished
# ticket stays there, so its time only grows).
CHART_STAGES = tuple(stage for stage in STAGES if stage != "DONE")
CHART_SECTIONS = 30  # the time-by-section chart shows this many sections; the CSV has every stay
SIGN_OFF = ("Reviewer", "Date", "Management response")
LINK_LABEL = "open in Asana"
# The demo's links point at app.asana.com for gids only the simulator has, and the simulator
# serves no pages: they are marked rather than passed off as Asana's.
DEMO_LINK_LABEL = "demo link (no Asana page)"
DEMO_NOTE = ("Demo data from the simulator. Its links point at app.asana.com for gids that exist only in the "
             "simulator, which serves no pages: they open nothing in Asana.")


# What the trend reads of the runs before: their monitor_results rows counted by these (and
# ``rows``), a few rows per run however many resources they judged.
COUNTED = ["run_id", "evaluated_at", "monitor_id", "status"]


def counted(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` counted by ``COUNTED`` (``rows``): the form ``Evidence.history`` takes."""
    return results.groupby(COUNTED, observed=True).size().reset_index(name="rows")


def alarms_per_run(counts: pd.DataFrame) -> pd.DataFrame:
    """Alarms per run (index: run_id) and monitor (columns: every one of ``MONITORS``) from rows
    counted by ``COUNTED``. <NA> where the monitor judged no resource in the run (no ok, alarm,
    unknown or error row: NOT EVALUATED): a gap in the trend, since 0 would read as compliant."""
    judged = counts[counts["status"].isin(JUDGED)]
    alarms = judged["rows"].where(judged["status"].eq("alarm"), 0)
    table = alarms.groupby([judged["run_id"], judged["monitor_id"]]).sum().unstack()
    return table.reindex(columns=list(MONITORS)).astype("Int64")


def alarm_counts(results: pd.DataFrame) -> dict[str, int | None]:
    """One run's alarms per monitor (every one of ``MONITORS``), None for a monitor that judged
    no resource (NOT EVALUATED): a point to leave out of a trend rather than plot as 0."""
    per_monitor = alarms_per_run(counted(results)).sum(min_count=1)
    return {m: None if pd.isna(n) else int(n) for m, n in per_monitor.items()}


def verdicts(results: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """(verdict, why) of every monitor, from its rows in ``results`` (one run's)."""
    return {m: verdict(monitor_rows(results[["monitor_id", "status", "reason"]], m)) for m in MONITORS}


def monitor_rows(results: pd.DataFrame, monitor_id: str) -> pd.DataFrame:
    """One monitor's rows of ``results``. A run's results hold each monitor's rows together (as
    ``monitors.evaluate`` concatenates them): those are a slice, not a copy of half a million
    rows' texts; rows spread out are gathered."""
    where = np.flatnonzero((results["monitor_id"] == monitor_id).to_numpy(dtype=bool, na_value=False))
    if len(where) and where[-1] - where[0] + 1 == len(where):
        return results.iloc[where[0]:where[-1] + 1]
    return results.iloc[where]


def utc_time(ts) -> str:
    return "unknown" if ts is None or pd.isna(ts) else pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


# The statuses a refused audit log read is recorded with (``audit_log.read_audit_log``): "HTTP 402: ...".
REFUSED_STATUS = re.compile(r"HTTP (\d{3})")
NEVER_READ = "no sync has read the audit log yet"
NOT_RECORDED = ("not recorded for this run: what the connection could not see is unknown, so every verdict holds "
                "only for what the sync happened to read")
LISTED_REFUSALS = 5  # the scope names this many refused listings, then counts the rest
# Monitors whose population does not come from projects (workspace memberships, the audit log):
# a token's blind spot for private projects cannot hide what they judge. Every other monitor,
# one added later too, is taken to read projects: partial coverage is never assumed away.
WORKSPACE_WIDE = frozenset({"admin_access_restricted", "activity_after_deactivation"})
# What a workspace's unread audit log hides from a monitor that reads it.
AUDIT_LOG_GAPS = {
    "activity_after_deactivation": "whether a deactivated user acted there cannot be seen",
    "membership_changes": "a change undone between two access snapshots is not seen there",
}


@dataclass(frozen=True)
class RunCoverage:
    """What the run's connection could see, from the sync's own records (``run_coverage``).

    ``audit_log`` holds, per workspace, None where the audit log was read (Asana answered 200:
    an Enterprise organisation's service account, which reads every project) or why it was not.
    ``refused`` lists the project listings Asana refused (``monitors.refused_listings``)."""

    kind: str  # coverage.SERVICE_ACCOUNT, PERSON or UNKNOWN
    kind_basis: str
    audit_log: Mapping[str, str | None]
    private_projects_read: int
    refused: pd.DataFrame

    @property
    def unread(self) -> dict[str, str]:
        """Workspace gid -> why its audit log was not read."""
        return {gid: why for gid, why in self.audit_log.items() if why is not None}

    @property
    def sees_every_project(self) -> bool:
        """Confirmed only when the audit log answered in every workspace (coverage.Coverage.full)."""
        return bool(self.audit_log) and not self.unread

    @property
    def plan(self) -> str:
        return "Enterprise" if self.sees_every_project else "unknown (the API does not say)"

    @property
    def complete(self) -> bool:
        return self.sees_every_project and self.refused.empty


def run_coverage(workspace_gids: list[str], projects: pd.DataFrame, quarantine: pd.DataFrame, audit_read: bool,
                 unavailable: Mapping[str, str], declared: str | None) -> RunCoverage:
    """The coverage of a run, as ``connection_coverage`` judges it, from what the sync recorded
    rather than by asking Asana again: the audit log read is the same probe (200 read; 402 or
    403 recorded in the sync state as ``unavailable``), ``audit_read`` whether any sync has read
    it, ``declared`` the kind the connection declares (None for a bare token)."""
    audit = {gid: unavailable.get(gid) or (None if audit_read else NEVER_READ) for gid in workspace_gids}
    answers = {200 if why is None else int(m.group(1)) for why in audit.values()
               if why is None or (m := REFUSED_STATUS.match(why))}
    kind, basis = account_kind(answers, declared)
    if not answers and kind == UNKNOWN_KIND:
        basis = f"{NEVER_READ}, and the connection declares no kind"
    privacy = projects["privacy_setting"]
    private = int((privacy.notna() & privacy.ne("public_to_workspace")).sum())
    return RunCoverage(kind, basis, audit, private, refused_listings(quarantine).reset_index(drop=True))


RUN_ID_CHARS = 8  # a run is named by its id's first characters, more where two runs share them


def run_labels(runs: pd.MultiIndex) -> list[str]:
    """``2026-03-06 09:00 · run 1a2b3c4d`` per run of a trend index (evaluated_at, run_id): the
    id's prefix makes runs of the same minute tell apart, and is lengthened until every run's is
    its own."""
    ids = [str(run) for _, run in runs]
    width = RUN_ID_CHARS
    while len({i[:width] for i in ids}) < len(set(ids)):
        width += 1
    return [f"{pd.Timestamp(at).tz_convert('UTC'):%Y-%m-%d %H:%M} · run {run[:width]}"
            for (at, _), run in zip(runs, ids, strict=True)]


@dataclass
class Evidence:
    """One run's results with what surrounds them: scope, populations and the runs before."""

    run_id: str
    as_of: pd.Timestamp
    workspaces: list[str]
    parameters: Mapping[str, Any]
    results: pd.DataFrame
    populations: Mapping[str, pd.DataFrame]
    # the runs in the warehouse: their monitor_results rows counted by ``COUNTED`` (``rows``);
    # this run's are taken from ``results``
    history: pd.DataFrame | None = None
    connection: str | None = None
    as_of_configured: bool = False
    reviewed_changes: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    # what the connection could see; None: not recorded, so every verdict says that
    coverage: RunCoverage | None = None

    def __post_init__(self) -> None:
        # Results read back from the warehouse lack the named columns: they show as empty.
        self.results = self.results.reindex(columns=list(dict.fromkeys([*self.results.columns, *COLUMNS])))

    # -- scope ----------------------------------------------------------------------------
    @cached_property
    def verdicts(self) -> dict[str, tuple[str, str]]:
        return verdicts(self.results)

    def workspace_names(self) -> list[str]:
        known = self.populations.get("workspaces", pd.DataFrame(columns=["gid", "name"]))
        names = known.drop_duplicates("gid").set_index("gid")["name"]
        return [f"{names[gid]} ({gid})" if gid in names.index and pd.notna(names[gid]) else gid
                for gid in self.workspaces]

    def period(self) -> tuple[pd.Timestamp | None, list[str]]:
        """The start of the period the evidence covers (it ends at as_of), and what bounds it."""
        facts, starts = [], []
        tickets = self.populations.get("tickets")
        if tickets is not None and len(tickets) and tickets["created_at"].notna().any():
            first = tickets["created_at"].min()
            starts.append(first)
            facts.append(f"{len(tickets)} ticket(s), created from {utc_time(first)}")
        snapshots = self.populations.get("user_access_history")
        if snapshots is not None and len(snapshots):
            times = snapshots["snapshot_at"].drop_duplicates()
            starts.append(times.min())
            facts.append(f"{len(times)} access snapshot(s), from {utc_time(times.min())} to {utc_time(times.max())}")
        runs = self.trend.index
        if len(runs):
            facts.append(f"{len(runs)} monitor run(s) in the warehouse, from {utc_time(runs.min()[0])} "
                         f"to {utc_time(runs.max()[0])}")
        return (min(starts) if starts else None), facts

    def scope(self) -> list[tuple[str, str]]:
        """(label, value) rows saying what this evidence covers."""
        start, facts = self.period()
        stored = self.parameters.get("connection")
        named = stored.get("workspace_name") if isinstance(stored, dict) else None
        connection = self.connection or (stored.get("partition") if isinstance(stored, dict) else stored) or "unknown"
        rows = [
            ("Connection", f"{connection} ({named})" if named else str(connection)),
            ("Workspaces", ", ".join(self.workspace_names()) or "(none)"),
        ]
        source = self.parameters.get("source") or {}
        if source.get("base_url"):
            rows.append(("Source", str(source["base_url"]) + (" (the demo simulator)" if source.get("demo") else "")))
        rows += self.coverage_rows()
        rows += [
            ("Period covered", f"{utc_time(start) if start is not None else 'no dated record'} to {utc_time(self.as_of)}"
             + (f" ({'; '.join(facts)})" if facts else "")),
            ("As of", f"{self.as_of.isoformat()} ("
             + ("set by the as_of parameter)" if self.as_of_configured else "the run's start; as_of not set)")),
            ("Run", self.run_id),
        ]
        return rows

    # -- coverage ---------------------------------------------------------------------------
    @property
    def demo(self) -> bool:
        return bool((self.parameters.get("source") or {}).get("demo"))

    @property
    def link_label(self) -> str:
        return DEMO_LINK_LABEL if self.demo else LINK_LABEL

    def _workspace_label(self, gids: list[str]) -> str:
        names = dict(zip(self.workspaces, self.workspace_names(), strict=True))
        return ", ".join(names.get(gid, gid) for gid in gids)

    def coverage_rows(self) -> list[tuple[str, str]]:
        """(label, value) rows saying what the connection could and could not see."""
        c = self.coverage
        if c is None:
            return [("Coverage", NOT_RECORDED)]
        missing = self.may_be_missing()
        unread = c.unread
        read = [gid for gid, why in c.audit_log.items() if why is None]
        audit = "; ".join([*([f"read in {self._workspace_label(read)}"] if read else []),
                           *[f"not read in {self._workspace_label([gid])} ({why})" for gid, why in unread.items()]])
        refused = c.refused
        projects = self.populations.get("projects", pd.DataFrame(columns=["gid", "name"])).drop_duplicates("gid")
        gids = refused["project_gid"].astype(object)
        named = lookup(gids, projects.set_index("gid")["name"].astype(object))
        project = ('"' + named + '" (' + gids + ")").fillna(gids)
        shown = "; ".join(("project " + project + ": " + refused["error"].astype(object)).head(LISTED_REFUSALS))
        more = f"; and {len(refused) - LISTED_REFUSALS} more" if len(refused) > LISTED_REFUSALS else ""
        return [
            ("Coverage", "complete: the connection sees every project and the audit log of every workspace"
             if c.complete else "PARTIAL: it may miss " + "; ".join(missing)),
            ("Account kind", f"{c.kind} ({c.kind_basis})"),
            ("Plan", c.plan),
            ("Private projects", f"{c.private_projects_read} private project(s) read; "
             + ("it reads every project" if c.sees_every_project else
                f"it is not confirmed to read the private projects it is not a member of (fix: {COVERAGE_FIX})")),
            ("Audit log", audit or "no workspace"),
            ("Listings refused", "none" if refused.empty else
             f"{len(refused)} listing(s) of {refused['project_gid'].nunique()} project(s): {shown}{more}"),
        ]

    def may_be_missing(self) -> list[str]:
        """What the connection's partial coverage may leave out of the tables (empty: nothing)."""
        c = self.coverage
        if c is None:
            return ["coverage not recorded"]
        out = []
        if not c.sees_every_project:
            out.append("tickets and memberships of private projects the connection is not a member of")
        if c.unread:
            out.append(f"the audit log of {self._workspace_label(list(c.unread))}")
        if not c.refused.empty:
            listings = ", ".join(sorted(c.refused["listing"].unique()))
            out.append(f"the refused listings ({listings}) of {c.refused['project_gid'].nunique()} project(s)")
        return out

    @cached_property
    def coverage_notes(self) -> dict[str, list[str]]:
        """Per monitor, what the partial coverage means for its verdict (empty: nothing)."""
        c = self.coverage
        if c is None:
            return {m: ["Coverage not recorded: what the connection could not see is unknown."] for m in MONITORS}
        notes: dict[str, list[str]] = {m: [] for m in MONITORS}
        for monitor in MONITORS.values():
            mine = notes[monitor.id]
            if not c.sees_every_project and monitor.id not in WORKSPACE_WIDE:
                mine.append(f"Partial coverage: the connection ({c.kind}) is not confirmed to read the private "
                            "projects it is not a member of, so what they hold may not be judged.")
            gap = AUDIT_LOG_GAPS.get(monitor.id) or (
                "what it holds is not judged" if monitor.table == "audit_log_events" else None)
            if c.unread and gap:
                mine.append(f"Partial coverage: the audit log of {self._workspace_label(list(c.unread))} was not "
                            f"read, so {gap}.")
            refused = c.refused[c.refused["listing"].isin(monitor.reads)]
            if len(refused):
                mine.append(f"Partial coverage: Asana refused {len(refused)} listing(s) "
                            f"({', '.join(sorted(refused['listing'].unique()))}) of {refused['project_gid'].nunique()} "
                            "project(s): their rows are missing and those projects are judged unknown.")
        return notes

    def coverage_facts(self) -> dict[str, Any] | None:
        """The coverage as the manifest records it (None: not recorded)."""
        c = self.coverage
        if c is None:
            return None
        return {
            "complete": c.complete, "may_be_missing": self.may_be_missing(), "account_kind": c.kind,
            "account_kind_basis": c.kind_basis, "plan": c.plan, "sees_every_project": c.sees_every_project,
            "private_projects_read": c.private_projects_read, "audit_log": dict(c.audit_log),
            "listings_refused": c.refused[["project_gid", "listing", "error"]].to_dict("records"),
        }

    def parameter_rows(self) -> list[tuple[str, str]]:
        def shown(value) -> str:
            if value is None:
                return "not set"
            if isinstance(value, (list, tuple, dict)) and not value:
                return "none"
            return str(value)

        return [(str(k), shown(v)) for k, v in self.parameters.items()]

    # -- results --------------------------------------------------------------------------
    @cached_property
    def _counts(self) -> pd.Series:
        return self.results.groupby(["monitor_id", "status"]).size()

    def counts(self, monitor_id: str) -> dict[str, int]:
        """The monitor's rows per status (every one of ``STATUSES``)."""
        return {s: int(self._counts.get((monitor_id, s), 0)) for s in STATUSES}

    def controls(self) -> list[tuple[str, str, list[str]]]:
        """(control, what it asks, its monitors), in the order of ``CONTROLS``."""
        return [(ref, title, [m.id for m in MONITORS.values() if ref in m.control_refs])
                for ref, title in CONTROLS.items()]

    def exceptions(self, monitor_id: str | None = None) -> pd.DataFrame:
        """The rows an auditor must look at (``EXCEPTION_STATUSES``, in that order), with names and links."""
        rows = self._exceptions
        return rows[rows["monitor_id"] == monitor_id] if monitor_id else rows

    @cached_property
    def _exceptions(self) -> pd.DataFrame:
        r = self.results
        rows = r[r["status"].isin(EXCEPTION_STATUSES)]
        order = pd.Categorical(rows["status"], categories=EXCEPTION_STATUSES)
        rows = rows.iloc[order.argsort(kind="stable")]
        rows = rows.assign(name=rows["name"].fillna(rows["resource_type"] + " " + rows["resource_gid"]))
        return rows[["monitor_id", "status", "resource_type", "resource_gid", *NAMED, "resource_url", "reason"]]

    @cached_property
    def trend(self) -> pd.DataFrame:
        """Alarms per monitor (columns) per run (index: evaluated_at, run_id), oldest first, <NA>
        where the monitor did not evaluate (``alarms_per_run``); this run's from ``results``."""
        parts = [counted(self.results)]
        if self.history is not None and len(self.history):
            parts.insert(0, self.history[self.history["run_id"] != self.run_id])
        rows = pd.concat(parts, ignore_index=True)
        rows["evaluated_at"] = pd.to_datetime(rows["evaluated_at"], utc=True)
        runs = rows.drop_duplicates("run_id").set_index("run_id")["evaluated_at"]
        if self.run_id not in runs.index:
            runs[self.run_id] = self.as_of
        table = alarms_per_run(rows).reindex(runs.index)
        table.index = pd.MultiIndex.from_arrays([runs.to_numpy(), runs.index], names=["evaluated_at", "run_id"])
        return table.sort_index()

    @cached_property
    def stays(self) -> pd.DataFrame:
        """The change tickets' section stays (``ticket_section_history``) entered by as_of, each
        with its ``hours`` there up to as_of (a current stay counted to as_of)."""
        history = self.populations.get("ticket_section_history")
        changes = self.populations.get("change_tickets")
        if history is None or changes is None:
            return pd.DataFrame(columns=["project_gid", "section_gid", "stage", "hours"])
        h = history[isin(history["ticket_gid"], changes["gid"])]
        entered = pd.to_datetime(h["entered_at"], utc=True)
        h, entered = h[entered <= self.as_of], entered[entered <= self.as_of]
        left = pd.to_datetime(h["left_at"], utc=True).fillna(self.as_of).clip(upper=self.as_of)
        return h.assign(hours=((left - entered).dt.total_seconds() / 3600).clip(lower=0))

    @staticmethod
    def _hours(stays: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        return stays.groupby(by, dropna=False)["hours"].agg(stays="size", median_hours="median", total_hours="sum")

    def time_in_stage(self) -> pd.DataFrame:
        """Per workflow stage (``CHART_STAGES``, in order): the stays there, their median and total hours."""
        out = self._hours(self.stays, ["stage"])
        return out.reindex([s for s in CHART_STAGES if s in out.index])

    def time_in_section(self) -> pd.DataFrame:
        """Per project and section of the stays (DONE's left out), by project name and the
        section's position: ``label`` ("project / section (STAGE)") and the stays' hours."""
        stays = self.stays[self.stays["stage"].isin(CHART_STAGES)]
        out = self._hours(stays, ["project_gid", "section_gid", "stage"]).reset_index()
        sections = self.populations.get("workflow_states", pd.DataFrame(columns=["section_gid", "name", "position"]))
        sections = sections.drop_duplicates("section_gid").set_index("section_gid")
        projects = self.populations.get("projects", pd.DataFrame(columns=["gid", "name"]))
        projects = projects.drop_duplicates("gid").set_index("gid")["name"]
        # As objects throughout: Arrow-backed text and object columns do not concatenate.
        project_gids, section_gids = out["project_gid"].astype(object), out["section_gid"].astype(object)
        project = lookup(project_gids, projects.astype(object)).fillna(project_gids).fillna("no project")
        section = lookup(section_gids, sections["name"].astype(object)).fillna("section " + section_gids)
        out = out.assign(label=project + " / " + section + " (" + out["stage"].astype(object) + ")", project=project,
                         position=lookup(section_gids, sections["position"]))
        return out.sort_values(["project", "position", "label"], na_position="last", ignore_index=True)

    # -- access review ----------------------------------------------------------------------
    def people(self) -> pd.DataFrame:
        return self.populations.get("users", pd.DataFrame(columns=["gid", "name", "email", "profile_url"]))

    def members(self, flag: str) -> pd.DataFrame:
        """Active workspace members with ``flag`` (is_admin, is_guest), named, by workspace."""
        m = self.populations.get("workspace_memberships")
        if m is None:
            return pd.DataFrame(columns=["workspace", "user_gid", "name", "email", "guest", "profile_url"])
        m = m[m["is_active"].eq(True) & m[flag].eq(True)]
        people = self.people().drop_duplicates("gid").set_index("gid")
        known = self.populations.get("workspaces", pd.DataFrame(columns=["gid", "name"]))
        workspaces = known.drop_duplicates("gid").set_index("gid")["name"]
        out = pd.DataFrame({
            "workspace": m["workspace_gid"].map(workspaces).fillna(m["workspace_gid"]),
            "user_gid": m["user_gid"],
            "name": m["user_gid"].map(people["name"]), "email": m["user_gid"].map(people["email"]),
            "guest": np.where(m["is_guest"].eq(True), "guest", ""),
            "profile_url": m["user_gid"].map(people["profile_url"]),
        })
        return out.sort_values(["workspace", "name", "user_gid"], na_position="last")

    def leavers(self) -> pd.DataFrame:
        """Users without an active membership who still hold access (alarms), may (unknown), or
        do inside the grace (info)."""
        r = self.results
        rows = r[(r["monitor_id"] == "offboarding_access_removed") & (r["resource_type"] == "user_in_workspace")
                 & r["status"].isin(["alarm", "unknown", "info"])]
        return rows[["status", "name", "resource_url", "reason"]]


# -- HTML ---------------------------------------------------------------------------------
def html_text(value) -> str:
    """A value as escaped HTML text; null is empty."""
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return ""
    return html.escape(str(value), quote=True)


def html_link(url, label=None) -> str:
    """A link when ``url`` is an http(s) URL, else its text."""
    text = html_text(label if label is not None and not pd.isna(label) else url)
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
        return f'<a href="{html_text(url)}">{text or html_text(url)}</a>'
    return text


def md_text(value) -> str:
    """Text safe inside Markdown, a table cell too: HTML, link brackets and pipes escaped (Asana's
    text is data), on one line; null is empty."""
    text = "" if value is None or pd.isna(value) else html.escape(str(value), quote=False)
    return text.replace("|", "\\|").replace("[", "\\[").replace("]", "\\]").replace("\n", " ").replace("\r", " ")


def md_link(url, label: str = LINK_LABEL) -> str:
    """A Markdown link to an http(s) URL (one that needs no escaping), else nothing."""
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")) and not any(c in url for c in " <>()"):
        return f"[{label}]({url})"
    return ""


def html_table(headers: list[str] | None, rows: list[list[str]], empty: str = "None.") -> str:
    """A table of cells already rendered as HTML; without ``headers``, no header row."""
    if not rows:
        return f'<p class="none">{html_text(empty)}</p>'
    head = "<thead><tr>" + "".join(f"<th>{html_text(h)}</th>" for h in headers) + "</tr></thead>" if headers else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def html_verdict(result: str, notes: Sequence[str] = ()) -> str:
    """The verdict, with what partial coverage means for it right beneath."""
    caveats = "".join(f'<div class="caveat">{html_text(note)}</div>' for note in notes)
    return f'<span class="verdict {result.lower().replace(" ", "-")}">{html_text(result)}</span>{caveats}'


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:72em;
color:#1d1d1f;line-height:1.4;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right}
.verdict{font-weight:bold;padding:.1em .4em;border-radius:3px}
.pass{background:#d9f2dd;color:#14521e}.fail{background:#fbd9d9;color:#7a1010}
.error{background:#ffe7c2;color:#6b3d00}.incomplete{background:#fff3b0;color:#5c4a00}
.not-evaluated{background:#e4e4ef;color:#2c2c59}
.none{color:#666;font-style:italic}.signoff td{height:3em}.signoff td.big{height:9em}
svg{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}
.caveat{font-size:.85em;color:#6b3d00;margin-top:.3em}
.notice{background:#fff3b0;border:1px solid #e0c060;padding:.5em .8em;border-radius:3px}
@media print{a{color:inherit}h2{page-break-after:avoid}table{page-break-inside:auto}}
"""


def page_top(title: str, e: Evidence, scope: list[tuple[str, str]], heading: str = "Scope", style: str = "") -> list[str]:
    """A report's page up to its scope table: the title, the demo's notice, the scope rows."""
    return [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html_text(title)}</title><style>{STYLE}{style}</style></head><body>",
        f"<h1>{html_text(title)}</h1>",
        f'<p class="notice" id="demo">{html_text(DEMO_NOTE)}</p>' if e.demo else "",
        f'<section id="scope"><h2>{html_text(heading)}</h2>',
        html_table(None, [[f"<b>{html_text(k)}</b>", html_text(v)] for k, v in scope]),
    ]


def render_html(e: Evidence) -> str:
    """The run's evidence report as one self-contained HTML page."""
    parts = [
        *page_top(f"Asana compliance evidence: run {e.run_id}", e, e.scope()),
        "<h3>Parameters</h3>",
        html_table(["parameter", "value"], [[f"<code>{html_text(k)}</code>", html_text(v)] for k, v in e.parameter_rows()]),
        "</section>",
        _controls_html(e), exceptions_html(e), _access_html(e), _charts_html(e),
        '<section id="sign-off"><h2>Sign-off</h2>'
        "<p>To be completed by the reviewer of this evidence.</p>"
        '<table class="signoff"><tbody>'
        + "".join(f'<tr><th style="width:14em">{html_text(label)}</th><td{" class=big" if i == 2 else ""}></td></tr>'
                  for i, label in enumerate(SIGN_OFF))
        + "</tbody></table></section>",
        ('<p class="none">Results: ' + "; ".join(f"<b>{html_text(v)}</b> = {html_text(meaning)}"
                                                 for v, meaning in VERDICT_MEANINGS.items())
         + ". Files: <code>monitors/&lt;monitor&gt;.csv</code> (every evaluated resource), "
        "<code>populations/</code> (the rows the rules read, names beside gids), <code>users.csv</code> (the people), "
        "<code>teams.csv</code> (the teams), "
        "<code>manifest.json</code> (sha256 of every file). In the CSVs times are ISO 8601 in UTC "
        "(<code>2026-03-04T09:00:00Z</code>) and lists are joined by <code>;</code>.</p>"),
        "</body></html>",
    ]
    return "\n".join(parts)


def _controls_html(e: Evidence) -> str:
    out = ['<section id="controls"><h2>Controls</h2>']
    if missing := e.may_be_missing():
        out.append('<p class="notice">The connection\'s coverage is partial or unknown (see Scope): each verdict it '
                   "affects holds only for what the connection could see, as noted beneath it. It may miss: "
                   + html_text("; ".join(missing)) + ".</p>")
    for ref, title, monitor_ids in e.controls():
        rows = []
        for monitor_id in monitor_ids:
            monitor, (result, why), n = MONITORS[monitor_id], e.verdicts[monitor_id], e.counts(monitor_id)
            rows.append([f"<code>{html_text(monitor_id)}</code>", html_text(monitor.title), html_text(monitor.severity),
                         html_verdict(result, e.coverage_notes[monitor_id]), f'<span class="n">{n["alarm"]}</span>',
                         f'<span class="n">{n["unknown"]}</span>',
                         f'<span class="n">{sum(n[s] for s in JUDGED)}</span>', html_text(why)])
        out += [f"<h3>{html_text(ref)}: {html_text(title)}</h3>",
                html_table(["monitor", "checks that", "severity", "verdict", "alarms", "unknown", "judged", "why"], rows)]
    out.append("</section>")
    return "\n".join(out)


EXCEPTION_HEADERS = ["resource", "project", "people", "link", "reason"]


EXCEPTION_COLUMNS = ["name", "project", "people", "resource_url", "reason"]  # what they show, in order


def exception_cells(rows: pd.DataFrame, text, link) -> list[list[str]]:
    """Exception rows as the report's and the summary's failure tables show them (``EXCEPTION_HEADERS``),
    each value through ``text`` and the URL through ``link``."""
    return [[text(name), text(project), text(people), link(url), text(reason)]
            for name, project, people, url, reason in zip(*(rows[c] for c in EXCEPTION_COLUMNS), strict=True)]


def by_status(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Exception rows apart by status, in the order of ``EXCEPTION_STATUSES``, with a heading
    saying how many and what the status means; statuses without a row left out."""
    parts = [(status, rows[rows["status"] == status]) for status in EXCEPTION_STATUSES]
    return [(f"{status} ({len(part)}): {STATUS_MEANINGS[status]}", part) for status, part in parts if len(part)]


def exceptions_html(e: Evidence, title: str = "Exceptions",
                    intro: str = ("Every alarm, error and unknown of this run, by monitor, with the people involved "
                                  "and a link to Asana. An unknown row is not passed: its reason names what the data "
                                  "lacks."),
                    none: str = "No exception in this run.") -> str:
    """The exceptions section: per monitor and status, every row with its people and link."""
    def link(url) -> str:
        return html_link(url, e.link_label)

    out = [f'<section id="exceptions"><h2>{html_text(title)}</h2>', f"<p>{html_text(intro)}</p>"]
    for monitor_id in MONITORS:
        rows = e.exceptions(monitor_id)
        if rows.empty:
            continue
        out.append(f"<h3><code>{html_text(monitor_id)}</code>: {len(rows)} exception(s)</h3>")
        for heading, part in by_status(rows):
            out += [f"<h4>{html_text(heading)}</h4>",
                    html_table(EXCEPTION_HEADERS, exception_cells(part, html_text, link))]
    if len(out) == 2:
        out.append(f'<p class="none">{html_text(none)}</p>')
    out.append("</section>")
    return "\n".join(out)


def _access_html(e: Evidence) -> str:
    profile = f"profile ({DEMO_LINK_LABEL})" if e.demo else "profile"

    def people_rows(frame: pd.DataFrame) -> list[list[str]]:
        return [[html_text(w), html_text(n if isinstance(n, str) else f"user {g}"), html_text(m), html_text(guest),
                 html_link(url, profile)]
                for w, g, n, m, guest, url in zip(frame["workspace"], frame["user_gid"], frame["name"],
                                                  frame["email"], frame["guest"], frame["profile_url"], strict=True)]

    leavers = e.leavers()
    opened = e.reviewed_changes.get("membership_changes_open", pd.DataFrame())
    acknowledged = e.reviewed_changes.get("membership_changes_acknowledged", pd.DataFrame())

    def change_rows(frame: pd.DataFrame) -> list[list[str]]:
        if frame.empty:
            return []
        urls = frame["user_gid"].map(e.people().drop_duplicates("gid").set_index("gid")["profile_url"])
        return [[f"<code>{html_text(c)}</code>", html_text(r), html_link(u, profile)]
                for c, r, u in zip(frame["change_id"], frame["reason"], urls, strict=True)]

    return "\n".join([
        '<section id="access"><h2>Access review</h2>',
        "<h3>Workspace admins</h3>",
        html_table(["workspace", "name", "email", "guest", "link"], people_rows(e.members("is_admin")), "No admin."),
        "<h3>Guests</h3>",
        html_table(["workspace", "name", "email", "guest", "link"], people_rows(e.members("is_guest")), "No guest."),
        "<h3>Leavers with residual access</h3>",
        html_table(["status", "user", "link", "reason"],
               [[html_text(s), html_text(n), html_link(u, profile), html_text(r)]
                for s, n, u, r in zip(leavers["status"], leavers["name"], leavers["resource_url"], leavers["reason"],
                                      strict=True)], "No leaver holds access."),
        "<h3>Changes since the previous snapshot awaiting review</h3>",
        html_table(["change id", "change", "link"], change_rows(opened), "None open."),
        "<h3>Changes acknowledged</h3>",
        html_table(["change id", "change", "link"], change_rows(acknowledged), "None acknowledged."),
        campaigns_html(e),
        "</section>",
    ])


def campaigns_html(e: Evidence) -> str:
    """Each access review campaign with its decisions counted, and every item as the results judge
    it (a run's, or a period's at their worst)."""
    decided = e.populations.get("access_review_decisions")
    if decided is None or decided.empty:
        return '<h3>Access review campaigns</h3><p class="none">No campaign in the review project.</p>'
    kinds = [*dict.fromkeys(DECISIONS.values()), "unknown"]
    counts = decided.groupby(["campaign", "due_on"])["decision"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=kinds, fill_value=0)
    summary = [[html_text(c), html_text(d), *(html_text(int(n)) for n in row)]
               for (c, d), row in zip(counts.index, counts.to_numpy(), strict=True)]
    rows = e.results[e.results["monitor_id"].eq("access_review_completed")
                     & e.results["resource_type"].eq("access_review_item")]
    decision = lookup(rows["resource_gid"], decided.set_index(item_gid(decided))["decision"])
    items = [[html_text(s), html_text(d), html_text(r), html_link(u)]
             for s, d, r, u in zip(rows["status"], decision, rows["reason"], rows["resource_url"], strict=True)]
    return "\n".join([
        "<h3>Access review campaigns</h3>",
        html_table(["campaign", "due", *kinds], summary),
        html_table(["status", "decision", "item", "link"], items, "No item judged."),
    ])


def _charts_html(e: Evidence) -> str:
    trend = e.trend
    stages, sections = e.time_in_stage(), e.time_in_section()
    shown = sections.head(CHART_SECTIONS)
    more = (f" The {len(sections) - len(shown)} other section(s) are in <code>populations/ticket_section_history.csv"
            "</code>." if len(sections) > len(shown) else "")
    return "\n".join([
        '<section id="charts"><h2>Charts</h2>',
        f"<h3>Alarms per monitor across the {len(trend)} run(s) in the warehouse</h3>",
        ("<p>One chart per monitor, each on its own scale, over the same runs (date and time in UTC, and the run's "
         "id). A run in which the monitor judged no resource (NOT EVALUATED) is a gap marked n/e, not 0 alarms.</p>"),
        small_multiples(run_labels(trend.index), {m: [None if pd.isna(v) else int(v) for v in trend[m]]
                                                  for m in trend.columns}, "alarms"),
        "<h3>Time change tickets spent in each workflow stage</h3>",
        ("<p>Median hours per stay in a section of the stage, from the section history (current stays counted up "
         "to as_of); DONE is left out, since a finished ticket stays there.</p>"),
        bar_chart([f"{s} ({int(row.stays)} stays, {row.total_hours:.0f} h in all)" for s, row in stages.iterrows()],
                  stages["median_hours"].tolist(), "median hours per stay", [STAGE_COLOURS[s] for s in stages.index]),
        "<h3>Time change tickets spent in each section</h3>",
        f"<p>Median hours per stay, by project and section, coloured by the section's stage.{more}</p>",
        bar_chart([f"{row.label} ({int(row.stays)} stays)" for row in shown.itertuples()],
                  shown["median_hours"].tolist(), "median hours per stay", [STAGE_COLOURS[s] for s in shown["stage"]]),
        "</section>",
    ])


# -- SVG charts -----------------------------------------------------------------------------
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
STAGE_COLOURS = dict(zip(STAGES, COLOURS, strict=True))


def _ticks(top: float, whole: bool = False) -> list[float]:
    """Up to about five round steps from 0 to at least ``top`` (whole numbers only if ``whole``)."""
    top = max(top, 1.0)
    raw = top / 5
    magnitude = 10 ** np.floor(np.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1.0) if whole else step
    return [i * step for i in range(int(np.ceil(top / step)) + 1)]


def _number(value: float) -> str:
    return f"{value:g}"


def small_multiples(labels: list[str], series: Mapping[str, list[float | None]], unit: str) -> str:
    """One small line chart per series, stacked over the same labelled runs (a shared x axis),
    each on its own scale from 0: equal counts of two monitors no longer hide one line under
    another. A None value is no point: the line breaks there and "n/e" marks it."""
    width, left, right, top, panel, gap, bottom = 900, 220, 20, 10, 48, 28, 140
    plot_w, n = width - left - right, len(labels)
    height = top + max(1, len(series)) * (panel + gap) + bottom
    axis = top + max(1, len(series)) * (panel + gap) - gap

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    step = max(1, int(np.ceil(n / 12)))  # at most about twelve runs named under the axis
    named = [i for i in range(n) if i % step == 0 or i == n - 1]
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{html_text(unit)} per run, one chart per monitor" font-family="sans-serif" font-size="11">')]
    out += [f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{top}" y2="{axis}" stroke="#f0f0f0"/>' for i in named]
    for k, (name, values) in enumerate(series.items()):
        colour, y0 = COLOURS[k % len(COLOURS)], top + k * (panel + gap)
        base = y0 + panel
        peak = _ticks(max([v for v in values if v is not None] or [0]), whole=True)[-1]

        def y(v: float, base=base, peak=peak) -> float:
            return base - v / peak * panel

        out.append(f'<g class="monitor" data-monitor="{html_text(name)}">'
                   f'<text x="{left - 36}" y="{y0 + panel / 2 + 4:.0f}" text-anchor="end">{html_text(name)}</text>'
                   f'<text x="{left - 6}" y="{base + 4}" text-anchor="end">0</text>'
                   f'<text x="{left - 6}" y="{y0 + 4}" text-anchor="end">{_number(peak)}</text>'
                   f'<line x1="{left}" x2="{left + plot_w}" y1="{y0}" y2="{y0}" stroke="#e5e5e5"/>'
                   f'<line x1="{left}" x2="{left + plot_w}" y1="{base}" y2="{base}" stroke="#444"/>')
        for segment in _segments(values):
            if len(segment) > 1:
                points = " ".join(f"{x(i):.1f},{y(values[i]):.1f}" for i in segment)
                out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        for i, v in enumerate(values):
            if v is None:
                out.append(f'<text class="gap" x="{x(i):.1f}" y="{base - 4}" text-anchor="middle" fill="#888" '
                           f'font-size="9">n/e<title>{html_text(name)}, {html_text(labels[i])}: not evaluated</title></text>')
            else:
                out.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"><title>{html_text(name)}, '
                           f'{html_text(labels[i])}: {_number(v)} {html_text(unit)}</title></circle>')
        out.append("</g>")
    for i in named:
        out.append(f'<text class="run" x="{x(i):.1f}" y="{axis + 14}" text-anchor="end" '
                   f'transform="rotate(-35 {x(i):.1f} {axis + 14})">{html_text(labels[i])}</text>')
    out.append("</svg>")
    return "".join(out)


def _segments(values: list[float | None]) -> list[list[int]]:
    """The indexes of each run of consecutive values that are not None."""
    runs: list[list[int]] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def bar_chart(labels: list[str], values: list[float], unit: str, colours: list[str] | None = None) -> str:
    """Horizontal bars, one per label, with the value at the end of each; ``colours`` one per bar."""
    # The labels' column as wide as the longest (about 6.5 px a character at this size), the bars' 470 px.
    left = int(max(330, 14 + 6.5 * max(map(len, labels), default=0)))
    width, bar, gap, top = left + 530, 22, 10, 10
    height = top * 2 + max(1, len(labels)) * (bar + gap) + 20
    ticks = _ticks(max(values or [0]))
    plot_w = width - left - 60

    def w(v: float) -> float:
        return v / ticks[-1] * plot_w

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{html_text(unit)}" font-family="sans-serif" font-size="11">')]
    if not labels:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">No change ticket stay to show.</text>')
    colours = colours or [COLOURS[i % len(COLOURS)] for i in range(len(labels))]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        yy = top + i * (bar + gap)
        out.append(f'<text x="{left - 8}" y="{yy + bar / 2 + 4}" text-anchor="end">{html_text(label)}</text>'
                   f'<rect x="{left}" y="{yy}" width="{w(value):.1f}" height="{bar}" fill="{colours[i]}">'
                   f'<title>{html_text(label)}: {value:.1f} {html_text(unit)}</title></rect>'
                   f'<text x="{left + w(value) + 6:.1f}" y="{yy + bar / 2 + 4}">{value:.1f} h</text>')
    axis = top + max(1, len(labels)) * (bar + gap)
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{axis}" y2="{axis}" stroke="#444"/>')
    out += [f'<text x="{left + w(t):.1f}" y="{axis + 14}" text-anchor="middle">{_number(t)}</text>' for t in ticks]
    out.append("</svg>")
    return "".join(out)
