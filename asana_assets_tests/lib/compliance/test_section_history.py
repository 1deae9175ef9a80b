"""ticket_section_history on hand-built raw tables: every stay is written here by hand, with the
reason it must be so, and read through the table's schema as the asset stages it."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest

from asana_assets.lib.compliance import monitors, tickets
from asana_assets.lib.compliance.workflow import workflow_states
from asana_assets.lib.schema import DERIVED_TABLES, RAW_TABLES, require_columns, to_arrow

T0 = pd.Timestamp("2026-03-02 09:00", tz="UTC")
SECTIONS = {  # gid: (project, name)
    "backlog": ("p1", "Backlog"), "review": ("p1", "In review"), "done": ("p1", "Done"),
    "todo": ("p2", "To do"), "doing": ("p2", "In progress"),
}


def h(n: float) -> pd.Timestamp:
    return T0 + timedelta(hours=n)


class World:
    """Tasks created by alice at T0, their memberships now and their stories."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {name: [] for name in RAW_TABLES}
        self.rows["sections"] = [{"gid": gid, "project_gid": project, "name": name, "position": i}
                                 for i, (gid, (project, name)) in enumerate(SECTIONS.items())]

    def task(self, gid: str, *now: str) -> None:
        """A task sitting now in the sections ``now`` (one per project)."""
        self.rows["tasks"].append({"gid": gid, "workspace_gid": "w1", "name": gid, "created_by_gid": "alice",
                                   "created_at": T0, "completed": False})
        self.rows["task_memberships"] += [{"task_gid": gid, "project_gid": SECTIONS[s][0], "section_gid": s,
                                           "position": i} for i, s in enumerate(now)]

    def story(self, task: str, hours: float, subtype: str, by: str | None, **fields) -> None:
        gid = f"st{len(self.rows['stories']) + 1:03d}"  # story gids sort in the order they are told
        self.rows["stories"].append({"gid": gid, "task_gid": task, "created_at": h(hours), "created_by_gid": by,
                                     "type": "system", "resource_subtype": subtype, **fields})

    def move(self, task: str, old: str, new: str, hours: float, by: str | None) -> None:
        self.story(task, hours, "section_changed", by, old_section_gid=old, new_section_gid=new)

    def stays(self) -> dict[str, list[tuple]]:
        """Each ticket's stays (project, section, stage, state, entered_at, left_at, entered_by, seconds), from the
        timeline the monitors read, through the table's schema."""
        t = {name: to_arrow(name, rows).to_pandas() for name, rows in self.rows.items()}
        states = workflow_states(t["sections"])
        timeline, _ = monitors.history_inputs(t, states, tickets.ticket_events(t, states))
        frame = tickets.section_history(timeline)
        schema = DERIVED_TABLES["ticket_section_history"]
        table = require_columns("ticket_section_history",
                                pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False))
        out: dict[str, list[tuple]] = {}
        for row in table.to_pylist():
            out.setdefault(row["ticket_gid"], []).append(
                (row["interval_id"], row["project_gid"], row["section_gid"], row["stage"], row["state"],
                 row["entered_at"], row["left_at"], row["entered_by_gid"], row["duration_seconds"]))
        return out


@pytest.fixture(scope="module")
def stays() -> dict[str, list[tuple]]:
    w = World()
    # Backlog -> In review (bob, +2h) -> Done (carol, +5h), and still in Done.
    w.task("through", "done")
    w.move("through", "backlog", "review", 2, "bob")
    w.move("through", "review", "done", 5, "carol")
    # In Backlog of p1 all along; bob added it to p2 at +1h, carol moved it there at +3h.
    w.task("two-projects", "backlog", "doing")
    w.story("two-projects", 1, "added_to_project", "bob", project_gid="p2")
    w.move("two-projects", "todo", "doing", 3, "carol")
    # Two moves at +1h: Backlog -> In review (bob), then In review -> Done (carol).
    w.task("same-instant", "done")
    w.move("same-instant", "backlog", "review", 1, "bob")
    w.move("same-instant", "review", "done", 1, "carol")
    # Moved to In review (bob, +1h), removed from p1 (carol, +4h): in no project now.
    w.task("removed")
    w.move("removed", "backlog", "review", 1, "bob")
    w.story("removed", 4, "removed_from_project", "carol", project_gid="p1")
    # Moved to In review at +6h by a rule (a story with no author), and still there.
    w.task("in-review", "review")
    w.move("in-review", "backlog", "review", 6, None)
    # A story "moving" it into Backlog, where it already sat: nothing changed.
    w.task("not-moved", "backlog")
    w.move("not-moved", "backlog", "backlog", 1, "bob")
    return w.stays()


def test_a_ticket_moved_through_review_has_one_stay_per_section_with_its_mover(stays):
    assert stays["through"] == [
        # Created by alice in the section the first move left: 2 hours in Backlog.
        ("through/p1/1772442000000000", "p1", "backlog", "BACKLOG", "OPEN", T0, h(2), "alice", 7200.0),
        # IN_REVIEW, though its state is IN_PROGRESS like any work in progress: 3 hours, moved in by bob.
        ("through/p1/1772449200000000", "p1", "review", "IN_REVIEW", "IN_PROGRESS", h(2), h(5), "bob", 10800.0),
        # Still in Done: no exit and no duration.
        ("through/p1/1772460000000000", "p1", "done", "DONE", "CLOSED", h(5), None, "carol", None),
    ]


def test_each_project_has_its_own_stays_and_an_added_ticket_starts_with_who_added_it(stays):
    assert stays["two-projects"] == [
        # p1: never moved, so one open stay from creation.
        ("two-projects/p1/1772442000000000", "p1", "backlog", "BACKLOG", "OPEN", T0, None, "alice", None),
        # p2: from bob's addition (+1h) in the section the first move left (To do), 2 hours.
        ("two-projects/p2/1772445600000000", "p2", "todo", "TODO", "OPEN", h(1), h(3), "bob", 7200.0),
        ("two-projects/p2/1772452800000000", "p2", "doing", "IN_PROGRESS", "IN_PROGRESS", h(3), None, "carol", None),
    ]


def test_several_moves_at_one_instant_keep_the_last(stays):
    # No zero-length stay in In review: at +1h the ticket ended in Done, where carol put it.
    assert stays["same-instant"] == [
        ("same-instant/p1/1772442000000000", "p1", "backlog", "BACKLOG", "OPEN", T0, h(1), "alice", 3600.0),
        ("same-instant/p1/1772445600000000", "p1", "done", "DONE", "CLOSED", h(1), None, "carol", None),
    ]


def test_removal_from_the_project_ends_the_stay(stays):
    assert stays["removed"] == [
        ("removed/p1/1772442000000000", "p1", "backlog", "BACKLOG", "OPEN", T0, h(1), "alice", 3600.0),
        # Left In review by leaving the project (+4h): 3 hours, and no stay after.
        ("removed/p1/1772445600000000", "p1", "review", "IN_REVIEW", "IN_PROGRESS", h(1), h(4), "bob", 10800.0),
    ]


def test_a_ticket_still_in_a_section_has_an_open_stay_and_an_unknown_mover_stays_unknown(stays):
    assert stays["in-review"] == [
        ("in-review/p1/1772442000000000", "p1", "backlog", "BACKLOG", "OPEN", T0, h(6), "alice", 21600.0),
        # Moved by a rule: nobody is named.
        ("in-review/p1/1772463600000000", "p1", "review", "IN_REVIEW", "IN_PROGRESS", h(6), None, None, None),
    ]


def test_a_move_into_the_section_it_sits_in_continues_the_stay(stays):
    assert stays["not-moved"] == [
        ("not-moved/p1/1772442000000000", "p1", "backlog", "BACKLOG", "OPEN", T0, None, "alice", None)]
