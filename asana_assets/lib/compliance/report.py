"""What an auditor reads first: the facts of one run's evidence (``Evidence``) and the report
``report.html`` built from them.

The report is one self-contained file: inline CSS, charts drawn here as inline SVG, no script,
no stylesheet, font or image from elsewhere, so it opens offline and archives as it is. Every
value that comes from Asana is HTML-escaped; links are kept only when they are http(s) URLs.
``summary.md`` (``evidence.summary``) shows the same facts in Markdown.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

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
    verdict,
)
from asana_assets.lib.compliance.rule_output import COLUMNS, NAMED

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
# The order states are read in; CLOSED is left out of the time-in-state chart (a closed ticket
# stays closed, so its time there only grows).
STATES = ("OPEN", "IN_PROGRESS", "ON_HOLD")
SIGN_OFF = ("Reviewer", "Date", "Management response")


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


def _time(ts) -> str:
    return "unknown" if ts is None or pd.isna(ts) else pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


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
            facts.append(f"{len(tickets)} ticket(s), created from {_time(first)}")
        snapshots = self.populations.get("user_access_history")
        if snapshots is not None and len(snapshots):
            times = snapshots["snapshot_at"].drop_duplicates()
            starts.append(times.min())
            facts.append(f"{len(times)} access snapshot(s), from {_time(times.min())} to {_time(times.max())}")
        runs = self.trend.index
        if len(runs):
            facts.append(f"{len(runs)} monitor run(s) in the warehouse, from {_time(runs.min()[0])} "
                         f"to {_time(runs.max()[0])}")
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
        rows += [
            ("Period covered", f"{_time(start) if start is not None else 'no dated record'} to {_time(self.as_of)}"
             + (f" ({'; '.join(facts)})" if facts else "")),
            ("As of", f"{self.as_of.isoformat()} ("
             + ("set by the as_of parameter)" if self.as_of_configured else "the run's start; as_of not set)")),
            ("Run", self.run_id),
        ]
        return rows

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

    def time_in_state(self) -> pd.DataFrame:
        """Per state (``STATES``): the change tickets' stays there (current ones up to as_of):
        how many, and their median and total hours."""
        history = self.populations.get("ticket_status_history")
        changes = self.populations.get("change_tickets")
        if history is None or changes is None:
            return pd.DataFrame(columns=["stays", "median_hours", "total_hours"])
        h = history[history["ticket_gid"].isin(changes["gid"]) & history["state"].isin(STATES)]
        left = pd.to_datetime(h["left_at"], utc=True).fillna(self.as_of)
        hours = ((left - pd.to_datetime(h["entered_at"], utc=True)).dt.total_seconds() / 3600).clip(lower=0)
        stays = pd.DataFrame({"state": h["state"], "hours": hours})
        out = stays.groupby("state")["hours"].agg(stays="size", median_hours="median", total_hours="sum")
        return out.reindex([s for s in STATES if s in out.index])

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
def _text(value) -> str:
    """A value as escaped HTML text; null is empty."""
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return ""
    return html.escape(str(value), quote=True)


def _link(url, label=None) -> str:
    """A link when ``url`` is an http(s) URL, else its text."""
    text = _text(label if label is not None and not pd.isna(label) else url)
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
        return f'<a href="{_text(url)}">{text or _text(url)}</a>'
    return text


def md_text(value) -> str:
    """Text safe inside Markdown, a table cell too: HTML, link brackets and pipes escaped (Asana's
    text is data), on one line; null is empty."""
    text = "" if value is None or pd.isna(value) else html.escape(str(value), quote=False)
    return text.replace("|", "\\|").replace("[", "\\[").replace("]", "\\]").replace("\n", " ").replace("\r", " ")


def md_link(url) -> str:
    """A Markdown link to an http(s) URL (one that needs no escaping), else nothing."""
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")) and not any(c in url for c in " <>()"):
        return f"[open in Asana]({url})"
    return ""


def _table(headers: list[str], rows: list[list[str]], empty: str = "None.") -> str:
    """A table of cells already rendered as HTML."""
    if not rows:
        return f'<p class="none">{_text(empty)}</p>'
    head = "".join(f"<th>{_text(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(result: str) -> str:
    return f'<span class="verdict {result.lower().replace(" ", "-")}">{_text(result)}</span>'


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
@media print{a{color:inherit}h2{page-break-after:avoid}table{page-break-inside:auto}}
"""


def render_html(e: Evidence) -> str:
    """The run's evidence report as one self-contained HTML page."""
    title = f"Asana compliance evidence: run {e.run_id}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_text(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_text(title)}</h1>",
        '<section id="scope"><h2>Scope</h2>',
        _table(["", ""], [[f"<b>{_text(k)}</b>", _text(v)] for k, v in e.scope()]),
        "<h3>Parameters</h3>",
        _table(["parameter", "value"], [[f"<code>{_text(k)}</code>", _text(v)] for k, v in e.parameter_rows()]),
        "</section>",
        _controls_html(e), _exceptions_html(e), _access_html(e), _charts_html(e),
        '<section id="sign-off"><h2>Sign-off</h2>'
        "<p>To be completed by the reviewer of this evidence.</p>"
        '<table class="signoff"><tbody>'
        + "".join(f'<tr><th style="width:14em">{_text(label)}</th><td{" class=big" if i == 2 else ""}></td></tr>'
                  for i, label in enumerate(SIGN_OFF))
        + "</tbody></table></section>",
        ('<p class="none">Results: ' + "; ".join(f"<b>{_text(v)}</b> = {_text(meaning)}"
                                                 for v, meaning in VERDICT_MEANINGS.items())
         + ". Files: <code>monitors/&lt;monitor&gt;.csv</code> (every evaluated resource), "
        "<code>populations/</code> (the rows the rules read), <code>users.csv</code> (the people), "
        "<code>manifest.json</code> (sha256 of every file). In the CSVs times are ISO 8601 in UTC "
        "(<code>2026-03-04T09:00:00Z</code>) and lists are joined by <code>;</code>.</p>"),
        "</body></html>",
    ]
    return "\n".join(parts)


def _controls_html(e: Evidence) -> str:
    out = ['<section id="controls"><h2>Controls</h2>']
    for ref, title, monitor_ids in e.controls():
        rows = []
        for monitor_id in monitor_ids:
            monitor, (result, why), n = MONITORS[monitor_id], e.verdicts[monitor_id], e.counts(monitor_id)
            rows.append([f"<code>{_text(monitor_id)}</code>", _text(monitor.title), _text(monitor.severity),
                         _verdict(result), f'<span class="n">{n["alarm"]}</span>',
                         f'<span class="n">{n["unknown"]}</span>',
                         f'<span class="n">{sum(n[s] for s in JUDGED)}</span>', _text(why)])
        out += [f"<h3>{_text(ref)}: {_text(title)}</h3>",
                _table(["monitor", "checks that", "severity", "verdict", "alarms", "unknown", "judged", "why"], rows)]
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


def _exceptions_html(e: Evidence) -> str:
    out = ['<section id="exceptions"><h2>Exceptions</h2>',
           ("<p>Every alarm, error and unknown of this run, by monitor, with the people involved and a link to "
            "Asana. An unknown row is not passed: its reason names what the data lacks.</p>")]
    for monitor_id in MONITORS:
        rows = e.exceptions(monitor_id)
        if rows.empty:
            continue
        out.append(f"<h3><code>{_text(monitor_id)}</code>: {len(rows)} exception(s)</h3>")
        for heading, part in by_status(rows):
            out += [f"<h4>{_text(heading)}</h4>",
                    _table(EXCEPTION_HEADERS, exception_cells(part, _text, lambda url: _link(url, "open in Asana")))]
    if len(out) == 2:
        out.append('<p class="none">No exception in this run.</p>')
    out.append("</section>")
    return "\n".join(out)


def _access_html(e: Evidence) -> str:
    def people_rows(frame: pd.DataFrame) -> list[list[str]]:
        return [[_text(w), _text(n if isinstance(n, str) else f"user {g}"), _text(m), _text(guest),
                 _link(url, "profile")]
                for w, g, n, m, guest, url in zip(frame["workspace"], frame["user_gid"], frame["name"],
                                                  frame["email"], frame["guest"], frame["profile_url"], strict=True)]

    leavers = e.leavers()
    opened = e.reviewed_changes.get("membership_changes_open", pd.DataFrame())
    acknowledged = e.reviewed_changes.get("membership_changes_acknowledged", pd.DataFrame())

    def change_rows(frame: pd.DataFrame) -> list[list[str]]:
        if frame.empty:
            return []
        urls = frame["user_gid"].map(e.people().drop_duplicates("gid").set_index("gid")["profile_url"])
        return [[f"<code>{_text(c)}</code>", _text(r), _link(u, "profile")]
                for c, r, u in zip(frame["change_id"], frame["reason"], urls, strict=True)]

    return "\n".join([
        '<section id="access"><h2>Access review</h2>',
        "<h3>Workspace admins</h3>",
        _table(["workspace", "name", "email", "guest", "link"], people_rows(e.members("is_admin")), "No admin."),
        "<h3>Guests</h3>",
        _table(["workspace", "name", "email", "guest", "link"], people_rows(e.members("is_guest")), "No guest."),
        "<h3>Leavers with residual access</h3>",
        _table(["status", "user", "link", "reason"],
               [[_text(s), _text(n), _link(u, "profile"), _text(r)]
                for s, n, u, r in zip(leavers["status"], leavers["name"], leavers["resource_url"], leavers["reason"],
                                      strict=True)], "No leaver holds access."),
        "<h3>Changes since the previous snapshot awaiting review</h3>",
        _table(["change id", "change", "link"], change_rows(opened), "None open."),
        "<h3>Changes acknowledged</h3>",
        _table(["change id", "change", "link"], change_rows(acknowledged), "None acknowledged."),
        "</section>",
    ])


def _charts_html(e: Evidence) -> str:
    trend = e.trend
    labels = [_time(at) for at, _ in trend.index]
    states = e.time_in_state()
    return "\n".join([
        '<section id="charts"><h2>Charts</h2>',
        f"<h3>Alarms per monitor across the {len(trend)} run(s) in the warehouse</h3>",
        "<p>A run in which a monitor judged no resource (NOT EVALUATED) is a gap in its line, not 0 alarms.</p>",
        line_chart(labels, {m: [None if pd.isna(v) else int(v) for v in trend[m]] for m in trend.columns}, "alarms"),
        "<h3>Time change tickets spent in each state</h3>",
        "<p>Median hours per stay (current stays counted up to as_of); CLOSED is left out.</p>",
        bar_chart([f"{s} ({int(row.stays)} stays, {row.total_hours:.0f} h in all)" for s, row in states.iterrows()],
                  states["median_hours"].tolist(), "median hours per stay"),
        "</section>",
    ])


# -- SVG charts -----------------------------------------------------------------------------
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


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


def line_chart(labels: list[str], series: Mapping[str, list[float | None]], unit: str) -> str:
    """One line per series over the labelled points, with markers, axes and a legend. A None
    value is no point: the line breaks there (a polyline per run of points)."""
    width, height, left, right, top, bottom = 900, 340, 130, 230, 20, 80
    ticks = _ticks(max([v for values in series.values() for v in values if v is not None] or [0]), whole=True)
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(labels)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y(v: float) -> float:
        return top + plot_h - v / ticks[-1] * plot_h

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{_text(unit)} per run" font-family="sans-serif" font-size="11">')]
    for t in ticks:
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_number(t)}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#444"/>'
               f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#444"/>')
    step = max(1, int(np.ceil(n / 8)))  # at most about eight dates under the axis
    for i, label in enumerate(labels):
        if i % step == 0 or i == n - 1:
            out.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 14}" text-anchor="end" '
                       f'transform="rotate(-30 {x(i):.1f} {top + plot_h + 14})">{_text(label)}</text>')
    for k, (name, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        for segment in _segments(values):
            if len(segment) > 1:
                points = " ".join(f"{x(i):.1f},{y(values[i]):.1f}" for i in segment)
                out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        out += [f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"><title>{_text(name)}: '
                f'{_number(v)} {_text(unit)}</title></circle>' for i, v in enumerate(values) if v is not None]
        ly = top + 14 + k * 18
        out.append(f'<rect x="{width - right + 15}" y="{ly - 9}" width="12" height="12" fill="{colour}"/>'
                   f'<text x="{width - right + 32}" y="{ly + 1}">{_text(name)}</text>')
    middle = f"{left - 40} {top + plot_h / 2:.0f}"
    out.append(f'<text x="{left - 40}" y="{top + plot_h / 2:.0f}" transform="rotate(-90 {middle})" '
               f'text-anchor="middle">{_text(unit)}</text></svg>')
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


def bar_chart(labels: list[str], values: list[float], unit: str) -> str:
    """Horizontal bars, one per label, with the value at the end of each."""
    width, left, bar, gap, top = 860, 330, 22, 10, 10
    height = top * 2 + max(1, len(labels)) * (bar + gap) + 20
    ticks = _ticks(max(values or [0]))
    plot_w = width - left - 60

    def w(v: float) -> float:
        return v / ticks[-1] * plot_w

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{_text(unit)}" font-family="sans-serif" font-size="11">')]
    if not labels:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">No change ticket stay to show.</text>')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        yy = top + i * (bar + gap)
        out.append(f'<text x="{left - 8}" y="{yy + bar / 2 + 4}" text-anchor="end">{_text(label)}</text>'
                   f'<rect x="{left}" y="{yy}" width="{w(value):.1f}" height="{bar}" fill="{COLOURS[i % 8]}">'
                   f'<title>{_text(label)}: {value:.1f} {_text(unit)}</title></rect>'
                   f'<text x="{left + w(value) + 6:.1f}" y="{yy + bar / 2 + 4}">{value:.1f} h</text>')
    axis = top + max(1, len(labels)) * (bar + gap)
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{axis}" y2="{axis}" stroke="#444"/>')
    out += [f'<text x="{left + w(t):.1f}" y="{axis + 14}" text-anchor="middle">{_number(t)}</text>' for t in ticks]
    out.append("</svg>")
    return "".join(out)
