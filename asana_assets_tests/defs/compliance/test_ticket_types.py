"""Change tickets typed by a custom field, through the whole pipeline: a ticket typed "Change"
is a change wherever it sits; the expected verdicts are written by hand for a hand-built world."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import World
from asana_assets_tests.support.pipeline import alarms, results_of, run_pipeline, status

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=30)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def helpdesk_world():
    """No change project: a helpdesk whose tickets carry a "Ticket type" field and a
    "Prototype" field (which names no type: the word is not "type")."""
    w = World(now=T0 - timedelta(days=10))
    ws = w.add_workspace("Acme", ["acme.example"])
    admin, alice, bob, carol = (w.add_user(n, f"{n.lower()}@acme.example") for n in ("Admin", "Alice", "Bob", "Carol"))
    for user in (admin, alice, bob, carol):
        w.add_workspace_membership(user, ws, is_admin=user is admin)
    w.default_user = admin.gid
    helpdesk = w.add_project(ws, "IT Helpdesk", owner=admin)
    new, doing, _closed = (w.add_section(helpdesk, n) for n in ("New", "Doing", "Closed"))
    decoy = w.add_custom_field(ws, "Prototype", "enum", enum_options=["Change", "Other"])
    kind = w.add_custom_field(ws, "Ticket type", "enum", enum_options=["Bug", "Change request", "Change"])
    for field in (decoy, kind):
        w.add_custom_field_setting(helpdesk, field)

    def ticket(name, type_=None, decoy_value=None):
        task = w.create_task(name, actor=alice, project=helpdesk, section=new, assignee=bob, at=hours(0))
        if type_:
            w.set_custom_field(task, kind, type_, actor=alice, at=hours(0.5))
        if decoy_value:
            w.set_custom_field(task, decoy, decoy_value, actor=alice, at=hours(0.5))
        w.move_task_to_section(task, doing, actor=bob, at=hours(2))  # work starts, approved or not
        return task

    tickets = {
        "change": ticket("Typed Change", "Change"),  # a change outside any change project, unapproved
        "request": ticket("Typed change request", "Change request"),  # case-insensitive match of a default
        "bug": ticket("Typed Bug", "Bug"),  # not a change type
        "untyped": ticket("No type"),  # today's rule: a task, not a change
        "decoy": ticket("Prototype says Change", decoy_value="Change"),  # the decoy field types nothing
    }
    approved = ticket("Typed Change, approved", "Change")
    approval = w.create_task("Approve it", actor=alice, parent=approved, resource_subtype="approval",
                             assignee=carol, at=hours(1))
    w.set_approval_status(approval, "approved", actor=carol, at=hours(1.5))
    tickets["approved"] = approved
    return w, tickets


def test_a_ticket_typed_change_outside_change_projects_is_judged_as_a_change(tmp_path):
    world, t = helpdesk_world()
    run = run_pipeline(world, tmp_path, AS_OF)
    assert run.success
    table = ParquetWarehouse(tmp_path).read("tickets").to_pandas().set_index("gid")
    assert table.loc[t["change"].gid, "ticket_type"] == "Change"
    assert table.loc[t["request"].gid, "ticket_type"] == "Change request"
    assert table.loc[t["bug"].gid, "ticket_type"] == "Bug"
    assert table.loc[t["untyped"].gid, "ticket_type"] == "task"
    assert table.loc[t["decoy"].gid, "ticket_type"] == "task"
    changes = set(table.index[table["is_change"]])
    assert changes == {t["change"].gid, t["request"].gid, t["approved"].gid}
    results = results_of(run, tmp_path)
    assert alarms(results, "changes_approved") == {t["change"].gid, t["request"].gid}
    for name in ("bug", "untyped", "decoy"):
        assert status(results, "changes_approved", t[name].gid) == "skip"  # not a change ticket
    assert status(results, "changes_approved", t["approved"].gid) == "ok"


@pytest.mark.parametrize(("pattern", "decoy_is_change"), [
    ("", False),  # the list alone: only "Other" is a change
    (None, True),  # the default pattern: an option named "Change" says change whatever the list
])
def test_configured_field_and_change_types(tmp_path, pattern, decoy_is_change):
    """Configured: the "Prototype" field types tickets, and "Other" is a change."""
    world, t = helpdesk_world()
    run = run_pipeline(world, tmp_path, AS_OF, ticket_type_field="prototype", change_ticket_types=["other"],
                       **({} if pattern is None else {"change_type_pattern": pattern}))
    assert run.success
    table = ParquetWarehouse(tmp_path).read("tickets").to_pandas().set_index("gid")
    assert table.loc[t["decoy"].gid, "ticket_type"] == "Change"  # its Prototype value
    assert table.loc[t["change"].gid, "ticket_type"] == "task"  # no Prototype value
    assert set(table.index[table["is_change"]]) == ({t["decoy"].gid} if decoy_is_change else set())


def test_the_typing_fields_are_every_enum_named_type():
    from asana_assets.lib.compliance.tickets import ticket_type_fields

    fields = pd.DataFrame({
        "gid": ["30", "4", "5", "6", "7", "8"],
        "workspace_gid": ["1", "1", "1", "1", "2", "2"],
        "name": ["Change type", "Type", "Prototype", "Types", "TYPE", "Ticket type"],
        "resource_subtype": ["enum", "text", "enum", "enum", "enum", "multi_enum"],
    })
    # Every enum or multi-enum field with the word "type" counts, oldest (lowest gid) first:
    # "Type" is text, "Prototype" and "Types" lack the word.
    assert list(ticket_type_fields(fields)) == ["7", "8", "30"]
    assert list(ticket_type_fields(fields, "types")) == ["6"]
    assert list(ticket_type_fields(fields, "7")) == ["7"]
    assert list(ticket_type_fields(fields, "Ticket type")) == ["8"]  # a multi-enum may be configured
    assert list(ticket_type_fields(fields.iloc[:0])) == []
    # A configured field that is not there is a clear error, never a silent "no change tickets".
    with pytest.raises(ValueError, match="names no enum custom field.*ticket_type_field"):
        ticket_type_fields(fields, "Priority")  # no such field
