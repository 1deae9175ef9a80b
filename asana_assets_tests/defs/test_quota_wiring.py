"""The settings of one quota per token reach the Asana resource, and its clients draw on the pool
of what they do: the events sensor's polls on the sensor's share, everything else on the runs'."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import pytest

from asana_assets import settings
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.defs.resources.configured import configured_resources
from asana_assets.lib.asana.state import SyncState
from asana_assets.simulator import Simulator, SimulatorConfig, generate_world

TOKEN = "2/1209000000000000/quota-wiring"


@pytest.fixture
def clean_env(monkeypatch):
    for setting in settings.ALL:
        monkeypatch.delenv(setting.name, raising=False)
    return monkeypatch


def resolved() -> AsanaResource:
    return configured_resources()["asana"].process_config_and_initialize()


def test_the_budget_is_kept_beside_the_warehouse_by_default(clean_env, tmp_path):
    clean_env.setenv("ASANA_WAREHOUSE_DIR", str(tmp_path / "wh"))
    asana = resolved()
    assert asana.quota_store == str(tmp_path / "wh" / "state" / "quota")
    assert asana.sensor_quota_share == 0.1


def test_the_budget_is_kept_in_the_warehouses_postgres_when_there_is_one(clean_env):
    clean_env.setenv("ASANA_POSTGRES_URL", "postgresql://sync@db.example:5432/warehouse")
    assert resolved().quota_store == "postgresql://sync@db.example:5432/warehouse"


def test_the_settings_choose_the_store_and_the_sensors_share(clean_env, tmp_path):
    clean_env.setenv("ASANA_POSTGRES_URL", "postgresql://sync@db.example:5432/warehouse")
    clean_env.setenv("ASANA_QUOTA_STORE", str(tmp_path / "budgets"))
    clean_env.setenv("ASANA_SENSOR_QUOTA_SHARE", "0.25")
    asana = resolved()
    assert (asana.quota_store, asana.sensor_quota_share) == (str(tmp_path / "budgets"), 0.25)


@pytest.mark.parametrize("share", ["0", "1", "a tenth"])
def test_a_share_that_is_not_a_fraction_is_refused_with_its_setting(clean_env, share):
    clean_env.setenv("ASANA_SENSOR_QUOTA_SHARE", share)
    with pytest.raises(Exception, match="ASANA_SENSOR_QUOTA_SHARE|sensor_quota_share"):
        resolved()


def test_the_sensors_polls_draw_on_its_share_and_the_rest_on_the_runs(tmp_path):
    """After each use, the token's record (named by the sha256 of the token) has a clock for the
    pool drawn on: `whoami` is the runs', a look at the events feeds the sensor's."""
    record = tmp_path / "quota" / f"{hashlib.sha256(TOKEN.encode()).hexdigest()}.json"
    config = SimulatorConfig(tokens={TOKEN: None}, requests_per_minute=10**6)
    with Simulator(generate_world(seed=1, tasks=20), config) as sim:
        asana = AsanaResource(access_token=TOKEN, base_url=sim.base_url, quota_store=str(tmp_path / "quota"))
        asana.whoami()
        assert set(json.loads(record.read_text())["clocks"]) == {"runs"}
        project = sim.world.ground_truth()["projects"][0]["gid"]
        state = SyncState(tokens={project: {"sync": "not-a-token", "taken_at": "2999-01-01T00:00:00+00:00"}})
        assert project in asana.changed_projects(state)  # an invalid token counts as changed
        assert set(json.loads(record.read_text())["clocks"]) == {"runs", "sensor"}


def test_a_look_keeps_what_was_answered_in_time_and_leaves_the_rest_due(monkeypatch):
    """Feeds still unanswered `within` the tick's time are left out (so they stay due), and the
    looks answered are returned, not lost with the late ones."""
    from asana_assets.lib.asana.client import AsanaClient

    world = generate_world(seed=1, tasks=20)
    projects = [p["gid"] for p in world.ground_truth()["projects"]][:3]
    slow = projects[0]
    events = AsanaClient.events

    async def answering(self, project_gid, token):
        if project_gid == slow:
            await asyncio.sleep(30)  # far past the look's time
        return await events(self, project_gid, token)

    monkeypatch.setattr(AsanaClient, "events", answering)
    with Simulator(world, SimulatorConfig(tokens={TOKEN: None}, requests_per_minute=10**6)) as sim:
        asana = AsanaResource(access_token=TOKEN, base_url=sim.base_url)
        state = SyncState(tokens={gid: {"sync": "not-a-token", "taken_at": "2999-01-01T00:00:00+00:00"}
                                  for gid in projects})
        started = time.monotonic()
        looked = asana.changed_projects(state, projects, within=2.0)
    assert set(looked) == set(projects[1:])  # invalid tokens: both answered as changed
    assert time.monotonic() - started < 10


def test_a_ticks_polls_fit_the_sensors_share_of_the_quota_in_its_time():
    """1,500 requests a minute, the sensor's 10%: 150 a minute, so 75 in a tick's 30 s of polls;
    a free plan's 150 a minute gives 7; a 25% share of 1,500 gives 187."""
    from asana_assets.defs.automation.sensors import poll_policy
    from asana_assets.defs.partitions import ConnectionSchedule

    connection = ConnectionSchedule(key="default", active=True, full_sync_hour=2, poll_minutes=1)
    for rpm, share, budget in ((1500, 0.1, 75), (150, 0.1, 7), (1500, 0.25, 187)):
        asana = AsanaResource(access_token=TOKEN, requests_per_minute=rpm, sensor_quota_share=share)
        assert poll_policy(asana, connection).budget == budget


def test_a_look_finding_nothing_pending_renews_the_token_and_one_with_events_does_not():
    """The sensor keeps the token a quiet feed hands out (so a quiet project's token stays young);
    a feed with events pending keeps its old token, from which the run will read them."""
    import httpx

    world = generate_world(seed=1, tasks=20)
    quiet, busy = [p["gid"] for p in world.ground_truth()["projects"] if not p["archived"]][:2]
    task = next(t["gid"] for t in world.ground_truth()["tasks"]
                if any(m["project"]["gid"] == busy for m in t["memberships"]))
    with Simulator(world, SimulatorConfig(tokens={TOKEN: None}, requests_per_minute=10**6)) as sim:
        first = {gid: httpx.get(f"{sim.base_url}/events", params={"resource": gid},
                                headers={"Authorization": f"Bearer {TOKEN}"}).json()["sync"] for gid in (quiet, busy)}
        world.update_task(task, name="Renamed", actor=world.default_user)
        state = SyncState(tokens={gid: {"sync": sync, "taken_at": "2999-01-01T00:00:00+00:00"}
                                  for gid, sync in first.items()})
        renewed: dict[str, str] = {}
        looked = AsanaResource(access_token=TOKEN, base_url=sim.base_url).changed_projects(
            state, [quiet, busy], renewed=renewed)
    assert looked[quiet] is None and looked[busy] is not None
    assert set(renewed) == {quiet} and renewed[quiet] not in (first[quiet], first[busy])
