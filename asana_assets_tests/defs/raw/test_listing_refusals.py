"""A run whose sync Asana refused one project's listing (402/403) completes, its materializations
and quarantine name the refusal, and every monitor whose population that listing holds says
unknown for the project: a refused listing never lets a monitor pass for want of its rows."""

from __future__ import annotations

from datetime import UTC, datetime

from asana_assets.lib.asana.crawl import REFUSED
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import generate_world
from asana_assets_tests.defs.compliance.test_no_false_pass import checks
from asana_assets_tests.support.pipeline import SIMULATOR, results_of, run_pipeline

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TICKET_MONITORS = {"tickets_assigned", "changes_approved", "approval_segregation", "workflow_consistent",
                   "offboarding_access_removed"}


def unknown_for(results, project: str) -> set[str]:
    mine = results[(results["resource_type"] == "project") & (results["resource_gid"] == project)]
    return set(mine.loc[mine["status"] == "unknown", "monitor_id"])


def test_a_refused_listing_is_shown_by_the_run_and_kept_in_the_quarantine(tmp_path):
    world = generate_world(seed=11, tasks=120, now=NOW)
    truth = world.ground_truth()
    project = truth["custom_field_settings"][0]["project"]["gid"]
    path = f"/projects/{project}/custom_field_settings"
    run = run_pipeline(world, tmp_path, NOW, simulator=SIMULATOR.model_copy(update={"refusals": {path: 402}}))
    assert run.success
    [tasks] = [m for m in run.get_asset_materialization_events() if m.asset_key.path[-1] == "tasks"]
    assert tasks.materialization.metadata["sync_listings"].value == {
        "split": {}, "refused": {"custom_field_settings (HTTP 402)": {"projects": 1, "first": [project]}},
    }
    quarantine = ParquetWarehouse(tmp_path).read("quarantine").to_pylist()
    assert [(q["table"], q["gid"]) for q in quarantine if q["error"].startswith(REFUSED)] == [("projects", project)]
    # The project's fields type its changes: the change monitors cannot judge it; the others can.
    assert unknown_for(results_of(run, tmp_path), project) == {"changes_approved", "approval_segregation"}
    # The coverage check warns of the refused listing, naming it.
    [coverage] = [e for e in run.get_asset_check_evaluations() if e.check_name == "connection_coverage"]
    assert not coverage.passed
    assert (f"Asana refused 1 listing(s) of 1 project(s) in the sync (project {project}: custom_field_settings: "
            in coverage.description)
    assert coverage.metadata["listings_refused"].value[0]["project_gid"] == project


def test_a_project_whose_tasks_are_refused_keeps_every_ticket_monitor_from_passing(tmp_path):
    world = generate_world(seed=11, tasks=120, now=NOW)
    project = next(p for p in world.ground_truth()["projects"] if p["name"] == "Change Management")["gid"]
    path = f"/tasks?project={project}"
    run = run_pipeline(world, tmp_path, NOW, simulator=SIMULATOR.model_copy(update={"refusals": {path: 403}}))
    assert run.success
    assert unknown_for(results_of(run, tmp_path), project) == TICKET_MONITORS
    evaluations = checks(run)
    for monitor in TICKET_MONITORS:
        assert not evaluations[monitor].passed, monitor  # FAIL (its alarms elsewhere) or INCOMPLETE, never PASS
