"""ticket_sla on a small hand-built organisation, through every derived table as the assets build
them: every expected status and reason is written here by hand, ticket by ticket, with why."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from pydantic import ValidationError

from asana_assets.lib.compliance import monitors, sla
from asana_assets.lib.compliance.monitors import MONITORS, MonitorParams, TicketNames
from asana_assets.lib.compliance.names import Directory
from asana_assets.lib.compliance.sla import NOT_CONFIGURED
from asana_assets_tests.lib.compliance.test_rules import AS_OF, T0, derive, raw_tables, results_of

DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
SECTIONS = {  # gid: name, all in p1 "Security Incidents"
    "s-new": "New", "s-doing": "Investigating", "s-blocked": "Blocked", "s-parked": "Parking lot", "s-done": "Closed"}
SEVERITY = {"Critical": "o-crit", "High": "o-high", "Low": "o-low"}
INCIDENTS = {"name": "Incidents", "projects": ["Security Incidents"], "priority_field": "Severity",
             "days": {"Critical": 1, "High": 3}, "default_days": 5}
CVES = {"name": "CVEs", "tags": ["CVE"], "default_days": 30}  # every tagged ticket: 30 days, no priority read
AT = "2026-03-12 09:00 UTC"  # AS_OF, as reasons write it


class Org:
    """Acme: p1 "Security Incidents" (the category's project) and p2 "IT Helpdesk"; Bob works
    every ticket, Alice files them."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {
            "workspaces": [{"gid": "w1", "name": "Acme", "is_organization": True}],
            "users": [{"gid": u, "name": u.title(), "email": f"{u}@acme.example"} for u in ("alice", "bob")],
            "projects": [{"gid": "p1", "workspace_gid": "w1", "name": "Security Incidents", "archived": False,
                          "synced_at": AS_OF - HOUR},
                         {"gid": "p2", "workspace_gid": "w1", "name": "IT Helpdesk", "archived": False,
                          "synced_at": AS_OF - HOUR}],
            "sections": [{"gid": gid, "project_gid": "p1", "name": name, "position": i}
                         for i, (gid, name) in enumerate(SECTIONS.items())]
            + [{"gid": "s-help", "project_gid": "p2", "name": "New", "position": 0}],
            "custom_fields": [{"gid": "f-sev", "workspace_gid": "w1", "name": "Severity", "resource_subtype": "enum",
                               "enum_option_gids": list(SEVERITY.values()), "enum_option_names": list(SEVERITY)}],
            "tags": [{"gid": "tag-cve", "workspace_gid": "w1", "name": "cve"}],
            "workspace_memberships": [{"gid": f"wm-{u}", "workspace_gid": "w1", "user_gid": u, "is_active": True,
                                       "is_admin": False, "is_guest": False} for u in ("alice", "bob")],
        }
        self.stories = 0

    def ticket(self, gid: str, created, severity: str | None = None, *, completed=None, section: str = "s-doing",
               project: str = "p1") -> str:
        self.rows.setdefault("tasks", []).append({
            "gid": gid, "workspace_gid": "w1", "resource_subtype": "default_task", "name": gid,
            "assignee_gid": "bob", "created_by_gid": "alice", "created_at": created, "modified_at": created,
            "completed": completed is not None, "completed_at": completed,
            "completed_by_gid": "bob" if completed is not None else None,
            "permalink_url": f"https://app.asana.com/0/0/{gid}"})
        self.rows.setdefault("task_memberships", []).append(
            {"task_gid": gid, "project_gid": project, "section_gid": "s-done" if completed else section, "position": 0})
        if severity:
            self.rows.setdefault("task_custom_fields", []).append({
                "task_gid": gid, "custom_field_gid": "f-sev", "resource_subtype": "enum",
                "enum_option_gid": SEVERITY[severity], "enum_option_name": severity, "display_value": severity})
        return gid

    def story(self, task: str, at, subtype: str, **fields) -> None:
        self.stories += 1
        self.rows.setdefault("stories", []).append({
            "gid": f"st{self.stories}", "task_gid": task, "created_at": at, "created_by_gid": "bob", "type": "system",
            "resource_subtype": subtype, **fields})

    def moves(self, task: str, *path: tuple[object, str, str]) -> None:
        """Section moves in p1, (time, from, to); the membership ends where the last one put it."""
        for at, old, new in path:
            self.story(task, at, "section_changed", old_section_gid=old, new_section_gid=new)

    def complete(self, task: str, at) -> None:
        self.moves(task, (at, "s-doing", "s-done"))
        self.story(task, at, "marked_complete")

    def tag(self, task: str) -> None:
        self.rows.setdefault("task_tags", []).append({"task_gid": task, "tag_gid": "tag-cve"})


@pytest.fixture(scope="module")
def org() -> Org:
    o = Org()
    # Open past its SLA: Critical (1 day), filed two days before as_of.
    o.ticket("open-late", AS_OF - 2 * DAY, "Critical")
    o.tag("open-late")  # in the CVEs category too: a row of its own there
    o.ticket("closed-in-time", T0, "High", completed=T0 + 2 * DAY)
    o.complete("closed-in-time", T0 + 2 * DAY)
    o.ticket("open-in-time", AS_OF - DAY, "High")
    # The SLA's last hour, and its very end: still within.
    o.ticket("last-hour", AS_OF - 23 * HOUR, "Critical")
    o.ticket("at-deadline", AS_OF - DAY, "Critical")
    # Completed at the deadline (within), and one minute after it (late).
    o.ticket("on-the-dot", T0, "Critical", completed=T0 + DAY)
    o.complete("on-the-dot", T0 + DAY)
    o.ticket("minute-late", T0, "Critical", completed=T0 + DAY + MINUTE)
    o.complete("minute-late", T0 + DAY + MINUTE)
    # No severity: the default 5 days; Low has no days of its own: the default too, and late.
    o.ticket("no-priority", T0, completed=T0 + 4 * DAY)
    o.complete("no-priority", T0 + 4 * DAY)
    o.ticket("low", T0, "Low", completed=T0 + 6 * DAY)
    o.complete("low", T0 + 6 * DAY)
    # High (3 days), done in 4, two of them Blocked; and the same in a section of no known stage.
    for gid, side in (("blocked", "s-blocked"), ("parked", "s-parked")):
        o.ticket(gid, T0, "High", completed=T0 + 4 * DAY)
        o.moves(gid, (T0 + DAY, "s-doing", side), (T0 + 3 * DAY, side, "s-doing"))
        o.complete(gid, T0 + 4 * DAY)
    # Filed in p1 and moved out to the helpdesk after a day: still an incident, and late.
    o.ticket("moved-out", T0, "Critical", project="p2", section="s-help")
    o.story("moved-out", T0 + DAY, "removed_from_project", project_gid="p1")
    # Never in p1: not an incident, however late. Filed after as_of: not there yet.
    o.ticket("helpdesk", T0, "Critical", project="p2", section="s-help")
    o.ticket("future", AS_OF + MINUTE, "Critical")
    return o


def judged(org: Org, *categories: dict) -> dict[str, tuple[str, str]]:
    t, _ = derive(raw_tables(**org.rows), sla_categories=list(categories))
    return results_of(t, "ticket_sla")


def incident(gid: str, severity: str, created: str, deadline: str, outcome: str) -> str:
    return (f'Ticket "{gid}" ({"IT Helpdesk" if gid == "moved-out" else "Security Incidents"}): category '
            f'"Incidents", {severity}; created {created}; deadline {deadline}; {outcome}.')


CRITICAL, HIGH = "priority Critical: SLA 1 day", "priority High: SLA 3 days"


def test_each_ticket_of_a_category_is_judged_against_its_priority_s_sla(org):
    assert judged(org, INCIDENTS, CVES) == {
        "open-late/Incidents": ("alarm", incident(
            "open-late", CRITICAL, "2026-03-10 09:00 UTC", "2026-03-11 09:00 UTC", f"still open at {AT}, past it")),
        "open-late/CVEs": ("info", (
            'Ticket "open-late" (Security Incidents): category "CVEs", no priority, so the default SLA of 30 days; '
            "created 2026-03-10 09:00 UTC; deadline 2026-04-09 09:00 UTC; open, not yet due.")),
        "closed-in-time/Incidents": ("ok", incident(
            "closed-in-time", HIGH, "2026-03-02 09:00 UTC", "2026-03-05 09:00 UTC",
            "completed at 2026-03-04 09:00 UTC, within it")),
        "open-in-time/Incidents": ("info", incident(
            "open-in-time", HIGH, "2026-03-11 09:00 UTC", "2026-03-14 09:00 UTC", "open, not yet due")),
        # An hour before its deadline, and at it: not yet due (past it only once it has passed).
        "last-hour/Incidents": ("info", incident(
            "last-hour", CRITICAL, "2026-03-11 10:00 UTC", "2026-03-12 10:00 UTC", "open, not yet due")),
        "at-deadline/Incidents": ("info", incident(
            "at-deadline", CRITICAL, "2026-03-11 09:00 UTC", "2026-03-12 09:00 UTC", "open, not yet due")),
        "on-the-dot/Incidents": ("ok", incident(
            "on-the-dot", CRITICAL, "2026-03-02 09:00 UTC", "2026-03-03 09:00 UTC",
            "completed at 2026-03-03 09:00 UTC, within it")),
        "minute-late/Incidents": ("alarm", incident(
            "minute-late", CRITICAL, "2026-03-02 09:00 UTC", "2026-03-03 09:00 UTC",
            "completed at 2026-03-03 09:01 UTC, after it")),
        "no-priority/Incidents": ("ok", incident(
            "no-priority", "no priority, so the default SLA of 5 days", "2026-03-02 09:00 UTC",
            "2026-03-07 09:00 UTC", "completed at 2026-03-06 09:00 UTC, within it")),
        "low/Incidents": ("alarm", incident(
            "low", "priority Low, which has no SLA of its own, so the default of 5 days", "2026-03-02 09:00 UTC",
            "2026-03-07 09:00 UTC", "completed at 2026-03-08 09:00 UTC, after it")),
        # Without the pause, the two days in Blocked (or Parking lot) count: four days for three.
        "blocked/Incidents": ("alarm", incident(
            "blocked", HIGH, "2026-03-02 09:00 UTC", "2026-03-05 09:00 UTC",
            "completed at 2026-03-06 09:00 UTC, after it")),
        "parked/Incidents": ("alarm", incident(
            "parked", HIGH, "2026-03-02 09:00 UTC", "2026-03-05 09:00 UTC",
            "completed at 2026-03-06 09:00 UTC, after it")),
        "moved-out/Incidents": ("alarm", incident(
            "moved-out", CRITICAL, "2026-03-02 09:00 UTC", "2026-03-03 09:00 UTC", f"still open at {AT}, past it")),
    }


def test_time_in_a_blocked_section_pauses_the_clock_only_where_configured(org):
    found = judged(org, {**INCIDENTS, "pause_blocked": True})
    paused = "priority High: SLA 3 days; created 2026-03-02 09:00 UTC"
    # Two days in Blocked stop the clock: two days worked of three, so within.
    assert found["blocked/Incidents"] == ("ok", (
        f'Ticket "blocked" (Security Incidents): category "Incidents", {paused}; 48 h paused in BLOCKED sections; '
        "deadline 2026-03-07 09:00 UTC; completed at 2026-03-06 09:00 UTC, within it."))
    # Parking lot says no stage: paused (two days worked) or not (four): it cannot be told.
    assert found["parked/Incidents"] == ("unknown", (
        f'Ticket "parked" (Security Incidents): category "Incidents", {paused}; 0 h paused in BLOCKED sections; '
        "deadline between 2026-03-05 09:00 UTC and 2026-03-07 09:00 UTC; completed at 2026-03-06 09:00 UTC, and "
        "whether within it cannot be told; 48 h of it in sections of no known stage may or may not have paused the "
        "clock: map those sections (workflow_mapping)."))
    # A ticket never blocked keeps its verdict.
    assert found["minute-late/Incidents"][0] == "alarm"
    assert "0 h paused in BLOCKED sections" in found["minute-late/Incidents"][1]


def test_not_evaluated_without_a_category_or_a_ticket_in_one(org):
    assert judged(org) == {"sla_categories": ("skip", NOT_CONFIGURED)}
    assert monitors.verdict(pd.DataFrame({"status": ["skip"], "reason": [NOT_CONFIGURED]}))[0] == monitors.NOT_EVALUATED
    # A category no ticket falls in: the population is empty, NOT EVALUATED too.
    t, populations = derive(raw_tables(**org.rows), sla_categories=[
        {"name": "Problems", "ticket_types": ["Problem"], "default_days": 10}])
    assert results_of(t, "ticket_sla") == {}
    rows = t["monitor_results"][t["monitor_results"]["monitor_id"] == "ticket_sla"]
    assert monitors.verdict(rows)[0] == monitors.NOT_EVALUATED
    assert populations["sla_tickets"].empty


def test_the_population_holds_each_clock(org):
    _, populations = derive(raw_tables(**org.rows), sla_categories=[{**INCIDENTS, "pause_blocked": True}])
    clocks = populations["sla_tickets"].set_index("ticket_gid")
    assert clocks.loc["blocked", ["category", "project", "priority", "sla_days", "sla_from", "paused_hours",
                                  "paused_hours_max", "status"]].tolist() == [
        "Incidents", "Security Incidents", "High", 3.0, "priority", 48.0, 48.0, "ok"]
    assert clocks.loc["blocked", "deadline"] == pd.Timestamp("2026-03-07 09:00", tz="UTC")
    assert clocks.loc["no-priority", ["priority", "sla_from"]].tolist() == [None, "default"]
    assert "helpdesk" not in clocks.index and "future" not in clocks.index


def test_settings_that_match_nothing_are_errors_never_silently_dropped(org):
    found = judged(org, {**INCIDENTS, "projects": ["Security Incidents", "Security Incidnets"]},
                   {**INCIDENTS, "name": "Typo", "days": {"Critical": 1, "Hihg": 3}},
                   {"name": "Outages", "projects": ["Security Incidents"], "priority_field": "Sev",
                    "default_days": 2})
    assert found["sla_categories/Incidents"] == ("error", (
        "SLA category 'Incidents': projects names 'Security Incidnets', which match(es) no synced project by gid or "
        "name"))
    # Its tickets are still judged, in the project that matched.
    assert found["minute-late/Incidents"][0] == "alarm"
    # Days for an option the field lacks: the option meant would fall to the default, a guess: not judged.
    assert found["sla_categories/Typo"] == ("error", (
        "SLA category 'Typo': days names 'Hihg', which no option of 'Severity' is"))
    # A priority field that is not there: the category's tickets are not judged on the default either.
    assert found["sla_categories/Outages"] == ("error", (
        "SLA category 'Outages': priority_field 'Sev' names no enum custom field of the synced projects"))
    assert sorted(gid for gid in found if gid.endswith(("/Outages", "/Typo"))) == [
        "sla_categories/Outages", "sla_categories/Typo"]
    # A category judging nothing but its error: ERROR, never PASS.
    broken = judged(org, {**INCIDENTS, "name": "Typo", "days": {"Critical": 1, "Hihg": 3}})
    assert monitors.verdict(pd.DataFrame({"status": [s for s, _ in broken.values()],
                                          "reason": [r for _, r in broken.values()]}))[0] == monitors.ERROR


def test_categories_are_validated_as_they_are_set():
    with pytest.raises(ValidationError, match="SLA category 'Any' selects no ticket"):
        MonitorParams(sla_categories=[{"name": "Any", "default_days": 5}])
    with pytest.raises(ValidationError, match="field and field_values go together"):
        MonitorParams(sla_categories=[{"name": "Sev", "field": "Kind", "default_days": 5}])
    with pytest.raises(ValidationError, match="gives days per priority but no priority_field"):
        MonitorParams(sla_categories=[{"name": "P", "projects": ["x"], "days": {"P1": 1}, "default_days": 5}])
    with pytest.raises(ValidationError, match="names the category 'A', 'a' more than once"):
        MonitorParams(sla_categories=[{"name": "a", "tags": ["x"], "default_days": 5},
                                      {"name": "A", "tags": ["y"], "default_days": 5}])
    with pytest.raises(ValidationError, match="pause_blocked_time"):  # a misspelt key is refused
        MonitorParams(sla_categories=[{"name": "a", "tags": ["x"], "default_days": 5, "pause_blocked_time": True}])
    with pytest.raises(ValidationError, match="greater than 0"):
        MonitorParams(sla_categories=[{"name": "a", "tags": ["x"], "default_days": 0}])
    stored = MonitorParams(sla_categories=[{"name": "a", "tags": ["x"], "default_days": 5}]).sla_categories
    assert stored == [{"name": "a", "projects": [], "ticket_types": [], "tags": ["x"], "field_values": [], "days": {},
                       "default_days": 5.0, "pause_blocked": False}]


def test_selected_by_a_field_value_or_a_ticket_type(org):
    by_value = judged(org, {"name": "Sev", "field": "severity", "field_values": ["high"], "default_days": 3})
    assert sorted(by_value) == ["blocked/Sev", "closed-in-time/Sev", "open-in-time/Sev", "parked/Sev"]
    by_type = judged(org, {"name": "Tasks", "ticket_types": ["task"], "projects": ["p2"], "default_days": 1})
    assert sorted(by_type) == ["helpdesk/Tasks", "moved-out/Tasks"]  # every selector given must match
    assert by_type["helpdesk/Tasks"][0] == "alarm"


def test_only_refused_listings_of_a_category_s_projects_make_it_unknown(org):
    t = raw_tables(**org.rows)
    monitor = MONITORS["ticket_sla"]
    refused = pd.DataFrame({"project_gid": ["p1", "p2"], "listing": ["tasks", "tasks"],
                            "error": ["tasks: HTTP 403", "tasks: HTTP 403"]})

    def unread(*categories) -> list:
        e = type("E", (), {"t": t, "params": MonitorParams(sla_categories=list(categories))})
        rows = monitors.unread_projects(monitor, refused, Directory(t), monitor.scope(e))
        return rows[["resource_gid", "status"]].values.tolist()

    assert unread(INCIDENTS) == [["p1", "unknown"]]
    assert unread(INCIDENTS, CVES) == [["p1", "unknown"], ["p2", "unknown"]]  # a tag may be on any project's ticket
    assert unread() == []  # not configured: NOT EVALUATED, whatever was refused


def test_a_completion_nobody_dated_is_unknown_unless_as_of_settles_it(org):
    """The tickets table says completed with no completion time (the pipeline's status history
    refuses such a task, so the rule is called on the derived tables directly)."""
    t, _ = derive(raw_tables(**org.rows))
    tix = t["tickets"].copy()
    undated = tix["gid"].isin(["closed-in-time", "open-in-time"])
    tix.loc[undated, "completed"] = True
    tix.loc[undated, "completed_at"] = pd.NaT
    names = Directory(t)
    label = TicketNames.of(tix, names)
    timeline, _ = monitors.history_inputs(t, t["workflow_states"], t["ticket_events"])
    judged_ = sla.ticket_sla_results(t, tix, timeline, t["ticket_section_history"], AS_OF, [INCIDENTS], names,
                                     label.label, label.project).rows.set_index("resource_gid")
    # Ten days for three: it may have been completed late.
    assert tuple(judged_.loc["closed-in-time/Incidents", ["status", "reason"]]) == ("unknown", incident(
        "closed-in-time", HIGH, "2026-03-02 09:00 UTC", "2026-03-05 09:00 UTC",
        "completed at an unknown time, so whether within it cannot be told"))
    # Even as_of is within its three days: completed by then, so within.
    assert tuple(judged_.loc["open-in-time/Incidents", ["status", "reason"]]) == ("ok", incident(
        "open-in-time", HIGH, "2026-03-11 09:00 UTC", "2026-03-14 09:00 UTC",
        f"completed at an unknown time, by {AT} at the latest, within it"))


# -- the priority's history --------------------------------------------------------------
@pytest.fixture(scope="module")
def changed() -> Org:
    """Incidents whose Severity changed (its enum_custom_field_changed stories), each completed
    three days after its filing unless said: within Low's default 5 days, late for Critical's 1."""
    o = Org()
    o.rows["custom_fields"].append({"gid": "f-impact", "workspace_gid": "w1", "name": "Impact",
                                    "resource_subtype": "enum", "enum_option_gids": ["i-crit", "i-low"],
                                    "enum_option_names": ["Critical", "Low"]})

    def severity(task: str, at, old: str | None, new: str | None, field: str = "f-sev", names: bool = True) -> None:
        options = SEVERITY if field == "f-sev" else {"Critical": "i-crit", "Low": "i-low"}
        o.story(task, at, "enum_custom_field_changed", custom_field_gid=field,
                old_enum_option_gid=options.get(old), new_enum_option_gid=options.get(new),
                **({"old_enum_option_name": old, "new_enum_option_name": new} if names else {}))

    def closed(gid: str, now: str, days: float = 3) -> None:
        o.ticket(gid, T0, now, completed=T0 + days * DAY)
        o.complete(gid, T0 + days * DAY)

    # Critical, breached after a day, lowered to Low on the second: still held to Critical's day.
    closed("downgraded", "Low")
    severity("downgraded", T0 + 2 * DAY, "Critical", "Low")
    # The same change with the option gids alone: the names come from the field's options.
    closed("gids-only", "Low")
    severity("gids-only", T0 + 2 * DAY, "Critical", "Low", names=False)
    # Low, raised to Critical on the second day: the strictest held is Critical, from creation on.
    closed("upgraded", "Critical")
    severity("upgraded", T0 + 2 * DAY, "Low", "Critical")
    # Filed without a value and triaged High an hour later: no priority held before, High's 3 days.
    closed("triaged", "High", days=2)
    severity("triaged", T0 + HOUR, None, "High")
    # Raised to Critical a day after its completion: Low was all it held while open.
    closed("raised-after", "Critical")
    severity("raised-after", T0 + 4 * DAY, "Low", "Critical")
    # Another field's change, with the same option names: not the priority, ignored.
    closed("other-field", "Low")
    severity("other-field", T0 + 2 * DAY, "Critical", "Low", field="f-impact")
    # A Severity change naming no option (one since deleted): a stricter value may have applied.
    closed("nameless", "Low")
    o.story("nameless", T0 + 2 * DAY, "enum_custom_field_changed", custom_field_gid="f-sev",
            old_enum_option_gid="o-gone", new_enum_option_gid="o-low", new_enum_option_name="Low")
    # Never changed, closed in twelve hours: within even the strictest SLA.
    closed("quick", "Low", days=0.5)
    return o


def test_a_priority_lowered_after_the_breach_still_holds_the_ticket_to_its_sla(changed):
    found = judged(changed, INCIDENTS)
    late = ("created 2026-03-02 09:00 UTC; deadline 2026-03-03 09:00 UTC; completed at 2026-03-05 09:00 UTC, "
            "after it.")
    lowered = "Severity lowered from Critical to Low on 2026-03-04 09:00 UTC, held to Critical's 1 day"
    within = "deadline 2026-03-07 09:00 UTC; completed at 2026-03-05 09:00 UTC, within it."
    low = "priority Low, which has no SLA of its own, so the default of 5 days; created 2026-03-02 09:00 UTC"
    assert found == {
        # As synced (Low, 5 days) it would pass: held to Critical, it is late.
        "downgraded/Incidents": ("alarm", (f'Ticket "downgraded" (Security Incidents): category "Incidents", '
                                          f"{lowered}; {late}")),
        "gids-only/Incidents": ("alarm", (f'Ticket "gids-only" (Security Incidents): category "Incidents", '
                                         f"{lowered}; {late}")),
        "upgraded/Incidents": ("alarm", ('Ticket "upgraded" (Security Incidents): category "Incidents", priority '
                                        f"Critical: SLA 1 day; {late}")),
        "triaged/Incidents": ("ok", ('Ticket "triaged" (Security Incidents): category "Incidents", priority High: SLA '
                                    "3 days; created 2026-03-02 09:00 UTC; deadline 2026-03-05 09:00 UTC; completed "
                                    "at 2026-03-04 09:00 UTC, within it.")),
        "raised-after/Incidents": ("ok", (f'Ticket "raised-after" (Security Incidents): category "Incidents", {low}; '
                                         f"{within}")),
        "other-field/Incidents": ("ok", (f'Ticket "other-field" (Security Incidents): category "Incidents", {low}; '
                                        f"{within}")),
        # Three days: within Low's five, not within Critical's one; the story cannot say which held.
        "nameless/Incidents": ("unknown", (
            'Ticket "nameless" (Security Incidents): category "Incidents", priority Low, which has no SLA of its '
            "own, so the default of 5 days; its Severity history cannot be read (a value or change of its Severity "
            "names no option), so an SLA as short as 1 day may have applied; created 2026-03-02 09:00 UTC; deadline "
            "2026-03-07 09:00 UTC; completed at 2026-03-05 09:00 UTC, and whether within it cannot be told.")),
        "quick/Incidents": ("ok", (f'Ticket "quick" (Security Incidents): category "Incidents", {low}; deadline '
                                  "2026-03-07 09:00 UTC; completed at 2026-03-02 21:00 UTC, within it.")),
    }


def test_the_population_holds_the_priority_held_and_the_one_synced(changed):
    _, populations = derive(raw_tables(**changed.rows), sla_categories=[INCIDENTS])
    clocks = populations["sla_tickets"].set_index("ticket_gid")
    assert clocks.loc["downgraded", ["priority", "priority_now", "sla_days", "sla_from", "status"]].tolist() == [
        "Critical", "Low", 1.0, "priority", "alarm"]
    assert clocks.loc["raised-after", ["priority", "priority_now", "sla_days", "sla_from"]].tolist() == [
        "Low", "Critical", 5.0, "default"]


def test_without_stories_only_what_even_the_strictest_sla_decides_is_judged(changed):
    """No stories synced: any ticket may have held Critical (1 day, the category's shortest)."""
    t, _ = derive(raw_tables(**changed.rows))
    del t["stories"]
    names = Directory(t)
    label = TicketNames.of(t["tickets"], names)
    timeline, _ = monitors.history_inputs(t, t["workflow_states"], t["ticket_events"])
    rows = sla.ticket_sla_results(t, t["tickets"], timeline, t["ticket_section_history"], AS_OF, [INCIDENTS], names,
                                  label.label, label.project).rows.set_index("resource_gid")
    assert rows["status"].to_dict() == {
        "downgraded/Incidents": "unknown", "gids-only/Incidents": "unknown", "upgraded/Incidents": "alarm",
        "triaged/Incidents": "unknown", "raised-after/Incidents": "alarm", "other-field/Incidents": "unknown",
        "nameless/Incidents": "unknown", "quick/Incidents": "ok"}
    assert rows.loc["quick/Incidents", "reason"] == (
        'Ticket "quick" (Security Incidents): category "Incidents", priority Low, which has no SLA of its own, so '
        "the default of 5 days; its Severity history cannot be read (no stories were synced), so an SLA as short as "
        "1 day may have applied; created 2026-03-02 09:00 UTC; deadline 2026-03-07 09:00 UTC; completed at "
        "2026-03-02 21:00 UTC, within it.")


def by_gid_alone(org: Org, gid: str, option: str) -> None:
    """``gid``'s Severity as the API may give it: ``enum_value: {"gid": option}``, no name."""
    row = next(r for r in org.rows["task_custom_fields"] if r["task_gid"] == gid)
    row.update(enum_option_gid=option, enum_option_name=None, display_value=None)


def test_a_priority_named_by_option_gid_alone_is_the_option_the_field_lists():
    o = Org()
    for gid in ("crit-by-gid", "unlisted-gid"):
        o.ticket(gid, T0, "Critical", completed=T0 + 4 * DAY)
        o.complete(gid, T0 + 4 * DAY)
    by_gid_alone(o, "crit-by-gid", "o-crit")  # the field lists o-crit: Critical, 1 day; it took 4
    by_gid_alone(o, "unlisted-gid", "o-gone")  # an option the field does not list: Critical may have held
    found = judged(o, INCIDENTS)
    assert found["crit-by-gid/Incidents"][0] == "alarm", found["crit-by-gid/Incidents"]
    assert "priority Critical: SLA 1 day" in found["crit-by-gid/Incidents"][1]
    assert found["unlisted-gid/Incidents"][0] == "unknown", found["unlisted-gid/Incidents"]
    assert "names no option), so an SLA as short as 1 day may have applied" in found["unlisted-gid/Incidents"][1]


def test_a_field_selector_takes_a_value_named_by_option_gid_alone():
    o = Org()
    o.ticket("named", T0, "Critical", completed=T0 + DAY / 2)
    o.complete("named", T0 + DAY / 2)
    o.ticket("crit-by-gid", T0, "Critical", completed=T0 + 4 * DAY)
    o.complete("crit-by-gid", T0 + 4 * DAY)
    by_gid_alone(o, "crit-by-gid", "o-crit")
    o.ticket("low", T0, "Low", completed=T0 + 4 * DAY)  # the edge: named Low, not selected
    category = {"name": "Criticals", "field": "Severity", "field_values": ["Critical"], "default_days": 1}
    found = judged(o, category)
    assert {gid: status for gid, (status, _) in found.items()} == {
        "named/Criticals": "ok", "crit-by-gid/Criticals": "alarm"}
