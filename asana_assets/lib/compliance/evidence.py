"""The evidence pack: what an auditor needs to reproduce every monitor result of one run.

``evidence/<UTC timestamp>_<run id>/`` holds one CSV per monitor with every evaluated resource,
the populations behind the monitors (the rows each rule read), a ``summary.md`` with each
monitor's verdict (PASS, FAIL, ERROR or NOT EVALUATED), status counts and control mapping, and a
``manifest.json`` with the run, the parameters, the verdicts, row counts and the sha256 of every
file. An empty run (no tasks, no change project) still writes every file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from asana_assets.lib.compliance.monitors import MONITORS, STATUSES, verdict


def pack_name(run_id: str, as_of: pd.Timestamp) -> str:
    return f"{as_of.tz_convert('UTC').strftime('%Y%m%dT%H%M%SZ')}_{run_id}"


def write_evidence_pack(
    root: Path,
    run_id: str,
    as_of: pd.Timestamp,
    workspaces: list[str],
    parameters: Mapping[str, Any],
    results: pd.DataFrame,
    populations: Mapping[str, pd.DataFrame],
) -> Path:
    folder = root / "evidence" / pack_name(run_id, as_of)
    (folder / "monitors").mkdir(parents=True, exist_ok=True)
    (folder / "populations").mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    for monitor_id in MONITORS:
        part = results[results["monitor_id"] == monitor_id]
        rows[f"monitors/{monitor_id}.csv"] = _csv(part, folder / "monitors" / f"{monitor_id}.csv")
    for name, frame in {**populations, **_reviewed_changes(populations, results)}.items():
        rows[f"populations/{name}.csv"] = _csv(frame, folder / "populations" / f"{name}.csv")
    (folder / "summary.md").write_text(summary(results, run_id, as_of, workspaces, parameters))
    judged = verdicts(results)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "workspaces": workspaces,
        "parameters": dict(parameters),
        "monitors": {m.id: {"severity": m.severity, "control_refs": list(m.control_refs), "table": m.table,
                            "verdict": judged[m.id][0], "why": judged[m.id][1]}
                     for m in MONITORS.values()},
        "verdicts": {monitor_id: v for monitor_id, (v, _) in judged.items()},
        "row_counts": rows,
        "files": {str(p.relative_to(folder)): _sha256(p) for p in files},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return folder


def verdicts(results: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """(verdict, why) of every monitor, from its rows in ``results`` (one run's)."""
    return {m: verdict(results[results["monitor_id"] == m]) for m in MONITORS}


def summary(results: pd.DataFrame, run_id: str, as_of: pd.Timestamp, workspaces: list[str],
            parameters: Mapping[str, Any]) -> str:
    counts = results.groupby(["monitor_id", "status"]).size().unstack(fill_value=0)
    judged = verdicts(results)
    lines = [
        f"# Asana compliance evidence: run {run_id}",
        "",
        f"As of {as_of.isoformat()} for workspace(s) {', '.join(workspaces) or '(none)'}.",
        "",
        "| monitor | severity | controls | result | " + " | ".join(STATUSES) + " | why |",
        "|---|---|---|---|" + "---|" * (len(STATUSES) + 1),
    ]
    for monitor in MONITORS.values():
        n = {s: int(counts.loc[monitor.id, s]) if monitor.id in counts.index and s in counts else 0 for s in STATUSES}
        result, why = judged[monitor.id]
        lines.append(
            f"| `{monitor.id}`: {monitor.title} | {monitor.severity} | {', '.join(monitor.control_refs)} | "
            f"**{result}** | " + " | ".join(str(n[s]) for s in STATUSES) + f" | {_cell(why)} |"
        )
    lines += [
        "",
        ("Statuses: alarm = non-compliant; info = not yet decidable (e.g. inside a grace period); "
         "skip = the rule does not apply (the reason says why); ok = compliant."),
        "",
        ("Results: FAIL = at least one alarm; ERROR = at least one resource could not be judged; "
         "PASS = resources were evaluated and none alarms; NOT EVALUATED = no resource was evaluated "
         "(none, or every one skipped): the run shows nothing about the control."),
        "",
        "## Parameters",
        "",
        *[f"- `{k}`: {v}" for k, v in parameters.items()],
        "",
        ("Each `monitors/<id>.csv` lists every evaluated resource with its status and reason; "
         "`populations/` holds the rows the rules read; `manifest.json` has the sha256 of every file."),
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _reviewed_changes(populations: Mapping[str, pd.DataFrame], results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The membership changes awaiting review (``alarm``) apart from those acknowledged (``ok``),
    each with the monitor's reason (which says how it was acknowledged)."""
    judged = results[results["monitor_id"] == "membership_changes"][["resource_gid", "status", "reason"]]
    changes = populations["membership_changes"].merge(
        judged.rename(columns={"resource_gid": "change_id"}), on="change_id")
    return {
        "membership_changes_open": changes[changes["status"] == "alarm"].drop(columns="status"),
        "membership_changes_acknowledged": changes[changes["status"] == "ok"].drop(columns="status"),
    }


def _csv(frame: pd.DataFrame, path: Path) -> int:
    """CSV with list columns joined by ';' (CSV has no lists); returns the row count."""
    out = frame.copy()
    for column in out.columns[out.dtypes == object]:
        first = out[column].dropna().head(1).tolist()
        if first and hasattr(first[0], "__len__") and not isinstance(first[0], str):
            out[column] = out[column].map(list, na_action="ignore").str.join(";")
    out.to_csv(path, index=False)
    return len(out)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
