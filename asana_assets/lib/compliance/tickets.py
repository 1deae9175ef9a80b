"""Tickets: tasks in a ticketing common model, with their changelog, status history and approvals.

Everything here reads the structured fields of stories (new_section, assignee,
new_approval_status, ...), never their text, and is built with whole-table pandas operations.
Inputs are the raw tables as pandas frames; ``states`` is the ``workflow_states`` table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import reduce

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.lib.compliance.workflow import (
    CHANGE_PROJECT_PATTERN,
    IMPLEMENTATION_STAGES,
    STATE_OF_STAGE,
    UNKNOWN,
    is_change_project,
)

Raw = Mapping[str, pd.DataFrame]

CLOSED = "CLOSED"
# The fields that type tickets, unless one is configured: every enum and multi-enum field whose name
# has the word "type" ("Type", "Ticket type", "Change type"; not "Prototype").
TICKET_TYPE_FIELD_PATTERN = r"(?i)\btype\b"
CHANGE_TYPE_PATTERN = r"\bchange"
CHANGE_TICKET_TYPES = ("Change", "Change request", "Normal change", "Standard change", "Emergency change")
TIMESTAMP = "datetime64[us, UTC]"  # how the warehouse's timestamps read into pandas


def lookup(keys: pd.Series, mapping: pd.Series) -> pd.Series:
    """``keys.map(mapping)`` for a mapping uniquely indexed by text (gids), as ``reindex`` gives
    it (a missing key is null, an int column turns float); unlike ``map`` it also works when the
    mapping is an empty datetime series (pandas 3 refuses that cast). The keys are found with
    Arrow: pandas hashes a text index several times slower."""
    positions = pc.index_in(_arrow_array(keys), value_set=_arrow_array(mapping.index)).fill_null(-1).to_numpy()
    found = pd.api.extensions.take(mapping.array, positions, allow_fill=True)
    return pd.Series(found, index=keys.index, dtype=found.dtype, name=mapping.name)


def isin(keys: pd.Series | pd.Index, values) -> pd.Series | np.ndarray:
    """``keys.isin(values)`` (a null key is in values that hold a null), through Arrow: pandas'
    isin on a text column against a large column takes seconds at 100,000 tickets, Arrow's
    milliseconds. A Series gives a Series on its index, an Index an array."""
    found = pc.is_in(_arrow_array(keys), value_set=_arrow_array(values)).to_numpy(zero_copy_only=False)
    return pd.Series(found, index=keys.index) if isinstance(keys, pd.Series) else found


def sort_rows(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``frame.sort_values(by, ignore_index=True)`` (stable, nulls last) through Arrow's sort,
    several times faster than pandas' on text keys."""
    keys = pa.table({c: pa.array(frame[c], from_pandas=True) for c in by})
    order = pc.sort_indices(keys, sort_keys=[(c, "ascending", "at_end") for c in by])
    return frame.take(order.to_numpy()).reset_index(drop=True)


def group_lists(frame: pd.DataFrame | pa.Table, by: list[str], column: str) -> pa.Table:
    """Per group of ``by`` (a row with a null key in none, as in pandas), its ``column`` values
    in their order, as an Arrow list column of that name; groups in order of first appearance.
    What pandas' ``groupby(by)[column].agg(list)`` or ``.agg(", ".join)`` gives, without calling
    Python once per group."""
    table = pa.table({c: _arrow_array(frame[c]) for c in dict.fromkeys([*by, column])})
    keyed = table.filter(reduce(pc.and_, [pc.is_valid(table[c]) for c in by]))
    grouped = keyed.group_by(by, use_threads=False).aggregate([(column, "list")])  # keeps the order
    return grouped.select(by).append_column(column, grouped[f"{column}_list"].cast(pa.list_(pa.string())))


def _arrow_array(values) -> pa.Array:
    """Keys as Arrow text (``is_in`` compares like with like)."""
    array = pa.array(list(values) if isinstance(values, (set, frozenset)) else values, from_pandas=True)
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return array.cast(pa.large_string())


# -- collections ------------------------------------------------------------------------
def collections(raw: Raw, change_projects: Sequence[str] | None = None,
                change_pattern: str = CHANGE_PROJECT_PATTERN) -> pd.DataFrame:
    """One row per project, placed in the hierarchy workspace > team > project."""
    p = raw["projects"]
    ws = raw["workspaces"].set_index("gid")["name"]
    teams = raw["teams"].set_index("gid")["name"]
    out = pd.DataFrame({
        "gid": p["gid"], "name": p["name"], "description": p["notes"],
        "workspace_gid": p["workspace_gid"], "workspace_name": lookup(p["workspace_gid"], ws),
        "team_gid": p["team_gid"], "team_name": lookup(p["team_gid"], teams),
    })
    out["path"] = (
        out["workspace_name"].fillna("?") + " > " + out["team_name"].fillna("(no team)") + " > " + out["name"].fillna("")
    )
    for column in ("archived", "privacy_setting", "default_access_level", "owner_gid", "created_at", "modified_at"):
        out[column] = p[column]
    out["is_change_project"] = change_project_mask(p, change_projects, change_pattern)
    out["url"] = p["permalink_url"]
    return out


def configured_projects(projects: pd.DataFrame, configured: Sequence[str]) -> tuple[pd.Series, list[str]]:
    """The projects a setting names (by gid or name, case-insensitively), and the entries that
    match no synced project (a typo the caller must not let pass silently)."""
    wanted = {str(v).casefold() for v in configured}
    gids, names = projects["gid"].astype("str").str.casefold(), projects["name"].fillna("").str.casefold()
    known = {*gids, *names}
    return gids.isin(wanted) | names.isin(wanted), sorted(str(v) for v in configured if str(v).casefold() not in known)


def change_project_mask(projects: pd.DataFrame, change_projects: Sequence[str] | None,
                        change_pattern: str) -> pd.Series:
    """Projects named in configuration (gid or name), else those matching the pattern. A
    configured name that matches no project is refused: a typo would silently take that
    project's changes out of the change monitors."""
    if change_projects:
        mask, unmatched = configured_projects(projects, change_projects)
        if unmatched:
            raise ValueError(f"change_projects names {', '.join(map(repr, unmatched))}, which match(es) no synced "
                             "project by gid or name: correct the compliance setting change_projects")
        return mask
    return is_change_project(projects["name"], change_pattern)


def unmapped_change_sections(states: pd.DataFrame, collections_: pd.DataFrame) -> pd.DataFrame:
    """The sections of change projects whose name says no known stage, each with the override
    that maps it (``project_section_overrides``): until mapped, a change that entered one is
    judged unknown."""
    change = collections_.loc[collections_["is_change_project"].fillna(False), ["gid", "name"]]
    found = states[(states["stage"] == UNKNOWN) & isin(states["project_gid"], change["gid"])]
    return pd.DataFrame({
        "project_gid": found["project_gid"].values,
        "project": lookup(found["project_gid"], change.drop_duplicates("gid").set_index("gid")["name"]).values,
        "section_gid": found["section_gid"].values,
        "section": found["name"].values,
        # Few sections: one JSON text each, quoted as the setting takes it.
        "override": [json.dumps({"project_section_overrides": {project: {name or "": "<STAGE>"}}})
                     for project, name in zip(found["project_gid"], found["name"])],
    })


# -- ticket events ----------------------------------------------------------------------
# A story's kind comes from its subtype first: an "unassigned" story is never an assignment,
# whatever fields it carries. The approval status fields mark an approval story whatever its
# subtype (going back to pending is "marked_incomplete"); the other fields decide only when the
# subtype is missing or unknown (the subtype set is open).
EVENT_OF_SUBTYPE = {
    "section_changed": "section_changed", "assigned": "assigned", "unassigned": "unassigned",
    "marked_complete": "completed", "marked_incomplete": "reopened",
    "marked_approved": "approval_changed", "marked_rejected": "approval_changed",
    "marked_changes_requested": "approval_changed",
    "due_date_changed": "due_changed", "start_date_changed": "due_changed",
    "name_changed": "name_changed", "notes_changed": "notes_changed",
    "added_to_project": "added_to_project", "removed_from_project": "removed_from_project",
}
APPROVAL_OF_SUBTYPE = {"marked_approved": "approved", "marked_rejected": "rejected",
                       "marked_changes_requested": "changes_requested"}
DUE_FIELDS = ["old_due_on", "new_due_on", "old_due_at", "new_due_at", "old_start_on", "new_start_on"]
# What ticket_events reads of stories (not the text nor the custom field values: half the table).
STORY_COLUMNS = ["gid", "task_gid", "created_at", "created_by_gid", "resource_subtype", "project_gid",
                 "old_section_gid", "new_section_gid", "assignee_gid", "old_approval_status", "new_approval_status",
                 "old_name", "new_name", *DUE_FIELDS]

# What tickets reads of stories: the custom field changes that may retype a ticket.
TYPE_STORY_COLUMNS = ["task_gid", "created_at", "custom_field_gid", "old_enum_option_name", "new_enum_option_name",
                      "old_multi_enum_option_names", "new_multi_enum_option_names"]


def story_kinds(s: pd.DataFrame) -> pd.Series:
    """The ticket event type of each story, "" for stories that are not one (Arrow-backed text)."""
    subtype = s["resource_subtype"].fillna("").astype("str")
    known = lookup(subtype, pd.Series(EVENT_OF_SUBTYPE)).fillna("")
    by_fields = np.select(
        [s["new_section_gid"].notna(), s["assignee_gid"].notna(), s[DUE_FIELDS].notna().any(axis=1),
         s["new_name"].notna() | s["old_name"].notna()],
        ["section_changed", "assigned", "due_changed", "name_changed"], default="",
    )
    kind = known.where(known != "", pd.Series(by_fields, index=s.index, dtype="str"))
    kind = kind.mask(s["new_approval_status"].notna(), "approval_changed")
    # A kind whose structured field is missing says nothing usable.
    unusable = (
        ((kind == "section_changed") & s["new_section_gid"].isna())
        | (kind.isin(["added_to_project", "removed_from_project"]) & s["project_gid"].isna())
        | ((kind == "approval_changed") & s["new_approval_status"].isna() & ~subtype.isin(list(APPROVAL_OF_SUBTYPE)))
    )
    return kind.mask(unusable, "")


def ticket_events(raw: Raw, states: pd.DataFrame) -> pd.DataFrame:
    """The normalised changelog: one row per meaningful story, plus creation."""
    s = raw["stories"]
    s = s.assign(event_type=story_kinds(s))
    s = s[s["event_type"] != ""]
    kind = s["event_type"]
    section_project = states.set_index("section_gid")["project_gid"]
    section_state = states.set_index("section_gid")["state"]
    is_section = kind == "section_changed"
    approval_new = s["new_approval_status"].fillna(s["resource_subtype"].map(APPROVAL_OF_SUBTYPE))
    events = pd.DataFrame({
        "event_id": s["gid"],
        "ticket_gid": s["task_gid"],
        "event_type": kind,
        "occurred_at": s["created_at"],
        "actor_gid": s["created_by_gid"],
        "project_gid": s["project_gid"].where(~is_section, lookup(s["new_section_gid"], section_project)),
        "old_section_gid": s["old_section_gid"].where(is_section),
        "new_section_gid": s["new_section_gid"].where(is_section),
        "old_state": lookup(s["old_section_gid"], section_state).where(is_section),
        "new_state": lookup(s["new_section_gid"], section_state).where(is_section),
        "old_value": _per_kind(kind, {
            "approval_changed": _first_of(s, ["old_approval_status"]),
            "name_changed": _first_of(s, ["old_name"]),
            "due_changed": _first_of(s, ["old_due_at", "old_due_on", "old_start_on"]),
        }),
        "new_value": _per_kind(kind, {
            "approval_changed": _first_of(s.assign(new_approval_status=approval_new), ["new_approval_status"]),
            "assigned": _first_of(s, ["assignee_gid"]),
            "name_changed": _first_of(s, ["new_name"]),
            "due_changed": _first_of(s, ["new_due_at", "new_due_on", "new_start_on"]),
        }),
    })
    events = pd.concat([events, _approval_completions(events), _created(raw["tasks"])], ignore_index=True)
    events = sort_rows(events, ["ticket_gid", "occurred_at", "event_id"])
    # The previous assignee is the one the last assignment set.
    assignment = events["event_type"].isin(["assigned", "unassigned"])
    previous = events.loc[assignment, ["ticket_gid", "new_value"]].groupby("ticket_gid")["new_value"].shift()
    events.loc[assignment, "old_value"] = previous
    return events


def _per_kind(kind: pd.Series, values: Mapping[str, pd.Series]) -> pd.Series:
    """Each row's value from the series of its kind; null for other kinds. Chosen by Arrow, as text."""
    conditions = pa.StructArray.from_arrays([pa.array(np.asarray(kind == k)) for k in values], names=list(values))
    chosen = pc.case_when(conditions, *(pa.array(v, from_pandas=True).cast(pa.string()) for v in values.values()))
    return pd.Series(chosen.to_pandas().array, index=kind.index)


def _first_of(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The first non-null of several columns, as text (a time or a date as pandas writes it)."""
    texts = []
    for column in columns:
        values = frame[column]
        if not isinstance(values.dtype, pd.StringDtype):
            values = values.dropna().astype("str").reindex(values.index)
        texts.append(pa.array(values, from_pandas=True).cast(pa.string()))
    return pd.Series(pc.coalesce(*texts).to_pandas().array, index=frame.index)


def _approval_completions(events: pd.DataFrame) -> pd.DataFrame:
    """An approval status change also completes (leaving pending) or reopens (back to pending)."""
    a = events[events["event_type"] == "approval_changed"]
    left = (a["old_value"] == "pending") & (a["new_value"] != "pending")
    back = (a["old_value"] != "pending") & (a["new_value"] == "pending")
    # Each part's id from its own rows: pandas gives an empty frame the index of a Series
    # assigned to it, which turned every approval story into a row of nulls.
    completing, reopening = a[left], a[back]
    out = pd.concat([
        completing.assign(event_type="completed", event_id=completing["event_id"] + ":completed"),
        reopening.assign(event_type="reopened", event_id=reopening["event_id"] + ":reopened"),
    ])
    return out.assign(old_value=pd.Series(index=out.index, dtype="str"), new_value=pd.Series(index=out.index, dtype="str"))


def _created(tasks: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "event_id": "created:" + tasks["gid"],
        "ticket_gid": tasks["gid"],
        "event_type": "created",
        "occurred_at": tasks["created_at"],
        "actor_gid": tasks["created_by_gid"],
    })


# -- completion and sections over time --------------------------------------------------
def completions(raw: Raw, events: pd.DataFrame) -> pd.DataFrame:
    """(ticket, at, completed, actor): every completion and reopening, in time order.

    A completed task whose completion left no story completes at its completed_at.
    """
    c = events.loc[events["event_type"].isin(["completed", "reopened"]),
                   ["ticket_gid", "occurred_at", "event_type", "actor_gid", "event_id"]]
    out = pd.DataFrame({
        "ticket_gid": c["ticket_gid"], "at": c["occurred_at"],
        "completed": c["event_type"] == "completed", "actor_gid": c["actor_gid"], "seq": c["event_id"],
    })
    t = raw["tasks"]
    silent = t[t["completed"].fillna(False) & ~isin(t["gid"], out.loc[out["completed"], "ticket_gid"])]
    silent = pd.DataFrame({
        "ticket_gid": silent["gid"], "at": silent["completed_at"], "completed": True,
        "actor_gid": silent["completed_by_gid"], "seq": "completed:" + silent["gid"],
    })
    return sort_rows(pd.concat([out, silent], ignore_index=True), ["ticket_gid", "at", "seq"])


def section_timeline(raw: Raw, states: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """(ticket, project, at, section, stage, state, actor): where a ticket sat in each project,
    sorted by ticket, project, time and story.

    Each project's timeline starts when the ticket was created (or added to the project) in
    the section the first move left, else the section it sits in now, by its creator (or who
    added it); every section move follows; removal from a project ends it with a null section.
    """
    t = raw["tasks"].set_index("gid")
    moves = events.loc[events["event_type"] == "section_changed", [
        "ticket_gid", "project_gid", "occurred_at", "new_section_gid", "actor_gid", "event_id", "old_section_gid"]]
    moves = pd.DataFrame({
        "ticket_gid": moves["ticket_gid"], "project_gid": moves["project_gid"], "at": moves["occurred_at"],
        "section_gid": moves["new_section_gid"], "actor_gid": moves["actor_gid"], "seq": moves["event_id"],
        "first_left": moves["old_section_gid"],
    })
    current = raw["task_memberships"][["task_gid", "project_gid", "section_gid"]].rename(
        columns={"task_gid": "ticket_gid", "section_gid": "current_section"})
    # Every (ticket, project) with a move or a membership; an outer merge would do, but pandas
    # fails on one over two empty Arrow-backed string keys.
    first = moves.drop_duplicates(["ticket_gid", "project_gid"])[["ticket_gid", "project_gid", "first_left"]]
    starts = pd.concat([first, current], ignore_index=True).groupby(
        ["ticket_gid", "project_gid"], as_index=False, dropna=False, sort=False)[["first_left", "current_section"]].first()
    # The first addition to each project, and who made it.
    added = events.loc[events["event_type"] == "added_to_project",
                       ["ticket_gid", "project_gid", "occurred_at", "event_id", "actor_gid"]]
    added = sort_rows(added, ["ticket_gid", "project_gid", "occurred_at", "event_id"]).drop_duplicates(
        ["ticket_gid", "project_gid"]).rename(columns={"actor_gid": "added_by"})
    starts = starts.merge(added.drop(columns="event_id"), on=["ticket_gid", "project_gid"], how="left")
    was_added = starts["occurred_at"].notna()
    starts["at"] = starts["occurred_at"].fillna(lookup(starts["ticket_gid"], t["created_at"]))
    starts["section_gid"] = starts["first_left"].fillna(starts["current_section"])
    starts["actor_gid"] = starts["added_by"].where(was_added, starts["ticket_gid"].map(t["created_by_gid"]))
    starts["seq"] = ""  # a start sorts before any move at the same instant
    removed = events.loc[events["event_type"] == "removed_from_project",
                         ["ticket_gid", "project_gid", "occurred_at", "actor_gid", "event_id"]]
    removed = pd.DataFrame({
        "ticket_gid": removed["ticket_gid"], "project_gid": removed["project_gid"], "at": removed["occurred_at"],
        "section_gid": None, "actor_gid": removed["actor_gid"], "seq": removed["event_id"],
    })
    columns = ["ticket_gid", "project_gid", "at", "section_gid", "actor_gid", "seq"]
    timeline = pd.concat([starts[columns], moves[columns], removed[columns]], ignore_index=True)
    timeline = timeline[isin(timeline["ticket_gid"], t.index)]
    by_section = states.set_index("section_gid")
    # A section the sync does not have (of a project the connection cannot see, or deleted), or
    # none named where the ticket sat in the project (a start row: only a removal ends a place
    # with a null section), says no known stage: UNKNOWN, never read as a stage that starts nothing.
    unseen = (timeline["section_gid"].notna() & ~isin(timeline["section_gid"], by_section.index)) | (
        timeline["section_gid"].isna() & timeline["seq"].eq(""))
    timeline["stage"] = timeline["section_gid"].map(by_section["stage"]).mask(unseen, UNKNOWN)
    timeline["state"] = timeline["section_gid"].map(by_section["state"]).mask(unseen, UNKNOWN)
    return sort_rows(timeline, ["ticket_gid", "project_gid", "at", "seq"])


# -- status history ---------------------------------------------------------------------
def status_history(raw: Raw, timeline: pd.DataFrame, done: pd.DataFrame) -> pd.DataFrame:
    """One interval per ticket, project and state; completion opens CLOSED, reopening ends it.

    A ticket in no project has one timeline of its own (project null): OPEN, then CLOSED.
    """
    t = raw["tasks"]
    projectless = t[~isin(t["gid"], timeline["ticket_gid"])]
    lone = pd.DataFrame({
        "ticket_gid": projectless["gid"], "project_gid": "", "at": projectless["created_at"],
        "state": "OPEN", "actor_gid": projectless["created_by_gid"], "seq": "",
    })
    places = pd.concat([timeline.assign(project_gid=timeline["project_gid"].fillna("")), lone], ignore_index=True)
    groups = places[["ticket_gid", "project_gid"]].drop_duplicates()
    flips = done.merge(groups, on="ticket_gid")
    rows = pd.concat([
        places[["ticket_gid", "project_gid", "at", "seq", "actor_gid", "state"]].assign(kind=0),
        flips[["ticket_gid", "project_gid", "at", "seq", "actor_gid", "completed"]].assign(kind=1),
    ], ignore_index=True)
    rows = sort_rows(rows, ["ticket_gid", "project_gid", "at", "seq", "kind"])
    # Each (ticket, project) as a number, from the sorted keys: grouping by it spares hashing two
    # text columns for every groupby below.
    rows["group"] = (rows["ticket_gid"].ne(rows["ticket_gid"].shift())
                     | rows["project_gid"].ne(rows["project_gid"].shift())).cumsum()
    keys = rows["group"]
    # Section state and completion each hold until changed; a removed ticket has no state.
    rows["section_state"] = rows["state"].where(rows["kind"] == 0).groupby(keys).ffill()
    rows.loc[(rows["kind"] == 0) & rows["state"].isna(), "section_state"] = "__removed__"
    rows["section_state"] = rows["section_state"].groupby(keys).ffill()
    rows["is_done"] = rows["completed"].astype("object").groupby(keys).ffill().fillna(False).astype(bool)
    # A completion before the ticket joined a project says nothing of that project.
    placed = rows["kind"].eq(0).groupby(keys).cummax()
    effective = np.where(~placed, None, np.where(rows["is_done"], CLOSED, rows["section_state"]))
    rows["effective"] = pd.Series(effective, index=rows.index).replace("__removed__", None)
    # Several changes at one instant leave the state after the last of them.
    rows = rows.drop_duplicates(["group", "at"], keep="last")
    changed = rows["effective"].ne(rows.groupby("group")["effective"].shift())
    starts = rows[changed].copy()
    starts["left_at"] = starts.groupby("group")["at"].shift(-1)
    starts = starts[starts["effective"].notna()]
    history = pd.DataFrame({
        "ticket_gid": starts["ticket_gid"],
        "project_gid": starts["project_gid"].replace("", None),
        "state": starts["effective"],
        "entered_at": starts["at"],
        "left_at": starts["left_at"],
        "entered_by_gid": starts["actor_gid"],
    })
    return _intervals(history)


def section_history(timeline: pd.DataFrame) -> pd.DataFrame:
    """One row per stay of a ticket in a section of a project, read from ``section_timeline``
    (in its order), so the stays follow the rules every monitor reads. As in the status history:
    several moves at one instant leave the ticket where the last one put it, and removal from
    the project ends the stay; a move into the section it is in continues the stay. Completion
    is no section move: a completed ticket stays where it sits (its CLOSED state is in
    ``status_history``).
    """
    project = timeline["project_gid"].fillna("")
    group = (timeline["ticket_gid"].ne(timeline["ticket_gid"].shift()) | project.ne(project.shift())).cumsum()
    rows = timeline.assign(group=group, place=timeline["section_gid"].fillna(""))  # "": out of the project
    rows = rows.drop_duplicates(["group", "at"], keep="last")
    stays = rows[rows["place"].ne(rows.groupby("group")["place"].shift())].copy()
    stays["left_at"] = stays.groupby("group")["at"].shift(-1)
    stays = stays[stays["section_gid"].notna()]
    return _intervals(pd.DataFrame({
        "ticket_gid": stays["ticket_gid"],
        "project_gid": stays["project_gid"],
        "section_gid": stays["section_gid"],
        "stage": stays["stage"],
        "state": stays["state"],
        "entered_at": stays["at"],
        "left_at": stays["left_at"],
        "entered_by_gid": stays["actor_gid"],
    }))


def _intervals(history: pd.DataFrame) -> pd.DataFrame:
    """Intervals with their duration (null while open) and, first, their id:
    <ticket gid>/<project gid or none>/<entered_at in epoch microseconds>."""
    history["duration_seconds"] = (history["left_at"] - history["entered_at"]).dt.total_seconds()
    micros = history["entered_at"].astype("datetime64[us, UTC]").astype("int64").astype("str")
    history.insert(0, "interval_id", history["ticket_gid"] + "/" + history["project_gid"].fillna("none") + "/" + micros)
    return history.reset_index(drop=True)


# -- tickets ----------------------------------------------------------------------------
def ticket_type_fields(fields: pd.DataFrame, configured: str | None = None) -> pd.Series:
    """The gids of the custom fields that type tickets, oldest (lowest gid) first.

    ``configured`` names the field by gid or by name (case-insensitive), in any workspace;
    unset, every enum and multi-enum field whose name has the word "type": any of them ("Bug
    type" beside "Change type") can make a ticket a change.
    """
    enums = fields[fields["resource_subtype"].isin(["enum", "multi_enum"])]
    if configured:
        wanted = enums["name"].str.casefold().eq(configured.casefold()) | enums["gid"].eq(configured)
        found = enums[wanted.fillna(False)]
        if found.empty:  # typed changes would silently escape the change monitors
            raise ValueError(f"ticket_type_field {configured!r} names no enum custom field (nor multi-enum) of the "
                             "synced projects: correct the compliance setting ticket_type_field")
    else:
        found = enums[enums["name"].str.contains(TICKET_TYPE_FIELD_PATTERN, regex=True, na=False)]
    return found.sort_values("gid", key=lambda g: g.str.zfill(32))["gid"]


def option_names(frame: pd.DataFrame, enum: str, multi: str) -> pd.DataFrame:
    """(row, option name) for each option an enum column and a multi-enum list column hold."""
    lists = pa.array(frame[multi], from_pandas=True, type=pa.list_(pa.string()))
    parents = pc.list_parent_indices(lists).to_numpy()
    return pd.concat([
        pd.DataFrame({"row": np.arange(len(frame)), "option": frame[enum].array}),
        pd.DataFrame({"row": parents, "option": pc.list_flatten(lists).to_pandas().array}),
    ], ignore_index=True).dropna()


def named_options(values: pd.DataFrame, fields: pd.DataFrame) -> pd.DataFrame:
    """``values`` (task_custom_fields rows) with ``enum_option_name`` taken from the field's own
    option list (``fields``: custom_fields rows) where the API named the option by gid alone
    (``enum_value: {"gid": ...}``, a name being optional): never read as no value. An option the
    field does not list keeps a null name beside its gid."""
    if "enum_option_gid" not in values or not values["enum_option_name"].isna().any():
        return values
    return values.assign(enum_option_name=values["enum_option_name"].fillna(
        lookup(values["enum_option_gid"], option_by_gid(fields))))


def option_by_gid(fields: pd.DataFrame) -> pd.Series:
    """Every option of the ``fields`` (custom_fields rows): its name by its gid."""
    gids = pa.array(fields["enum_option_gids"], from_pandas=True, type=pa.list_(pa.string()))
    names = pa.array(fields["enum_option_names"], from_pandas=True, type=pa.list_(pa.string()))
    option = pd.Series(pc.list_flatten(names).to_pandas().array, index=pc.list_flatten(gids).to_pandas().array)
    return option[~option.index.duplicated()]


def is_change_type(names: pd.Series, change_ticket_types: Sequence[str], pattern: str = CHANGE_TYPE_PATTERN
                   ) -> pd.Series:
    """Option names that type a change: one of ``change_ticket_types`` (case-insensitive), or one
    ``pattern`` matches (by default a word starting "change": "Change Request (CAB)", not
    "Exchange"; empty: the list alone)."""
    listed = names.str.casefold().isin({str(v).casefold() for v in change_ticket_types})
    if pattern:
        listed = listed | names.str.contains(pattern, case=False, regex=True)
    return listed.fillna(False).astype(bool)


def ticket_types(raw: Raw, fields: pd.Series) -> pd.Series:
    """Each task's ticket type as shown: its value of the oldest typing field that has one."""
    values = raw["task_custom_fields"]
    chosen = named_options(values[isin(values["custom_field_gid"], fields)], raw["custom_fields"])
    order = lookup(chosen["custom_field_gid"], pd.Series(np.arange(len(fields)), index=fields.values))
    chosen = chosen.assign(order=order.values).sort_values("order", kind="stable")
    named = chosen["enum_option_name"].fillna(chosen["display_value"])
    return named.set_axis(chosen["task_gid"]).dropna().groupby(level=0).first()


def change_typed(raw: Raw, stories: pd.DataFrame, fields: pd.Series, start: pd.Series,
                 change_ticket_types: Sequence[str], pattern: str = CHANGE_TYPE_PATTERN) -> pd.Series:
    """The gids of the tasks typed as a change at some time up to their implementation start
    (``start``, by task gid): now, before a type change a story records (its old value), or by
    a story at or before the start (its new value). Retyping a change later changes nothing."""
    values = raw["task_custom_fields"]
    values = named_options(values[isin(values["custom_field_gid"], fields)].reset_index(drop=True),
                           raw["custom_fields"])
    now = option_names(values, "enum_option_name", "multi_enum_option_names")
    typed = [values["task_gid"].iloc[now.loc[is_change_type(now["option"], change_ticket_types, pattern).values, "row"]]]
    changed = stories[isin(stories["custom_field_gid"], fields)].reset_index(drop=True)
    began = lookup(changed["task_gid"], start)
    in_time = (began.isna() | (changed["created_at"] <= began)).to_numpy(dtype=bool)
    for side in ("old", "new"):
        options = option_names(changed, f"{side}_enum_option_name", f"{side}_multi_enum_option_names")
        rows = options.loc[is_change_type(options["option"], change_ticket_types, pattern).values, "row"].to_numpy()
        typed.append(changed["task_gid"].iloc[rows[in_time[rows]] if side == "new" else rows])
    return pd.concat(typed, ignore_index=True).drop_duplicates()


def change_project_entries(raw: Raw, events: pd.DataFrame, timeline: pd.DataFrame,
                           change_projects: pd.Series) -> pd.Series:
    """Per task, when it first was in a change project, as far as the history shows: a place
    in the section timeline, an addition, or (for a removal with no earlier addition) its
    creation. Leaving the project later does not undo it. A place whose section is unknown (none
    named) is a place all the same."""
    placed = timeline[isin(timeline["project_gid"], change_projects)
                      & (timeline["section_gid"].notna() | timeline["stage"].eq(UNKNOWN))]
    moved = events[isin(events["project_gid"], change_projects)]
    added = moved[moved["event_type"] == "added_to_project"]
    removed = moved[moved["event_type"] == "removed_from_project"]
    created = raw["tasks"].drop_duplicates("gid").set_index("gid")["created_at"]
    first_added = added["occurred_at"].groupby(added["ticket_gid"] + "/" + added["project_gid"]).min()
    was_added = lookup(removed["ticket_gid"] + "/" + removed["project_gid"], first_added).astype(TIMESTAMP)
    entered = was_added.where(was_added <= removed["occurred_at"], lookup(removed["ticket_gid"], created))
    times = pd.concat([
        pd.Series(times.astype(TIMESTAMP).array, index=gids.array)
        for times, gids in ((placed["at"], placed["ticket_gid"]), (added["occurred_at"], added["ticket_gid"]),
                            (entered, removed["ticket_gid"]))
    ])
    return times.groupby(level=0).min()


def implementation_start(gids: pd.Series, timeline: pd.DataFrame, done: pd.DataFrame) -> pd.Series:
    """Per ticket gid, the first of: the first entry into a section whose stage is IN_PROGRESS,
    IN_REVIEW or DONE, in any of the ticket's projects; the first completion. A ticket that sits
    in such a section with no story moving it there entered it when it was created (or added
    to the project)."""
    started = timeline[timeline["stage"].isin(IMPLEMENTATION_STAGES)].groupby("ticket_gid")["at"].min()
    first_done = done[done["completed"]].groupby("ticket_gid")["at"].min()
    both = pd.concat([lookup(gids, started), lookup(gids, first_done)], axis=1)
    return both.min(axis=1).astype(TIMESTAMP).set_axis(gids)


def tickets(raw: Raw, states: pd.DataFrame, collections_: pd.DataFrame, events: pd.DataFrame,
            ticket_type_field: str | None = None, change_ticket_types: Sequence[str] = CHANGE_TICKET_TYPES,
            change_type_pattern: str = CHANGE_TYPE_PATTERN) -> pd.DataFrame:
    """One row per task, subtasks included, in a ticketing common model.

    The ticket type is the task's value of its oldest ticket-type field, else its kind (task,
    milestone, approval). A top-level ticket that is not an approval is a change when, at any
    time up to its implementation start (or ever, if it has not started), it was in a change
    project or typed as a change (``change_typed``): scope is history, so moving a change to an
    archive project or retyping it afterwards does not take it out of the change monitors.
    ``raw["stories"]`` needs the custom field change columns (``TYPE_STORY_COLUMNS``).
    """
    t = raw["tasks"]
    m = raw["task_memberships"].sort_values(["task_gid", "position"])
    primary = m.drop_duplicates("task_gid").set_index("task_gid")
    by_section = states.set_index("section_gid")
    section = t["gid"].map(primary["section_gid"])
    stage = section.map(by_section["stage"])
    completed = t["completed"].fillna(False).astype(bool)
    tag_names = raw["task_tags"].merge(raw["tags"][["gid", "name"]], left_on="tag_gid", right_on="gid")
    subtype = t["resource_subtype"].fillna("default_task")
    fields = ticket_type_fields(raw["custom_fields"], ticket_type_field)
    typed = lookup(t["gid"], ticket_types(raw, fields))
    timeline = section_timeline(raw, states, events)
    start = implementation_start(t["gid"], timeline, completions(raw, events))
    change_projects = collections_.loc[collections_["is_change_project"].fillna(False), "gid"]
    entered = lookup(t["gid"], change_project_entries(raw, events, timeline, change_projects)).set_axis(t.index)
    began = start.set_axis(t.index)
    in_change = entered.notna() & (began.isna() | (entered <= began))
    change_type = isin(t["gid"], change_typed(raw, raw["stories"], fields, start, change_ticket_types,
                                              change_type_pattern))
    return pd.DataFrame({
        "gid": t["gid"],
        "workspace_gid": t["workspace_gid"],
        "name": t["name"],
        "description": t["notes"],
        "status": np.where(completed, CLOSED, stage.map(STATE_OF_STAGE).fillna("OPEN")),
        "stage": stage,
        "primary_project_gid": t["gid"].map(primary["project_gid"]),
        "section_gid": section,
        "section_name": section.map(by_section["name"]),
        "collection_gids": _lists(t["gid"], m["task_gid"], m["project_gid"]),
        "assignee_gid": t["assignee_gid"],
        "creator_gid": t["created_by_gid"],
        "due_on": t["due_on"],
        "due_at": t["due_at"],
        "ticket_type": typed.fillna(
            subtype.map({"default_task": "task", "milestone": "milestone", "approval": "approval"}).fillna(subtype)
        ),
        "parent_gid": t["parent_gid"],
        "created_at": t["created_at"],
        "updated_at": t["modified_at"],
        "completed": completed,
        "completed_at": t["completed_at"],
        "completed_by_gid": t["completed_by_gid"],
        "url": t["permalink_url"],
        "approval_status": t["approval_status"],
        "tags": _lists(t["gid"], tag_names["task_gid"], tag_names["name"]),
        "is_change": t["parent_gid"].isna() & (subtype != "approval") & (in_change | change_type),
        "visibility": _visibility(t, m, raw["projects"]),
    })


def _visibility(t: pd.DataFrame, m: pd.DataFrame, projects: pd.DataFrame) -> pd.Series:
    """public when one of the task's projects is public to the workspace, else private; a subtask
    in no project takes its parent's, level by level."""
    public = projects.loc[projects["privacy_setting"].eq("public_to_workspace"), "gid"]
    own = pd.Series(np.where(isin(t["gid"], m.loc[isin(m["project_gid"], public), "task_gid"]), "public",
                             np.where(isin(t["gid"], m["task_gid"]), "private", None)), index=t.index, dtype=object)
    by_gid = own.set_axis(t["gid"])
    parent = t["parent_gid"]
    for _ in range(len(t)):  # climbs one level per pass; stops when nothing changes
        inherited = lookup(parent, by_gid).set_axis(t.index)
        filled = own.where(own.notna(), inherited)
        if filled.equals(own):
            break
        own, by_gid = filled, filled.set_axis(t["gid"])
    return own.fillna("private")


def _lists(keys: pd.Series, by: pd.Series, values: pd.Series) -> pd.Series:
    """Each key's ``values`` (those whose ``by`` is the key, in their order) as a list, [] where
    it has none: an object column even when empty, as Arrow's list type needs. Grouped by Arrow:
    pandas' groupby().agg(list) takes seconds at 100,000 tickets."""
    grouped = group_lists(pd.DataFrame({"by": by.array, "value": values.array}), ["by"], "value")
    lists = pd.Series(grouped["value"].to_pylist(), index=grouped["by"].to_pylist(), dtype=object)
    out = lookup(keys, lists).astype(object)
    return out.where(out.notna(), pd.Series([[]] * len(out), index=out.index, dtype=object))


# -- approvals --------------------------------------------------------------------------
def approvals(raw: Raw, events: pd.DataFrame, timeline: pd.DataFrame) -> pd.DataFrame:
    """Every approval decision on a ticket: its approval subtasks' status changes (read from
    new_approval_status; a change back to pending is kept, as it withdraws an approval, and so is
    a reopening story that carries no approval fields), and entries into APPROVED-stage sections
    by a move (a ticket created there was never moved there by anyone, so that is no decision).

    The approver is the story's author; a story without one (a rule or an app made it) is
    attributed to the subtask's ``completed_by`` only when it is the subtask's last decision and
    agrees with its status now; else the approver is null (no person is known to have decided).
    """
    t = raw["tasks"]
    subtasks = t[(t["resource_subtype"] == "approval") & t["parent_gid"].notna()].drop_duplicates("gid").set_index(
        "gid")
    # A reopening the completions derived from an approval story ("<story>:reopened") repeats it.
    withdrawn = (events["event_type"] == "reopened") & ~events["event_id"].str.contains(":", regex=False)
    changes = events[((events["event_type"] == "approval_changed") | withdrawn) & isin(events["ticket_gid"], subtasks.index)]
    changes = sort_rows(changes, ["ticket_gid", "occurred_at", "event_id"])
    decision = changes["new_value"].where(changes["event_type"] == "approval_changed", "pending")
    last = ~changes["ticket_gid"].duplicated(keep="last")
    agrees = last & (decision == lookup(changes["ticket_gid"], subtasks["approval_status"])).fillna(False)
    completer = lookup(changes["ticket_gid"], subtasks["completed_by_gid"]).where(agrees)
    decided = pd.DataFrame({
        "approval_id": changes["event_id"],
        "ticket_gid": lookup(changes["ticket_gid"], subtasks["parent_gid"]),
        "source": "subtask",
        "approval_task_gid": changes["ticket_gid"],
        "section_gid": None,
        "decision": decision,
        "decided_at": changes["occurred_at"],
        "approver_gid": changes["actor_gid"].fillna(completer),
    })
    # An approval subtask approved without any story: its completion is the decision.
    silent = subtasks[(subtasks["approval_status"] == "approved") & ~isin(subtasks.index, changes["ticket_gid"])]
    silent = pd.DataFrame({
        "approval_id": silent.index, "ticket_gid": silent["parent_gid"], "source": "subtask",
        "approval_task_gid": silent.index, "section_gid": None, "decision": "approved",
        "decided_at": silent["completed_at"], "approver_gid": silent["completed_by_gid"],
    })
    entered = timeline[(timeline["stage"] == "APPROVED") & (timeline["seq"] != "")]
    sections = pd.DataFrame({
        "approval_id": entered["seq"], "ticket_gid": entered["ticket_gid"], "source": "section",
        "approval_task_gid": None, "section_gid": entered["section_gid"], "decision": "approved",
        "decided_at": entered["at"], "approver_gid": entered["actor_gid"],
    })
    out = pd.concat([decided, silent, sections], ignore_index=True)
    return sort_rows(out, ["ticket_gid", "decided_at", "approval_id"])
