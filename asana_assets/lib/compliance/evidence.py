"""The evidence pack: what an auditor needs to reproduce every monitor result of one run.

``evidence/<UTC timestamp>_<run id>/`` holds one CSV per monitor with every evaluated resource
(named: resource, project, people), the populations behind the monitors (the rows each rule
read, each gid with the name of what it points at beside it), ``users.csv`` (every person the
populations name: name, email, profile link, workspace memberships), ``teams.csv``,
``report.html`` (the report: scope and the connection's coverage, controls and verdicts, every
exception, the access review, charts, a sign-off block), a ``summary.md`` with the same in
short, and a ``manifest.json`` with the run, the parameters, the coverage, the verdicts (and
what each means, and what partial coverage means for each), each monitor's rows per status, row
counts and the sha256 of every file. An empty run (no tasks, no change project) still writes
every file.
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
from asana_assets.lib.compliance.names import Directory
from asana_assets.lib.compliance.report import (
    DEMO_NOTE,
    EXCEPTION_HEADERS,
    SIGN_OFF,
    STATUS_MEANINGS,
    VERDICT_MEANINGS,
    Evidence,
    RunCoverage,
    by_status,
    exception_cells,
    md_link,
    md_text,
    monitor_rows,
    render_html,
    run_labels,
)
from asana_assets.lib.compliance.tickets import lookup

REPORT = "report.html"
USERS = "users.csv"
TEAMS = "teams.csv"
TOP_LEVEL = {"users": USERS, "teams": TEAMS}  # populations written beside the report, not in populations/
# What each gid column of a population points at: its name is written beside it, as
# ``<column without _gid>_name``. A ``<kind>_gid`` column typed by another column names what
# that column says (``TYPED``).
PERSON_COLUMNS = ("user_gid", "assignee_gid", "creator_gid", "completed_by_gid", "approver_gid", "owner_gid",
                  "entered_by_gid", "actor_gid", "created_by_gid", "assignee_at_completion")
GID_KINDS = {
    **dict.fromkeys(PERSON_COLUMNS, "user"),
    **dict.fromkeys(("ticket_gid", "parent_gid", "approval_task_gid"), "task"),
    **dict.fromkeys(("project_gid", "primary_project_gid"), "project"),
    **dict.fromkeys(("team_gid", "via_team_gid"), "team"),
    "workspace_gid": "workspace", "section_gid": "section",
}
TYPED = {"resource_gid": "resource_type", "member_gid": "member_type", "gid": "table"}
# A list of gids has the list of their names beside it, as ``<column without _gids>_names``: a
# ``<kind>_gids`` column of the kind ``<kind>_gid`` has, and these.
GID_LIST_KINDS = {"collection_gids": "project", **{f"{side}people_gids": "user" for side in ("", "old_", "new_")}}
# The kinds a typing column names, as the tables spell them (quarantine's ``table`` too).
KIND_OF_TYPE = {"user": "user", "users": "user", "task": "task", "tasks": "task", "project": "project",
                "projects": "project", "team": "team", "teams": "team", "workspace": "workspace",
                "workspaces": "workspace", "section": "section", "sections": "section"}
CSV_ROWS = 100_000  # rows an evidence CSV is converted and written at a time
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
    coverage: RunCoverage | None = None,
) -> Path:
    """Write the pack of one run. ``history`` counts the warehouse's ``monitor_results`` rows
    by ``report.COUNTED`` (every run's, for the trend); ``connection`` names the connection the
    run synced; ``coverage`` what it could see (None: not recorded, and every verdict says so).
    ``populations`` may add ``teams`` (written as ``teams.csv``) and ``ticket_section_history``
    (the time-in-state charts)."""
    folder = root / "evidence" / pack_name(run_id, as_of)
    (folder / "monitors").mkdir(parents=True, exist_ok=True)
    (folder / "populations").mkdir(parents=True, exist_ok=True)
    reviewed = _reviewed_changes(populations, results)
    evidence = Evidence(run_id, as_of, workspaces, parameters, results, populations, history, connection,
                        as_of_configured, reviewed, coverage)
    tables = {f"monitors/{m}.csv": monitor_rows(evidence.results, m) for m in MONITORS}
    names = gid_names(populations)
    tables |= {TOP_LEVEL.get(name, f"populations/{name}.csv"): with_names(frame, names)
               for name, frame in {**populations, **reviewed}.items()}
    # Two at a time: Arrow formats, writes and hashes outside the GIL.
    with ThreadPoolExecutor(2) as pool:
        written = dict(zip(tables, pool.map(lambda item: csv_file(item[1], folder / item[0]), tables.items()), strict=True))
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
        "coverage": evidence.coverage_facts(),
        "parameters": dict(parameters),
        "monitors": {m.id: {"severity": m.severity, "control_refs": list(m.control_refs), "table": m.table,
                            "verdict": judged[m.id][0], "why": judged[m.id][1],
                            "coverage": evidence.coverage_notes[m.id], "statuses": evidence.counts(m.id)}
                     for m in MONITORS.values()},
        "verdict_meanings": VERDICT_MEANINGS,
        "verdicts": {monitor_id: v for monitor_id, (v, _) in judged.items()},
        "row_counts": rows,
        "report": {"html": REPORT, "pdf": None, "note": PDF_NOTE},
        "files": {name: digests.get(name) or sha256_of(folder / name) for name in map(str, files)},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return folder


def summary(e: Evidence) -> str:
    """summary.md: scope, verdicts, trend, the first exceptions of each monitor, parameters and sign-off."""
    def link(url) -> str:  # the demo's links are marked
        return md_link(url, e.link_label)

    missing = e.may_be_missing()
    lines = [
        f"# Asana compliance evidence: run {md_text(e.run_id)}",
        "",
        *([f"> {md_text(DEMO_NOTE)}", ""] if e.demo else []),
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
        notes = e.coverage_notes[monitor.id]
        caveats = f" ({md_text(' '.join(notes))})" if notes else ""
        lines.append(
            f"| `{monitor.id}`: {monitor.title} | {monitor.severity} | {', '.join(monitor.control_refs)} | "
            f"**{result}**{caveats} | " + " | ".join(str(n[s]) for s in STATUSES) + f" | {md_text(why)} |"
        )
    lines += [
        "",
        "Statuses: " + "; ".join(f"{s} = {meaning}" for s, meaning in STATUS_MEANINGS.items()) + ".",
        "",
        "Results: " + "; ".join(f"{v} = {meaning}" for v, meaning in VERDICT_MEANINGS.items()) + ".",
        "",
        *([("Coverage: partial or unknown, so each verdict it affects holds only for what the connection could "
            f"see (noted beside it); it may miss: {md_text('; '.join(missing))}."), ""] if missing else []),
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
                *["| " + " | ".join(cells) + " |" for cells in exception_cells(part, md_text, link)],
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
         f"`populations/` holds the rows the rules read (each gid with a name beside it); `{USERS}` names every "
         f"person, `{TEAMS}` every team; `{REPORT}` is the full report; `manifest.json` has the sha256 of every file. In the CSVs times are ISO 8601 in UTC "
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
    dates = run_labels(e.trend.index)[-len(trend):] if len(trend) else []
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


def gid_names(populations: Mapping[str, pd.DataFrame]) -> dict[str, pd.Series]:
    """Per kind of ``GID_KINDS``, the name of each gid the populations know: people as ``Name
    <email>`` (``users``, which names people an earlier pack named too), tasks, projects, teams,
    workspaces and sections by name."""
    directory = Directory({name: populations[name] for name in ("users", "workspaces", "teams", "projects")
                           if name in populations})

    def by_gid(table: str, key: str = "gid") -> pd.Series:
        frame = populations.get(table, pd.DataFrame(columns=[key, "name"]))
        return frame.drop_duplicates(key).set_index(key)["name"].astype(object)

    return {"user": directory.labels.astype(object), "task": by_gid("tickets"), "project": directory.projects,
            "team": directory.teams, "workspace": directory.workspaces, "section": by_gid("workflow_states", "section_gid")}


def with_names(frame: pd.DataFrame, names: Mapping[str, pd.Series]) -> pd.DataFrame:
    """``frame`` with, right after each gid column of ``GID_KINDS`` or ``TYPED``, the name of what
    it points at (null where nothing names it), and after each list of gids (``list_kind``) the
    list of their names in the same order (null for a gid nothing names); a name column the frame
    has already is kept."""
    columns: list[str] = []
    added: dict[str, pd.Series] = {}
    for column in frame.columns:
        columns.append(column)
        listed = list_kind(column)
        name = column.removesuffix("_gids") + "_names" if listed else column.removesuffix("_gid") + "_name"
        if name in frame.columns or (not listed and column not in GID_KINDS
                                     and frame.columns.intersection([TYPED.get(column)]).empty):
            continue
        gids = frame[column].astype(object)
        if listed:
            found = _names_of_lists(gids, names[listed])
        elif column in GID_KINDS:
            found = lookup(gids, names[GID_KINDS[column]])
        else:
            kinds = frame[TYPED[column]].map(KIND_OF_TYPE)
            found = pd.Series(None, index=frame.index, dtype=object)
            for kind in kinds.dropna().unique():
                mask = kinds.eq(kind)
                found[mask] = lookup(gids[mask], names[kind]).astype(object)
        added[name] = found if listed else found.astype(object).where(found.notna(), None)
        columns.append(name)
    return frame.assign(**added)[columns] if added else frame


def list_kind(column: str) -> str | None:
    """What a list-of-gids column points at (``GID_LIST_KINDS``, else the kind of its ``_gid``
    column: ``ticket_gids`` lists tasks); None for any other column."""
    if not column.endswith("_gids"):
        return None
    return GID_LIST_KINDS.get(column) or GID_KINDS.get(column.removesuffix("s"))


def _names_of_lists(lists: pd.Series, names: pd.Series) -> pd.Series:
    """Per list of gids, the list of their names (null where nothing names one; a null list stays
    null): every gid of every list looked up at once, the lists rebuilt from their lengths."""
    array = pa.array(lists, from_pandas=True)
    array = (array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array).cast(pa.list_(pa.string()))
    flat = pc.list_flatten(array).to_pandas()
    found = pa.array(lookup(flat, names).astype(object), type=pa.string(), from_pandas=True)
    lengths = pc.list_value_length(array).fill_null(0)
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths).cast(pa.int32())])
    rebuilt = pa.ListArray.from_arrays(offsets, found, mask=array.is_null())
    return pd.Series(pd.arrays.ArrowExtensionArray(rebuilt), index=lists.index)


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


def joined(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Each list as its items joined by ';'. A null item is an empty place (Arrow's join would
    null the whole list, losing its known names); a null list stays null."""
    chunks = []
    for chunk in column.cast(pa.list_(pa.string())).chunks:
        if not len(chunk):
            continue
        first, last = chunk.offsets[0].as_py(), chunk.offsets[-1].as_py()  # a slice's offsets start past 0
        items = pc.fill_null(chunk.values.slice(first, last - first), "")
        filled = pa.ListArray.from_arrays(pc.subtract(chunk.offsets, first), items, mask=chunk.is_null())
        chunks.append(pc.binary_join(filled, ";"))
    return pa.chunked_array(chunks, pa.string())


def csv_file(frame: pd.DataFrame, path: Path) -> tuple[int, str]:
    """CSV with list columns joined by ';' (CSV has no lists) and times in ISO 8601 (``iso_times``);
    returns the row count and the file's sha256. Arrow's writer: a pack at 100,000 tickets is some
    300 MB of CSV, which pandas takes seconds to write. It quotes every text value, so an empty
    text ("") stays apart from a null (nothing). Written CSV_ROWS rows at a time, each slice typed
    by the whole frame's schema, and hashed as written: a pack of millions of rows holds a slice
    in memory, not the file."""
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for start in range(0, max(len(frame), 1), CSV_ROWS):  # once at least: an empty frame has its header
            table = pa.Table.from_pandas(frame.iloc[start:start + CSV_ROWS], schema=schema, preserve_index=False)
            for i, column in enumerate(table.schema):
                if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
                    table = table.set_column(i, column.name, joined(table.column(i)))
                elif pa.types.is_timestamp(column.type):
                    table = table.set_column(i, column.name, iso_times(table.column(i)))
            buffer = pa.BufferOutputStream()
            pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(quoting_style="needed", include_header=start == 0))
            data = buffer.getvalue()
            digest.update(data)
            out.write(data)
    return len(frame), digest.hexdigest()


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


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
