"""The period report's folder, ``evidence/period_<from>_<to>/``, read from the warehouse.

``report.html`` (self-contained, as the run's report: scope and coverage, each control's
verdict over the period, the populations with what the monitors said of each item, the
exceptions, the sample with its seed, one page per sampled change, sign-off), ``report.pdf``
printed from it by Chromium (headless) where it is installed, the populations and the sample as
CSV, and ``manifest.json`` with the sha256 of every file. Without Chromium the folder is
written all the same and the manifest says how to get the PDF.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.lib.compliance.evidence import REPORT, csv_file, gid_names, sha256_of, with_names
from asana_assets.lib.compliance.monitors import MONITORS
from asana_assets.lib.compliance.period import (
    DEFAULT_SEED,
    NOT_JUDGED,
    QUALIFIED,
    QUALIFIED_MEANING,
    SAMPLE_SIZES,
    Kept,
    Period,
    access_changes_in_period,
    changes_in_period,
    draw,
    evidence_gaps,
    format_sample_sizes,
    leavers_in_period,
    period_verdicts,
    sample_size,
    worst_rows,
)
from asana_assets.lib.compliance.report import (
    SIGN_OFF,
    VERDICT_MEANINGS,
    Evidence,
    RunCoverage,
    campaigns_html,
    exceptions_html,
    html_link,
    html_table,
    html_text,
    html_verdict,
    page_top,
    utc_time,
)
from asana_assets.lib.compliance.tickets import lookup

PDF = "report.pdf"
PDF_TIMEOUT = 180  # seconds Chromium may take to print
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
NO_BROWSER = ("report.pdf not written: no Chromium found; install it (Debian: apt-get install chromium) and run the "
              "command again, or print report.html to PDF from a browser")
TABLES = ("tickets", "tasks", "task_memberships", "ticket_events", "workflow_states", "approvals",
          "ticket_section_history", "membership_changes", "workspace_memberships", "users", "workspaces",
          "projects", "teams")
# The populations, the monitors that judge their items and the id the sample draws.
POPULATIONS = {"changes": "gid", "access_changes": "change_id", "leavers": "leaver_id"}
PAGE_STYLE = """
.qualified{background:#fde2c8;color:#6b3000}
.change{page-break-before:always;break-before:page}
@media print{body{max-width:none;margin:0}}
"""


class Warehouse(Protocol):
    """What the report reads of a warehouse (``storage.warehouse.Warehouse``, which imports the
    compliance layer: named here, not imported)."""

    root: Path

    def exists(self, table: str) -> bool: ...
    def read(self, table: str, columns: list[str] | None = None) -> pa.Table: ...
    def read_history(self, table: str, columns: list[str] | None = None,
                     filters: pc.Expression | None = None) -> pa.Table: ...
    def count_history(self, table: str, keys: list[str]) -> pa.Table: ...


@dataclass
class PeriodEvidence:
    """Everything the period report shows."""

    period: Period
    connection: str
    generated_at: pd.Timestamp
    seed: int
    sizes: tuple[tuple[int | None, int], ...]
    evidence: Evidence  # scope and coverage, as the run's report states them, over the period's rows
    kept: Kept
    runs: pd.Series  # evaluated_at per run_id, the period's runs
    run_coverage: dict[str, bool | None]  # per run of the period: its coverage complete (None: not recorded)
    gaps: dict[str, list[str]]
    verdicts: dict[str, tuple[str, str]]
    changes: pd.DataFrame
    changes_start_unknown: pd.DataFrame
    access_changes: pd.DataFrame
    leavers: pd.DataFrame
    samples: dict[str, list[str]]
    t: Mapping[str, pd.DataFrame]
    names: Mapping[str, pd.Series]


def collect(warehouse: Warehouse, period: Period, connection: str, seed: int = DEFAULT_SEED,
            sizes: Sequence[tuple[int | None, int]] = SAMPLE_SIZES, now: pd.Timestamp | None = None) -> PeriodEvidence:
    """Read what the period needs from the warehouse (every snapshot and result of the period's
    runs, the audit log kept) and apply the period's rules."""
    missing = [name for name in TABLES if not warehouse.exists(name)]
    if missing:
        raise ValueError(f"the warehouse at {warehouse.root} has no {', '.join(missing)} table: sync the connection "
                         "first (asana-connections sync)")
    now = now or pd.Timestamp.now(tz="UTC")
    t = {name: warehouse.read(name).to_pandas() for name in TABLES}
    t["user_access"] = warehouse.read_history("user_access").to_pandas()
    audit = warehouse.read("audit_log_events").to_pandas() if warehouse.exists("audit_log_events") else None
    if audit is not None:
        t["audit_log_events"] = audit
    runs = warehouse.count_history("monitor_results", ["run_id", "evaluated_at"]).to_pandas()
    every_run = runs.set_index("run_id")["evaluated_at"]
    when = pc.field("evaluated_at")
    results = warehouse.read_history("monitor_results", filters=(when >= period.start) & (when < period.end))
    results = results.to_pandas()
    oldest = audit["created_at"].min() if audit is not None and len(audit) else None
    kept = Kept(every_run, None if oldest is None or pd.isna(oldest) else pd.Timestamp(oldest))
    gaps = evidence_gaps(period, kept, now)
    worst = worst_rows(results)
    tickets = t["tickets"]
    names = gid_names({"users": t["users"], "workspaces": t["workspaces"], "teams": t["teams"],
                       "projects": t["projects"], "tickets": tickets[["gid", "name"]],
                       "workflow_states": t["workflow_states"]})
    changes, unknown_start = changes_in_period(t, period, worst)
    access = access_changes_in_period(t["membership_changes"], period, worst)
    leavers = leavers_in_period(t, period, worst)
    in_period = every_run[period.contains(every_run)].sort_values()
    manifests = _manifests(warehouse.root, list(in_period.index))
    latest = manifests.get(in_period.index[-1]) if len(in_period) else None
    parameters = {"connection": connection, **((latest or {}).get("parameters") or {})}
    # The campaigns' decisions as the latest sync read them (the table is current state).
    decisions = ({"access_review_decisions": warehouse.read("access_review_decisions").to_pandas()}
                 if warehouse.exists("access_review_decisions") else {})
    evidence = Evidence(f"{period.first} to {period.last}", period.end, t["workspaces"]["gid"].tolist(), parameters,
                        _named(worst, names), {"workspaces": t["workspaces"], "projects": t["projects"], **decisions},
                        connection=connection, coverage=_coverage((latest or {}).get("coverage")))
    sizes = tuple(sizes)
    frames = {"changes": changes, "access_changes": access, "leavers": leavers}
    return PeriodEvidence(
        period, connection, now, seed, sizes, evidence, kept, in_period,
        {run: (m.get("coverage") or {}).get("complete") for run, m in manifests.items()}, gaps,
        period_verdicts(results, gaps), changes, unknown_start, access, leavers,
        {name: draw(frames[name][column], seed, sizes) for name, column in POPULATIONS.items()}, t, names)


def _manifests(root: Path, runs: list[str]) -> dict[str, dict[str, Any]]:
    """The manifests of the runs' evidence packs, by run id (a run without a readable pack left out)."""
    out = {}
    for run in runs:
        for path in (root / "evidence").glob(f"*_{run}/manifest.json"):
            try:
                out[run] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
    return out


def _coverage(facts: Mapping[str, Any] | None) -> RunCoverage | None:
    """A run's coverage as its pack's manifest records it (``Evidence.coverage_facts``)."""
    if not facts:
        return None
    refused = pd.DataFrame(facts.get("listings_refused") or [], columns=["project_gid", "listing", "error"])
    return RunCoverage(facts["account_kind"], facts["account_kind_basis"], facts["audit_log"],
                       int(facts["private_projects_read"]), refused)


def _named(worst: pd.DataFrame, names: Mapping[str, pd.Series]) -> pd.DataFrame:
    """Results rows with the name of what each judged (results read back keep no names)."""
    gid = worst["resource_gid"].astype(object)
    first = gid.str.split("/").str[0]
    kind = worst["resource_type"].map({"ticket": "task", "ticket_in_category": "task", "user": "user",
                                       "user_in_workspace": "user", "project": "project"})
    name = pd.Series(None, index=worst.index, dtype=object)
    for k in kind.dropna().unique():
        mask = kind.eq(k)
        name[mask] = lookup(first[mask], names[k]).astype(object)
    return worst.assign(name=name)


# -- writing -------------------------------------------------------------------------------------
def write_period_report(root: Path, p: PeriodEvidence, browser: str | None = None) -> tuple[Path, str | None]:
    """Write the folder; returns it and why report.pdf is missing (None: written). ``browser``:
    the Chromium to print with (default: the first of ``BROWSERS`` on the PATH)."""
    folder = Path(root) / "evidence" / p.period.name
    if folder.exists():  # a report of the same period is rewritten whole, never mixed with an older one
        shutil.rmtree(folder)
    (folder / "populations").mkdir(parents=True)
    controls = pd.DataFrame([(m, MONITORS[m].title, ", ".join(MONITORS[m].control_refs), v, why)
                             for m, (v, why) in p.verdicts.items()],
                            columns=["monitor_id", "title", "controls", "verdict", "why"])
    sample = pd.DataFrame([(name, i + 1, item) for name, items in p.samples.items() for i, item in enumerate(items)],
                          columns=["population", "position", "id"])
    tables = {
        "controls.csv": controls, "exceptions.csv": p.evidence.exceptions(), "sample.csv": sample,
        "populations/changes.csv": p.changes, "populations/changes_start_unknown.csv": p.changes_start_unknown,
        "populations/access_changes.csv": p.access_changes, "populations/leavers.csv": p.leavers,
    }
    digests = {path: csv_file(with_names(frame, p.names), folder / path)[1] for path, frame in tables.items()}
    (folder / REPORT).write_text(render_period_html(p), encoding="utf-8")
    why_no_pdf = print_pdf(folder / REPORT, folder / PDF, browser)
    files = sorted(str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file())
    manifest = {
        "period": {"from": p.period.first.isoformat(), "to": p.period.last.isoformat(),
                   "start": p.period.start.isoformat(), "end_exclusive": p.period.end.isoformat()},
        "generated_at": p.generated_at.isoformat(),
        "connection": p.connection,
        "scope": dict(scope_rows(p)),
        "coverage": p.evidence.coverage_facts(),
        "evidence_kept": {
            "runs_kept": len(p.kept.runs),
            "first_run_kept": None if p.kept.runs.empty else pd.Timestamp(p.kept.runs.min()).isoformat(),
            "runs_in_period": {run: pd.Timestamp(at).isoformat() for run, at in p.runs.items()},
            "oldest_audit_event": None if p.kept.oldest_audit_event is None else p.kept.oldest_audit_event.isoformat(),
            "gaps": {m: g for m, g in p.gaps.items() if g},
        },
        "monitors": {m: {"verdict": v, "why": why, "control_refs": list(MONITORS[m].control_refs)}
                     for m, (v, why) in p.verdicts.items()},
        "verdict_meanings": {**VERDICT_MEANINGS, QUALIFIED: QUALIFIED_MEANING},
        "populations": {name: len(frame) for name, frame in (("changes", p.changes), ("access_changes",
                        p.access_changes), ("leavers", p.leavers), ("changes_start_unknown", p.changes_start_unknown))},
        "sample": {"seed": p.seed, "sizes": format_sample_sizes(p.sizes), "method": SAMPLE_METHOD,
                   "items": p.samples},
        "report": {"html": REPORT, "pdf": None if why_no_pdf else PDF, "note": why_no_pdf},
        "files": {name: digests.get(name) or sha256_of(folder / name) for name in files},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return folder, why_no_pdf


def print_pdf(html: Path, pdf: Path, browser: str | None = None) -> str | None:
    """Print ``html`` to ``pdf`` with headless Chromium (no header or footer, which would print
    the file's path); returns why it was not printed (None: printed). Never raises."""
    executable = browser or next(filter(None, map(shutil.which, BROWSERS)), None)
    if executable is None or not Path(executable).exists() and shutil.which(executable) is None:
        return NO_BROWSER
    with tempfile.TemporaryDirectory() as profile:
        try:
            done = subprocess.run(
                [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                 f"--user-data-dir={profile}", f"--print-to-pdf={pdf}", html.resolve().as_uri()],
                capture_output=True, text=True, timeout=PDF_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"report.pdf not written: Chromium failed ({type(error).__name__}); print report.html to PDF instead"
    if done.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        pdf.unlink(missing_ok=True)
        return (f"report.pdf not written: Chromium exited with {done.returncode}; print report.html to PDF "
                "instead")
    return None


SAMPLE_METHOD = ("numpy.random.default_rng(seed).choice(N, n, replace=False) over the population's distinct ids "
                 "sorted as text (N of them), n from the sample sizes; the picks in that order")


# -- HTML ----------------------------------------------------------------------------------------
def scope_rows(p: PeriodEvidence) -> list[tuple[str, str]]:
    """(label, value) rows saying what the period report covers and what it may lack."""
    e, kept = p.evidence, p.kept
    rows = [row for row in e.scope() if row[0] in ("Connection", "Workspaces", "Source")]
    partial_runs = sum(1 for run in p.runs.index if p.run_coverage.get(run) is not True)  # no pack: not recorded
    rows += [
        ("Period", (f"{p.period.first} to {p.period.last} (from {utc_time(p.period.start)} up to "
                   f"{utc_time(p.period.end)}, excluded)")),
        ("Monitor runs in the period", f"{len(p.runs)}" + (f", from {utc_time(p.runs.min())} to {utc_time(p.runs.max())}"
                                                           if len(p.runs) else ": none, so no control is evaluated")),
        ("Evidence kept", f"{len(kept.runs)} monitor run(s) kept"
         + (f", the first {utc_time(kept.runs.min())}" if len(kept.runs) else "")
         + "; oldest audit log event kept: "
         + (utc_time(kept.oldest_audit_event) if kept.oldest_audit_event is not None else "none")),
        ("Coverage over the period's runs", "as the latest run of the period recorded it, below"
         + (f"; {partial_runs} of {len(p.runs)} run(s) recorded a partial or no coverage" if partial_runs else "")),
        *e.coverage_rows(),
        ("What may be missing", "; ".join(_missing(p)) or "nothing known"),
        ("Sample", f"seed {p.seed}; sizes by population (largest population: size) {format_sample_sizes(p.sizes)}"),
        ("Generated", utc_time(p.generated_at)),
    ]
    return rows


def _missing(p: PeriodEvidence) -> list[str]:
    gaps = list(dict.fromkeys(g for gs in p.gaps.values() for g in gs))
    return gaps + [m for m in p.evidence.may_be_missing() if m]


def _window_note(row) -> str:
    """What a time known only as a window says of the period it may fall outside of."""
    reach = [side for side, flag in (("before", row.may_predate), ("after", row.may_postdate)) if flag]
    return f" (may be {' or '.join(reach)} the period)" if reach else ""


def render_period_html(p: PeriodEvidence) -> str:
    e = p.evidence
    sampled = p.changes[p.changes["gid"].isin(p.samples["changes"])]
    parts = [
        *page_top(f"Asana compliance evidence: period {p.period.first} to {p.period.last}", e, scope_rows(p),
                  "Scope and coverage", PAGE_STYLE),
        "</section>",
        _controls(p), _populations(p),
        f'<section id="campaigns"><h2>Access reviews</h2>{campaigns_html(e)}</section>',
        _exceptions(p), _sample(p),
        *[_change_page(p, row) for row in sampled.itertuples(index=False)],
        '<section id="sign-off" class="change"><h2>Sign-off</h2><p>To be completed by the reviewer of this evidence.</p>'
        '<table class="signoff"><tbody>'
        + "".join(f'<tr><th style="width:14em">{html_text(label)}</th><td{" class=big" if i == 2 else ""}></td></tr>'
                  for i, label in enumerate(SIGN_OFF)) + "</tbody></table>",
        '<p class="none">Results: ' + "; ".join(f"<b>{html_text(v)}</b> = {html_text(m)}" for v, m in
                                                {**VERDICT_MEANINGS, QUALIFIED: QUALIFIED_MEANING}.items())
        + ". Files: <code>controls.csv</code>, <code>exceptions.csv</code>, <code>populations/</code> (every item "
        "with what the monitors said of it), <code>sample.csv</code>, <code>manifest.json</code> (sha256 of every "
        "file).</p></section>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _controls(p: PeriodEvidence) -> str:
    e = p.evidence
    out = ['<section id="controls"><h2>Controls over the period</h2>',
           ("<p>Each monitor's verdict from every run evaluated in the period: a resource that alarmed in any run is "
           "an exception of the period; an unknown stays unknown. QUALIFIED: no alarm, but the evidence kept does "
           "not cover the whole period.</p>")]
    for ref, title, monitor_ids in e.controls():
        rows = [[f"<code>{html_text(m)}</code>", html_text(MONITORS[m].title),
                 html_verdict(p.verdicts[m][0], e.coverage_notes[m]), html_text(p.verdicts[m][1])] for m in monitor_ids]
        out += [f"<h3>{html_text(ref)}: {html_text(title)}</h3>", html_table(["monitor", "checks that", "verdict", "why"], rows)]
    out.append("</section>")
    return "\n".join(out)


def _person(p: PeriodEvidence, gid) -> str:
    if gid is None or pd.isna(gid):
        return ""
    return html_text(p.names["user"].get(gid, f"user {gid}"))


def _status(status, reason) -> str:
    return f"<b>{html_text(status)}</b>" + (f": {html_text(reason)}" if isinstance(reason, str) else "")


def _populations(p: PeriodEvidence) -> str:
    link = p.evidence.link_label
    changes = [[html_link(r.url, r.name if isinstance(r.name, str) else r.gid), html_text(r.ticket_type),
                html_text(utc_time(r.implementation_start)), html_text(utc_time(r.approved_at) if pd.notna(r.approved_at) else ""),
                _person(p, r.approver_gid), _status(r.changes_approved_status, r.changes_approved_reason)]
               for r in p.changes.itertuples(index=False)]
    unknown = [[html_link(r.url, r.name if isinstance(r.name, str) else r.gid),
                _status(r.changes_approved_status, r.changes_approved_reason)]
               for r in p.changes_start_unknown.itertuples(index=False)]
    access = [[f"<code>{html_text(r.change_id)}</code>", _person(p, r.user_gid), html_text(r.change_type),
               html_text(f"{r.resource_type} {r.resource_gid}"), html_text(utc_time(r.changed_at) + _window_note(r)), html_text(r.evidence),
               _status(r.membership_changes_status, r.membership_changes_reason)]
              for r in p.access_changes.itertuples(index=False)]
    leavers = [[_person(p, r.user_gid), html_text(p.names["workspace"].get(r.workspace_gid, r.workspace_gid)),
                html_text(utc_time(r.latest) + _window_note(r)), html_text(r.evidence),
                _status(r.offboarding_access_removed_status, r.offboarding_access_removed_reason),
                _status(r.offboarding_ticket_status, r.offboarding_ticket_reason)]
               for r in p.leavers.itertuples(index=False)]

    def heading(name: str, what: str, frame: pd.DataFrame) -> str:
        n = len(frame)
        return (f'<h3 id="population-{name}">{html_text(what)}: {n}</h3><p>Sample: {sample_size(n, p.sizes)} of {n}'
                + (" (an empty population: NOT EVALUATED, nothing to test)" if not n else "") + ".</p>")

    return "\n".join([
        '<section id="populations"><h2>Populations of the period</h2>',
        (f"<p>Status: the worst a monitor said of the item over the period's runs; <b>{NOT_JUDGED}</b>: no run of "
        f"the period judged it. Links: {html_text(link)}.</p>"),
        heading("changes", "Changes whose implementation started in the period (SOC 2 CC8.1)", p.changes),
        html_table(["ticket", "type", "implementation start", "approved at", "approver", "changes_approved"], changes,
               "No change started implementation in the period."),
        *([("<h4>Changes whose implementation start the data cannot tell (judged unknown): they may belong to the "
            "period</h4>"), html_table(["ticket", "changes_approved"], unknown)] if unknown else []),
        heading("access_changes", "Access changes in the period (SOC 2 CC6.2, CC6.3)", p.access_changes),
        html_table(["change id", "user", "change", "resource", "when", "evidence", "membership_changes"], access,
               "No access change in the period."),
        heading("leavers", "Leavers: deactivations in the period (SOC 2 CC6.2, ISO 27001 5.18)", p.leavers),
        html_table(["user", "workspace", "deactivated by", "evidence", "offboarding_access_removed", "offboarding_ticket"],
               leavers, "No deactivation in the period."),
        "</section>",
    ])


def _exceptions(p: PeriodEvidence) -> str:
    return exceptions_html(p.evidence, "Exceptions of the period",
                           "Every resource that alarmed, errored or was unknown in any run of the period, at its worst.",
                           "No exception in the period.")


def _sample(p: PeriodEvidence) -> str:
    rows = [[html_text(name), html_text(len(frame)), html_text(len(p.samples[name])), html_text(", ".join(p.samples[name]) or "none")]
            for name, frame in (("changes", p.changes), ("access_changes", p.access_changes), ("leavers", p.leavers))]
    return "\n".join([
        '<section id="sample"><h2>Sample</h2>',
        (f'<p>Seed <b id="seed">{p.seed}</b>. Sizes by population (largest population: sample size): '
        f"<code>{html_text(format_sample_sizes(p.sizes))}</code>. Method: {html_text(SAMPLE_METHOD)}. The same seed and "
        "population draw the same sample. Each sampled change has a page of its own below.</p>"),
        html_table(["population", "items", "sampled", "sampled ids"], rows),
        "</section>",
    ])


def _change_page(p: PeriodEvidence, c) -> str:
    """One sampled change's evidence, on a page of its own."""
    t = p.t
    ticket = t["tickets"][t["tickets"]["gid"] == c.gid].iloc[0]
    projects = ", ".join(str(p.names["project"].get(g, g)) for g in (ticket["collection_gids"]
                                                                     if ticket["collection_gids"] is not None else []))
    stays = t["ticket_section_history"]
    stays = stays[stays["ticket_gid"] == c.gid].sort_values(["entered_at", "interval_id"])
    timeline = [[html_text(p.names["project"].get(s.project_gid, s.project_gid)),
                 html_text(p.names["section"].get(s.section_gid, s.section_gid)), html_text(s.stage), html_text(utc_time(s.entered_at)),
                 html_text(utc_time(s.left_at) if pd.notna(s.left_at) else "still there"), _person(p, s.entered_by_gid)]
                for s in stays.itertuples(index=False)]
    decisions = t["approvals"][t["approvals"]["ticket_gid"] == c.gid].sort_values(["decided_at", "approval_id"])
    approvals = [[html_text(a.source), html_text(a.decision), html_text(utc_time(a.decided_at)), _person(p, a.approver_gid)]
                 for a in decisions.itertuples(index=False)]
    label = p.evidence.link_label
    approval = ("none that counts" if pd.isna(c.approved_at) else
                f"{utc_time(c.approved_at)} by {p.names['user'].get(c.approver_gid, c.approver_gid or 'no one known')} "
                f"({c.approval_source})" + (f"; doubt: {c.approval_doubt}" if isinstance(c.approval_doubt, str) else ""))
    facts = [
        ("Ticket", html_link(c.url, f"{c.name} ({c.gid}), {label}") if isinstance(c.url, str) else html_text(c.gid)),
        ("Type", html_text(c.ticket_type)), ("Projects", html_text(projects)), ("Status now", html_text(c.status)),
        ("Created", html_text(utc_time(ticket["created_at"])) + " by " + _person(p, ticket["creator_gid"])),
        ("Approval", html_text(approval)),
        ("Implementation start", html_text(utc_time(c.implementation_start))),
        ("Completed", html_text(utc_time(c.completed_at)) + (" by " + _person(p, c.completed_by_gid)
                                                      if pd.notna(c.completed_by_gid) else "")),
        ("Assignee at completion", _person(p, c.assignee_at_completion)),
        ("changes_approved in the period", _status(c.changes_approved_status, c.changes_approved_reason)),
        ("approval_segregation in the period", _status(c.approval_segregation_status, c.approval_segregation_reason)),
    ]
    return "\n".join([
        f'<section class="change" id="change-{html_text(c.gid)}"><h2>Sampled change: {html_text(c.name)}</h2>',
        html_table(None, [[f"<b>{html_text(k)}</b>", v] for k, v in facts]),
        "<h3>Timeline of sections</h3>",
        html_table(["project", "section", "stage", "entered", "left", "moved there by"], timeline, "No section stay."),
        "<h3>Approval decisions</h3>",
        html_table(["source", "decision", "when", "approver"], approvals, "No approval decision."),
        "</section>",
    ])



def report_period(warehouse: Warehouse, period: Period, connection: str, seed: int = DEFAULT_SEED,
                  sizes: Sequence[tuple[int | None, int]] = SAMPLE_SIZES,
                  browser: str | None = None) -> tuple[Path, str | None, PeriodEvidence]:
    """Collect and write a period's report (the CLI's and the job's one path): the folder, why
    report.pdf is missing (None: written), and the evidence shown."""
    p = collect(warehouse, period, connection, seed, sizes)
    folder, why_no_pdf = write_period_report(warehouse.root, p, browser)
    return folder, why_no_pdf, p


def outcome_lines(folder: Path, why_no_pdf: str | None, p: PeriodEvidence) -> list[str]:
    """What a period report wrote, in a few lines (the CLI prints them, the job logs them)."""
    verdicts = pd.Series([v for v, _ in p.verdicts.values()]).value_counts()
    return [
        f"Period report {p.period.first} to {p.period.last} of connection {p.connection}: {folder / REPORT}",
        f"PDF: {folder / PDF}" if why_no_pdf is None else why_no_pdf,
        f"{len(p.runs)} monitor run(s) in the period; verdicts: "
        + ", ".join(f"{n} {v}" for v, n in verdicts.items()),
        f"Populations: {len(p.changes)} change(s), {len(p.access_changes)} access change(s), {len(p.leavers)} "
        f"leaver(s); sample seed {p.seed} (sizes {format_sample_sizes(p.sizes)}): "
        + ", ".join(f"{len(items)} {name}" for name, items in p.samples.items()),
        *(["May be missing: " + "; ".join(_missing(p))] if _missing(p) else []),
    ]
