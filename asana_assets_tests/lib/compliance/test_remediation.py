"""When a finding's task may close: only when this run judged its resource ok. Skip, unknown,
info, error, a monitor that judged nothing and a missing row all keep it open; an open finding
the run could not decide gets notes saying so."""

from __future__ import annotations

import asyncio

import pandas as pd

from asana_assets.lib.asana.client import NotFoundError
from asana_assets.lib.compliance.remediation import cleared, remediate

AS_OF = pd.Timestamp("2026-03-10 09:00", tz="UTC")
KEY = "admin_access_restricted/user/11"


def results(*rows):
    return pd.DataFrame(rows, columns=["monitor_id", "resource_type", "resource_gid", "status"])


def test_only_an_ok_for_the_resource_clears():
    assert cleared(results(("admin_access_restricted", "user", "11", "ok")), {KEY}) == {KEY}
    # Among other rows and other open findings: only the judged one.
    run = results(("admin_access_restricted", "user", "12", "alarm"), ("admin_access_restricted", "user", "11", "ok"))
    assert cleared(run, {KEY, "admin_access_restricted/user/13"}) == {KEY}


def test_every_other_status_keeps_the_finding_open():
    for status in ("alarm", "error", "unknown", "info", "skip"):
        assert cleared(results(("admin_access_restricted", "user", "11", status)), {KEY}) == set(), status


def test_an_ok_beside_an_undecided_row_for_the_same_resource_keeps_it_open():
    assert cleared(results(("admin_access_restricted", "user", "11", "ok"),
                           ("admin_access_restricted", "user", "11", "unknown")), {KEY}) == set()


def test_a_missing_row_or_a_monitor_that_judged_nothing_keeps_it_open():
    # The monitor ran and judged others: the resource's row is gone (deleted at the source, say).
    assert cleared(results(("admin_access_restricted", "user", "12", "ok")), {KEY}) == set()
    # NOT EVALUATED: every row skip (a renamed change project makes every ticket out of scope).
    assert cleared(results(("admin_access_restricted", "user", "11", "skip"),
                           ("admin_access_restricted", "user", "12", "skip")), {KEY}) == set()
    # Another monitor only, or no row at all.
    assert cleared(results(("tickets_assigned", "ticket", "5", "ok")), {KEY}) == set()
    assert cleared(results(), {KEY}) == set()


class Asana:
    """Records the writes; the gids in ``gone`` were deleted in Asana."""

    def __init__(self, gone=()) -> None:
        self.writes: list[tuple[str, str, dict]] = []
        self.gone = set(gone)

    async def write(self, method: str, path: str, data: dict) -> dict:
        if path.split("/")[2] in self.gone:
            raise NotFoundError(method, path, 404)
        self.writes.append((method, path, data))
        return {"gid": "new"}

    async def pages(self, path, params=None, fields=None):
        yield []


def row(monitor_id, resource_type, gid, status, reason, severity="ERROR", controls=("SOC2:CC6.3",)) -> dict:
    return {"monitor_id": monitor_id, "resource_type": resource_type, "resource_gid": gid, "status": status,
            "reason": reason, "severity": severity, "control_refs": list(controls),
            "resource_url": f"https://app.asana.com/0/0/{gid}"}


RUN = pd.DataFrame([
    row("admin_access_restricted", "user", "11", "alarm", "Uma is not on the approved admin list"),
    row("workflow_consistent", "ticket", "21", "unknown", 'Ticket "Deploy": section "Review" maps to no state',
        severity="WARN", controls=("SOC2:CC8.1", "ISO27001:2022:8.32")),
    row("changes_approved", "ticket", "31", "skip", "not in a change project"),
    row("offboarding_access_removed", "user_in_workspace", "41", "ok", "Lee holds no access"),
    row("tickets_assigned", "ticket", "52", "ok", "assigned"),  # ticket 51 has no row
    row("membership_changes", "change", "61", "info", "inside the grace"),
])
OPEN = {"admin_access_restricted/user/11": "t1", "workflow_consistent/ticket/21": "t2",
        "changes_approved/ticket/31": "t3", "offboarding_access_removed/user_in_workspace/41": "t4",
        "tickets_assigned/ticket/51": "t5", "membership_changes/change/61": "t6"}


def test_a_run_updates_the_alarm_marks_the_unknown_closes_the_ok_and_leaves_the_rest_open():
    asana = Asana()
    outcome = asyncio.run(remediate(asana, "p1", None, RUN, OPEN, "r2", AS_OF, "pack/report.html"))
    assert (outcome.opened, outcome.updated, outcome.undecided, outcome.closed) == (
        [], ["admin_access_restricted/user/11"], ["workflow_consistent/ticket/21"],
        ["offboarding_access_removed/user_in_workspace/41"])
    assert outcome.tasks == {"admin_access_restricted/user/11": "t1", "workflow_consistent/ticket/21": "t2",
                             "changes_approved/ticket/31": "t3", "tickets_assigned/ticket/51": "t5",
                             "membership_changes/change/61": "t6"}
    assert sorted(asana.writes, key=lambda w: (w[1], w[0])) == [
        ("PUT", "/tasks/t1", {"notes": (
            "Monitor: admin_access_restricted (ERROR)\n"
            "Controls: SOC2:CC6.3\n"
            "Resource: user 11\n"
            "Link: https://app.asana.com/0/0/11\n"
            "Finding: Uma is not on the approved admin list\n"
            "Last seen: run r2 as of 2026-03-10T09:00:00+00:00\n"
            "Evidence: pack/report.html\n"
            "\n"
            "asana-assets finding: admin_access_restricted/user/11")}),
        ("PUT", "/tasks/t2", {"notes": (
            "Monitor: workflow_consistent (WARN)\n"
            "Controls: SOC2:CC8.1, ISO27001:2022:8.32\n"
            "Resource: ticket 21\n"
            "Link: https://app.asana.com/0/0/21\n"
            'Undecided: Ticket "Deploy": section "Review" maps to no state\n'
            "Latest run: run r2 as of 2026-03-10T09:00:00+00:00 could not decide this resource (unknown); the task "
            "stays open until a run judges it ok. The finding it was opened for is in its name.\n"
            "Evidence: pack/report.html\n"
            "\n"
            "asana-assets finding: workflow_consistent/ticket/21")}),
        ("PUT", "/tasks/t4", {"completed": True}),
        ("POST", "/tasks/t4/stories", {"text": (
            "Cleared: run r2 as of 2026-03-10T09:00:00+00:00 judged this resource ok. Evidence: pack/report.html")}),
    ]


def test_an_undecided_task_deleted_in_asana_is_forgotten_not_filed_again():
    asana = Asana(gone={"t2"})
    outcome = asyncio.run(remediate(asana, "p1", None, RUN.iloc[[1]], {"workflow_consistent/ticket/21": "t2"},
                                    "r2", AS_OF, "pack/report.html"))
    assert (outcome.opened, outcome.undecided, outcome.tasks, asana.writes) == ([], [], {}, [])
