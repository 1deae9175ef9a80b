"""Activity after deactivation (SOC 2 CC6.2): what the audit log shows a user doing in a
workspace after their deactivation there.

Each change of a user's state in a workspace (deactivated, reactivated) is dated as precisely as
the data allows (``deactivations``): to the instant by the audit log's own event
(``user_deprovisioned``, ``user_reprovisioned``); else by the snapshots around it
(``membership_changes``: after the earlier, at or before the later; a workspace membership removed
ends access as a deactivation does); a user already inactive in the first snapshot that shows them
in the workspace was deactivated after the membership's creation (when unknown, at any earlier
time) and at or before that snapshot. A snapshot window that holds the audit log's event of the
same change is dated by the event.

Every audit event whose actor is a user deactivated there is placed against those changes
(``activity_results``): after a deactivation known to precede it, with no change that may have
restored the user in between, it alarms; inside the window of a change that may have turned the
user's state by then it is unknown, never ok: that includes an event at the very instant of the
deactivation, since which came first cannot be told; otherwise (before any deactivation, or after
a reactivation) it is ok.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from asana_assets.lib.compliance.attribution import AUDIT_LOG, SNAPSHOTS, access_events
from asana_assets.lib.compliance.names import Directory, profile_url
from asana_assets.lib.compliance.rule_output import rule_rows, when
from asana_assets.lib.compliance.tickets import group_lists, lookup

DEACTIVATED, REACTIVATED = "deactivated", "reactivated"
# The workspace membership changes that end or restore a user's access there.
TURNS = {"deactivated": DEACTIVATED, "revoked": DEACTIVATED, "reactivated": REACTIVATED}
NOUNS = {DEACTIVATED: "deactivation", REACTIVATED: "reactivation"}
PAIR = ["user_gid", "workspace_gid"]
COLUMNS = [*PAIR, "change", "earliest", "latest", "evidence"]
LISTED_EVENTS = 5  # a reason lists this many events, then counts the rest
MICROSECOND = pd.Timedelta(microseconds=1)  # the warehouse's resolution: "after t" is "at t + 1 us or later"


def deactivations(history: pd.DataFrame, changes: pd.DataFrame, audit: pd.DataFrame | None,
                  memberships: pd.DataFrame) -> pd.DataFrame:
    """Every deactivation and reactivation of a user in a workspace: ``change``, and the earliest
    and latest instant it can have happened (both included; ``earliest`` null: at any time up to
    ``latest``), with its ``evidence`` (audit log or snapshots).

    ``history`` is ``user_access``, ``changes`` ``membership_changes``, ``audit`` the audit log
    (None when never read), ``memberships`` the raw workspace memberships (their creation time
    bounds a deactivation the first snapshot already shows)."""
    logged = access_events(audit, changes)
    logged = logged[logged["resource_type"].eq("workspace") & logged["change_type"].isin([DEACTIVATED, REACTIVATED])]
    exact = pd.DataFrame({"user_gid": logged["user_gid"], "workspace_gid": logged["resource_gid"],
                          "change": logged["change_type"], "earliest": logged["occurred_at"],
                          "latest": logged["occurred_at"], "evidence": AUDIT_LOG}).dropna(subset=["user_gid"])
    # A change the audit log dates is among ``logged`` already; the others keep their window.
    dated = changes["occurred_at"].notna()
    windowed = changes[changes["resource_type"].eq("workspace") & changes["change_type"].isin(list(TURNS)) & ~dated]
    between = pd.DataFrame({"user_gid": windowed["user_gid"], "workspace_gid": windowed["resource_gid"],
                            "change": windowed["change_type"].map(TURNS),
                            "earliest": windowed["window_start"] + MICROSECOND, "latest": windowed["window_end"],
                            "evidence": SNAPSHOTS})
    seen = history[history["resource_type"].eq("workspace")].rename(columns={"resource_gid": "workspace_gid"})
    first = seen.sort_values("snapshot_at", kind="stable").drop_duplicates(PAIR)
    first = first[~first["user_is_active"].eq(True)].merge(
        memberships.groupby(PAIR, as_index=False)["created_at"].min(), on=PAIR, how="left")
    baseline = pd.DataFrame({"user_gid": first["user_gid"], "workspace_gid": first["workspace_gid"],
                             "change": DEACTIVATED, "earliest": first["created_at"] + MICROSECOND,
                             "latest": first["snapshot_at"], "evidence": SNAPSHOTS})
    windows = pd.concat([between, baseline], ignore_index=True)
    # A window holding the audit log's event of the same change is dated by that event.
    pairs = windows.reset_index().merge(exact[[*PAIR, "change", "latest"]], on=[*PAIR, "change"],
                                        suffixes=("", "_logged"))
    inside = ~(pairs["latest_logged"] < pairs["earliest"]) & (pairs["latest_logged"] <= pairs["latest"])
    windows = windows.drop(index=pairs.loc[inside, "index"].unique())
    # Empty frames left out: their all-null columns would decide the concatenated types.
    found = [frame for frame in (exact, windows) if len(frame)]
    found = pd.concat(found, ignore_index=True) if found else pd.DataFrame(
        {c: pd.Series(dtype="datetime64[us, UTC]" if c in ("earliest", "latest") else "str") for c in COLUMNS})
    return found[COLUMNS].drop_duplicates().sort_values([*PAIR, "latest", "change"], ignore_index=True)


def activity_results(audit: pd.DataFrame | None, unavailable: Mapping[str, str], turns: pd.DataFrame,
                     as_of: pd.Timestamp, names: Directory) -> pd.DataFrame:
    """One row per user and workspace with a deactivation there (``turns``: ``deactivations``),
    resource ``user_in_workspace``: alarm when the workspace's audit log shows the user acting
    after a deactivation, unknown when an event falls where the order cannot be told or when the
    log was not read (``audit`` None: never; ``unavailable``: workspace gid -> why, as the sync
    state records a 402/403), ok when it shows no action after it. One row per user, listing
    the events: one finding per account to investigate, however many actions it shows.
    Events and changes after ``as_of`` are left out."""
    turns = known_by(turns, as_of)
    turns = turns.assign(named=turns["change"].map(NOUNS) + " " + turns["said"])
    users = last_deactivations(turns)
    acts = _events(audit, as_of).merge(users[PAIR], on=PAIR)
    pairs = acts[["gid", "at", *PAIR]].merge(turns, on=PAIR)
    after, before = pairs["at"] > pairs["latest"], pairs["at"] < pairs["earliest"]
    # The state each event follows: that of the last change known to precede it (none: active).
    last = pairs[after].sort_values(["gid", "latest"], kind="stable").drop_duplicates("gid", keep="last")
    last = last.set_index("gid")
    state = lookup(pairs["gid"], last["change"]).fillna(REACTIVATED)
    # A change that may lie on either side of the event and would turn that state: unknown.
    doubt = pairs[~after & ~before & pairs["change"].ne(state)].drop_duplicates("gid").set_index("gid")
    in_doubt, follows = lookup(acts["gid"], doubt["named"]), lookup(acts["gid"], last["change"])
    status = pd.Series(np.select([in_doubt.notna(), follows.eq(DEACTIVATED)], [1, 2], 0), index=acts.index)
    acts = acts.assign(rank=status, text=acts["event_type"].fillna("an event") + " at " + when(acts["at"], precise=True)
                       + " (event " + acts["gid"] + ")" + np.select(
                           [status.eq(1), status.eq(2)],
                           [", which the " + in_doubt.fillna("") + " may precede",
                            ", after the " + lookup(acts["gid"], last["named"]).fillna("")], ""))
    worst = acts.groupby(PAIR, as_index=False)["rank"].max()
    users = users.merge(worst, on=PAIR, how="left").merge(
        _listed(acts.merge(worst, on=[*PAIR, "rank"])), on=PAIR, how="left")
    why = lookup(users["workspace_gid"], pd.Series(dict(unavailable), dtype="str")) if audit is not None else pd.Series(
        "no sync has read an audit log yet", index=users.index)
    rank, events = users["rank"].fillna(0), users["events"].fillna("")
    # What the log holds alarms even where it can no longer be read: a lapse never hides an alarm.
    cases = [rank.eq(2), why.notna(), rank.eq(1)]
    detail = np.select(cases, [
        "; the audit log shows the user acting after a deactivation: " + events,
        "; its audit log was not read (" + why.fillna("") + "), so whether the user acted after it cannot be told: "
        "give the connection the audit log (Enterprise+ and a service account), then sync again",
        "; the audit log shows the user acting where the data cannot tell whether they were still active: "
        + events,
    ], "; the audit log shows no action by the user while deactivated" + _reach(audit, users["workspace_gid"]))
    person = names.person(users["user_gid"])
    reason = person + " in " + names.workspace(users["workspace_gid"]) + ": deactivated " + users["said"] + detail
    return rule_rows("user_in_workspace", users["user_gid"] + "/" + users["workspace_gid"],
                     np.select(cases, ["alarm", "unknown", "unknown"], "ok"), reason, profile_url(users["user_gid"]),
                     person, None, person).sort_values("resource_gid", ignore_index=True)


def known_by(turns: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The changes of ``deactivations`` that may have happened by ``as_of``, oldest first per user
    and workspace, each with ``said``: how a reason dates it."""
    turns = turns[~(turns["earliest"] > as_of)].sort_values([*PAIR, "latest"], kind="stable")
    return turns.assign(said=dated(turns))


def last_deactivations(turns: pd.DataFrame) -> pd.DataFrame:
    """Per user and workspace, the latest deactivation among ``known_by``'s changes."""
    return turns[turns["change"].eq(DEACTIVATED)].drop_duplicates(PAIR, keep="last")


def dated(turns: pd.DataFrame) -> pd.Series:
    """How a reason dates each change: ``at <time> (audit log)``, ``between <a> and <b>
    (snapshots)``, or ``at or before <b> (snapshots)`` when nothing bounds it from below."""
    latest = when(turns["latest"], precise=True)
    return pd.Series(np.select(
        [turns["earliest"].eq(turns["latest"]), turns["earliest"].isna()], ["at " + latest, "at or before " + latest],
        "between " + when(turns["earliest"] - MICROSECOND, precise=True) + " and " + latest,
    ), index=turns.index) + " (" + turns["evidence"] + ")"


def _reach(audit: pd.DataFrame | None, workspaces: pd.Series) -> pd.Series:
    """What an ok rests on: `` (its events held start at <time>)``, per workspace; Asana keeps
    90 days, so activity before the first sync that read the log may be out of its reach."""
    if audit is None or audit.empty:
        return pd.Series("", index=workspaces.index)
    first = audit.groupby("workspace_gid")["created_at"].min()
    start = lookup(workspaces, first)
    return (" (the events it holds start at " + when(start, precise=True) + ")").where(start.notna(), "")


def _events(audit: pd.DataFrame | None, as_of: pd.Timestamp) -> pd.DataFrame:
    """The audit log's events by a user up to ``as_of``: gid, the workspace, the actor as
    ``user_gid``, ``at`` and the event type."""
    columns = {"gid": "gid", "workspace_gid": "workspace_gid", "actor_gid": "user_gid", "created_at": "at",
               "event_type": "event_type"}
    if audit is None:
        return pd.DataFrame({name: pd.Series(dtype="datetime64[us, UTC]" if name == "at" else "str")
                             for name in columns.values()})
    events = audit[list(columns)].rename(columns=columns).dropna(subset=["user_gid"])
    return events[events["at"] <= as_of].sort_values(["at", "gid"], ignore_index=True)


def _listed(acts: pd.DataFrame) -> pd.DataFrame:
    """Per user and workspace, the texts of ``acts`` (oldest first): the first few, then how many
    more. Joined by Arrow, not once per user in Python."""
    lists = group_lists(acts, PAIR, "text")
    rest = pc.subtract(pc.list_value_length(lists["text"]), LISTED_EVENTS)
    shown = pc.binary_join(pc.list_slice(lists["text"], 0, LISTED_EVENTS), "; ")
    shown = pc.if_else(pc.greater(rest, 0), pc.binary_join_element_wise(
        shown, " and ", rest.cast(pa.string()), " more", ""), shown)
    return lists.select(PAIR).append_column("events", shown).to_pandas()
