"""The evidence pack: what an auditor needs to reproduce every monitor result of one run.

``evidence/<UTC timestamp>_<run id>/`` holds one CSV per monitor with every evaluated resource
(named: resource, project, people), the populations behind the monitors (the rows each rule
read), ``users.csv`` (every person the populations name: name, email, profile link, workspace
memberships), ``report.html`` (the report: scope, controls and verdicts, every exception, the
access review, charts, a sign-off block), a ``summary.md`` with the same in short, and a
``manifest.json`` with the run, the parameters, the verdicts (and what each means), each
monitor's rows per status, row counts and the sha256 of every file. An empty run (no tasks, no
change project) still writes every file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from asana_assets.lib.compliance.monitors import MONITORS, STATUSES
from asana_assets.lib.compliance.report import (
    EXCEPTION_HEADERS,
    SIGN_OFF,
    STATUS_MEANINGS,
    VERDICT_MEANINGS,
    Evidence,
    by_status,
    exception_cells,
    md_link,
    md_text,
    monitor_rows,
    render_html,
)

REPORT = "report.html"
USERS = "users.csv"
FIRST_EXCEPTIONS = 10  # summary.md lists this many exceptions per monitor; report.html lists all
TREND_RUNS = 6  # summary.md's trend shows this many latest runs
GAP = "n/e"  # summary.md's trend for a run in which the monitor judged no resource (NOT EVALUATED)
TIME_UNITS = ("s", "ms", "us", "ns")  # as Arrow names them, coarsest first
# No PDF library is a dependency (the pure-Python ones need compiled imaging packages): the
# manifest says so, and report.html prints to PDF from any browser.
PDF_NOTE = "report.pdf not written: no PDF library is installed; print report.html to PDF instead"


def pack_name(run_id: str, as_of: pd.Timestamp) -> str:
    return f"{as_of.tz_convert('UTC').strftime('%Y%m%dT%H%M%SZ')}_{run_id}"


def former_people(root: Path, run_id: str, as_of: pd.Timestamp) -> pd.DataFrame | None:
    """The people named by the latest earlier pack (its ``users.csv``), or None."""
    mine = pack_name(run_id, as_of)
    earlier = sorted(p for p in (root / "evidence").glob(f"*/{USERS}") if p.parent.name < mine)
    return pd.read_csv(earlier[-1], dtype=str, keep_default_na=False).replace("", None) if earlier else None


def write_evidence_pack(
    root: Path,
    run_id: str,
    as_of: pd.Timestamp,
    workspaces: list[str],
    parameters: Mapping[str, Any],
    results: pd.DataFrame,
    populations: Mapping[str, pd.DataFrame],
    history: pd.DataFrame | None = None,
    connection: str | None = None,
    as_of_configured: bool = False,
) -> Path:
    """Write the pack of one run. ``history`` counts the warehouse's ``monitor_results`` rows
    by ``report.COUNTED`` (every run's, for the trend); ``connection`` names the connection the
    run synced."""
    folder = root / "evidence" / pack_name(run_id, as_of)
    (folder / "monitors").mkdir(parents=True, exist_ok=True)
    (folder / "populations").mkdir(parents=True, exist_ok=True)
    reviewed = _reviewed_changes(populations, results)
    evidence = Evidence(run_id, as_of, workspaces, parameters, results, populations, history, connection,
                        as_of_configured, reviewed)
    tables = {f"monitors/{m}.csv": monitor_rows(evidence.results, m) for m in MONITORS}
    tables |= {USERS if name == "users" else f"populations/{name}.csv": frame
               for name, frame in {**populations, **reviewed}.items()}
    # Two at a time: Arrow formats, writes and hashes outside the GIL.
    with ThreadPoolExecutor(2) as pool:
        written = dict(zip(tables, pool.map(lambda item: _csv(item[1], folder / item[0]), tables.items()), strict=True))
    rows = {path: count for path, (count, _) in written.items()}
    digests = {path: digest for path, (_, digest) in written.items()}
    (folder / "summary.md").write_text(summary(evidence), encoding="utf-8")
    (folder / REPORT).write_text(render_html(evidence), encoding="utf-8")
    judged = evidence.verdicts
    files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "workspaces": workspaces,
        "scope": dict(evidence.scope()),
        "parameters": dict(parameters),
        "monitors": {m.id: {"severity": m.severity, "control_refs": list(m.control_refs), "table": m.table,
                            "verdict": judged[m.id][0], "why": judged[m.id][1], "statuses": evidence.counts(m.id)}
                     for m in MONITORS.values()},
        "verdict_meanings": VERDICT_MEANINGS,
        "verdicts": {monitor_id: v for monitor_id, (v, _) in judged.items()},
        "row_counts": rows,
        "report": {"html": REPORT, "pdf": None, "note": PDF_NOTE},
        "files": {name: digests.get(name) or _sha256(folder / name) for name in map(str, files)},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return folder


def summary(e: Evidence) -> str:
    """summary.md: scope, verdicts, trend, the first exceptions of each monitor, parameters and sign-off."""
    lines = [
        f"# Asana compliance evidence: run {md_text(e.run_id)}",
        "",
        "## Scope",
        "",
        *[f"- **{label}**: {md_text(value)}" for label, value in e.scope()],
        "",
        "## Verdicts",
        "",
        "| monitor | severity | controls | result | " + " | ".join(STATUSES) + " | why |",
        "|---|---|---|---|" + "---|" * (len(STATUSES) + 1),
    ]
    for monitor in MONITORS.values():
        n = e.counts(monitor.id)
        result, why = e.verdicts[monitor.id]
        lines.append(
            f"| `{monitor.id}`: {monitor.title} | {monitor.severity} | {', '.join(monitor.control_refs)} | "
            f"**{result}** | " + " | ".join(str(n[s]) for s in STATUSES) + f" | {md_text(why)} |"
        )
    lines += [
        "",
        "Statuses: " + "; ".join(f"{s} = {meaning}" for s, meaning in STATUS_MEANINGS.items()) + ".",
        "",
        "Results: " + "; ".join(f"{v} = {meaning}" for v, meaning in VERDICT_MEANINGS.items()) + ".",
        "",
        *_trend_lines(e),
        "## Exceptions",
        "",
    ]
    for monitor_id in MONITORS:
        rows = e.exceptions(monitor_id)
        if rows.empty:
            continue
        shown = rows.head(FIRST_EXCEPTIONS)
        lines += [
            f"### `{monitor_id}`: {len(rows)} exception(s)"
            + (f", the first {len(shown)} below (all in `{REPORT}` and `monitors/{monitor_id}.csv`)"
               if len(rows) > len(shown) else ""),
            "",
        ]
        for heading, part in by_status(shown):
            lines += [
                f"#### {md_text(heading)}",
                "",
                "| " + " | ".join(EXCEPTION_HEADERS) + " |",
                "|" + "---|" * len(EXCEPTION_HEADERS),
                *["| " + " | ".join(cells) + " |" for cells in exception_cells(part, md_text, md_link)],
                "",
            ]
    if not len(e.exceptions()):
        lines += ["No exception in this run.", ""]
    lines += [
        "## Parameters",
        "",
        *[f"- `{k}`: {md_text(v)}" for k, v in e.parameter_rows()],
        "",
        ("Each `monitors/<id>.csv` lists every evaluated resource with its status and reason; "
         f"`populations/` holds the rows the rules read; `{USERS}` names every person; `{REPORT}` is the "
         "full report; `manifest.json` has the sha256 of every file. In the CSVs times are ISO 8601 in UTC "
         "(`2026-03-04T09:00:00Z`) and lists are joined by `;`."),
        "",
        "## Sign-off",
        "",
        *[f"- **{label}**: " for label in SIGN_OFF],
        "",
    ]
    return "\n".join(lines)


def _trend_lines(e: Evidence) -> list[str]:
    """Alarms per monitor in the latest runs, oldest first; ``GAP`` where it did not evaluate."""
    trend = e.trend.tail(TREND_RUNS)
    dates = [pd.Timestamp(at).strftime("%Y-%m-%d %H:%M") for at, _ in trend.index]
    return [
        f"## Trend: alarms in the latest {len(trend)} run(s) of {len(e.trend)}",
        "",
        "| monitor | " + " | ".join(dates) + " |",
        "|---|" + "---|" * len(dates),
        *[f"| `{m}` | " + " | ".join(GAP if pd.isna(v) else str(v) for v in trend[m]) + " |" for m in trend.columns],
        "",
        f"{GAP} = not evaluated: the monitor judged no resource in that run; no count, not 0 alarms.",
        "",
    ]


def _reviewed_changes(populations: Mapping[str, pd.DataFrame], results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The membership changes awaiting review (``alarm``) apart from those acknowledged (``ok``),
    each with the monitor's reason (which says how it was acknowledged)."""
    judged = monitor_rows(results, "membership_changes")[["resource_gid", "status", "reason"]]
    changes = populations["membership_changes"].merge(
        judged.rename(columns={"resource_gid": "change_id"}), on="change_id")
    return {
        "membership_changes_open": changes[changes["status"] == "alarm"].drop(columns="status"),
        "membership_changes_acknowledged": changes[changes["status"] == "ok"].drop(columns="status"),
    }


def _csv(frame: pd.DataFrame, path: Path) -> tuple[int, str]:
    """CSV with list columns joined by ';' (CSV has no lists) and times in ISO 8601 (``iso_times``);
    returns the row count and the file's sha256. Arrow's writer: a pack at 100,000 tickets is some
    300 MB of CSV, which pandas takes seconds to write. It quotes every text value, so an empty
    text ("") stays apart from a null (nothing). The file is hashed from memory, not read back."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, column in enumerate(table.schema):
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            table = table.set_column(i, column.name, pc.binary_join(table.column(i).cast(pa.list_(pa.string())), ";"))
        elif pa.types.is_timestamp(column.type):
            table = table.set_column(i, column.name, iso_times(table.column(i)))
    out = pa.BufferOutputStream()
    pa_csv.write_csv(table, out, pa_csv.WriteOptions(quoting_style="needed"))
    data = out.getvalue()
    path.write_bytes(data)
    return table.num_rows, hashlib.sha256(data).hexdigest()


def iso_times(times: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as ISO 8601 text: ``2026-03-04T09:00:00Z``, with the fraction of a second only
    when there is one, as short as it is exact (``.250Z``, ``.250001Z``: never rounded); the
    ``Z`` only for times with a time zone (their instant is UTC's). Formatted as times without a
    zone (their UTC wall time): Arrow formats a zoned time some 30 times slower."""
    unit = times.type.unit
    naive = times.cast(pa.timestamp(unit))
    ticks = naive.cast(pa.int64())
    text = naive.cast(pa.string())  # the longest form
    finest = TIME_UNITS.index(unit)
    for coarser in reversed(TIME_UNITS[:finest]):  # the coarsest exact form wins
        per = 1000 ** (finest - TIME_UNITS.index(coarser))
        whole = pc.equal(pc.subtract(ticks, pc.multiply(pc.divide(ticks, per), per)), 0)
        text = pc.if_else(whole, naive.cast(pa.timestamp(coarser), safe=False).cast(pa.string()), text)
    text = pc.replace_substring(text, " ", "T", max_replacements=1)
    return pc.binary_join_element_wise(text, "Z", "") if times.type.tz is not None else text


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
