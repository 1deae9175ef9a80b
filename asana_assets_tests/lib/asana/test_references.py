"""Broken references are loud: a record pointing at what the tables lack is named in the
quarantine with the reason, and stays in its table. Hand-built tables, gid by gid."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from asana_assets.lib.asana import models
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.crawl import UNRESOLVED, crawl, unresolved_references
from asana_assets.lib.schema import RAW_TABLES, to_arrow
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUOTA = 1_000_000


def tables(**rows) -> dict:
    return {name: to_arrow(name, rows.get(name, [])) for name in RAW_TABLES}


def member(gid: str, member: dict) -> dict:
    """A project_memberships row as the sync builds it from an API record."""
    raw = {"gid": gid, "parent": {"gid": "1", "resource_type": "project"}, "member": member, "access_level": "editor"}
    return models.ProjectMembership.model_validate(raw).row()


def found(data: dict, wanted=RAW_TABLES) -> set[tuple[str, str, str]]:
    q = unresolved_references(data, NOW, wanted)
    assert set(q["observed_at"].to_pylist()) <= {NOW}
    return {(r["table"], r["gid"], r["error"].removeprefix(UNRESOLVED)) for r in q.to_pylist()}


WORLD = {
    "projects": [{"gid": "1"}, {"gid": "2"}],
    "sections": [
        {"gid": "11", "project_gid": "1", "position": 0},
        {"gid": "12", "project_gid": "1", "position": 1},
        {"gid": "21", "project_gid": "2", "position": 0},
    ],
    "task_memberships": [
        {"task_gid": "100", "project_gid": "1", "section_gid": "11", "position": 0},  # fine
        {"task_gid": "101", "project_gid": "1", "section_gid": "21", "position": 0},  # a section of project 2
        {"task_gid": "102", "project_gid": "1", "section_gid": "99", "position": 0},  # no such section
        {"task_gid": "103", "project_gid": "1", "section_gid": None, "position": 0},  # no section: nothing to resolve
        {"task_gid": "104", "project_gid": "3", "section_gid": "31", "position": 0},  # project not listed
    ],
    "stories": [
        {"gid": "200", "task_gid": "100", "old_section_gid": "11", "new_section_gid": "12"},  # fine
        {"gid": "201", "task_gid": "100", "old_section_gid": "12", "new_section_gid": "98"},  # new one unknown
        {"gid": "202", "task_gid": "100", "old_section_gid": "97", "new_section_gid": "21"},  # old one unknown
        {"gid": "203", "task_gid": "100", "type": "comment"},  # no section named
    ],
    "project_memberships": [
        member("300", {"gid": "500", "resource_type": "user"}),  # fine
        member("301", {"gid": "501", "resource_type": "team"}),  # fine
        member("302", {"gid": "502"}),  # no type at all
        member("303", {"gid": "503", "resource_type": "group"}),  # a type that is neither
    ],
}


def test_each_broken_reference_is_quarantined_with_its_reason():
    assert found(tables(**WORLD)) == {
        ("task_memberships", "101", "section 21 is not a listed section of project 1"),
        ("task_memberships", "102", "section 99 is not a listed section of project 1"),
        ("task_memberships", "104", "project 3 is not listed"),
        ("stories", "201", "new_section 98 is not a listed section"),
        ("stories", "202", "old_section 97 is not a listed section"),
        ("project_memberships", "302", "member 502 is of type (none), neither user nor team"),
        ("project_memberships", "303", "member 503 is of type group, neither user nor team"),
    }


def test_the_raw_column_holds_the_row_that_points_nowhere():
    q = unresolved_references(tables(**WORLD), NOW).to_pylist()
    raw = next(r["raw"] for r in q if r["gid"] == "102")
    assert raw == '{"position":0,"project_gid":"1","section_gid":"99","task_gid":"102"}'


def test_complete_references_raise_nothing():
    fine = {
        "projects": WORLD["projects"], "sections": WORLD["sections"],
        "task_memberships": [WORLD["task_memberships"][0], WORLD["task_memberships"][3]],
        "stories": [WORLD["stories"][0], WORLD["stories"][3]],
        "project_memberships": WORLD["project_memberships"][:2],
    }
    assert found(tables(**fine)) == set()
    assert found(tables()) == set()  # an empty workspace


def test_a_partial_crawl_is_not_flagged_for_tables_it_did_not_read():
    """Without sections read, no section can be judged unknown; member types need nothing else."""
    assert found(tables(**WORLD), wanted={"task_memberships", "stories", "projects"}) == set()
    assert {gid for _, gid, _ in found(tables(**WORLD), wanted={"project_memberships"})} == {"302", "303"}


def test_a_full_crawl_quarantines_the_stories_of_a_removed_section_and_keeps_them():
    """A section removed after tasks moved through it: the moves stay in stories and are named
    in the quarantine (their status history now has a gap)."""
    world = generate_world(seed=5, tasks=200, now=NOW)
    admin = world.default_user
    truth = world.ground_truth()
    task = next(t for t in truth["tasks"] if t["memberships"] and not t["parent"] and not t["completed"])
    project, home = task["memberships"][0]["project"]["gid"], task["memberships"][0]["section"]["gid"]
    passage = world.add_section(project, "Temporary", actor=admin)
    world.move_task_to_section(task["gid"], passage, actor=admin)
    world.move_task_to_section(task["gid"], home, actor=admin)
    world.remove_section(passage, actor=admin)
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:

        async def run():
            async with AsanaClient(sim.base_url, DEMO_TOKEN, requests_per_minute=QUOTA) as client:
                return await crawl(client)

        result = asyncio.run(run())
    truth = world.ground_truth()
    through = {  # the two moves, from the simulator's own stories
        s["gid"] for s in truth["stories"]
        if passage.gid in ((s.get("old_section") or {}).get("gid"), (s.get("new_section") or {}).get("gid"))
    }
    assert len(through) == 2
    q = result.tables["quarantine"].to_pylist()
    assert {(r["table"], r["gid"]) for r in q} == {("stories", gid) for gid in through}
    assert all(passage.gid in r["error"] for r in q)
    assert through <= set(result.tables["stories"]["gid"].to_pylist())
