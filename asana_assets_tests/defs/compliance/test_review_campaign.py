"""An access review campaign end to end through the simulator: started in the review project,
decided by two reviewers (one approves, one rejects a member who still holds the access), started
again (no second task), judged before and after its due day with one item undecided. Expected
statuses are written by hand for the world built here."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from asana_assets.cli import main
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.lib.compliance import evidence
from asana_assets.lib.compliance.review import launch
from asana_assets.simulator import DEMO_TOKEN, Simulator, World
from asana_assets.simulator.models import Task
from asana_assets_tests.support.pipeline import QUOTA, SIMULATOR, results_of, run_pipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DUE = date(2026, 3, 5)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def organisation():
    """Payroll (owner Ada) has Bob as editor and Cy as viewer; team Security has Rita (admin) and
    Dan. Reviews are filed in the project "Access reviews"."""
    world = World(now=T0 - timedelta(days=10))
    acme = world.add_workspace("Acme", ["acme.example"])
    people = {name: world.add_user(name, f"{name.lower()}@acme.example") for name in ("Ada", "Bob", "Cy", "Rita",
                                                                                      "Dan")}
    for user in people.values():
        world.add_workspace_membership(user, acme, is_admin=user is people["Ada"])
    world.default_user = people["Ada"].gid
    payroll = world.add_project(acme, "Payroll", owner=people["Ada"])
    world.add_project_membership(payroll, people["Ada"], "admin")
    world.add_project_membership(payroll, people["Bob"], "editor")
    world.add_project_membership(payroll, people["Cy"], "viewer")
    security = world.add_team(acme, "Security")
    world.add_team_membership(security, people["Rita"], is_admin=True)
    world.add_team_membership(security, people["Dan"])
    reviews = world.add_project(acme, "Access reviews", owner=people["Ada"])
    return world, people, payroll, security, reviews


def start(world: World, directory, campaign: str = "q1"):
    t = {name: WarehouseResource(directory=str(directory)).warehouse().read(name).to_pandas()
         for name in ("user_access", "projects", "users", "teams", "workspaces")}
    with Simulator(world, SIMULATOR) as sim:
        asana = AsanaResource(access_token=DEMO_TOKEN, base_url=sim.base_url, requests_per_minute=QUOTA)
        return launch(t, asana.run, "Access reviews", campaign, DUE)


def filed(world: World, project) -> tuple[list[Task], list[Task]]:
    """The project's tasks, and their subtasks."""
    with world.lock:
        parents = [world.objects[gid] for gid in world.project_tasks(project)]
        return parents, [world.objects[s] for p in parents for s in p.subtasks]


def judged(run, directory) -> dict[str, str]:
    results = results_of(run, directory)
    mine = results[results["monitor_id"] == "access_review_completed"]
    return dict(zip(mine["resource_gid"], mine["status"]))


@pytest.mark.slow
def test_a_campaign_started_decided_rerun_and_overdue(tmp_path):
    world, people, payroll, security, reviews = organisation()
    ada, bob, cy, rita, dan = (people[n].gid for n in ("Ada", "Bob", "Cy", "Rita", "Dan"))
    settings = {"review_project": "Access reviews"}
    first = run_pipeline(world, tmp_path, day(0), **settings)
    assert first.success
    assert judged(first, tmp_path) == {"review_project": "skip"}  # no campaign yet: NOT EVALUATED

    started = start(world, tmp_path)
    # The review project's own members are reviewed too (Ada, its owner).
    assert started.created_tasks == sorted([f"q1 project/{payroll.gid}", f"q1 project/{reviews.gid}",
                                            f"q1 team/{security.gid}"])
    parents, subtasks = filed(world, reviews)
    by_name = {t.name: t for t in parents}
    assert set(by_name) == {"Access review q1: project \"Payroll\"", "Access review q1: team \"Security\"",
                            "Access review q1: project \"Access reviews\""}
    assert by_name["Access review q1: project \"Payroll\""].assignee == ada  # the project's owner
    assert by_name["Access review q1: team \"Security\""].assignee == rita  # the team's admin
    assert len(subtasks) == 6 and {s.resource_subtype for s in subtasks} == {"approval"}
    assert all(s.due_on == "2026-03-05" for s in subtasks)

    def subtask(user: str, resource) -> Task:
        [found] = [s for s in subtasks if s.notes.rstrip().endswith(f"member {user}=" + s.notes.rsplit("=", 1)[1])
                   and f"/{resource.gid} " in s.notes]
        return found

    # Bob approves Ada's own access on Payroll and on the review project (a second reviewer), Ada
    # approves Bob's; Rita approves herself (a self-review) and rejects Dan, who keeps his team
    # membership; Cy's item stays undecided.
    world.set_approval_status(subtask(ada, payroll), "approved", actor=bob, at=day(1))
    world.set_approval_status(subtask(bob, payroll), "approved", actor=ada, at=day(1))
    world.set_approval_status(subtask(ada, reviews), "approved", actor=bob, at=day(1))
    world.set_approval_status(subtask(rita, security), "approved", actor=rita, at=day(1))
    world.set_approval_status(subtask(dan, security), "rejected", actor=rita, at=day(1))

    again = start(world, tmp_path)  # a rerun: nothing filed twice
    assert (again.created_tasks, again.created_subtasks, again.existing) == ([], [], 3)
    assert [len(x) for x in filed(world, reviews)] == [3, 6]

    before = run_pipeline(world, tmp_path, day(2), **settings)
    assert before.success
    item = "q1/{}/{}/{}".format
    assert judged(before, tmp_path) == {
        item("project", payroll.gid, ada): "ok", item("project", payroll.gid, bob): "ok",
        item("project", payroll.gid, cy): "info",     # undecided, due 2026-03-05
        item("project", reviews.gid, ada): "ok",
        item("team", security.gid, rita): "alarm",    # approved by Rita herself
        item("team", security.gid, dan): "alarm",     # revoke decided, still a member
    }
    decisions = WarehouseResource(directory=str(tmp_path)).warehouse().read("access_review_decisions").to_pandas()
    d = decisions[decisions["resource_gid"] != reviews.gid].set_index("user_gid")
    assert d["decision"].to_dict() == {ada: "approved", bob: "approved", cy: "undecided", rita: "approved",
                                       dan: "rejected"}
    assert len(decisions) == 6
    assert d.loc[dan, "reviewer_gid"] == rita and d.loc[bob, "reviewer_gid"] == ada
    assert d.loc[ada, "reviewer_gid"] == bob
    assert d.loc[dan, "decided_at"] == pd.Timestamp(day(1))

    # The evidence report lists the campaign, its decisions counted, and each item as judged.
    pack = WarehouseResource(directory=str(tmp_path)).warehouse().root / "evidence" / evidence.pack_name(
        before.run_id, pd.Timestamp(day(2)))
    report = (pack / evidence.REPORT).read_text()
    campaigns = report.split("<h3>Access review campaigns</h3>")[1].split("</section>")[0]
    assert "<td>q1</td><td>2026-03-05</td><td>4</td><td>1</td><td>1</td><td>0</td>" in campaigns.replace("\n", "")
    assert "revoke decided by Rita &lt;rita@acme.example&gt;" in campaigns

    after = run_pipeline(world, tmp_path, day(4), **settings)  # 2026-03-06 09:00: the due day is over
    assert after.success
    overdue = judged(after, tmp_path)
    assert overdue[item("project", payroll.gid, cy)] == "alarm" and overdue[item("team", security.gid, dan)] == "alarm"
    assert sorted(overdue.values()) == ["alarm", "alarm", "alarm", "ok", "ok", "ok"]


def test_the_command_refuses_the_demo_and_a_past_due_day(monkeypatch):
    monkeypatch.setenv("ASANA_DEMO", "1")
    with pytest.raises(SystemExit, match="ASANA_DEMO is set, so the source is the demo simulator"):
        main(["review", "start", "--project", "Access reviews", "--due", "2999-01-01"])
    monkeypatch.setenv("ASANA_DEMO", "0")
    with pytest.raises(SystemExit, match="its due day 2000-01-01 has passed"):
        main(["review", "start", "--project", "Access reviews", "--due", "2000-01-01"])
