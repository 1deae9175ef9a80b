"""The ticket SLA (SOC 2 CC7.1 / CC7.4, ISO 27001:2022 8.8 / 5.26): each ticket of a configured
category is resolved within the days its priority (or severity) allows.

A category (``sla_categories``) takes the tickets every selector it gives matches: projects (by
gid or name; a ticket counts when it is in one now or ever was, so moving it out does not take it
out of scope), ticket types, tags (by name or gid), or values of an enum custom field. Its SLA is
the days its ``days`` give the ticket's value of ``priority_field`` (an enum custom field), else
``default_days``; the reason says when the default applies and why (no value, or a value with no
days of its own).

A priority lowered after the fact must not hide a breach: the SLA is that of the strictest value
the ticket held from its creation to the clock's stop, read from the field's change stories (the
value at creation is the oldest change's old value, or the value as synced when it never
changed), and the reason names the change that lowered it. An empty value is no priority held:
a ticket triaged after its creation is held to the values it was given. Where that history
cannot be read (no stories synced, or a change story naming no option), a stricter value may
have applied: the row is unknown unless even the strictest SLA the category gives decides it.

The clock starts at the ticket's creation and stops at its completion (the latest, if it was
reopened: the time it sat completed before a reopening counts, as the issue was not resolved).
With ``pause_blocked``, the time the ticket sat in a BLOCKED section of every project it was in
(``ticket_section_history``) does not count. A ticket resolved at its deadline is within it; one
minute after is late. It is judged as it stood at ``as_of``: a ticket completed later is open
then, so a late completion is a finding of the evaluation (the period) it was completed in.

Never a guess toward a pass: time in a section of no known stage may or may not be BLOCKED, so
where it alone decides, the row is unknown; so is a ticket completed at an unknown time,
unless even as_of was within its SLA.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

from asana_assets.lib.compliance.names import Directory, roles
from asana_assets.lib.compliance.rule_output import rule_rows, when
from asana_assets.lib.compliance.tickets import (
    configured_projects,
    isin,
    lookup,
    named_options,
    option_by_gid,
    option_names,
)
from asana_assets.lib.compliance.workflow import UNKNOWN

SETTING = "sla_categories"
RESOURCE = "ticket_in_category"  # gid: <ticket gid>/<category name>
NOT_CONFIGURED = (f"Not configured: no SLA category is set, so whether tickets are resolved within their SLA cannot "
                  f"be checked: set {SETTING} of the compliance resource (each category: a name, the tickets it takes "
                  "by project, ticket type, tag or custom field value, the priority field, the days per priority and "
                  "a default)")
DAY = 86_400.0  # seconds
EPOCH = pd.Timestamp(0, tz="UTC")
# The sla_tickets population: one row per ticket and category, with the clock the verdict read.
CLOCK_COLUMNS = ["ticket_gid", "ticket_name", "category", "project", "priority", "priority_now", "sla_days", "sla_from",
                 "created_at", "completed_at", "paused_hours", "paused_hours_max", "deadline", "deadline_latest",
                 "status"]
# What ticket_sla reads of task_custom_fields: each task's enum options now.
CUSTOM_FIELD_COLUMNS = ["task_gid", "custom_field_gid", "enum_option_gid", "enum_option_name",
                        "multi_enum_option_names"]
# What ticket_sla reads of stories: the enum custom field changes (rows with a custom_field_gid).
STORY_COLUMNS = ["task_gid", "created_at", "custom_field_gid", "old_enum_option_gid", "old_enum_option_name",
                 "new_enum_option_gid", "new_enum_option_name"]
PAIR_COLUMNS = ["row", "category", "priority", "priority_now", "sla_days", "listed", "pause", "lowered",
                "floor_days", "unread"]


class SlaCategory(BaseModel):
    """One SLA category, as ``sla_categories`` lists it (unknown keys are refused: a misspelt
    selector would silently widen or empty the category)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="The category, as reasons and the report name it")
    projects: list[str] = Field(default_factory=list, description="Projects by gid or name")
    ticket_types: list[str] = Field(default_factory=list, description="Ticket types (case-insensitive)")
    tags: list[str] = Field(default_factory=list, description="Tags by name (case-insensitive) or gid")
    field: str | None = Field(None, description="An enum or multi-enum custom field (gid or name) selecting tickets")
    field_values: list[str] = Field(default_factory=list, description="The options of field that select a ticket")
    priority_field: str | None = Field(None, description="The enum custom field (gid or name) the SLA depends on")
    days: dict[str, PositiveFloat] = Field(default_factory=dict, description="Days allowed per priority option")
    default_days: PositiveFloat = Field(description="Days allowed without a priority, or for an option days lacks")
    pause_blocked: bool = Field(False, description="Time in a BLOCKED section of every project stops the clock")

    @model_validator(mode="after")
    def _coherent(self) -> SlaCategory:
        if not (self.projects or self.ticket_types or self.tags or self.field):
            raise ValueError(f"SLA category {self.name!r} selects no ticket: give projects, ticket_types, tags, or "
                             "field with field_values")
        if bool(self.field) != bool(self.field_values):
            raise ValueError(f"SLA category {self.name!r}: field and field_values go together (the custom field "
                             "and the options of it that select a ticket)")
        if self.days and not self.priority_field:
            raise ValueError(f"SLA category {self.name!r} gives days per priority but no priority_field to read "
                             "the priority from")
        return self


def parse(configured: Sequence[Mapping | SlaCategory]) -> list[SlaCategory]:
    """The categories, validated; names are unique (case-insensitively), as each names its rows."""
    categories = [SlaCategory.model_validate(c if isinstance(c, SlaCategory) else dict(c)) for c in configured]
    folded = [c.name.casefold() for c in categories]
    if repeated := sorted({c.name for c, f in zip(categories, folded, strict=True) if folded.count(f) > 1}):
        raise ValueError(f"{SETTING} names the category {', '.join(map(repr, repeated))} more than once: each "
                         "category needs a name of its own")
    return categories


def scope(projects: pd.DataFrame, configured: Sequence[Mapping] | None) -> pd.Series | None:
    """The projects whose tickets the categories take (their refused listings make the monitor
    unknown): None (every project) when a category selects by anything but its projects alone."""
    categories = parse(configured or ())
    if any(not c.projects for c in categories):
        return None
    chosen, _ = configured_projects(projects, [p for c in categories for p in c.projects])
    return projects.loc[chosen, "gid"].astype("str")


@dataclass(frozen=True)
class Judged:
    """The monitor's rows (rule output) and the clocks they read (the ``sla_tickets`` population)."""

    rows: pd.DataFrame
    clocks: pd.DataFrame


def ticket_sla_results(t: Mapping[str, pd.DataFrame], tix: pd.DataFrame, timeline: pd.DataFrame,
                       stays: pd.DataFrame, as_of: pd.Timestamp, configured: Sequence[Mapping] | None,
                       names: Directory, label: pd.Series, project: pd.Series) -> Judged:
    """One row per ticket and category it falls in (resource ``ticket_in_category``): alarm when
    open past its deadline at ``as_of`` or completed after it; ok when completed within it; info
    while open within it; unknown where the data cannot decide. ``timeline`` is the section
    timeline (every project a ticket was ever in), ``stays`` its ``section_history``; ``label``
    and ``project`` name each ticket of ``tix`` (``TicketNames``). No category configured: one
    skip row (NOT EVALUATED). One error row per category a setting of which matches nothing."""
    if not configured:
        return Judged(rule_rows("setting", [SETTING], "skip", NOT_CONFIGURED), pd.DataFrame(columns=CLOCK_COLUMNS))
    tix = tix.reset_index(drop=True)
    label, project = label.reset_index(drop=True), project.reset_index(drop=True)
    exists = ~(tix["created_at"] > as_of).to_numpy(dtype=bool)  # created after as_of: not there yet
    _, _, end = _clock_stop(tix, as_of)
    parts, problems = [], []
    for category in parse(configured):
        picked, wrong = _selected(t, tix, timeline, category)
        held, wrong_priority = _priorities(t, tix, category, end)
        if wrong or wrong_priority:
            problems.append((f"{SETTING}/{category.name}", f"SLA category {category.name!r}: "
                             + "; ".join([*wrong, *wrong_priority])))
        if wrong_priority:  # the priority cannot be read: the default would be a guess
            continue
        at = np.flatnonzero(picked & exists)
        parts.append(held.iloc[at].reset_index(drop=True).assign(
            row=at, category=category.name, pause=category.pause_blocked))
    pairs = pd.concat(parts, ignore_index=True)[PAIR_COLUMNS] if parts else pd.DataFrame(columns=PAIR_COLUMNS)
    rows, clocks = _judge(tix, pairs.astype({"row": "int64"}), stays, as_of, names, label, project)
    settings, why = zip(*problems) if problems else ((), ())
    return Judged(pd.concat([rule_rows("setting", list(settings), "error", list(why)), rows], ignore_index=True),
                  clocks)


def _selected(t: Mapping[str, pd.DataFrame], tix: pd.DataFrame, timeline: pd.DataFrame,
              category: SlaCategory) -> tuple[np.ndarray, list[str]]:
    """Which tickets (aligned with ``tix``) every selector of the category takes, and what of its
    settings matches nothing synced (said, never silently dropped)."""
    picked, wrong = np.ones(len(tix), dtype=bool), []
    if category.projects:
        chosen, unmatched = configured_projects(t["projects"], category.projects)
        if unmatched:
            wrong.append(f"projects names {', '.join(map(repr, unmatched))}, which match(es) no synced project by gid "
                         "or name")
        gids = t["projects"].loc[chosen, "gid"].astype("str")
        memberships = t["task_memberships"]
        ever = pd.concat([timeline.loc[isin(timeline["project_gid"], gids), "ticket_gid"],
                          memberships.loc[isin(memberships["project_gid"], gids), "task_gid"]])
        picked &= isin(tix["gid"], ever).to_numpy()
    if category.ticket_types:
        picked &= isin(tix["ticket_type"].astype("str").str.casefold(),
                       {v.casefold() for v in category.ticket_types}).to_numpy()
    if category.tags:
        tagged, missing = _tagged(t, category.tags)
        wrong += missing
        picked &= isin(tix["gid"], tagged).to_numpy()
    if category.field:
        fields, missing = _enum_fields(t, category.field, "field", ("enum", "multi_enum"))
        wrong += missing
        values = t["task_custom_fields"]
        values = named_options(values[isin(values["custom_field_gid"], fields.index)].reset_index(drop=True),
                               t["custom_fields"])
        options = option_names(values, "enum_option_name", "multi_enum_option_names")
        wanted = isin(options["option"].astype("str").str.casefold(), {v.casefold() for v in category.field_values})
        picked &= isin(tix["gid"], values["task_gid"].iloc[options.loc[wanted.to_numpy(), "row"]]).to_numpy()
        known = {o.casefold() for options in fields for o in options}
        odd = sorted(v for v in category.field_values if v.casefold() not in known)
        if len(fields) and odd:
            wrong.append(f"field_values names {', '.join(map(repr, odd))}, which no option of {category.field!r} is")
    return picked, wrong


def _tagged(t: Mapping[str, pd.DataFrame], configured: Sequence[str]) -> tuple[pd.Series, list[str]]:
    """The gids of the tasks carrying a configured tag (by gid or name, case-insensitively), and
    why an entry selects nothing."""
    if "tags" not in t or "task_tags" not in t:
        return pd.Series(dtype="str"), [("tags are configured, but the evaluation was given no tags and task_tags "
                                         "tables: read them into the monitors' inputs")]
    chosen, unmatched = configured_projects(t["tags"], configured)  # matched as projects are: gid or name
    links = t["task_tags"]
    missing = [f"tags names {', '.join(map(repr, unmatched))}, which match(es) no synced tag by gid or name"]
    return links.loc[isin(links["tag_gid"], t["tags"].loc[chosen, "gid"]), "task_gid"], missing if unmatched else []


def _enum_fields(t: Mapping[str, pd.DataFrame], configured: str, setting: str,
                 kinds: Sequence[str]) -> tuple[pd.Series, list[str]]:
    """The custom fields ``configured`` names (by gid or name, case-insensitively, in any
    workspace) of the ``kinds``, as gid -> their option names; and why none does."""
    fields = t.get("custom_fields")
    if fields is None:
        return pd.Series(dtype=object), [(f"{setting} is configured, but the evaluation was given no custom_fields "
                                          "table: read it into the monitors' inputs")]
    fields = fields[fields["resource_subtype"].isin(list(kinds)).to_numpy(dtype=bool)]
    found = fields[configured_projects(fields, [configured])[0].to_numpy(dtype=bool)]
    # Few fields: their option lists one by one.
    options = pd.Series([list(o) if isinstance(o, (list, np.ndarray)) else [] for o in found["enum_option_names"]],
                        index=found["gid"].astype("str").to_numpy(), dtype=object)
    if found.empty:
        kind = " or ".join(k.replace("_", "-") for k in kinds)
        return options, [f"{setting} {configured!r} names no {kind} custom field of the synced projects"]
    return options, []


def _priorities(t: Mapping[str, pd.DataFrame], tix: pd.DataFrame, category: SlaCategory,
                end: pd.Series) -> tuple[pd.DataFrame, list[str]]:
    """Per ticket (aligned with ``tix``, ``end`` its clock's stop): the strictest priority option
    it held up to ``end`` (null: none), the option as synced, the days the SLA allows and whether
    the option has days of its own, the change that lowered it (text, "" where none did), and,
    where its history cannot be read, the shortest SLA that may have applied and why; and what
    of the priority settings matches nothing."""
    held = pd.DataFrame({"priority": pd.Series([None] * len(tix), dtype=object), "priority_now": None,
                         "sla_days": category.default_days, "listed": False, "lowered": "", "floor_days": np.nan,
                         "unread": ""})
    if not category.priority_field:
        return held, []
    fields, wrong = _enum_fields(t, category.priority_field, "priority_field", ("enum",))
    if wrong:
        return held, wrong
    known = {o.casefold() for options in fields for o in options}
    odd = sorted(o for o in category.days if o.casefold() not in known)
    warn = [f"days names {', '.join(map(repr, odd))}, which no option of {category.priority_field!r} is"] if odd else []
    days = pd.Series({k.casefold(): v for k, v in category.days.items()}, dtype=float)

    def allowed(options: pd.Series) -> pd.Series:  # an option's days; NaN: it has none of its own
        return lookup(options.astype("str").str.casefold(), days).astype(float)

    values = named_options(t["task_custom_fields"], t["custom_fields"])
    values = values[isin(values["custom_field_gid"], fields.index)]
    # A value whose option the field does not list (by gid alone, no name) is unread, not none.
    unnamed = values.loc[values["enum_option_name"].isna() & values["enum_option_gid"].notna(), "task_gid"]
    values = values[values["enum_option_name"].notna()]
    changes, unreadable = _changes(t, fields.index)
    if unreadable is not None:
        unreadable = pd.concat([unreadable, unnamed], ignore_index=True)
    stop = lookup(changes["task_gid"], pd.Series(end.to_numpy(), index=tix["gid"].to_numpy()))
    within = ~(changes["created_at"] > stop).to_numpy(dtype=bool)  # a change of no known time counts
    pair = changes["task_gid"] + "/" + changes["custom_field_gid"]
    later = changes[~within].drop_duplicates(["task_gid", "custom_field_gid"])  # its old value held at the stop
    untouched = ~isin(values["task_gid"] + "/" + values["custom_field_gid"], pair[~within])
    options = pd.concat([
        pd.DataFrame({"task_gid": changes["task_gid"][within], "option": changes["old"][within]}),
        pd.DataFrame({"task_gid": changes["task_gid"][within], "option": changes["new"][within]}),
        pd.DataFrame({"task_gid": later["task_gid"], "option": later["old"]}),
        pd.DataFrame({"task_gid": values["task_gid"][untouched], "option": values["enum_option_name"][untouched]}),
    ], ignore_index=True).dropna()
    own = allowed(options["option"])
    options = options.assign(days=own.fillna(category.default_days).to_numpy(), listed=own.notna().to_numpy())
    strictest = options.sort_values(["days", "listed"], ascending=[True, False], kind="stable")
    strictest = strictest.drop_duplicates("task_gid").set_index("task_gid")
    now = values.drop_duplicates("task_gid").set_index("task_gid")["enum_option_name"]
    held["priority"] = lookup(tix["gid"], strictest["option"]).astype(object).to_numpy()
    held["priority_now"] = lookup(tix["gid"], now).astype(object).to_numpy()
    held["sla_days"] = lookup(tix["gid"], strictest["days"]).fillna(category.default_days).to_numpy(dtype=float)
    held["listed"] = lookup(tix["gid"], strictest["listed"]).fillna(False).to_numpy(dtype=bool)
    # Held to a stricter value than the synced one: the first change away from it lowered it.
    now_days = allowed(held["priority_now"]).fillna(category.default_days)
    stricter = held["priority"].notna() & (held["sla_days"] < now_days.to_numpy())
    name = str(t["custom_fields"].set_index("gid")["name"].get(fields.index[0], category.priority_field))
    away = changes[changes["old"].str.casefold().eq(
        lookup(changes["task_gid"], strictest["option"]).str.casefold()).fillna(False).to_numpy(dtype=bool)]
    away = away.drop_duplicates("task_gid").set_index("task_gid")
    first = pd.DataFrame({"new": lookup(tix["gid"], away["new"]), "at": lookup(tix["gid"], away["created_at"])})
    kept = " held to " + held["priority"].astype("str") + "'s " + _days(held["sla_days"]) + pd.Series(
        np.where(held["listed"], "", " (the default)"))
    change = pd.Series(np.where(
        first["at"].notna().to_numpy(),
        name + " lowered from " + held["priority"].astype("str") + " to " + first["new"].fillna("no value").astype(
            "str").to_numpy() + " on " + when(first["at"]).fillna("").to_numpy() + "," + kept,
        name + " was " + held["priority"].astype("str") + " before it was "
        + held["priority_now"].fillna("cleared").astype("str") + "," + kept), dtype=object)
    held["lowered"] = change.where(stricter.to_numpy(), "")
    # History unread: the shortest SLA the category gives may have applied.
    floor = min([*category.days.values(), category.default_days])
    why = "no stories were synced" if unreadable is None else f"a value or change of its {name} names no option"
    blind = (np.ones(len(tix), dtype=bool) if unreadable is None else isin(tix["gid"], unreadable).to_numpy()) & (
        held["sla_days"].to_numpy(dtype=float) > floor)
    held["floor_days"] = np.where(blind, floor, np.nan)
    held["unread"] = np.where(blind, f"its {name} history cannot be read ({why}), so an SLA as short as "
                              + _days(pd.Series([floor])).iloc[0] + " may have applied", "")
    return held, warn


def _changes(t: Mapping[str, pd.DataFrame], fields: pd.Index) -> tuple[pd.DataFrame, pd.Series | None]:
    """The change stories of the ``fields`` (task_gid, custom_field_gid, created_at, and the
    option names ``old`` and ``new``, a name missing from a story taken from the field's options
    by gid), oldest first per task and field; and the gids of the tasks a change of which names no
    option it had or has (None: no stories were read at all, so no ticket's history is known)."""
    stories = t.get("stories")
    columns = ["task_gid", "custom_field_gid", "created_at", "old", "new"]
    if stories is None:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[us, UTC]" if c == "created_at" else "str")
                             for c in columns}), None
    s = stories[isin(stories["custom_field_gid"], fields)]
    s = s.sort_values(["task_gid", "custom_field_gid", "created_at"], kind="stable")
    option = option_by_gid(t["custom_fields"][isin(t["custom_fields"]["gid"], fields)])
    out = {"task_gid": s["task_gid"], "custom_field_gid": s["custom_field_gid"], "created_at": s["created_at"]}
    for side in ("old", "new"):
        out[side] = s[f"{side}_enum_option_name"].fillna(lookup(s[f"{side}_enum_option_gid"], option))
    changes = pd.DataFrame(out).reset_index(drop=True)
    s = s.reset_index(drop=True)
    nameless = (s["old_enum_option_gid"].notna() & changes["old"].isna()) | (
        s["new_enum_option_gid"].notna() & changes["new"].isna()) | (changes["old"].isna() & changes["new"].isna())
    return changes, changes.loc[nameless.to_numpy(dtype=bool), "task_gid"]


def blocked_seconds(stays: pd.DataFrame, start: pd.Series, end: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per ticket (``start`` and ``end`` by ticket gid): the seconds between them it surely sat
    BLOCKED (in a BLOCKED section of every project it was in at the time), and those it may have
    (each of those sections BLOCKED or of no known stage). One sweep over the stays' entries and
    exits: the counts of projects it sits in, and of those that hold it BLOCKED, at each instant."""
    s = stays[isin(stays["ticket_gid"], start.index)]
    stage = s["stage"].fillna(UNKNOWN)
    columns = {"ticket_gid": s["ticket_gid"].to_numpy(), "in": 1, "sure": stage.eq("BLOCKED").to_numpy(dtype=int),
               "maybe": stage.isin(["BLOCKED", UNKNOWN]).to_numpy(dtype=int)}
    entered = pd.DataFrame({**columns, "at": _seconds(s["entered_at"])})
    left = pd.DataFrame({**columns, "at": _seconds(s["left_at"])}).dropna(subset=["at"])
    left[["in", "sure", "maybe"]] *= -1
    steps = pd.concat([entered, left], ignore_index=True).groupby(["ticket_gid", "at"], as_index=False).sum()
    steps = steps.sort_values(["ticket_gid", "at"], kind="stable", ignore_index=True)
    counts = steps.groupby("ticket_gid")[["in", "sure", "maybe"]].cumsum()
    upto = _seconds(lookup(steps["ticket_gid"], end))
    until = np.fmin(steps.groupby("ticket_gid")["at"].shift(-1).fillna(pd.Series(upto)).to_numpy(dtype=float), upto)
    since = np.fmax(steps["at"].to_numpy(dtype=float), _seconds(lookup(steps["ticket_gid"], start)))
    seconds = pd.Series(np.clip(until - since, 0, None), index=steps.index).fillna(0.0)
    held = counts["in"] > 0
    out = []
    for kind in ("sure", "maybe"):
        paused = seconds.where(held & counts[kind].eq(counts["in"]), 0.0).groupby(steps["ticket_gid"]).sum()
        out.append(lookup(start.index.to_series(), paused).fillna(0.0).astype(float).set_axis(start.index))
    return out[0], out[1]


def _seconds(times: pd.Series) -> np.ndarray:
    """UTC times as seconds since the epoch (NaN for none): the sweep's arithmetic in floats."""
    times = pd.to_datetime(pd.Series(times.array, dtype="datetime64[us, UTC]"), utc=True)
    return (times - EPOCH).dt.total_seconds().to_numpy(dtype=float)


def _judge(tix: pd.DataFrame, pairs: pd.DataFrame, stays: pd.DataFrame, as_of: pd.Timestamp, names: Directory,
           label: pd.Series, project: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows and clocks of the (ticket row, category) ``pairs``."""
    x = tix.iloc[pairs["row"].to_numpy()].reset_index(drop=True)
    created = x["created_at"]
    done, completed, end = _clock_stop(x, as_of)
    undated = done & completed.isna()  # completed at a time nobody recorded
    # Paused time per ticket, only where a category pauses (the same ticket's clock is one).
    pausing = x[pairs["pause"].to_numpy(dtype=bool) & created.notna().to_numpy()].drop_duplicates("gid")
    sure, maybe = blocked_seconds(stays, pausing.set_index("gid")["created_at"],
                                  end[pausing.index].set_axis(pausing["gid"]))
    pause = pairs["pause"].to_numpy(dtype=bool)
    paused_lo = pd.Series(np.where(pause, lookup(x["gid"], sure).fillna(0.0), 0.0))
    paused_hi = pd.Series(np.where(pause, lookup(x["gid"], maybe).fillna(0.0), 0.0))
    elapsed = (end - created).dt.total_seconds()
    allowed = pairs["sla_days"] * DAY
    # Within even the shortest SLA that may have applied (its history unread), or the one held.
    shortest = pairs["floor_days"].astype(float).fillna(pairs["sla_days"]) * DAY
    active_hi, active_lo = elapsed - paused_lo, elapsed - paused_hi
    first_due = created + pd.to_timedelta(allowed + paused_lo, unit="s")
    last_due = created + pd.to_timedelta(allowed + paused_hi, unit="s")
    decided = paused_lo.eq(paused_hi)
    deadline = ("deadline " + when(first_due)).where(
        decided, "deadline between " + when(first_due) + " and " + when(last_due))
    cases = [undated & (active_hi <= shortest), undated, active_lo > allowed, active_hi <= shortest]
    status = pd.Series(np.select(cases, ["ok", "unknown", "alarm", np.where(done, "ok", "info")], "unknown"))
    by_as_of = when(pd.Series(as_of, index=x.index))
    at_end = ("completed at " + when(completed)).where(done, "still open at " + by_as_of)
    unmapped = ("; " + _hours(paused_hi - paused_lo) + " h of it in sections of no known stage may or may not "
                "have paused the clock: map those sections (workflow_mapping)")
    outcome = pd.Series(np.select(cases, [
        "completed at an unknown time, by " + by_as_of + " at the latest, within it",
        "completed at an unknown time, so whether within it cannot be told",
        at_end + pd.Series(np.where(done, ", after it", ", past it"), index=x.index),
        (at_end + ", within it").where(done, "open, not yet due"),
    ], at_end + ", and whether within it cannot be told" + unmapped.where(~decided, "")), dtype=object)
    priority = pairs["priority"]
    days = _days(pairs["sla_days"])
    lowered = pairs["lowered"].astype(object)
    sla = pd.Series(np.select(
        [lowered.ne("").to_numpy(dtype=bool), priority.isna().to_numpy(), ~pairs["listed"].to_numpy(dtype=bool)],
        [lowered, "no priority, so the default SLA of " + days,
         "priority " + priority.astype("str") + ", which has no SLA of its own, so the default of " + days],
        "priority " + priority.astype("str") + ": SLA " + days))
    unread = pairs["unread"].astype(object)
    sla = sla + pd.Series(np.where(unread.ne("").to_numpy(dtype=bool), "; " + unread, ""))
    paused_text = pd.Series(np.where(pause, "; " + _hours(paused_lo) + " h paused in BLOCKED sections", ""))
    reason = (label.iloc[pairs["row"].to_numpy()].reset_index(drop=True) + ": category \"" + pairs["category"]
              + "\", " + sla + "; created " + when(created) + paused_text + "; " + deadline + "; " + outcome + ".")
    gids = x["gid"] + "/" + pairs["category"]
    people = roles(assignee=names.person(x["assignee_gid"]), closer=names.person(x["completed_by_gid"]))
    where = project.iloc[pairs["row"].to_numpy()].reset_index(drop=True)
    rows = rule_rows(RESOURCE, gids, status, reason, x["url"], x["name"], where, people)
    clocks = pd.DataFrame({
        "ticket_gid": x["gid"], "ticket_name": x["name"], "category": pairs["category"], "project": where,
        "priority": priority.astype(object).where(priority.notna(), None),
        "priority_now": pairs["priority_now"].astype(object).where(pairs["priority_now"].notna(), None),
        "sla_days": pairs["sla_days"],
        "sla_from": np.where(pairs["listed"].to_numpy(dtype=bool), "priority", "default"),
        "created_at": created, "completed_at": completed, "paused_hours": paused_lo / 3600,
        "paused_hours_max": paused_hi / 3600, "deadline": first_due, "deadline_latest": last_due, "status": status,
    })
    order = np.argsort(gids.to_numpy(dtype=str), kind="stable")
    return rows.iloc[order].reset_index(drop=True), clocks.iloc[order].reset_index(drop=True)


def _clock_stop(tix: pd.DataFrame, as_of: pd.Timestamp) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per ticket, as it stood at ``as_of``: completed or not, when (null: open, or completed at
    an unknown time), and when its clock stops (its completion, else ``as_of``)."""
    done = tix["completed"].fillna(False).astype(bool) & ~(tix["completed_at"] > as_of)
    completed = tix["completed_at"].where(done)
    return done, completed, completed.fillna(as_of)


def _hours(seconds: pd.Series) -> pd.Series:
    """Seconds as hours to the hundredth, as text ("96", "1.5")."""
    return pd.Series(pc.round(pa.array(seconds / 3600, from_pandas=True), 2).cast(pa.string()).to_pandas().array,
                     index=seconds.index)


def _days(days: pd.Series) -> pd.Series:
    """``2 days``, ``1 day``, ``0.5 days``."""
    text = pd.Series(pc.round(pa.array(days, from_pandas=True), 4).cast(pa.string()).to_pandas().array,
                     index=days.index)
    return text + np.where(days.eq(1), " day", " days")
