"""The incremental job end to end: after a new section and a task moved into it, the ticket's
workflow state is known, not left unknown until the daily full sync."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.simulator import generate_world
from asana_assets_tests.support.pipeline import run_pipeline

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_a_ticket_moved_into_a_new_section_has_a_known_state(tmp_path):
    world = generate_world(seed=4, tasks=300, now=NOW)
    assert run_pipeline(world, tmp_path, NOW).success
    truth = world.ground_truth()
    task = next(t for t in truth["tasks"] if t["memberships"] and not t["parent"] and not t["completed"])
    project = task["memberships"][0]["project"]["gid"]  # its primary project: the state comes from there
    section = world.add_section(project, "Waiting on vendor", actor=world.default_user)
    world.move_task_to_section(task["gid"], section, actor=world.default_user)

    run = run_pipeline(world, tmp_path, NOW + timedelta(hours=1), mode="incremental")
    assert run.success
    [tasks] = [m for m in run.get_asset_materialization_events() if m.asset_key.path[-1] == "tasks"]
    assert tasks.materialization.metadata["sync_mode"].value.startswith("incremental")
    tickets = WarehouseResource(directory=str(tmp_path)).warehouse().read("tickets").to_pandas().set_index("gid")
    ticket = tickets.loc[task["gid"]]
    assert ticket["section_gid"] == section.gid and ticket["section_name"] == "Waiting on vendor"
    # "waiting" is a blocked word of the default workflow rules: stage BLOCKED, state ON_HOLD.
    assert (ticket["stage"], ticket["status"]) == ("BLOCKED", "ON_HOLD")
