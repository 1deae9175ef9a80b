"""Custom fields of every type, from the simulator into custom_fields, custom_field_settings,
task_custom_fields and the stories that change them. Expected values are written by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import httpx
import pytest
from pydantic import ValidationError

from asana_assets.lib.asana import models
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.asana.crawl import crawl
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FAST = SimulatorConfig(requests_per_minute=1_000_000)


def sync(base_url: str):
    async def run():
        async with AsanaClient(base_url, DEMO_TOKEN, requests_per_minute=1_000_000) as client:
            return await crawl(client)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def synced():
    w = World(now=NOW)
    ws = w.add_workspace("Acme", ["acme.com"])
    ann, bob = w.add_user("Ann", "ann@acme.com"), w.add_user("Bob", "bob@acme.com")
    for user in (ann, bob):
        w.add_workspace_membership(user, ws)
    w.default_user = ann.gid
    project = w.add_project(ws, "Platform")
    w.add_section(project, "To do")
    fields = {
        "text": w.add_custom_field(ws, "Ticket ref", "text"),
        "number": w.add_custom_field(ws, "Risk score", "number", precision=2),
        "enum": w.add_custom_field(ws, "Type", "enum", enum_options=["Bug", "Change"]),
        "multi_enum": w.add_custom_field(ws, "Systems", "multi_enum", enum_options=["API", "DB", "Web"]),
        "date": w.add_custom_field(ws, "Go-live", "date"),
        "people": w.add_custom_field(ws, "Reviewers", "people"),
    }
    unused = w.add_custom_field(ws, "Unused", "text")  # defined, in no project: not listed by settings
    for field in fields.values():
        w.add_custom_field_setting(project, field, is_important=field.resource_subtype == "enum")
    task = w.create_task("Rotate keys", project=project, actor=ann)
    blank = w.create_task("Nothing set", project=project, actor=ann)
    w.set_custom_field(task, fields["text"], "CHG-12", actor=ann)
    w.set_custom_field(task, fields["number"], 7, actor=ann)
    w.set_custom_field(task, fields["number"], 3.25, actor=bob)
    w.set_custom_field(task, fields["enum"], "Bug", actor=ann)
    w.set_custom_field(task, fields["enum"], "Change", actor=bob)
    w.set_custom_field(task, fields["multi_enum"], ["API", "Web"], actor=ann)
    w.set_custom_field(task, fields["date"], "2026-06-10", actor=ann)
    w.set_custom_field(task, fields["people"], [ann, bob], actor=ann)
    with Simulator(w, FAST) as sim:
        result = sync(sim.base_url)
    return w, ws, fields, unused, project, task, blank, result


def one_project():
    """A world of one user, Ann (whom the token acts for), and one project with one section."""
    w = World(now=NOW)
    ws = w.add_workspace("Acme", ["acme.com"])
    ann = w.add_user("Ann", "ann@acme.com")
    w.add_workspace_membership(ann, ws)
    w.default_user = ann.gid
    project = w.add_project(ws, "Platform")
    w.add_section(project, "To do")
    return w, ws, ann, project


def rows(result, table):
    return result.tables[table].to_pylist()


def test_definitions_and_settings(synced):
    w, ws, fields, unused, project, _task, _blank, result = synced
    assert rows(result, "quarantine") == []
    defs = {r["gid"]: r for r in rows(result, "custom_fields")}
    assert set(defs) == {f.gid for f in fields.values()}  # the unused field is in no project's settings
    assert unused.gid not in defs
    enum = defs[fields["enum"].gid]
    assert (enum["name"], enum["resource_subtype"], enum["workspace_gid"]) == ("Type", "enum", ws.gid)
    assert enum["enum_option_names"] == ["Bug", "Change"]
    assert enum["enum_option_gids"] == [o["gid"] for o in fields["enum"].enum_options]
    assert defs[fields["number"].gid]["precision"] == 2
    assert defs[fields["multi_enum"].gid]["enum_option_names"] == ["API", "DB", "Web"]
    assert defs[fields["text"].gid]["enum_option_names"] == []
    settings = rows(result, "custom_field_settings")
    assert {(s["project_gid"], s["custom_field_gid"]) for s in settings} == {
        (project.gid, f.gid) for f in fields.values()
    }
    assert {s["custom_field_gid"] for s in settings if s["is_important"]} == {fields["enum"].gid}


def test_values_of_every_type(synced):
    w, _ws, fields, _unused, _project, task, blank, result = synced
    values = {(r["task_gid"], r["custom_field_gid"]): r for r in rows(result, "task_custom_fields")}
    ann, bob = w.users
    got = {kind: values[(task.gid, f.gid)] for kind, f in fields.items()}
    assert got["text"]["text_value"] == "CHG-12" and got["text"]["display_value"] == "CHG-12"
    assert got["number"]["number_value"] == 3.25 and got["number"]["display_value"] == "3.25"
    change = fields["enum"].enum_options[1]
    assert (got["enum"]["enum_option_gid"], got["enum"]["enum_option_name"]) == (change["gid"], "Change")
    api, _db, web = fields["multi_enum"].enum_options
    assert got["multi_enum"]["multi_enum_option_gids"] == [api["gid"], web["gid"]]
    assert got["multi_enum"]["multi_enum_option_names"] == ["API", "Web"]
    assert got["multi_enum"]["display_value"] == "API, Web"
    assert got["date"]["date_value"] == date(2026, 6, 10)
    assert got["people"]["people_gids"] == [ann, bob] and got["people"]["display_value"] == "Ann, Bob"
    for kind, row in got.items():
        assert row["resource_subtype"] == kind
    # A task of the project with nothing set still carries each field, unset.
    unset = [values[(blank.gid, f.gid)] for f in fields.values()]
    assert [r["display_value"] for r in unset] == [None] * 6
    assert [r["enum_option_gid"] for r in unset] == [None] * 6


def test_change_stories_keep_old_and_new_values(synced):
    w, _ws, fields, _unused, _project, task, _blank, result = synced
    stories = [s for s in rows(result, "stories") if s["task_gid"] == task.gid and s["custom_field_gid"]]
    by_subtype = {}
    for story in sorted(stories, key=lambda s: s["created_at"]):
        by_subtype.setdefault(story["resource_subtype"], []).append(story)
    assert set(by_subtype) == {f"{kind}_custom_field_changed" for kind in fields}
    first, second = by_subtype["number_custom_field_changed"]
    assert (first["old_number_value"], first["new_number_value"]) == (None, 7)
    assert (second["old_number_value"], second["new_number_value"]) == (7, 3.25)
    assert second["custom_field_gid"] == fields["number"].gid
    bug, change = fields["enum"].enum_options
    _, enum_change = by_subtype["enum_custom_field_changed"]
    assert (enum_change["old_enum_option_gid"], enum_change["old_enum_option_name"]) == (bug["gid"], "Bug")
    assert (enum_change["new_enum_option_gid"], enum_change["new_enum_option_name"]) == (change["gid"], "Change")
    (text,) = by_subtype["text_custom_field_changed"]
    assert (text["old_text_value"], text["new_text_value"]) == (None, "CHG-12")
    (multi,) = by_subtype["multi_enum_custom_field_changed"]
    assert (multi["old_multi_enum_option_names"], multi["new_multi_enum_option_names"]) == ([], ["API", "Web"])
    (day,) = by_subtype["date_custom_field_changed"]
    assert (day["old_date_value"], day["new_date_value"]) == (None, date(2026, 6, 10))
    (people,) = by_subtype["people_custom_field_changed"]
    assert (people["old_people_gids"], people["new_people_gids"]) == ([], list(w.users))


def test_an_incremental_sync_picks_up_a_value_change_and_its_story():
    """A field set between syncs: the task's value row is replaced and the change story added."""
    from asana_assets.lib.asana.incremental import incremental_sync, record_full_sync
    from asana_assets.lib.asana.state import SyncState

    w, ws, ann, project = one_project()
    kind = w.add_custom_field(ws, "Type", "enum", enum_options=["Bug", "Change"])
    w.add_custom_field_setting(project, kind)
    task = w.create_task("Rotate keys", project=project, actor=ann)
    w.set_custom_field(task, kind, "Bug", actor=ann)

    async def run(sim):
        async with AsanaClient(sim.base_url, DEMO_TOKEN, requests_per_minute=1_000_000) as client:
            first = await crawl(client, track_events=True)
            state = SyncState()
            record_full_sync(state, first)
            w.set_custom_field(task, kind, "Change", actor=ann)
            return await incremental_sync(client, state, first.tables)

    with Simulator(w, FAST) as sim:
        changes = asyncio.run(run(sim))
    tables = changes.result.tables
    (value,) = tables["task_custom_fields"].to_pylist()
    assert (value["task_gid"], value["enum_option_name"]) == (task.gid, "Change")
    changed = [s for s in tables["stories"].to_pylist() if s["resource_subtype"] == "enum_custom_field_changed"]
    assert {(s["old_enum_option_name"], s["new_enum_option_name"]) for s in changed} == {(None, "Bug"), ("Bug", "Change")}
    assert [r["gid"] for r in tables["custom_fields"].to_pylist()] == [kind.gid]


def test_reference_and_formula_fields():
    """A reference field keeps the gids of the tasks it points at; a formula field's computed
    value is synced as Asana shows it, and the simulator refuses to write it (read-only)."""
    w, ws, ann, project = one_project()
    hours, extra = w.add_custom_field(ws, "Hours", "number"), w.add_custom_field(ws, "Extra", "number")
    total = w.add_custom_field(ws, "Total", "number", formula=(hours, extra))
    blocks = w.add_custom_field(ws, "Blocked by", "reference")
    for field in (hours, extra, total, blocks):
        w.add_custom_field_setting(project, field)
    first, second = (w.create_task(n, project=project, actor=ann) for n in ("Migrate DB", "Freeze writes"))
    task = w.create_task("Cut over", project=project, actor=ann)
    blank = w.create_task("Nothing set", project=project, actor=ann)
    w.set_custom_field(task, blocks, [first, second], actor=ann)
    w.set_custom_field(task, hours, 5, actor=ann)
    w.set_custom_field(task, extra, 2, actor=ann)
    with pytest.raises(ValueError, match="read-only"):
        w.set_custom_field(task, total, 99, actor=ann)
    with Simulator(w, FAST) as sim:
        result = sync(sim.base_url)
    assert rows(result, "quarantine") == []
    defs = {r["gid"]: r for r in rows(result, "custom_fields")}
    assert (defs[total.gid]["resource_subtype"], defs[total.gid]["is_formula_field"]) == ("number", True)
    assert (defs[hours.gid]["is_formula_field"], defs[blocks.gid]["resource_subtype"]) == (False, "reference")
    values = {(r["task_gid"], r["custom_field_gid"]): r for r in rows(result, "task_custom_fields")}
    reference = values[(task.gid, blocks.gid)]
    assert reference["reference_gids"] == [first.gid, second.gid]
    assert reference["display_value"] == "Migrate DB, Freeze writes"
    assert (values[(task.gid, total.gid)]["number_value"], values[(task.gid, total.gid)]["display_value"]) == (7, "7")
    # Edge: nothing set, nothing computed; the reference is empty, not null.
    assert values[(blank.gid, total.gid)]["display_value"] is None
    assert values[(blank.gid, blocks.gid)]["reference_gids"] == []


def test_date_values_are_read_in_either_documented_form():
    """A change story serves StoryResponseDates {start_on, due_at, due_on} (one in four the task
    value's {date, date_time}); the rows hold the same day and time whichever form came."""
    w, ws, ann, project = one_project()
    go_live = w.add_custom_field(ws, "Go-live", "date")
    w.add_custom_field_setting(project, go_live)
    task = w.create_task("Launch", project=project, actor=ann)
    for value in ("2026-06-10", "2026-06-12T15:30:00Z", "2026-06-20", "2026-06-21"):
        w.set_custom_field(task, go_live, value, actor=ann)
    timed = w.create_task("Cut-over", project=project, actor=ann)
    w.set_custom_field(timed, go_live, "2026-07-01T08:00:00Z", actor=ann)
    with Simulator(w, FAST) as sim:
        served = httpx.get(f"{sim.base_url}/tasks/{task.gid}/stories", headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
                           params={"opt_fields": "new_date_value"}).json()["data"]
        result = sync(sim.base_url)
    forms = {tuple(sorted(s["new_date_value"])) for s in served if "new_date_value" in s}
    assert ("due_at", "due_on", "start_on") in forms and forms & {("date",), ("date", "date_time")}  # both served
    assert rows(result, "quarantine") == []
    stories = sorted((s for s in rows(result, "stories") if s["task_gid"] == task.gid and s["custom_field_gid"]),
                     key=lambda s: s["created_at"])
    at = datetime(2026, 6, 12, 15, 30, tzinfo=UTC)
    assert [(s["old_date_value"], s["old_date_time_value"], s["new_date_value"], s["new_date_time_value"])
            for s in stories] == [
        (None, None, date(2026, 6, 10), None),
        (date(2026, 6, 10), None, date(2026, 6, 12), at),
        (date(2026, 6, 12), at, date(2026, 6, 20), None),
        (date(2026, 6, 20), None, date(2026, 6, 21), None),
    ]
    values = {r["task_gid"]: r for r in rows(result, "task_custom_fields") if r["custom_field_gid"] == go_live.gid}
    assert (values[task.gid]["date_value"], values[task.gid]["date_time_value"]) == (date(2026, 6, 21), None)
    assert (values[timed.gid]["date_value"], values[timed.gid]["date_time_value"]) == (
        date(2026, 7, 1), datetime(2026, 7, 1, 8, 0, tzinfo=UTC))


@pytest.mark.parametrize(("value", "day", "time"), [
    ({"date": "2026-06-10"}, date(2026, 6, 10), None),
    ({"start_on": None, "due_on": "2026-06-10", "due_at": None}, date(2026, 6, 10), None),
    ({"due_on": "2026-06-10", "due_at": "2026-06-10T09:00:00.000Z"}, date(2026, 6, 10),
     datetime(2026, 6, 10, 9, tzinfo=UTC)),
    ({"date": "2026-06-10", "due_on": "2026-06-10"}, date(2026, 6, 10), None),  # both forms, agreeing
])
def test_a_date_value_in_either_form_gives_one_day_and_time(value, day, time):
    parsed = models.DateValue.model_validate(value)
    assert (parsed.day, parsed.time) == (day, time)


@pytest.mark.parametrize("value", [
    {"date": "2026-06-10", "due_on": "2026-06-11"},  # two days: neither is picked
    {"date_time": "2026-06-10T09:00:00Z", "due_at": "2026-06-10T10:00:00Z"},
    {"start_on": "2026-06-01", "due_on": "2026-06-10"},  # a range has no column
])
def test_a_date_value_that_says_two_things_is_refused(value):
    with pytest.raises(ValidationError):
        models.DateValue.model_validate(value)


def test_enabled_is_read_from_values_only():
    """The spec gives enabled on a field's values, not on its definition: the definition row's is
    null, and a value is disabled once the field is on none of the task's projects."""
    w, ws, ann, project = one_project()
    other = w.add_project(ws, "Ops")
    w.add_section(other, "Queue")
    risk = w.add_custom_field(ws, "Risk", "text")
    w.add_custom_field_setting(project, risk)
    kept, moved, shared = (w.create_task(name, project=project, actor=ann) for name in ("Kept", "Moved", "Shared"))
    for task in (kept, moved, shared):
        w.set_custom_field(task, risk, "high", actor=ann)
    w.add_task_to_project(moved, other, actor=ann)
    w.remove_task_from_project(moved, project, actor=ann)  # the field is on none of its projects now
    w.add_task_to_project(shared, other, actor=ann)  # edge: in a project without the field, and one with it
    with Simulator(w, FAST) as sim:
        auth = {"Authorization": f"Bearer {DEMO_TOKEN}"}
        definition = httpx.get(f"{sim.base_url}/custom_fields/{risk.gid}", headers=auth).json()["data"]
        result = sync(sim.base_url)
    assert "enabled" not in definition
    assert [r["enabled"] for r in rows(result, "custom_fields")] == [None]
    values = {r["task_gid"]: r for r in rows(result, "task_custom_fields")}
    assert {gid: (values[gid]["text_value"], values[gid]["enabled"]) for gid in values} == {
        kept.gid: ("high", True), moved.gid: ("high", False), shared.gid: ("high", True)}
