"""The offboarding ticket (SOC 2 CC6.2, ISO 27001:2022 5.18): each user deactivated in a workspace
has a ticket in an offboarding project that names them, completed within N days of the deactivation.

A ticket names a user by its assignee, by a people custom field, or by its title holding the
user's email or full name (case-insensitively; a name as whole words, so "Al" never names "Alice";
a name several users share names none of them, and of names overlapping in a title the longest
counts: a ticket is never credited to a user it may not be about). Which of the three count is
configurable.

The deactivation is dated as ``activity.deactivations`` dates it: to the instant by the audit log,
else to a window between snapshots. A ticket counts from the deactivation on (one completed before
it, while the account was still active, does not), and the deadline runs N days from it; where
the window leaves a ticket on either side of a bound, the row is unknown, never ok. An open ticket
whose deadline has surely not passed is ``info`` (not yet due), never ok.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.lib.compliance.activity import PAIR, known_by, last_deactivations
from asana_assets.lib.compliance.names import Directory, profile_url, quoted
from asana_assets.lib.compliance.rule_output import rule_rows, when
from asana_assets.lib.compliance.tickets import configured_projects, isin, lookup, sort_rows

MATCHES = ("assignee", "people_field", "title")  # how a ticket may name a user (offboarding_match)
CUSTOM_FIELD_COLUMNS = ["task_gid", "resource_subtype", "people_gids"]  # what people_field reads of task_custom_fields
SETTING = "offboarding_projects"
NOT_CONFIGURED = (f"Not configured: no offboarding project is set, so whether deactivated users have an "
                  f"offboarding ticket cannot be checked: set {SETTING} of the compliance resource (the projects, by "
                  "gid or name, that offboarding tickets are filed in)")
# Around an email or a name in a title: no letter, digit or address character right before it,
# and none right after it (a full stop ending the sentence is fine, one inside an address is not).
BEFORE, AFTER = r"(?<![\w@.+-])", r"(?![\w@-]|\.\w)"


def offboarding_projects(projects: pd.DataFrame, configured: Sequence[str]) -> tuple[pd.Series, list[str]]:
    """The gids of the configured projects (by gid or name, case-insensitively), and the entries
    that match no synced project."""
    chosen, unmatched = configured_projects(projects, configured)
    return projects.loc[chosen, "gid"].astype("str"), unmatched


def offboarding_ticket_results(t: Mapping[str, pd.DataFrame], tix: pd.DataFrame, turns: pd.DataFrame,
                               as_of: pd.Timestamp, configured: Sequence[str] | None, days: float,
                               match: Sequence[str], names: Directory) -> pd.DataFrame:
    """One row per user and workspace with a deactivation there up to ``as_of`` (``turns``:
    ``activity.deactivations``; the latest is judged), resource ``user_in_workspace``: ok when a
    ticket of the ``configured`` projects naming the user (by the ``match`` kinds) was completed
    within ``days`` after it; alarm when none was by the deadline (none at all, still open, or
    completed late); unknown where the deactivation's window leaves that undecided; info while
    the deadline has surely not passed. No project configured: one skip row saying so (NOT
    EVALUATED). One error row per setting that cannot work as configured: entries matching no
    project, or people fields to match without the ``task_custom_fields`` table."""
    if not configured:
        return rule_rows("setting", [SETTING], "skip", NOT_CONFIGURED)
    chosen, unmatched = offboarding_projects(t["projects"], configured)
    users = last_deactivations(known_by(turns, as_of)).reset_index(drop=True)
    rows = _judge(t, tix, users, chosen, as_of, timedelta(days=days), match, names)
    problems = []
    if unmatched:
        problems.append((SETTING, (f"{SETTING} names {', '.join(map(repr, unmatched))}, which match(es) no synced "
                                   "project by gid or name, so tickets filed there are not seen: correct the "
                                   f"compliance setting {SETTING}")))
    if "people_field" in match and "task_custom_fields" not in t:
        problems.append(("offboarding_match", ("the evaluation was given no task_custom_fields table, so a ticket "
                                               "naming a user only in a people custom field is not seen: read the "
                                               "table into the monitors' inputs")))
    settings, why = zip(*problems) if problems else ((), ())
    return pd.concat([rule_rows("setting", list(settings), "error", list(why)), rows], ignore_index=True)


def _judge(t: Mapping[str, pd.DataFrame], tix: pd.DataFrame, users: pd.DataFrame, chosen: pd.Series,
           as_of: pd.Timestamp, allowed: timedelta, match: Sequence[str], names: Directory) -> pd.DataFrame:
    """The rows of the deactivated ``users`` (one per user and workspace) against the tickets of
    the ``chosen`` projects."""
    memberships = t["task_memberships"]
    placed = memberships[isin(memberships["project_gid"], chosen)].drop_duplicates("task_gid")
    mine = tix[isin(tix["gid"], placed["task_gid"])].drop_duplicates("gid")
    named = _named(t, mine, users["user_gid"].drop_duplicates(), match, names)
    done = mine["completed"].fillna(False).astype(bool) & ~(mine["completed_at"] > as_of)
    by_gid = mine.set_index("gid")
    completed = by_gid["completed_at"].where(done.to_numpy())
    earliest, latest = users["earliest"], users["latest"]
    first_due, last_due = earliest + allowed, latest + allowed
    pairs = users[[*PAIR]].reset_index().merge(named, on="user_gid")
    at = lookup(pairs["ticket_gid"], completed)
    lo, hi = _per_pair(pairs, earliest), _per_pair(pairs, latest)
    lo_due, hi_due = _per_pair(pairs, first_due), _per_pair(pairs, last_due)
    # Rank each ticket: in time whatever the deactivation's instant (4), in time or not depending on
    # it (3), surely late (2), open (1), completed surely before the deactivation (0).
    sure = (at >= hi) & (at <= lo_due)
    maybe = at.notna() & ~(at < lo) & (at <= hi_due)
    pairs["rank"] = np.select([sure, maybe, at > hi_due, at.isna()], [4, 3, 2, 1], 0)
    pairs["at"] = at
    best = sort_rows(pairs.assign(neg=-pairs["rank"]), ["index", "neg", "at", "ticket_gid"]).drop_duplicates("index")
    best = best.set_index("index").reindex(users.index)
    rank, ticket, done_at = best["rank"].fillna(-1), best["ticket_gid"], best["at"]
    project = names.project_name(lookup(ticket, placed.set_index("task_gid")["project_gid"]))
    title = (quoted(lookup(ticket, by_gid["name"]), ticket) + " (" + project.fillna("an offboarding project")
             + ")").astype("str")
    completion = "ticket " + title + " was completed at " + when(done_at)
    deadline = pd.Series(np.select(
        [earliest.eq(latest), earliest.isna()],
        [when(last_due), "at or before " + when(last_due)],
        "between " + when(first_due) + " and " + when(last_due)), index=users.index)
    wide = earliest.isna() | (latest - earliest > allowed)
    days = allowed / timedelta(days=1)
    n = f"{days:g} day" + ("" if days == 1 else "s")
    undecided = np.where(wide, f", a window wider than the {n} allowed: its deadline cannot be placed",
                         ": the window leaves it undecided")
    missing = np.select(
        [rank.eq(1), rank.eq(0)],
        ["ticket " + title + " is still open", completion + ", before the deactivation, so it does not count"],
        "no ticket of the offboarding projects names the user")
    cases = [rank.eq(4), rank.eq(3), rank.eq(2), as_of > last_due, as_of <= first_due]
    status = np.select(cases, ["ok", "unknown", "alarm", "alarm", "info"], "unknown")
    detail = np.select(cases, [
        "; offboarding " + completion + f", within the {n} allowed (deadline " + deadline + ")",
        "; offboarding " + completion + f", and whether that was within the {n} after the deactivation "
        "cannot be told (deadline " + deadline + undecided + ")",
        "; offboarding " + completion + ", after its deadline (" + deadline + ")",
        "; no offboarding ticket naming the user was completed by its deadline (" + deadline + "): " + missing,
        "; not yet due: the deadline is " + deadline + " and " + missing,
    ], "; whether the deadline (" + deadline + undecided + ") has passed cannot be told, and " + missing)
    person = names.person(users["user_gid"])
    reason = (person + " in " + names.workspace(users["workspace_gid"]) + ": deactivated " + users["said"]
              + pd.Series(detail, index=users.index))
    url = lookup(ticket, by_gid["url"]).fillna(profile_url(users["user_gid"]))
    return rule_rows("user_in_workspace", users["user_gid"] + "/" + users["workspace_gid"], status, reason, url,
                     person, project, person).sort_values("resource_gid", ignore_index=True)


def _per_pair(pairs: pd.DataFrame, values: pd.Series) -> pd.Series:
    """``values`` (aligned with the judged users) for each pair, by its ``index`` column."""
    return pd.Series(values.to_numpy()[pairs["index"].to_numpy()], index=pairs.index, dtype=values.dtype)


def _named(t: Mapping[str, pd.DataFrame], tickets: pd.DataFrame, users: pd.Series, match: Sequence[str],
           names: Directory) -> pd.DataFrame:
    """(ticket_gid, user_gid) for each of ``users`` a ticket names, by the ``match`` kinds."""
    found = [pd.DataFrame({"ticket_gid": pd.Series(dtype="str"), "user_gid": pd.Series(dtype="str")})]
    if "assignee" in match:
        found.append(pd.DataFrame({"ticket_gid": tickets["gid"], "user_gid": tickets["assignee_gid"]}))
    if "people_field" in match and "task_custom_fields" in t:
        values = t["task_custom_fields"]
        values = values[isin(values["task_gid"], tickets["gid"]) & values["resource_subtype"].eq("people")]
        people = pa.array(values["people_gids"], type=pa.list_(pa.string()), from_pandas=True)
        found.append(pd.DataFrame({
            "ticket_gid": values["task_gid"].to_numpy()[pc.list_parent_indices(people).to_numpy()],
            "user_gid": pc.list_flatten(people).to_numpy(zero_copy_only=False)}))
    if "title" in match:
        found.append(_in_titles(tickets, users, names))
    named = pd.concat(found, ignore_index=True).dropna().astype("str")
    return named[isin(named["user_gid"], users)].drop_duplicates(ignore_index=True)


def _in_titles(tickets: pd.DataFrame, users: pd.Series, names: Directory) -> pd.DataFrame:
    """(ticket_gid, user_gid) for each title holding a user's email or full name: one pattern of
    them all, longest first, found by a single pass over the titles."""
    spaced = names.user_names.dropna().astype("str").str.split().str.join(" ").str.casefold()
    shared = spaced[spaced.duplicated(keep=False)]
    keys = pd.concat([names.emails.dropna().astype("str").str.strip().str.casefold(), spaced[~isin(spaced, shared)]])
    keys = keys[isin(keys.index, users) & keys.ne("").to_numpy()]
    if keys.empty:
        return pd.DataFrame({"ticket_gid": pd.Series(dtype="str"), "user_gid": pd.Series(dtype="str")})
    owner = pd.Series(keys.index, index=keys.to_numpy()).groupby(level=0).agg(list)
    words = sorted(owner.index, key=len, reverse=True)
    pattern = BEFORE + "(" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words) + ")" + AFTER
    hits = tickets.set_index("gid")["name"].dropna().astype("str").str.casefold().str.extractall(pattern)[0]
    said = hits.str.split().str.join(" ")
    pairs = pd.DataFrame({"ticket_gid": hits.index.get_level_values(0), "user_gid": lookup(said, owner).to_numpy()})
    return pairs.explode("user_gid")
