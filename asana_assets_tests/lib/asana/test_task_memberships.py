"""Task memberships without a project (the spec: "more types of memberships may be added"): the
task is kept, the memberships the tables hold are rows, the others are quarantined or counted,
never silently lost. Expected values are written by hand."""

from __future__ import annotations

import logging

import httpx

from asana_assets.lib.asana import models
from asana_assets.simulator import DEMO_TOKEN, Simulator
from asana_assets_tests.lib.asana.test_custom_fields import FAST, one_project, sync


def test_a_task_with_a_membership_without_a_project_is_kept(caplog):
    w, _, ann, project = one_project()
    todo = w.objects[project.sections[0]]
    plain, sectioned, bare = (w.create_task(name, project=project, actor=ann) for name in ("Plain", "Sect", "Bare"))
    w.add_unplaced_membership(sectioned, todo)  # names a section only
    w.add_unplaced_membership(bare)  # names neither: a type the tables cannot hold
    with Simulator(w, FAST) as sim:
        served = httpx.get(f"{sim.base_url}/tasks/{sectioned.gid}", headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
                           params={"opt_fields": "memberships.project,memberships.section"}).json()["data"]
        with caplog.at_level(logging.WARNING, logger="asana_assets.lib.asana.crawl"):
            result = sync(sim.base_url)
    assert served["memberships"] == [
        {"project": {"gid": project.gid, "resource_type": "project"},
         "section": {"gid": todo.gid, "resource_type": "section"}},
        {"section": {"gid": todo.gid, "resource_type": "section"}},  # no project key at all
    ]
    tables = {name: table.to_pylist() for name, table in result.tables.items()}
    assert {t["gid"] for t in tables["tasks"]} == {plain.gid, sectioned.gid, bare.gid}  # none dropped
    assert sorted((m["task_gid"], m["project_gid"], m["section_gid"], m["position"])
                  for m in tables["task_memberships"]) == sorted(
        (task.gid, project.gid, todo.gid, 0) for task in (plain, sectioned, bare))
    # The section-only membership carries what the tables model: quarantined under its task, loud.
    [refused] = tables["quarantine"]
    assert (refused["table"], refused["gid"]) == ("task_memberships", sectioned.gid)
    assert todo.gid in refused["error"] and "without a project" in refused["error"]
    # The other is counted and logged.
    logged = [r.getMessage() for r in caplog.records if "task memberships" in r.getMessage()]
    assert logged == [("1 task memberships of a type without a project or section: not task_memberships rows "
                       "(their tasks are kept)")]


def test_positions_count_project_memberships_only():
    task = models.Task.model_validate({
        "gid": "1", "created_at": "2026-06-01T00:00:00Z", "modified_at": "2026-06-01T00:00:00Z",
        "memberships": [{"section": {"gid": "9"}}, {"project": {"gid": "5"}, "section": {"gid": "6"}}, {}],
    })
    assert task.membership_rows() == [{"task_gid": "1", "project_gid": "5", "section_gid": "6", "position": 0}]
    assert [m.section.gid if m.section else None for m in task.unplaced] == ["9", None]
