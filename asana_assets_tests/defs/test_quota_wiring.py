"""The settings of one quota per token reach the Asana resource, and its clients draw on the pool
of what they do: the events sensor's polls on the sensor's share, everything else on the runs'."""

from __future__ import annotations

import hashlib
import json

import pytest

from asana_assets import settings
from asana_assets.defs.resources.asana import AsanaResource, DemoAsanaResource
from asana_assets.defs.resources.configured import configured_resources
from asana_assets.lib.asana.polls import LOOK_CLIENT, look_at_feeds
from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.connections.session import SENSOR, whoami
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


def test_the_demo_is_chosen_by_its_setting_and_has_its_own_quota(clean_env, tmp_path):
    clean_env.setenv("ASANA_WAREHOUSE_DIR", str(tmp_path / "wh"))
    clean_env.setenv("ASANA_REQUESTS_PER_MINUTE", "150")  # a real plan's quota is not the demo's
    assert type(resolved()) is AsanaResource
    for on in ("1", "true", "YES"):
        clean_env.setenv("ASANA_DEMO", on)
        demo = resolved()
        assert type(demo) is DemoAsanaResource and demo.requests_per_minute == 15_000
        assert demo.quota_store == str(tmp_path / "wh" / "state" / "quota")
    for off in ("0", "false", "no"):
        clean_env.setenv("ASANA_DEMO", off)
        assert type(resolved()) is AsanaResource
    clean_env.setenv("ASANA_DEMO", "maybe")
    with pytest.raises(ValueError, match="ASANA_DEMO must be 1, true or yes"):
        resolved()


def test_the_resources_defaults_are_the_settings(clean_env):
    """A resource made without configuration holds what the settings hold when nothing is set."""
    configured, bare = resolved(), AsanaResource()
    for field in ("access_token", "connection_id", "connections_file", "base_url", "workspace_gid",
                  "requests_per_minute", "max_concurrency", "sensor_quota_share", "full_sync_hour", "poll_minutes"):
        assert getattr(bare, field) == getattr(configured, field), field
    assert (bare.requests_per_minute, bare.max_concurrency, bare.full_sync_hour) == (1500, 50, 3)


@pytest.mark.parametrize("share", ["0", "1", "a tenth"])
def test_a_share_that_is_not_a_fraction_is_refused_with_its_setting(clean_env, share):
    clean_env.setenv("ASANA_SENSOR_QUOTA_SHARE", share)
    with pytest.raises(Exception, match="ASANA_SENSOR_QUOTA_SHARE|sensor_quota_share"):
        resolved()


def test_the_sensors_polls_draw_on_its_share_and_the_rest_on_the_runs(tmp_path):
    """After each use, the token's record (named by the sha256 of the token) has the token's clock
    (`*`) and one for the pool drawn on: `whoami` is the runs', a look at the events feeds the sensor's."""
    record = tmp_path / "quota" / f"{hashlib.sha256(TOKEN.encode()).hexdigest()}.json"
    config = SimulatorConfig(tokens={TOKEN: None}, requests_per_minute=10**6)
    with Simulator(generate_world(seed=1, tasks=20), config) as sim:
        asana = AsanaResource(access_token=TOKEN, base_url=sim.base_url, quota_store=str(tmp_path / "quota"))
        asana.run(whoami)
        assert set(json.loads(record.read_text())["clocks"]) == {"*", "runs"}
        project = sim.world.ground_truth()["projects"][0]["gid"]
        state = SyncState(tokens={project: {"sync": "not-a-token", "taken_at": "2999-01-01T00:00:00+00:00"}})
        looked = asana.run(lambda client: look_at_feeds(client, state), pool=SENSOR, **LOOK_CLIENT)
        assert project in looked  # an invalid token counts as changed
        assert set(json.loads(record.read_text())["clocks"]) == {"*", "runs", "sensor"}


def test_a_ticks_polls_fit_the_sensors_share_of_the_quota_in_its_time():
    """1,500 requests a minute, the sensor's 10%: 150 a minute, so 75 in a tick's 30 s of polls;
    a free plan's 150 a minute gives 7; a 25% share of 1,500 gives 187."""
    from asana_assets.defs.automation.sensors import poll_policy
    from asana_assets.defs.partitions import ConnectionSchedule

    connection = ConnectionSchedule(key="default", active=True, full_sync_hour=2, poll_minutes=1)
    for rpm, share, budget in ((1500, 0.1, 75), (150, 0.1, 7), (1500, 0.25, 187)):
        asana = AsanaResource(access_token=TOKEN, requests_per_minute=rpm, sensor_quota_share=share)
        assert poll_policy(asana, connection).budget == budget
