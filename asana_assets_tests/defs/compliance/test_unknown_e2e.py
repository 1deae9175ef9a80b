"""No guessing, through the Dagster job: on one hand-built simulator world synced and evaluated
by the whole pipeline, the section names read asymmetrically ("To be approved" is no approval,
"Deployed - waiting for verification" and "Implementado" implement), a section of no known stage
makes a change unknown (and the workflow_mapping check lists it), a change archived after its
work stays a change, and an approval nobody is known to have given is unknown.

Every expected status is written here by hand, ticket by ticket, with the reason; the same cases
on hand-built raw tables are in asana_assets_tests/lib/compliance/test_no_guessing.py."""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.lib.storage.postgres import ident, libpq_url
from asana_assets.simulator import DEMO_TOKEN, Simulator
from asana_assets_tests.defs.compliance.test_no_false_pass import Org, checks, hours, pack_of, run
from asana_assets_tests.support import BIN, POSTGRES_URL, REPO, cli_env
from asana_assets_tests.support.pipeline import QUOTA, SIMULATOR, results_of

ODD = "Zebra crossing"  # a section name with no known stage word

# The expected statuses, by ticket name, written by hand (how each ticket is planted: build()).
CHANGES_APPROVED = {
    "CHG-1 to be approved": "alarm",  # "To be approved" is waiting for one, not an approval; In Progress started it
    "CHG-2 deployed waiting": "alarm",  # "Deployed - ..." implements whatever waits after it; never approved
    "CHG-3 implementado": "alarm",  # "Implementado" is implemented; never approved
    "CHG-4 zebra": "unknown",  # entered a section of no known stage, which may have started it, unapproved
    "CHG-5 approved": "ok",  # moved to Approved by Carol before In Progress: a real approval
    "CHG-6 archived": "alarm",  # implemented unapproved in Change Management; archived later, still a change
    "CHG-7 approved by a rule": "unknown",  # approved before the start, but by nobody known
}
APPROVAL_SEGREGATION = {  # only the changes with an approval are judged
    "CHG-5 approved": "ok",  # Carol is neither creator (Alice) nor assignee (Bob)
    "CHG-7 approved by a rule": "unknown",  # no approver to compare with creator, assignee or closer
}
QUIET = {"CHG-4 zebra": "unknown", "CHG-5 approved": "ok"}  # the variant without an alarm


@dataclass
class Evaluated:
    org: Org
    result: dg.ExecuteInProcessResult
    directory: Path  # the warehouse (and evidence) directory
    names: dict[str, str]  # ticket gid -> name, for readable failures
    odd_gid: str  # the section of no known stage
    schema: str | None  # the Postgres schema it was loaded into, if any

    @property
    def results(self) -> pd.DataFrame:
        return results_of(self.result, self.directory)

    @property
    def pack(self):
        return pack_of(self.result, self.directory)


def judged(frame: pd.DataFrame, monitor_id: str) -> dict[str, str]:
    """A monitor's rows that judged something (not skip): ticket gid -> status."""
    mine = frame[(frame["monitor_id"] == monitor_id) & (frame["status"] != "skip")]
    assert not mine["resource_gid"].duplicated().any()
    return dict(zip(mine["resource_gid"].astype(str), mine["status"], strict=True))


def build(directory, with_alarms: bool, **options) -> Evaluated:
    """The world planted (see ``plant``), synced and evaluated by the Dagster job."""
    org, names, odd = plant(with_alarms)
    schema = options.get("postgres", (None, None))[1]
    return Evaluated(org, run(org, directory, **options), directory, names, odd.gid, schema)


def plant(with_alarms: bool):
    """(org, ticket gid -> name, the section of no known stage): cases 4 and 5, and with_alarms the others."""
    org = Org()
    w = org.world
    todo, tobe, approved, doing, waiting, implementado, odd = org.change_project(
        "To Do", "To be approved", "Approved", "In Progress", "Deployed - waiting for verification", "Implementado",
        ODD)
    names = {}

    def ticket(name: str):
        task = org.ticket(name, todo)
        names[task.gid] = name
        return task

    # 4. To Do -> "Zebra crossing", left there: the section may have started the work, and no
    #    approval precedes it: unknown (never skip, never ok).
    zebra = ticket("CHG-4 zebra")
    org.move(zebra, odd, hours(1))
    # 5. The edge: To Do -> "Approved" (moved by Carol, the approver) -> In Progress (by Bob): a
    #    real approval before the start: ok; Carol is neither creator (Alice) nor assignee (Bob).
    good = ticket("CHG-5 approved")
    org.move(good, approved, hours(1), actor=org.carol)
    org.move(good, doing, hours(2))
    if with_alarms:
        # 1. To Do -> "To be approved" (moved by Carol) -> In Progress -> completed: "To be approved"
        #    is a wait for an approval, not one; nobody approved: alarm.
        tobe_ticket = ticket("CHG-1 to be approved")
        org.move(tobe_ticket, tobe, hours(1), actor=org.carol)
        org.move(tobe_ticket, doing, hours(2))
        w.complete_task(tobe_ticket, actor=org.bob, at=hours(3))
        # 2. To Do -> "Deployed - waiting for verification", never approved: deployed is implemented
        #    whatever waits after it: alarm.
        deployed = ticket("CHG-2 deployed waiting")
        org.move(deployed, waiting, hours(1))
        # 3. To Do -> "Implementado" (Spanish: implemented), never approved: alarm.
        spanish = ticket("CHG-3 implementado")
        org.move(spanish, implementado, hours(1))
        # 6. Implemented (In Progress) and completed unapproved in Change Management, then moved into
        #    "2025 Archive" (added there, removed from Change Management): scope is history, it was a
        #    change when its work started: alarm.
        archive = w.add_project(org.ws, "2025 Archive", owner=org.admin)
        archive_done = w.add_section(archive, "Done")
        archived = ticket("CHG-6 archived")
        org.move(archived, doing, hours(1))
        w.complete_task(archived, actor=org.bob, at=hours(2))
        w.add_task_to_project(archived, archive, section=archive_done, actor=org.bob, at=hours(3))
        w.remove_task_from_project(archived, org.change, actor=org.bob, at=hours(3))
        # 7. An approval subtask (assigned to Carol) approved by a system change: its story has no
        #    author and the subtask no completed_by; then started. Nobody is known to have approved
        #    it (the assignee is not the approver): unknown in both approval monitors.
        by_rule = ticket("CHG-7 approved by a rule")
        approval = w.create_task(f"Approve {by_rule.name}", actor=org.alice, parent=by_rule,
                                 resource_subtype="approval", assignee=org.carol, at=hours(0.5))
        w.set_approval_status(approval, "approved", actor=None, at=hours(1))
        org.move(by_rule, doing, hours(2))
    return org, names, odd


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Evaluated:
    """Cases 1 to 7, loaded into Postgres too (a schema of its own, dropped after)."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield build(tmp_path_factory.mktemp("alarms"), True, postgres=(POSTGRES_URL, schema))
    with adbc.connect(libpq_url(POSTGRES_URL)) as connection, connection.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")
        connection.commit()


@pytest.fixture(scope="module")
def quiet_world(tmp_path_factory) -> Evaluated:
    """Only cases 4 (unknown) and 5 (ok): no alarm."""
    return build(tmp_path_factory.mktemp("no_alarm"), False)


def readable(e: Evaluated, statuses: dict[str, str]) -> dict[str, str]:
    """Statuses by ticket name (a gid that is no planted ticket stays a gid)."""
    return {e.names.get(gid, gid): s for gid, s in statuses.items()}


# -- the per-ticket statuses ----------------------------------------------------------------------
def test_changes_approved_statuses_equal_the_table_in_the_warehouse_and_the_pack(world):
    assert readable(world, judged(world.results, "changes_approved")) == CHANGES_APPROVED
    csv = pd.read_csv(world.pack / "monitors" / "changes_approved.csv", dtype=str, keep_default_na=False)
    assert readable(world, judged(csv.assign(monitor_id="changes_approved"), "changes_approved")) == CHANGES_APPROVED


def test_approval_segregation_is_unknown_for_an_approval_nobody_is_known_to_have_given(world):
    assert readable(world, judged(world.results, "approval_segregation")) == APPROVAL_SEGREGATION


def test_the_reasons_name_the_unknown_section_and_the_missing_approver(world):
    rows = world.results[world.results["monitor_id"] == "changes_approved"].set_index("resource_gid")
    by_name = {world.names[gid]: gid for gid in world.names}
    assert rows.loc[by_name["CHG-4 zebra"], "reason"] == (
        'Ticket "CHG-4 zebra" (Change Management): it entered a section of no known stage at 2026-03-02 10:00 UTC, '
        "which may have started the work: map that section (workflow_mapping).")
    assert rows.loc[by_name["CHG-1 to be approved"], "reason"] == (
        'Ticket "CHG-1 to be approved" (Change Management): implementation started at 2026-03-02 11:00 UTC '
        "without an approval.")
    assert "no person is known to have given it" in rows.loc[by_name["CHG-7 approved by a rule"], "reason"]


def test_the_planted_history_reached_the_warehouse(world):
    """What the statuses rest on was synced as planted, not lost on the way."""
    warehouse = WarehouseResource(directory=str(world.directory)).warehouse()
    by_name = {name: gid for gid, name in world.names.items()}
    archived, by_rule = by_name["CHG-6 archived"], by_name["CHG-7 approved by a rule"]
    # CHG-6 is now only in "2025 Archive", yet a change (from its history).
    memberships = warehouse.read("task_memberships").to_pandas()
    in_projects = set(memberships.loc[memberships["task_gid"] == archived, "project_gid"])
    assert world.org.change.gid not in in_projects and len(in_projects) == 1
    tickets = warehouse.read("tickets").to_pandas().set_index("gid")
    assert bool(tickets.loc[archived, "is_change"])
    # CHG-7's approval subtask: approved, completed by nobody, its approval story has no author.
    tasks = warehouse.read("tasks").to_pandas()
    [subtask] = tasks.loc[tasks["parent_gid"] == by_rule].itertuples()
    assert subtask.approval_status == "approved" and pd.isna(subtask.completed_by_gid)
    stories = warehouse.read("stories").to_pandas()
    decided = stories[(stories["task_gid"] == subtask.gid) & (stories["resource_subtype"] == "marked_approved")]
    assert len(decided) == 1 and decided["created_by_gid"].isna().all()
    approvals = warehouse.read("approvals").to_pandas()
    assert approvals.loc[approvals["ticket_gid"] == by_rule, "approver_gid"].isna().all()
    # "To be approved" is no approval: CHG-1 has no approvals row.
    assert by_name["CHG-1 to be approved"] not in set(approvals["ticket_gid"])


# -- verdicts ---------------------------------------------------------------------------------------
def test_changes_approved_fails_in_the_check_and_the_manifest(world):
    check = checks(world.result)["changes_approved"]
    assert check.metadata["verdict"].value == "FAIL"
    assert not check.passed and check.severity.value == "ERROR"
    manifest = json.loads((world.pack / "manifest.json").read_text())
    assert manifest["verdicts"]["changes_approved"] == "FAIL"
    assert manifest["monitors"]["changes_approved"]["verdict"] == "FAIL"
    # approval_segregation: one ok, one unknown, no alarm: INCOMPLETE, never PASS.
    assert manifest["verdicts"]["approval_segregation"] == "INCOMPLETE"
    assert checks(world.result)["approval_segregation"].metadata["verdict"].value == "INCOMPLETE"
    assert not checks(world.result)["approval_segregation"].passed


def workflow_mapping(result):
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "workflow_mapping"]
    return check


@pytest.mark.parametrize("which", ["world", "quiet_world"])
def test_workflow_mapping_warns_listing_the_unknown_section(which, request):
    e = request.getfixturevalue(which)
    check = workflow_mapping(e.result)
    assert not check.passed and check.severity.value == "WARN"
    assert check.metadata["unmapped_sections"].value == 1
    listed = check.metadata["first_unmapped"].value
    assert f"| Change Management | {ODD} | {e.odd_gid} |" in listed
    # The override to add, as the Markdown shows it ("<" and ">" escaped so they render).
    override = json.dumps({"project_section_overrides": {e.org.change.gid: {ODD: "<STAGE>"}}})
    assert override.replace("<", "&lt;").replace(">", "&gt;") in listed
    for known in ("To be approved", "Deployed - waiting for verification", "Implementado", "Approved"):
        assert f"| {known} |" not in listed


def test_without_an_alarm_an_unknown_change_makes_the_verdict_incomplete_not_pass(quiet_world):
    assert readable(quiet_world, judged(quiet_world.results, "changes_approved")) == QUIET
    check = checks(quiet_world.result)["changes_approved"]
    assert check.metadata["verdict"].value == "INCOMPLETE"
    assert not check.passed and check.severity.value == "WARN"
    manifest = json.loads((quiet_world.pack / "manifest.json").read_text())
    assert manifest["verdicts"]["changes_approved"] == "INCOMPLETE"


# -- one reading of a change: the Postgres view says what the monitor said ------------------------------
def test_the_change_tickets_view_agrees_with_the_monitor_ticket_by_ticket(world):
    with adbc.connect(libpq_url(POSTGRES_URL)) as connection, connection.cursor() as cur:
        cur.execute(f"SELECT ticket_name, changes_approved_status, approved_before_start FROM {ident(world.schema)}"
                    ".change_tickets")
        rows = {name: (status, before) for name, status, before in cur.fetchall()}
    # approved_before_start is the monitor's status: true for ok, false for alarm, null for unknown.
    as_boolean = {"ok": True, "alarm": False, "unknown": None}
    assert rows == {name: (status, as_boolean[status]) for name, status in CHANGES_APPROVED.items()}


# -- the same through the command users run --------------------------------------------------------
@pytest.mark.slow
def test_asana_connections_sync_gives_the_same_statuses(tmp_path):
    org, names, _odd = plant(True)
    with Simulator(org.world, SIMULATOR) as sim:
        env = cli_env(tmp_path, ASANA_BASE_URL=sim.base_url, ASANA_ACCESS_TOKEN=DEMO_TOKEN,
                       ASANA_REQUESTS_PER_MINUTE=str(QUOTA))
        done = subprocess.run([str(BIN / "asana-connections"), "sync"], env=env, capture_output=True, text=True,
                              timeout=300, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "changes_approved" in done.stdout  # named among the checks that did not pass
    results = pq.read_table(tmp_path / "wh" / "asana" / "monitor_results").to_pandas()
    statuses = judged(results, "changes_approved")
    assert {names.get(gid, gid): s for gid, s in statuses.items()} == CHANGES_APPROVED
