"""Access review campaigns decided in Asana (SOC 2 CC6.2 / CC6.3, ISO 27001:2022 5.18).

``start`` files, in a review project, one task per team and project whose members are reviewed,
assigned to its reviewer (a configured one, else the project's owner, else a team admin), listing
each member with their role, and one approval subtask per member: approve keeps the access,
reject revokes it. Every task's notes end with a marker line naming the campaign, the resource,
the due date and the member(s), so a rerun finds what is already filed (no second task) and the
decisions are read back from the synced tables alone (``decisions``): no extra API read.

``review_results`` (the ``access_review_completed`` monitor) judges each campaign item: decided
(approve, or reject with the access gone) ok; reject with the access still held alarm; undecided
past the due day alarm, before it info. An item the data cannot read (its subtask deleted or
not an approval, its marker garbled, its subtasks disagreeing) is unknown or error, never ok.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.compliance.names import Directory, profile_url, quoted, roles
from asana_assets.lib.compliance.rule_output import rule_rows, when
from asana_assets.lib.compliance.tickets import configured_projects, isin, lookup
from asana_assets.lib.schema import DERIVED_TABLES

MARKER = "asana-assets access review"
REVIEWED = ("team", "project")
ITEM = ["campaign", "resource_type", "resource_gid", "user_gid"]
DECISIONS = {"approved": "approved", "rejected": "rejected", "pending": "undecided", "changes_requested": "undecided"}
# The marker line: the campaign, the resource, the due day, then the listed members (a resource's
# task, "members u1=editor,u2=viewer") or the one member (a subtask, "member u1=editor").
_LINE = (rf"^{MARKER}: (?P<campaign>\S+) (?P<resource_type>team|project)/(?P<resource_gid>\d+) "
         r"due (?P<due>\d{4}-\d{2}-\d{2})(?: members (?P<members>(?:\d+=\w+,?)*)| member (?P<user_gid>\d+)="
         r"(?P<role>\w+))\s*$")
SETTING = "review_project"
START = "asana-connections review start --project <project> --due YYYY-MM-DD"
NOT_CONFIGURED = (f"Not configured: no review project is set, so access reviews cannot be checked: set {SETTING} "
                  "of the compliance resource (the project, by gid or name, review tasks are filed in), and start "
                  f"a campaign with `{START}`")
NOT_STARTED = f"No access review campaign found in the review project: start one with `{START}`"


def marker(campaign: str, resource_type: str, resource_gid: str, due: date, members: Mapping[str, str] | None = None,
           member: tuple[str, str] | None = None) -> str:
    """The marker line of a resource's task (``members``: user gid -> role) or a member's subtask."""
    who = (" members " + ",".join(f"{u}={r}" for u, r in members.items())) if members is not None else (
        f" member {member[0]}={member[1]}")
    return f"{MARKER}: {campaign} {resource_type}/{resource_gid} due {due.isoformat()}{who}"


# -- planning and filing a campaign --------------------------------------------------------
def latest_access(history: pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """The last access snapshot taken at or before ``as_of`` (all of them: the last)."""
    taken = history if as_of is None else history[history["snapshot_at"] <= as_of]
    return taken[taken["snapshot_at"] == taken["snapshot_at"].max()] if len(taken) else taken


def plan(t: Mapping[str, pd.DataFrame], reviewer_gid: str | None = None) -> pd.DataFrame:
    """One row per team and project member to review (``user_access``'s latest snapshot), with the
    resource's reviewer: ``reviewer_gid`` when configured, else the project's owner, else the
    team's first admin (by gid); null when none is known (the task goes unassigned)."""
    latest = latest_access(t["user_access"])
    items = latest[latest["resource_type"].isin(REVIEWED)][["resource_type", "resource_gid", "user_gid", "role"]]
    items = items.sort_values(["resource_type", "resource_gid", "user_gid"], ignore_index=True)
    owner = t["projects"].drop_duplicates("gid").set_index("gid")["owner_gid"]
    admins = items[(items["resource_type"] == "team") & (items["role"] == "admin")]
    admin = admins.sort_values("user_gid", key=lambda g: g.astype("int64")).drop_duplicates("resource_gid")
    by_kind = np.where(items["resource_type"] == "project", lookup(items["resource_gid"], owner),
                       lookup(items["resource_gid"], admin.set_index("resource_gid")["user_gid"]))
    reviewer = pd.Series(reviewer_gid, index=items.index, dtype=object) if reviewer_gid else pd.Series(
        by_kind, index=items.index, dtype=object)
    return items.assign(reviewer_gid=reviewer.where(reviewer.notna(), None))


@dataclass
class Started:
    """What one ``start`` did: resource tasks and member subtasks created, and those already there."""

    created_tasks: list[str] = field(default_factory=list)
    created_subtasks: list[str] = field(default_factory=list)
    existing: int = 0


async def start(client: AsanaClient, project_gid: str, campaign: str, due: date, items: pd.DataFrame,
                names: Directory) -> Started:
    """File the campaign's ``items`` (``plan``) in the review project: what a marker shows filed
    already is left alone, so a rerun (or one after a failure midway) only adds what is missing."""
    filed = await _filed(client, project_gid)
    outcome = Started()

    async def resource(kind: str, gid: str, members: pd.DataFrame) -> None:
        reviewer = members["reviewer_gid"].iloc[0]
        assignee = {"assignee": reviewer} if reviewer else {}
        label = (names.team if kind == "team" else names.project)(pd.Series([gid])).iloc[0]
        key = f"{campaign} {kind}/{gid}"
        if key in filed:
            parent, children = filed[key]
            outcome.existing += 1
        else:
            people = names.person(members["user_gid"])
            listing = "\n".join("- " + people + ": " + members["role"])
            notes = (f"Access review {campaign} of {label}: for each member below, approve its subtask to keep "
                     f"the access or reject it to revoke it, by {due.isoformat()}.\n{listing}\n\n"
                     + marker(campaign, kind, gid, due, members=dict(zip(members["user_gid"], members["role"]))))
            created = await client.write("POST", "/tasks", {
                                   "name": f"Access review {campaign}: {label}"[:250], "projects": [project_gid],
                                   "notes": notes, "due_on": due.isoformat(), **assignee})
            parent, children = created["gid"], set()
            outcome.created_tasks.append(key)
        person = names.person(members["user_gid"])
        for user, role, who in zip(members["user_gid"], members["role"], person):
            if user in children:
                continue
            await client.write("POST", "/tasks", {
                "name": f"Keep {role} access of {who} to {label}?"[:250], "parent": parent,
                "resource_subtype": "approval", "due_on": due.isoformat(), **assignee,
                "notes": (f"Approve to keep the {role} access of {who} to {label}; reject to revoke it.\n\n"
                          + marker(campaign, kind, gid, due, member=(user, role)))})
            outcome.created_subtasks.append(f"{key}/{user}")

    async with asyncio.TaskGroup() as group:
        for (kind, gid), members in items.groupby(["resource_type", "resource_gid"], sort=True):
            group.create_task(resource(kind, gid, members))
    outcome.created_tasks.sort()
    outcome.created_subtasks.sort()
    return outcome


def launch(t: Mapping[str, pd.DataFrame], run: Callable[[Callable[[AsanaClient], Awaitable[Started]]], Started],
           project: str, campaign: str, due: date, reviewer_gid: str | None = None) -> Started:
    """Start (or complete, on a rerun) campaign ``campaign`` from the synced tables ``t``
    (user_access, projects, users, teams, workspaces) in the review project (by gid or name),
    through ``run`` (an Asana connection's: it gives the client). A ValueError says why not."""
    chosen, unmatched = configured_projects(t["projects"], [project])
    if unmatched or chosen.sum() != 1:
        raise ValueError(f"the review project {project!r} matches {int(chosen.sum())} synced project(s) by gid or "
                         "name: give the gid of one synced project")
    if not re.fullmatch(r"\S+", campaign):
        raise ValueError(f"the campaign id {campaign!r} must be one word (no spaces)")
    items = plan(t, reviewer_gid)
    if items.empty:
        raise ValueError("the latest access snapshot lists no team or project member to review: sync first")
    project_gid = str(t["projects"].loc[chosen, "gid"].iloc[0])
    return run(lambda client: start(client, project_gid, campaign, due, items, Directory(t)))


async def _filed(client: AsanaClient, project_gid: str) -> dict[str, tuple[str, set[str]]]:
    """The campaign tasks already in the project: "<campaign> <kind>/<gid>" -> (task gid, the
    member gids its subtasks' markers name)."""
    listed = [task async for page in client.pages(f"/projects/{project_gid}/tasks", fields=("notes",))
              for task in page]
    parsed = read_markers(pd.Series([task.get("notes") or "" for task in listed], dtype=object))
    found: dict[str, tuple[str, set[str]]] = {}
    for key, task, resource in zip(_resource_key(parsed), listed, parsed["members"].notna(), strict=True):
        if resource:  # a resource's task (a member's subtask in the project is not one)
            found.setdefault(key, (task["gid"], set()))
    for key, (gid, members) in found.items():
        async for page in client.pages(f"/tasks/{gid}/subtasks", fields=("notes",)):
            parsed = read_markers(pd.Series([task.get("notes") or "" for task in page], dtype=object))
            members.update(parsed.loc[_resource_key(parsed) == key, "user_gid"].dropna())
    return found


# -- reading the decisions back ------------------------------------------------------------
def read_markers(notes: pd.Series) -> pd.DataFrame:
    """Each note's marker fields (null where it has none); ``marked`` says a marker line starts
    there at all, so a garbled one (marked, nothing parsed) is told from none."""
    text = notes.astype(object).fillna("").astype(str)
    fields = text.str.extract(_LINE.replace("^", "(?m)^", 1))
    return fields.assign(marked=text.str.contains(f"(?m)^{MARKER}:", regex=True))


def item_gid(items: pd.DataFrame) -> pd.Series:
    """A campaign item's resource gid in monitor_results: campaign/resource type/resource gid/user gid."""
    return items["campaign"] + "/" + items["resource_type"] + "/" + items["resource_gid"] + "/" + items["user_gid"]


def _resource_key(parsed: pd.DataFrame) -> pd.Series:
    return parsed["campaign"] + " " + parsed["resource_type"] + "/" + parsed["resource_gid"]


@dataclass(frozen=True)
class Review:
    """The review project's campaign items (``access_review_decisions`` rows, with ``problem``:
    why an item cannot be read, null when it can) and its tasks whose marker is garbled."""

    decisions: pd.DataFrame
    unreadable: pd.DataFrame  # task gid, name, url


def decisions(t: Mapping[str, pd.DataFrame], approvals: pd.DataFrame, project_gids: pd.Series) -> Review:
    """Every campaign item of the review projects: its decision by its approval subtask's status
    now, with the reviewer and time of the approval story that set it (null when no story
    agrees with the status). Items a resource's task lists without a subtask, subtasks that are
    not approvals, and items with several subtasks disagreeing are ``unknown``."""
    tasks = t["tasks"].drop_duplicates("gid")
    placed = t["task_memberships"]
    parents = tasks[isin(tasks["gid"], placed.loc[isin(placed["project_gid"], project_gids), "task_gid"])]
    children = tasks[isin(tasks["parent_gid"], parents["gid"])]
    ours = pd.concat([parents, children], ignore_index=True)
    parsed = read_markers(ours["notes"])
    unreadable = ours[parsed["marked"] & parsed["campaign"].isna()]
    parsed, ours = parsed[parsed["campaign"].notna()], ours[parsed["campaign"].notna()]
    listed = parsed[parsed["members"].notna()].assign(member=parsed["members"].str.split(","))
    listed = listed.explode("member").dropna(subset=["member"])
    listed = listed[listed["member"] != ""]
    member = listed["member"].astype(str).str.extract(r"^(?P<user_gid>\d+)=(?P<role>\w+)$")
    listed = listed.assign(user_gid=member["user_gid"], role=member["role"],
                           parent_task_gid=ours.loc[listed.index, "gid"].to_numpy())
    member_of = parsed["user_gid"].notna()
    mine = ours[member_of]  # aligned with subs, so an empty one stays empty
    subs = parsed[member_of].assign(task_gid=mine["gid"], status=mine["approval_status"],
                                    parent_task_gid=mine["parent_gid"], subtype=mine["resource_subtype"])
    decision = subs["status"].map(DECISIONS).where(subs["subtype"].eq("approval"))
    subs = subs.assign(decision=decision.fillna("unknown"))
    last = approvals[isin(approvals["approval_task_gid"], subs["task_gid"])].sort_values(
        ["approval_task_gid", "decided_at"], na_position="first").drop_duplicates("approval_task_gid", keep="last")
    last = last.set_index("approval_task_gid")
    agrees = (lookup(subs["task_gid"], last["decision"]) == subs["status"]).fillna(False).astype(bool)
    subs = subs.assign(reviewer_gid=lookup(subs["task_gid"], last["approver_gid"]).where(agrees),
                       decided_at=lookup(subs["task_gid"], last["decided_at"]).where(agrees))
    spread = subs.groupby(ITEM)["decision"].transform("nunique")
    subs = subs.assign(problem=np.select(
        [spread > 1, subs["decision"] == "unknown"],
        ["its subtasks disagree (" + subs.groupby(ITEM)["task_gid"].transform(lambda g: ", ".join(sorted(g)))
         .astype(object) + ")", "its subtask " + subs["task_gid"].astype(str) + " is not an approval task"], None))
    subs.loc[spread > 1, "decision"] = "unknown"
    subs = subs.sort_values([*ITEM, "task_gid"]).drop_duplicates(ITEM)
    missing = listed.merge(subs[ITEM], on=ITEM, how="left", indicator=True)
    missing = missing[missing["_merge"] == "left_only"]
    missing = missing.assign(
        task_gid=None, decision="unknown", reviewer_gid=None, decided_at=pd.NaT,
        problem="the resource's task " + missing["parent_task_gid"].astype(object)
        + " lists the member but no approval subtask names them (deleted, or not synced)")
    rows = pd.concat([subs, missing], ignore_index=True)
    rows = rows.assign(due_on=pd.to_datetime(rows["due"]).dt.date,
                       decided_at=pd.to_datetime(rows["decided_at"], utc=True))
    columns = [*DERIVED_TABLES["access_review_decisions"].names, "problem"]
    out = rows.reindex(columns=columns).sort_values(ITEM, ignore_index=True)
    return Review(out, unreadable[["gid", "name", "permalink_url"]].reset_index(drop=True))


# -- the monitor ---------------------------------------------------------------------------
def review_scope(projects: pd.DataFrame, configured: str | None) -> pd.Series:
    """The review project's gid (none when unset): only its refused listing makes the monitor unknown."""
    return projects.loc[configured_projects(projects, [configured] if configured else [])[0], "gid"].astype("str")


def review_results(t: Mapping[str, pd.DataFrame], approvals: pd.DataFrame, as_of: pd.Timestamp,
                   configured: str | None, names: Directory) -> pd.DataFrame:
    """access_review_completed: one row per campaign item (resource ``access_review_item``, gid
    campaign/resource type/resource gid/user gid), one error row per garbled marker (``task``),
    a skip row when no review project is set or no campaign was started (NOT EVALUATED)."""
    if not configured:
        return rule_rows("setting", [SETTING], "skip", NOT_CONFIGURED)
    if configured_projects(t["projects"], [configured])[1]:
        return rule_rows("setting", [SETTING], "error", (
            f"{SETTING} names {configured!r}, which matches no synced project by gid or name, so the campaigns "
            f"filed there are not seen: correct the compliance setting {SETTING}"))
    review = decisions(t, approvals, review_scope(t["projects"], configured))
    d = review.decisions
    bad = review.unreadable
    garbled = rule_rows("task", bad["gid"], "error", "Task " + quoted(bad["name"], bad["gid"]) + " in the review "
                        "project has a review marker line that cannot be read, so the item it stands for cannot be "
                        "judged: restore the line as the campaign wrote it", bad["permalink_url"], bad["name"])
    if d.empty:
        return pd.concat([garbled, rule_rows("setting", [SETTING], "skip", NOT_STARTED)], ignore_index=True)
    held = latest_access(t["user_access"], as_of)
    still = isin(d["user_gid"] + "/" + d["resource_type"] + "/" + d["resource_gid"],
                 held["user_gid"] + "/" + held["resource_type"] + "/" + held["resource_gid"])
    # A resource the snapshot lists nobody of was not read (refused, or out of the connection's
    # view): its members' access being gone cannot be told from it.
    unseen = ~isin(d["resource_type"] + "/" + d["resource_gid"], held["resource_type"] + "/" + held["resource_gid"])
    due = pd.to_datetime(d["due_on"]).dt.tz_localize("UTC")
    past = as_of >= due + timedelta(days=1)  # the due day is the reviewer's whole
    person, reviewer = names.person(d["user_gid"]), names.person(d["reviewer_gid"])
    by = (" by " + reviewer).fillna("") + (" at " + when(d["decided_at"])).where(d["decided_at"].notna(), "")
    decision = d["decision"]
    decided, rejected = decision.isin(["approved", "rejected"]), decision.eq("rejected")
    # A decision counts by its due day, by somebody other than the member (ASN-12); one whose
    # time or reviewer no story tells is not read as the one that passes.
    late = decided & (d["decided_at"] >= due + timedelta(days=1)).fillna(False).astype(bool)
    undated = decided & d["decided_at"].isna() & past
    own = decided & d["reviewer_gid"].eq(d["user_gid"]).fillna(False).astype(bool)
    nobody = decided & d["reviewer_gid"].isna()
    verb = np.where(rejected, "revoke decided", "approved (keep)") + by
    snapshot = when(pd.Series(held["snapshot_at"].max() if len(held) else pd.NaT, index=d.index))
    due_day = d["due_on"].astype(str)
    cases = [
        (decision.eq("unknown"), "unknown", "cannot be read: " + d["problem"].fillna("")),
        (late, "alarm", verb + ", after its due day " + due_day),
        (own, "alarm", verb + ", the member themself: their own access needs another reviewer's decision"),
        (rejected & still, "alarm",
         verb + ", and the access snapshot of " + snapshot + " shows the user still holds it"),
        (undated, "unknown", verb + ", but no story dates the decision: whether it was made by its due day "
         + due_day + " cannot be told"),
        (nobody, "unknown", verb + ", but no story names who decided: whether the member reviewed their own "
         "access cannot be told"),
        (rejected & (len(held) == 0), "unknown", verb + ", and no access snapshot shows whether the access is gone"),
        (rejected & unseen, "unknown", verb + ", and the access snapshot of " + snapshot + " lists no member of it "
         "(not read), so whether the access is gone cannot be told"),
        (rejected, "ok", verb + ", and the access is gone (snapshot of " + snapshot + ")"),
        (decided, "ok", verb),
        (past, "alarm", "undecided past its due day " + due_day),
    ]
    status = np.select([c for c, _, _ in cases], [s for _, s, _ in cases], "info")
    detail = np.select([c for c, _, _ in cases], [r for _, _, r in cases], "undecided, due " + due_day)
    resource = names.resource(d["resource_type"], d["resource_gid"])
    reason = ("Access review " + d["campaign"] + ": " + d["role"].fillna("") + " access of " + person + " to "
              + resource + " " + pd.Series(detail, index=d.index) + ".")
    url = ("https://app.asana.com/0/0/" + d["task_gid"]).where(d["task_gid"].notna(), profile_url(d["user_gid"]))
    items = rule_rows("access_review_item", item_gid(d), status, reason, url, person,
                      names.project_name(d["resource_gid"].where(d["resource_type"] == "project")),
                      roles(member=person, reviewer=reviewer))
    return pd.concat([garbled, items], ignore_index=True)
