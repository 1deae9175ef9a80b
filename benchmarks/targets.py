"""The targets the benchmarks measure, and the table `make bench` ends with.

Each benchmark records its headline figures with `record` (in `.bench/results.json`, beside the
checkout, with the time it was measured); `python benchmarks/targets.py` prints every target
beside its latest figure, and says which are met. A figure never measured reads "not measured".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / ".bench" / "results.json"

# (figure, key recorded, the most it may be; None: printed, no target)
TARGETS = [
    ("full sync requests / minimum (20,000 tasks)", "full_sync.requests_ratio", 1.02),
    ("full sync wall / quota floor (2,000 tasks, 1,500/min)", "full_sync.quota_wall_ratio", None),
    ("the same as `asana-connections sync`, start to exit, no sensor", "full_sync.process_wall_ratio", 1.10),
    ("full sync wall / cost floor (run b under a 20,000/min cost limit)", "full_sync.cost_wall_ratio", None),
    ("429s in that sync (the client learns the cost limit from them)", "full_sync.cost_rate_limited", None),
    ("a crawl killed at half its requests: the rerun's requests / the full crawl's (20,000 tasks)",
     "resume.rerun_share", 0.55),
    ("the same with four projects of 5,000 tasks (killed mid-project, resumed from its parts)",
     "resume_large_projects.rerun_share", None),
    ("incremental sync after 1 task changed (2,000 tasks), start to exit, SQLite instance: wall (s)",
     "small_run.sqlite_wall_seconds", 3.0),
    ("the same: CPU (s)", "small_run.sqlite_cpu_seconds", 2.0),
    ("Dagster's floor there (the sync job's hollow twin, nothing computed): wall (s)",
     "small_run.sqlite_floor_wall_seconds", None),
    ("the same: CPU (s)", "small_run.sqlite_floor_cpu_seconds", None),
    ("the same on the production instance (Postgres storage): wall (s)", "small_run.postgres_wall_seconds", 3.0),
    ("the same: CPU (s)", "small_run.postgres_cpu_seconds", 2.0),
    ("Dagster's floor there: wall (s)", "small_run.postgres_floor_wall_seconds", None),
    ("the same: CPU (s)", "small_run.postgres_floor_cpu_seconds", None),
    ("reconcile after 1% changed / full sync requests (100 tasks a project), with the events sensor",
     "reconcile.ratio_with_sensor", 0.03),
    ("reconcile after 1% changed / full sync requests (100 tasks a project), without the sensor",
     "reconcile.ratio_without_sensor", None),
    ("Postgres first load / bare ingest (stories)", "postgres_load.first_stories", 1.5),
    ("Postgres first load / bare ingest (tasks)", "postgres_load.first_tasks", 1.5),
    ("Postgres reload, 1% changed / bare ingest (stories)", "postgres_load.reload_stories", 1.0),
    ("Postgres reload, 1% changed / bare ingest (tasks)", "postgres_load.reload_tasks", 1.0),
    (("everything after the crawl in the full sync's record, 100k tasks: derived tables, monitors, evidence, "
      "every check, the publication (s)"), "scale.after_crawl_seconds", 10.0),
    ("of which derived tables + monitors + evidence pack, alone, without the Postgres publication (s)",
     "scale.derived_seconds", None),
    ("full sync job's peak memory, 100k tasks (GB)", "scale.full_peak_gb", 2.0),
    ("the same at 300k tasks (GB)", "scale.full_peak_gb_300k", 3.0),
    ("derived tables + monitors + evidence pack, 1,000,000 tasks synthesised (s)", "million.derived_seconds", 60.0),
    ("that run's peak memory (GB)", "million.peak_gb", 4.0),
    ("429s, sensor + runs of one token at 1,500/min over the day", "quota.rate_limited", 0),
    ("busiest 60 s of that day (requests)", "quota.busiest_minute", 1500),
    ("a fleet on the production-style instance over a compressed day: its connections (the issue's: 200)",
     "fleet.connections", None),
    ("its CPU per connection-day (s)", "fleet.cpu_seconds_per_connection_day", None),
    ("connections one core carries at that cost", "fleet.connections_per_core", None),
    ("the longest wait from an edit to the end of the run that synced it (s)", "fleet.longest_wait_seconds", None),
    ("edits no run synced by the end (the longest wait is then a lower bound)", "fleet.edits_unsynced", 0),
    ("edited tasks missing from the tables at the end of the day", "fleet.edits_missing", 0),
    ("429s over that day, every connection its own token", "fleet.rate_limited", 0),
]


def record(benchmark: str, **figures: float) -> None:
    """Keep a benchmark's latest figures (``benchmark.figure`` keys) for the summary."""
    results = _load()
    at = datetime.now(UTC).isoformat(timespec="seconds")
    results.update({f"{benchmark}.{name}": {"value": value, "at": at} for name, value in figures.items()})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True))


def _load() -> dict:
    try:
        return json.loads(RESULTS.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def main() -> None:
    results = _load()
    width = max(len(figure) for figure, *_ in TARGETS)
    print(f"{'figure':{width}}  {'measured':>10}  {'target':>8}  verdict    measured at")
    for figure, key, target in TARGETS:
        found = results.get(key)
        if found is None:
            print(f"{figure:{width}}  {'':>10}  {'' if target is None else target:>8}  not measured")
            continue
        value = found["value"]
        verdict = "printed" if target is None else ("met" if value <= target else "NOT MET")
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{figure:{width}}  {shown:>10}  {'' if target is None else target:>8}  {verdict:9}  {found['at']}")


if __name__ == "__main__":
    main()
