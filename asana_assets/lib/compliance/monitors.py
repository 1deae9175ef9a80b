"""The compliance monitors: one record each in ``MONITORS`` (id, severity, controls, the table its
check sits on, title, rule), the rules evaluated over whole tables.

A rule returns one row per evaluated resource (``resource_type, resource_gid, status, reason,
resource_url``); ``finish`` stamps the run, the monitor's severity and its control mapping on
them, giving ``monitor_results`` rows. Statuses: ok, alarm, unknown (the data cannot decide it:
never read as ok), info (not yet due, e.g. inside a grace period), skip (the rule does not
apply, with the reason), error. ``verdict`` sums one monitor's rows up for an auditor: FAIL,
ERROR, INCOMPLETE, NOT EVALUATED or PASS.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field, field_validator

from asana_assets.lib.asana.crawl import REFUSED
from asana_assets.lib.compliance import access, activity, offboarding, review, sla, tickets
from asana_assets.lib.compliance.names import Directory, quoted, roles
from asana_assets.lib.compliance.rule_output import NAMED, rule_rows, when
from asana_assets.lib.compliance.tickets import group_lists, implementation_start, isin, lookup, sort_rows
from asana_assets.lib.compliance.workflow import IMPLEMENTATION_STAGES, UNKNOWN
from asana_assets.lib.schema import DERIVED_TABLES


@dataclass(frozen=True)
class Evaluation:
    """What the rules of one evaluation read, each computed once (see ``evaluate``)."""

    t: Mapping[str, pd.DataFrame]
    params: MonitorParams
    as_of: pd.Timestamp
    tix: pd.DataFrame
    timeline: pd.DataFrame
    done: pd.DataFrame
    impl: pd.Series
    counting: pd.DataFrame
    at_completion: pd.DataFrame
    names: Directory
    label: TicketNames
    deactivations: pd.DataFrame  # activity.deactivations: when each user left or came back
    audit_unavailable: Mapping[str, str]  # workspace gid -> why its audit log was not read (402/403)

    @cached_property
    def ticket_sla(self) -> sla.Judged:
        """ticket_sla's rows and the clocks they read (the ``sla_tickets`` population), once. The
        BLOCKED pause reads the section stays this run derived (``ticket_section_history``), else
        the same stays from the section timeline."""
        stays = self.t.get("ticket_section_history")
        stays = tickets.section_history(self.timeline) if stays is None else stays
        return sla.ticket_sla_results(self.t, self.tix, self.timeline, stays, self.as_of, self.params.sla_categories,
                                      self.names, self.label.label, self.label.project)


@dataclass(frozen=True)
class Monitor:
    """A monitor, whole: adding one is adding its record here and its rule function."""

    id: str
    severity: str  # ERROR or WARN, as Dagster check severities
    control_refs: tuple[str, ...]
    table: str  # the table the monitor judges (its asset check sits there)
    title: str
    rule: Callable[[Evaluation], pd.DataFrame]  # rule output (rule_output.COLUMNS), one row per resource
    # The per-project listings its population comes from: a project whose listing Asana refused
    # (402/403, see crawl.REFUSED) is judged unknown, never passed for want of its rows.
    reads: tuple[str, ...] = ()
    # The projects its population comes from, when not every project's (None: all of them): only
    # their refused listings make it unknown.
    scope: Callable[[Evaluation], pd.Series | None] | None = None


CHANGE = ("SOC2:CC8.1", "ISO27001:2022:8.32")
# Refusable listings (Monitor.reads): a project's tasks hold its tickets; its sections their
# stages; its custom field settings the ticket-type fields that make a change.
TICKETS = ("tasks",)
CHANGES = ("tasks", "sections", "custom_field_settings")
ACCESS = ("SOC2:CC6.2", "SOC2:CC6.3", "ISO27001:2022:5.18")
MONITORS: dict[str, Monitor] = {m.id: m for m in (
    Monitor("tickets_synced", "ERROR", CHANGE, "tickets", "Every ticket the source lists is synced, and recently",
            lambda e: tickets_synced(e.t, e.tix, e.as_of, e.params, e.names)),
    Monitor("tickets_assigned", "ERROR", (*CHANGE, "ISO27001:2022:5.3"), "tickets", "Tickets have an active assignee",
            lambda e: tickets_assigned(e.t, e.tix, e.at_completion, e.as_of, e.params, e.names, e.label), TICKETS),
    Monitor("changes_approved", "ERROR", CHANGE, "approvals", "Changes are approved before implementation starts",
            lambda e: changes_approved(e.tix, e.impl, e.counting, first_unmapped(e.timeline), e.names, e.label),
            CHANGES),
    Monitor("approval_segregation", "ERROR", (*CHANGE, "ISO27001:2022:5.3"), "approvals",
            "The approver of a change is not its requester, implementer or closer",
            lambda e: approval_segregation(e.tix, e.counting, e.at_completion, e.names, e.label), CHANGES),
    Monitor("offboarding_access_removed", "ERROR", ACCESS, "user_access", "Deactivated users keep no access",
            lambda e: access.offboarding_results(e.t["user_access"], e.t, e.as_of,
                                                 timedelta(hours=e.params.offboarding_grace_hours), e.names),
            TICKETS),
    Monitor("admin_access_restricted", "ERROR", ("SOC2:CC6.3", "ISO27001:2022:5.18"), "user_access",
            "Workspace admins are approved and are not guests",
            lambda e: access.admin_results(e.t, e.params.approved_admins, e.names)),
    Monitor("membership_changes", "WARN", ACCESS, "membership_changes",
            "Admin grants, new guests and reactivations are reviewed",
            lambda e: access.membership_change_results(e.t["membership_changes"], e.t["user_access"], e.t["users"],
                                                       e.params.acknowledged_changes, e.params.approved_admins,
                                                       e.names)),
    Monitor("activity_after_deactivation", "ERROR", ("SOC2:CC6.2", "ISO27001:2022:5.18"), "audit_log_events",
            "Deactivated users do not act after their deactivation",
            lambda e: activity.activity_results(e.t.get("audit_log_events"), e.audit_unavailable, e.deactivations,
                                                e.as_of, e.names)),
    Monitor("offboarding_ticket", "ERROR", ("SOC2:CC6.2", "ISO27001:2022:5.18"), "user_access",
            "Each deactivated user has an offboarding ticket completed in time",
            lambda e: offboarding.offboarding_ticket_results(
                e.t, e.tix, e.deactivations, e.as_of, e.params.offboarding_projects, e.params.offboarding_days,
                e.params.offboarding_match, e.names),
            TICKETS, lambda e: offboarding.offboarding_projects(e.t["projects"], e.params.offboarding_projects or ())[0]),
    Monitor("access_review_completed", "ERROR", ACCESS, "access_review_decisions",
            "Access review campaigns are decided by their due day, and every revoke is carried out",
            lambda e: review.review_results(e.t, e.t["approvals"], e.as_of, e.params.review_project, e.names),
            TICKETS, lambda e: review.review_scope(e.t["projects"], e.params.review_project)),
    Monitor("workflow_consistent", "WARN", CHANGE, "ticket_status_history", "Completion and workflow section agree",
            lambda e: workflow_consistent(e.t, e.tix, e.t["workflow_states"], e.timeline, e.done, e.as_of, e.params,
                                          e.names, e.label), (*TICKETS, "sections")),
    Monitor("ticket_sla", "ERROR", ("SOC2:CC7.1", "SOC2:CC7.4", "ISO27001:2022:8.8", "ISO27001:2022:5.26"), "tickets",
            "Tickets of each SLA category are resolved within the days their priority allows",
            lambda e: e.ticket_sla.rows, TICKETS, lambda e: sla.scope(e.t["projects"], e.params.sla_categories)),
)}


# The controls the monitors evidence, with what each asks (the report groups monitors by them).
CONTROLS = {
    "SOC2:CC8.1": "Changes are authorized, approved and tracked before implementation",
    "SOC2:CC6.2": "Access is registered and authorized before it is granted, and removed when no longer authorized",
    "SOC2:CC6.3": "Access is modified and removed following least privilege and segregation of duties",
    "ISO27001:2022:8.32": "Change management",
    "ISO27001:2022:5.3": "Segregation of duties",
    "ISO27001:2022:5.18": "Access rights are provisioned, reviewed, modified and removed",
    "SOC2:CC7.1": "Vulnerabilities and configuration changes are detected and monitored",
    "SOC2:CC7.4": "Security incidents are responded to by a defined incident response program",
    "ISO27001:2022:8.8": "Technical vulnerabilities are managed",
    "ISO27001:2022:5.26": "Information security incidents are responded to",
}
STATUSES = ("alarm", "error", "unknown", "info", "ok", "skip")
# What the monitors read of task_custom_fields (an evaluation may be given only these columns).
CUSTOM_FIELD_COLUMNS = sorted({*sla.CUSTOM_FIELD_COLUMNS, *offboarding.CUSTOM_FIELD_COLUMNS})
# Rows that judged their resource: an info row is not due yet and a skip row out of scope.
JUDGED = ("alarm", "error", "unknown", "ok")
PASS, FAIL, ERROR, INCOMPLETE, NOT_EVALUATED = "PASS", "FAIL", "ERROR", "INCOMPLETE", "NOT EVALUATED"
VERDICTS = (FAIL, ERROR, INCOMPLETE, NOT_EVALUATED, PASS)  # worst first
UNKNOWN_FIX = ("fix what each unknown row names (map the section, identify the approver, "
               "grant the connection access), then re-run")


def verdict(rows: pd.DataFrame) -> tuple[str, str]:
    """(verdict, why) for one monitor's rows of one run (``status`` and ``reason`` columns).

    FAIL on any alarm; else ERROR on any error, or any status that is none of ``STATUSES``
    (null included: never counted as nothing); else INCOMPLETE on any unknown (not passed: what
    the data could not show may hide a violation); else PASS when at least one resource was
    judged ok. No judged row (no rows, or only info and skip rows) is NOT EVALUATED, never PASS:
    an auditor reads PASS as "the control worked", which no judged resource can show.
    """
    n = rows["status"].value_counts(dropna=False)
    count = {status: int(n.get(status, 0)) for status in STATUSES}
    judged = sum(count[s] for s in JUDGED)
    odd = n[[status not in STATUSES for status in n.index]]
    if count["alarm"]:
        return FAIL, f"{count['alarm']} of {judged} judged resource(s) alarm."
    if len(odd):
        found = ", ".join(sorted(repr(None if pd.isna(status) else status) for status in odd.index))
        return ERROR, (f"{int(odd.sum())} row(s) carry a status that is none of {', '.join(STATUSES)} ({found}): "
                       "they cannot be read.")
    if count["error"]:
        return ERROR, f"{count['error']} of {judged} judged resource(s) could not be judged (error)."
    if count["unknown"]:
        return INCOMPLETE, (f"{count['unknown']} of {judged} judged resource(s) are unknown (the data cannot "
                            f"decide them) and none alarms: {UNKNOWN_FIX}. {_top(rows, 'unknown')}")
    if not judged:
        if not len(rows):
            return NOT_EVALUATED, "Not evaluated: the population is empty."
        return NOT_EVALUATED, (f"Not evaluated: no resource could be judged ({count['info']} not yet due, "
                               f"{count['skip']} out of scope): {_top(rows, 'info', 'skip')}")
    return PASS, f"None of {judged} judged resource(s) alarms ({count['ok']} ok, {count['info']} not yet due)."


def _top(rows: pd.DataFrame, *statuses: str) -> str:
    """The commonest reasons among rows of these statuses, with their counts."""
    reasons = rows.loc[rows["status"].isin(statuses), "reason"].fillna("no reason").value_counts()
    return "; ".join(f"{k} ({v})" for k, v in reasons.head(3).items())


class MonitorParams(BaseModel):
    """The monitors' parameters, with their defaults."""

    max_sync_age_hours: float = Field(24, description="tickets_synced: a project's last sync may be this old")
    assignment_grace_hours: float = Field(24, description="tickets_assigned: a new ticket may be unassigned this long")
    offboarding_grace_hours: float = Field(
        24, description="offboarding_access_removed: time to remove access, from the last snapshot showing it active")
    approved_admins: list[str] | None = Field(
        None, description="admin_access_restricted, and acknowledges admin grants: user gids or emails")
    acknowledged_changes: list[str] = Field(
        default_factory=list, description="membership_changes: change_ids of reviewed grants, guests, reactivations")
    drift_grace_hours: float = Field(24, description="workflow_consistent: tolerated section/completion drift")
    offboarding_projects: list[str] | None = Field(
        None, description="offboarding_ticket: the projects (gids or names) offboarding tickets are filed in; unset: "
                          "the monitor is not evaluated")
    offboarding_days: float = Field(5, description="offboarding_ticket: days after a deactivation to complete its ticket")
    offboarding_match: list[str] = Field(
        default_factory=lambda: list(offboarding.MATCHES),
        description="offboarding_ticket: how a ticket names the user: assignee, people_field (a people custom field), "
                    "title (the user's email or full name)")

    review_project: str | None = Field(
        None, description="access_review_completed: the project (gid or name) access review campaigns are filed in "
                          "(asana-connections review start); unset: the monitor is not evaluated")
    sla_categories: list[dict[str, Any]] | None = Field(
        None, description="ticket_sla: the SLA categories, each {name, projects, ticket_types, tags, field, "
                          "field_values (the tickets it takes: every selector given must match), priority_field, days "
                          "(per priority option), default_days, pause_blocked}; unset: the monitor is not evaluated")

    @field_validator("sla_categories")
    @classmethod
    def _valid_categories(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """Validated as they are set (a clear error, never a run that guesses), kept as plain
        mappings without nulls: the compliance resource's configuration takes no nested models,
        nor a null inside a mapping."""
        return None if value is None else [category.model_dump(exclude_none=True) for category in sla.parse(value)]

    @field_validator("offboarding_match")
    @classmethod
    def _known_matches(cls, value: list[str]) -> list[str]:
        if unknown := sorted(set(value) - set(offboarding.MATCHES)):
            raise ValueError(f"offboarding_match names {', '.join(map(repr, unknown))}: each entry is one of "
                             + ", ".join(offboarding.MATCHES))
        return value


def refused_listings(quarantine: pd.DataFrame) -> pd.DataFrame:
    """The per-project listings Asana refused in the sync (the crawl's quarantine rows): one row
    per project and listing, with the error as the crawl worded it."""
    rows = quarantine[(quarantine["table"] == "projects") & quarantine["error"].str.startswith(REFUSED, na=False)]
    error = rows["error"].str.slice(len(REFUSED))
    return pd.DataFrame({"project_gid": rows["gid"].astype("str"), "listing": error.str.split(":").str[0],
                         "error": error})


def lost_projects(quarantine: pd.DataFrame, projects: pd.DataFrame) -> pd.DataFrame:
    """The projects the source listed that are not in the projects table, their record refused
    (the crawl's quarantine rows of them, but a refused listing's): gid and error. None of their
    listings was read."""
    rows = quarantine[(quarantine["table"] == "projects") & quarantine["gid"].notna()
                      & ~quarantine["error"].str.startswith(REFUSED, na=False)]
    rows = rows[~isin(rows["gid"], projects["gid"])]
    errors = rows.groupby("gid", sort=True)["error"].agg(lambda each: "; ".join(sorted(set(each.fillna("")))))
    return pd.DataFrame({"gid": errors.index.astype(str), "error": errors.to_numpy(dtype=object)})


def unread_projects(monitor: Monitor, refused: pd.DataFrame, names: Directory, scope: pd.Series | None = None,
                    lost: pd.DataFrame | None = None) -> pd.DataFrame:
    """One unknown row per project (of ``scope``, the monitor's, when it has one) whose listing of
    the monitor's population Asana refused, or whose own record was refused (``lost``): what it
    holds is missing from the tables, so whether it passes cannot be told."""
    mine = refused[refused["listing"].isin(monitor.reads)]
    gone = lost if lost is not None and monitor.reads else pd.DataFrame({"gid": [], "error": []}, dtype=object)
    if scope is not None:
        mine, gone = mine[isin(mine["project_gid"], scope)], gone[isin(gone["gid"], scope)]
    errors = mine.groupby("project_gid", sort=True)["error"].agg(lambda each: "; ".join(sorted(each)))
    gids = errors.index.to_series()
    name = names.project_name(gids)
    reason = ("Project " + quoted(name, gids) + ": Asana refused its listing in the sync (" + errors
              + "), so what it holds is missing from the tables and cannot be judged. Give the connection "
              "access to the project (403) or the plan's feature (402), then sync again.")
    reason_lost = ("Project " + gone["gid"] + ": the source listed it but its record was refused (" + gone["error"]
                   + "; see quarantine), so none of its listings was read: what it holds is missing from the "
                   "tables and cannot be judged.")
    return pd.concat([rule_rows("project", gids, "unknown", reason, names.project_link(gids), name, name),
                      rule_rows("project", gone["gid"], "unknown", reason_lost, names.project_link(gone["gid"]))],
                     ignore_index=True)


def finish(monitor_id: str, rows: pd.DataFrame, run_id: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rule output to ``monitor_results`` rows for this run, with the named columns (``NAMED``)
    the evidence pack shows and the warehouse does not store."""
    monitor = MONITORS[monitor_id]
    out = rows.assign(
        run_id=run_id, evaluated_at=as_of, monitor_id=monitor_id, severity=monitor.severity,
        control_refs=[list(monitor.control_refs)] * len(rows),
    )
    return out[[*DERIVED_TABLES["monitor_results"].names, *NAMED]].reset_index(drop=True)


def _decide(index: pd.Index, cases: list[tuple], default: tuple[str, object]) -> tuple[pd.Series, pd.Series]:
    """(status, reason) per row from (condition, status, reason) cases: the first that holds
    wins. Chosen by Arrow, so the texts stay Arrow-backed (no Python object per row)."""
    conditions = pa.StructArray.from_arrays(
        [pa.array(np.asarray(condition, dtype=bool)) for condition, _, _ in cases],
        names=[str(i) for i in range(len(cases))])

    def column(value) -> pa.Array:
        return pa.array(pd.Series(value, index=index).astype("str"), from_pandas=True).cast(pa.string())

    def pick(values) -> pd.Series:
        return pd.Series(pc.case_when(conditions, *map(column, values)).to_pandas().array, index=index)

    return (pick([s for _, s, _ in cases] + [default[0]]), pick([r for _, _, r in cases] + [default[1]]))


# -- derived facts the rules share ------------------------------------------------------
def section_exits(timeline: pd.DataFrame) -> pd.DataFrame:
    """For each move into a section (by its story gid): when the ticket next left that section
    in that project (a move, or removal from the project) and the stage it went to (null when
    removed)."""
    following = timeline.groupby(["ticket_gid", "project_gid"], dropna=False)[["at", "stage"]].shift(-1)
    exits = pd.DataFrame({"left_at": following["at"], "left_to": following["stage"], "seq": timeline["seq"]})
    return exits[(exits["seq"] != "") & exits["left_at"].notna()].set_index("seq")


def first_unmapped(timeline: pd.DataFrame) -> pd.Series:
    """Per ticket, its first entry into a section whose name says no known stage (UNKNOWN): from
    then on, when its implementation started cannot be told."""
    return timeline[timeline["stage"] == UNKNOWN].groupby("ticket_gid")["at"].min()


def counting_approval(approvals: pd.DataFrame, impl_start: pd.Series, timeline: pd.DataFrame,
                      tasks: pd.DataFrame) -> pd.DataFrame:
    """Per ticket, the approval that counts: the first not cancelled before implementation start
    (or at all, if it has not started), preferring one nothing casts doubt on.

    A subtask's approval is cancelled by any later change of the same subtask away from approved
    (to pending, rejected or changes_requested); an approval by entering an APPROVED section is
    cancelled when the ticket leaves that section for one that is not an implementation stage
    (back to To Do, to Blocked, out of the project, ...). ``doubt`` says why an approval cannot
    be relied on: no person is known to have given it, it has no date, the ticket left its
    approved section for one of no known stage, or its subtask now reads other than approved
    with no dated change saying when that happened, or another approval subtask of the ticket
    stood rejected or with changes requested at implementation start (now, if not started).
    """
    a = approvals.assign(impl_start=lookup(approvals["ticket_gid"], impl_start))
    a = a.sort_values(["approval_task_gid", "decided_at", "approval_id"], na_position="first", kind="stable")
    away = a["decided_at"].where((a["source"] == "subtask") & (a["decision"] != "approved"))
    cancel_at = away.groupby(a["approval_task_gid"].fillna("section:" + a["approval_id"])).bfill()
    exits = section_exits(timeline)
    leave_at = lookup(a["approval_id"], exits["left_at"])
    left_to = lookup(a["approval_id"], exits["left_to"])
    left = (a["source"] == "section") & leave_at.notna() & ~left_to.isin(IMPLEMENTATION_STAGES)
    # Left for a section of no known stage: the work started there, or the approval was taken back.
    left_unmapped = left & (left_to == UNKNOWN) & (a["impl_start"].isna() | (leave_at < a["impl_start"]))
    cancel_at = cancel_at.where(~left | left_unmapped, leave_at)
    cancelled = cancel_at.notna() & (a["impl_start"].isna() | (cancel_at < a["impl_start"]))
    subtasks = tasks.drop_duplicates("gid").set_index("gid")
    last = a.drop_duplicates("approval_task_gid", keep="last")
    last = last[last["approval_task_gid"].notna()].set_index("approval_task_gid")
    status_now = lookup(last.index.to_series(), subtasks["approval_status"])
    reset = status_now.index[(last["decision"] == "approved").values & (status_now != "approved").fillna(True).values]
    undated = isin(a["approval_task_gid"], reset) & (a["source"] == "subtask")
    # Another approver's refusal standing when the work started (or now, if it has not): one
    # approval and one refusal read two ways, and neither is taken as the one that passes.
    dated = a[(a["source"] == "subtask") & a["decided_at"].notna()]
    standing = dated[dated["impl_start"].isna() | (dated["decided_at"] <= dated["impl_start"])].drop_duplicates(
        "approval_task_gid", keep="last")
    refused = standing[standing["decision"].isin(["rejected", "changes_requested"])].drop_duplicates("ticket_gid")
    refusal = lookup(a["ticket_gid"], refused.set_index("ticket_gid")["approval_task_gid"])
    overruled = refusal.notna() & (refusal != a["approval_task_gid"]).fillna(True).astype(bool)
    doubt = _decide(a.index, [
        (a["approver_gid"].isna(), "doubt",
         "no person is known to have given it (a rule or an app, or a story without an author)"),
        (a["decided_at"].isna(), "doubt", "it has no date"),
        (left_unmapped, "doubt", "the ticket left the approved section for a section of no known stage"),
        (undated, "doubt", "its approval subtask now reads " + lookup(a["approval_task_gid"], subtasks[
            "approval_status"]).fillna("unknown") + " and no dated change says when it left approved"),
        (overruled, "doubt", "another approval subtask, " + refusal.fillna("") + ", stood rejected or with changes "
         "requested when implementation started"),
    ], (None, None))[1]
    valid = a[(a["decision"] == "approved") & ~cancelled].assign(doubt=doubt, doubtful=doubt.notna())
    valid = valid.sort_values(["ticket_gid", "doubtful", "decided_at", "approval_id"])
    return valid.drop_duplicates("ticket_gid").set_index("ticket_gid")[
        ["approval_id", "source", "approval_task_gid", "decided_at", "approver_gid", "doubt"]]


def assignee_at_completion(tix: pd.DataFrame, events: pd.DataFrame, done: pd.DataFrame) -> pd.DataFrame:
    """Per completed ticket, who held it at each of its completions: the assignee set by the last
    assignment story at or before it (``known``); no assignment story at all: the current
    assignee; every story after it, or no time for it: unknown.

    A ticket completed more than once is judged on every completion, so a reopening cannot hide
    one done without an assignee: ``assignee_gid`` is the assignee at the first completion
    without one, else at the first one whose assignee is unknown, else at the last (Asana's
    ``completed_at``), with that completion's time and closer; ``assignees`` lists every known
    one (each was an implementer)."""
    completed = tix[tix["completed"]].set_index("gid")
    ends = done[done["completed"] & isin(done["ticket_gid"], completed.index)]
    moves = events[events["event_type"].isin(["assigned", "unassigned"]) & isin(events["ticket_gid"], completed.index)]
    rows = sort_rows(pd.concat([
        pd.DataFrame({"ticket_gid": moves["ticket_gid"], "at": moves["occurred_at"], "end": False,
                      "seq": moves["event_id"], "value": moves["new_value"]}),
        pd.DataFrame({"ticket_gid": ends["ticket_gid"], "at": ends["at"], "end": True, "seq": ends["seq"],
                      "value": None, "by": ends["actor_gid"]}),
    ], ignore_index=True), ["ticket_gid", "at", "end", "seq"])  # a story at the completion's instant precedes it
    # Each completion's last assignment story so far, its value null included ("unassigned").
    story = pd.Series(np.where(rows["end"], np.nan, np.arange(len(rows))))
    story = story.groupby(rows["ticket_gid"].to_numpy()).ffill()[rows["end"].to_numpy()]
    each = rows[rows["end"]].reset_index(drop=True)
    before = story.notna().to_numpy() & each["at"].notna().to_numpy()
    storied = isin(each["ticket_gid"], moves["ticket_gid"])
    value = rows["value"].to_numpy()[story.fillna(0).astype(int).to_numpy()]
    current = lookup(each["ticket_gid"], completed["assignee_gid"]).to_numpy()
    each["assignee_gid"] = np.where(before, value, np.where(storied, None, current))
    each["known"] = before | ~storied
    # The completion that speaks for the ticket: the first without an assignee, else the first
    # unknown, else the last.
    rank = np.select([each["known"] & each["assignee_gid"].isna(), ~each["known"]], [0, 1], 2)
    order = np.where(rank == 2, -np.arange(len(each)), np.arange(len(each)))
    chosen = each.assign(rank=rank, order=order).sort_values(["rank", "order"], kind="stable").drop_duplicates(
        "ticket_gid").set_index("ticket_gid")
    implementers = group_lists(each[each["known"]], ["ticket_gid"], "assignee_gid").to_pandas().set_index(
        "ticket_gid")["assignee_gid"]
    gids = completed.index.to_series()
    # A completed ticket without a completion row: as a single completion with no time.
    silent = ~isin(gids, chosen.index)
    out = pd.DataFrame({
        "assignee_gid": lookup(gids, chosen["assignee_gid"]).where(~silent, completed["assignee_gid"].where(
            ~isin(gids, moves["ticket_gid"]))),
        "known": lookup(gids, chosen["known"]).where(~silent, ~isin(gids, moves["ticket_gid"])).astype(bool),
        "assignees": lookup(gids, implementers),
        # That completion: when, and by whom (the ticket's own, for one without a row).
        "completed_at": lookup(gids, chosen["at"]).where(~silent, completed["completed_at"]),
        "completed_by_gid": lookup(gids, chosen["by"]).where(~silent, completed["completed_by_gid"]),
    }, index=completed.index)
    return out.replace({np.nan: None})


def is_active_member(raw, users: pd.Series, workspaces: pd.Series) -> pd.Series:
    """Whether each user has an active membership of the workspace beside it."""
    wm = raw["workspace_memberships"]
    active = wm[wm["is_active"].fillna(False).astype(bool)]
    return isin(users + ":" + workspaces, active["user_gid"] + ":" + active["workspace_gid"])


# -- ticket rules -----------------------------------------------------------------------
@dataclass(frozen=True)
class TicketNames:
    """How the ticket rules name each ticket (aligned with ``tix``): the label that starts a
    reason (``Ticket "Deploy v2" (Change Management)``; a subtask without a project of its own
    ``Subtask "Step" of "Deploy v2" (Change Management)``), its name and its project."""

    label: pd.Series
    name: pd.Series
    project: pd.Series

    @classmethod
    def of(cls, tix: pd.DataFrame, names: Directory) -> TicketNames:
        by_gid = tix.drop_duplicates("gid").set_index("gid")
        parent = tix["parent_gid"]
        own = tix["primary_project_gid"]
        project_gid = own.fillna(lookup(parent, by_gid["primary_project_gid"]))
        project = names.project_name(project_gid)
        where = " (" + project.fillna("project " + project_gid) + ")"  # null: in no project
        title = quoted(tix["name"], tix["gid"])
        subtask = own.isna() & parent.notna()
        label = np.where(
            subtask, "Subtask " + title + " of " + quoted(lookup(parent, by_gid["name"]), parent) + where.fillna(""),
            "Ticket " + title + where.fillna(" (no project)"),
        )
        return cls(pd.Series(label, index=tix.index, dtype=object), tix["name"], project)

    def rows(self, tix: pd.DataFrame, status, reason, people) -> pd.DataFrame:
        """The rule output for every ticket: the reason after the ticket's label."""
        return rule_rows("ticket", tix["gid"], status, self.label + ": " + pd.Series(reason, index=tix.index),
                         tix["url"], self.name, self.project, people)


def tickets_synced(raw, tix: pd.DataFrame, as_of: pd.Timestamp, params: MonitorParams,
                   names: Directory) -> pd.DataFrame:
    """Projects synced within max_sync_age and holding as many tasks as Asana counts in them;
    every task the source listed made it to tickets.

    The count is the source's own (``num_tasks``, read by every full crawl and by any sync that
    sees a task enter or leave the project), so a task the sync lost without a trace still
    alarms. The warehouse side counts the tasks placed in the project, as Asana does: completed
    ones and subtasks added to it included.
    A count never read or refused is unknown, never a match."""
    p = raw["projects"]
    age = as_of - p["synced_at"]
    stale = p["synced_at"].isna() | (age > timedelta(hours=params.max_sync_age_hours))
    counted, held = _task_counts(p, raw["task_memberships"])
    synced = "last synced at " + when(p["synced_at"])
    status, reason = _decide(p.index, [
        (p["synced_at"].isna(), "alarm", "its tasks were never listed completely."),
        (stale, "alarm", synced + ", longer ago than allowed."),
        (p["num_tasks"].notna() & (p["num_tasks"] != held), "alarm",
         "Asana counts " + counted + ", the warehouse holds " + held.astype("str") + "."),
        (p["tasks_counted_at"].isna(), "unknown", synced + ", but Asana's count of its tasks was never read."),
        (p["num_tasks"].isna(), "unknown", "Asana's count of its tasks was asked for at " + when(p["tasks_counted_at"])
         + " and not read (refused or malformed)."),
    ], ("ok", synced + "; Asana counts " + counted + ", the warehouse holds " + held.astype("str") + "."))
    projects = rule_rows("project", p["gid"], status, "Project " + quoted(p["name"], p["gid"]) + ": " + reason,
                         names.project_link(p["gid"]), p["name"], p["name"],
                         roles(owner=names.person(p["owner_gid"])))
    # A project the source listed whose own record was refused: none of its tasks was read.
    bad = lost_projects(raw["quarantine"], p)
    unread = rule_rows("project", bad["gid"], "alarm", "Project " + bad["gid"] + ": the source listed it but its "
                       "record was refused (" + bad["error"] + "; see quarantine), so none of its tasks was read.",
                       names.project_link(bad["gid"]))
    listed = pd.concat([raw["tasks"][["gid", "name", "permalink_url"]], _quarantined_tasks(raw["quarantine"])])
    listed = listed.drop_duplicates("gid")
    missing = listed[~isin(listed["gid"], tix["gid"])]
    lost = rule_rows(
        "ticket", missing["gid"], "alarm",
        "Task " + quoted(missing["name"], missing["gid"]) + ": the source listed it but it is not in tickets "
        "(see quarantine).", missing["permalink_url"], missing["name"])
    return pd.concat([projects, unread, lost], ignore_index=True)


def _task_counts(projects: pd.DataFrame, memberships: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per project: Asana's count as a reason quotes it ("12 tasks"), and the number of distinct
    tasks the warehouse places in it."""
    per_project = memberships.drop_duplicates(["task_gid", "project_gid"])["project_gid"].value_counts()
    held = lookup(projects["gid"], per_project).fillna(0).astype("int64")
    number = projects["num_tasks"].astype("Int64")
    counted = number.astype("str") + np.where((number == 1).fillna(False), " task", " tasks")
    return counted, held


def _quarantined_tasks(quarantine: pd.DataFrame) -> pd.DataFrame:
    """The tasks the sync refused, with the name and link their raw record gives (when it is
    readable JSON): the quarantine is small, so its records are parsed one by one. A record with
    no readable gid is named ``quarantined:`` and the first 16 hex digits of its sha256, so it
    still counts (and the same record keeps its name across runs)."""
    tasks = quarantine[quarantine["table"] == "tasks"]
    records = tasks["raw"].map(_json_object).tolist()
    fields = pd.DataFrame(records, index=tasks.index).reindex(columns=["name", "permalink_url"])
    fields = fields.astype(object).where(fields.map(lambda value: isinstance(value, str)), None)
    digest = tasks["raw"].fillna("").map(lambda text: hashlib.sha256(text.encode()).hexdigest()[:16])
    return fields.assign(gid=tasks["gid"].fillna("quarantined:" + digest))


def _json_object(text) -> dict:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def tickets_assigned(raw, tix: pd.DataFrame, at_completion: pd.DataFrame, as_of: pd.Timestamp,
                     params: MonitorParams, names: Directory, label: TicketNames) -> pd.DataFrame:
    """Open tickets past the grace have an active assignee; completed ones had one at completion."""
    assignee_active = is_active_member(raw, tix["assignee_gid"], tix["workspace_gid"])
    old = (as_of - tix["created_at"]) > timedelta(hours=params.assignment_grace_hours)
    done_by = lookup(tix["gid"], at_completion["assignee_gid"])
    known = lookup(tix["gid"], at_completion["known"]).fillna(True).astype(bool)
    # Asana's milestone kind, not the ticket type: a custom field can type a milestone "Change",
    # and a task typed "Milestone" is still work someone must own.
    tasks = raw["tasks"].drop_duplicates("gid").set_index("gid")
    milestone = lookup(tix["gid"], tasks["resource_subtype"]).eq("milestone").fillna(False).astype(bool)
    completed, unassigned = tix["completed"], tix["assignee_gid"].isna()
    assignee, implementer = names.person(tix["assignee_gid"]), names.person(done_by)
    # The completion judged (a reopened ticket's may be an earlier one), its time and closer.
    done_at = lookup(tix["gid"], at_completion["completed_at"]).fillna(tix["completed_at"])
    closer = (" by " + names.person(lookup(tix["gid"], at_completion["completed_by_gid"]))).fillna("")
    created = " (created " + when(tix["created_at"]) + ")"
    status, reason = _decide(tix.index, [
        (milestone, "skip", "milestones are not assigned work."),
        (completed & ~known, "unknown",
         "every assignment story comes after the completion: the assignee at completion is unknown."),
        (completed & done_by.isna(), "alarm",
         "completed at " + when(done_at) + closer + " without an assignee at completion."),
        (completed, "ok", "completed; assigned to " + implementer.fillna("") + " at completion."),
        (~unassigned & assignee_active, "ok", "assigned to " + assignee.fillna("") + ", an active member."),
        (old & unassigned, "alarm", "open and unassigned for longer than the grace period" + created + "."),
        (old, "alarm", "open and assigned to " + assignee.fillna("")
         + ", whose workspace membership is inactive or gone" + created + "."),
    ], ("info", "open for less than the grace period" + created + "."))
    people = roles(assignee=assignee.where(~completed, implementer), creator=names.person(tix["creator_gid"]))
    return label.rows(tix, status, reason, people)


def changes_approved(tix: pd.DataFrame, impl_start: pd.Series, counting: pd.DataFrame, unmapped: pd.Series,
                     names: Directory, label: TicketNames) -> pd.DataFrame:
    """A change that started implementation had an approval at or before the start.

    Unknown, never ok or skip, where the data cannot decide: the approval is in doubt (see
    ``counting_approval``), or the change entered a section whose stage is unknown before its
    approval (that section may have started the work) or before any start at all."""
    start = lookup(tix["gid"], impl_start)
    approved_at = lookup(tix["gid"], counting["decided_at"])
    doubt = lookup(tix["gid"], counting["doubt"])
    entered = lookup(tix["gid"], unmapped)
    approver = names.person(lookup(tix["gid"], counting["approver_gid"]))
    by = (" by " + approver).fillna("")
    change = tix["is_change"]
    unmapped_at = "it entered a section of no known stage at " + when(entered)
    status, reason = _decide(tix.index, [
        (~change, "skip", "not a change ticket."),
        (start.isna() & entered.notna(), "unknown",
         unmapped_at + ", which may have started the work: map that section (workflow_mapping)."),
        (start.isna(), "skip", "implementation has not started."),
        (approved_at.isna(), "alarm", "implementation started at " + when(start) + " without an approval."),
        (approved_at > start, "alarm",
         "approved" + by + " at " + when(approved_at) + ", after implementation started at " + when(start) + "."),
        (doubt.notna(), "unknown", "an approval at " + when(approved_at) + " precedes implementation start ("
         + when(start) + "), but " + doubt.fillna("") + "."),
        (entered < approved_at, "unknown", unmapped_at + ", before its approval" + by + " at " + when(approved_at)
         + ": map that section (workflow_mapping)."),
    ], ("ok", "approved" + by + " at " + when(approved_at) + ", at or before implementation start ("
        + when(start) + ")."))
    people = roles(requester=names.person(tix["creator_gid"]), assignee=names.person(tix["assignee_gid"]),
                   approver=approver)
    return label.rows(tix, status, reason, people)


def approval_segregation(tix: pd.DataFrame, counting: pd.DataFrame, at_completion: pd.DataFrame,
                         names: Directory, label: TicketNames) -> pd.DataFrame:
    """The approver that counts is neither the creator, the assignee (at completion) nor the closer.
    An approval no person is known to have given cannot be judged: unknown, never skip."""
    approval = lookup(tix["gid"], counting["approval_id"])
    approver = lookup(tix["gid"], counting["approver_gid"])
    doubt = lookup(tix["gid"], counting["doubt"])
    assignee = lookup(tix["gid"], at_completion["assignee_gid"]).where(tix["completed"], tix["assignee_gid"])
    # Whoever held a completed ticket at any of its completions implemented it.
    held = at_completion["assignees"].dropna().explode().dropna()
    implemented = isin(tix["gid"] + ":" + approver, held.index.to_series() + ":" + held.astype(str)) & tix["completed"]
    roles_of = [("creator", tix["creator_gid"] == approver), ("assignee", (assignee == approver) | implemented),
                ("closer", tix["completed_by_gid"] == approver)]
    clash = pd.Series("", index=tix.index)
    for role, same in roles_of:
        clash = clash.where(~(approver.notna() & same.fillna(False).astype(bool)), clash + " " + role)
    clash = clash.str.strip().str.replace(" ", ", ")
    who = names.person(approver).fillna("")
    change = tix["is_change"]
    status, reason = _decide(tix.index, [
        (~change, "skip", "not a change ticket."),
        (approval.isna(), "skip", "no approval to judge."),
        (clash != "", "alarm", "the approver " + who + " is also its " + clash + "."),
        (doubt.notna(), "unknown", "its approval cannot be relied on: " + doubt.fillna("") + "."),
    ], ("ok", "the approver " + who + " is independent of the creator, assignee and closer."))
    people = roles(approver=names.person(approver), creator=names.person(tix["creator_gid"]),
                   assignee=names.person(assignee), closer=names.person(tix["completed_by_gid"]))
    return label.rows(tix, status, reason, people)


def workflow_consistent(raw, tix: pd.DataFrame, states: pd.DataFrame, timeline: pd.DataFrame,
                        done: pd.DataFrame, as_of: pd.Timestamp, params: MonitorParams, names: Directory,
                        label: TicketNames) -> pd.DataFrame:
    """Completed tickets sit in CLOSED sections and open ones do not, in every project."""
    m = raw["task_memberships"].rename(columns={"task_gid": "ticket_gid"})
    m = m.merge(tix[["gid", "completed"]], left_on="ticket_gid", right_on="gid")
    m["state"] = m["section_gid"].map(states.set_index("section_gid")["state"])
    entered = timeline.groupby(["ticket_gid", "project_gid", "section_gid"], as_index=False)["at"].max()
    m = m.merge(entered, on=["ticket_gid", "project_gid", "section_gid"], how="left")
    # The last completion for a completed ticket, the last reopening for an open one.
    last_done = done[done["completed"]].groupby("ticket_gid")["at"].max()
    last_reopen = done[~done["completed"]].groupby("ticket_gid")["at"].max()
    flip = lookup(m["ticket_gid"], last_done).where(m["completed"], lookup(m["ticket_gid"], last_reopen))
    since = pd.concat([m["at"], flip], axis=1).max(axis=1)
    # A section of no known stage (or none the sync has) agrees or disagrees: nobody can tell.
    unclear = (m["state"].isna() | (m["state"] == UNKNOWN)).to_numpy(dtype=bool)
    drift = ~unclear & np.where(m["completed"], m["state"] != "CLOSED", m["state"] == "CLOSED")
    late = (as_of - since) > timedelta(hours=params.drift_grace_hours)
    m["rank"] = np.select([drift & late, unclear, drift], [3, 2, 1], 0)
    m["why"] = np.select(
        [unclear, m["completed"].to_numpy(dtype=bool)],
        ["in a section of no known stage", "completed but in a section whose state is " + m["state"].astype(str)],
        "open but in a CLOSED section",
    ) + " in " + names.project(m["project_gid"]) + " since " + when(since)
    worst = m.sort_values("rank", kind="stable").drop_duplicates("ticket_gid", keep="last").set_index("ticket_gid")
    rank = lookup(tix["gid"], worst["rank"])
    status, reason = _decide(tix.index, [
        (rank.isna(), "skip", "in no project: no section to compare."),
        (rank == 3, "alarm", "drift past the grace: " + lookup(tix["gid"], worst["why"]) + "."),
        (rank == 2, "unknown", lookup(tix["gid"], worst["why"]) + ": map that section (workflow_mapping)."),
        (rank == 1, "info", "drift within the grace: " + lookup(tix["gid"], worst["why"]) + "."),
    ], ("ok", "completion and section agree in every project."))
    people = roles(assignee=names.person(tix["assignee_gid"]), closer=names.person(tix["completed_by_gid"]))
    return label.rows(tix, status, reason, people)


# -- all monitors of one run ------------------------------------------------------------
def evaluate(t: Mapping[str, pd.DataFrame], params: MonitorParams, run_id: str, as_of: pd.Timestamp,
             shared: tuple[pd.DataFrame, pd.DataFrame] | None = None,
             former_people: pd.DataFrame | None = None,
             audit_unavailable: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Every monitor over the run's tables: ``monitor_results`` rows (with the named columns),
    and the populations the rules read (for the evidence pack; ``users`` names every person).
    ``shared`` is ``history_inputs`` when the caller has it already; ``former_people`` the
    people an earlier pack named (see ``names.Directory``). The audit log is
    ``t["audit_log_events"]``, absent when never read; ``audit_unavailable`` names the
    workspaces whose log the sync could not read, with why (the sync state's record)."""
    tix, states, events = t["tickets"], t["workflow_states"], t["ticket_events"]
    timeline, done = shared or history_inputs(t, states, events)
    impl = implementation_start(tix["gid"], timeline, done)
    counting = counting_approval(t["approvals"], impl, timeline, t["tasks"])
    at_completion = assignee_at_completion(tix, events, done)
    history, changes = t["user_access"], t["membership_changes"]
    names = Directory(t, former_people)
    turns = activity.deactivations(history, changes, t.get("audit_log_events"), t["workspace_memberships"])
    e = Evaluation(t, params, as_of, tix, timeline, done, impl, counting, at_completion, names,
                   TicketNames.of(tix, names), turns, audit_unavailable or {})
    refused, lost = refused_listings(t["quarantine"]), lost_projects(t["quarantine"], t["projects"])
    rules = {monitor_id: pd.concat([monitor.rule(e), unread_projects(
        monitor, refused, names, monitor.scope(e) if monitor.scope else None, lost)], ignore_index=True)
             for monitor_id, monitor in MONITORS.items()}
    results = pd.concat([finish(m, rows, run_id, as_of) for m, rows in rules.items()], ignore_index=True)
    latest = history[history["snapshot_at"] == history["snapshot_at"].max()] if len(history) else history
    populations = {
        "change_tickets": change_population(tix, impl, counting, at_completion),
        "tickets": tix.assign(
            assignee_at_completion=lookup(tix["gid"], at_completion["assignee_gid"]),
            assignee_at_completion_known=lookup(tix["gid"], at_completion["known"]),
            implementation_start=lookup(tix["gid"], impl),
        ),
        "approvals": t["approvals"],
        "ticket_status_history": t["ticket_status_history"],
        "workflow_states": states,
        "projects": t["projects"][["gid", "name", "archived", "owner_gid", "synced_at", "permalink_url"]],
        "workspace_memberships": t["workspace_memberships"],
        "team_memberships": t["team_memberships"],
        "project_memberships": t["project_memberships"],
        "user_access_latest": latest,
        "user_access_history": history,
        "membership_changes": changes,
        "deactivations": turns,
        "sla_tickets": e.ticket_sla.clocks,
        "access_review_decisions": review.decisions(
            t, t["approvals"], review.review_scope(t["projects"], params.review_project)).decisions,
        "quarantine": t["quarantine"],
        "workspaces": t["workspaces"][["gid", "name", "is_organization"]],
    }
    populations["users"] = names.people(t["users"], t["workspace_memberships"], [
        tix["assignee_gid"], tix["creator_gid"], tix["completed_by_gid"], at_completion["assignee_gid"],
        t["approvals"]["approver_gid"], t["projects"]["owner_gid"], t["team_memberships"]["user_gid"],
        history["user_gid"], changes["user_gid"],
    ])
    return results, populations


def history_inputs(t: Mapping[str, pd.DataFrame], states: pd.DataFrame,
                   events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The section timeline and the completions, which several tables and rules read."""
    return tickets.section_timeline(t, states, events), tickets.completions(t, events)


def change_population(tix, impl, counting, at_completion) -> pd.DataFrame:
    """Every change ticket with what changes_approved and approval_segregation judged."""
    c = tix[tix["is_change"]]
    return pd.DataFrame({
        "gid": c["gid"], "name": c["name"], "url": c["url"], "status": c["status"],
        "creator_gid": c["creator_gid"], "assignee_gid": c["assignee_gid"],
        "assignee_at_completion": lookup(c["gid"], at_completion["assignee_gid"]),
        "completed_at": c["completed_at"], "completed_by_gid": c["completed_by_gid"],
        "implementation_start": lookup(c["gid"], impl),
        "approval_id": lookup(c["gid"], counting["approval_id"]),
        "approval_source": lookup(c["gid"], counting["source"]),
        "approval_task_gid": lookup(c["gid"], counting["approval_task_gid"]),
        "approved_at": lookup(c["gid"], counting["decided_at"]),
        "approver_gid": lookup(c["gid"], counting["approver_gid"]),
        "approval_doubt": lookup(c["gid"], counting["doubt"]),
    })
