"""The events sensor with many projects: each tick's polls fit its share of the quota, active
projects are polled at every tick, quiet ones at backed-off intervals, archived ones never, and
every project within the stated bound; the poll schedule lives beside the sync state, not in
the cursor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import dagster as dg

from asana_assets.defs.automation import sensors
from asana_assets.defs.automation.sensors import asana_events_sensor
from asana_assets.defs.partitions import DEFAULT, register
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.lib.asana.state import SyncState
from asana_assets.simulator import DEMO_TOKEN
from asana_assets_tests.support.pipeline import resources

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PROJECTS = [str(1_209_000_000_000_100 + i) for i in range(300)]
ARCHIVED = PROJECTS[:20]
ACTIVE = set(PROJECTS[20:25])  # events always pending (their runs never catch up)


def deployment(tmp_path, monkeypatch, requests_per_minute):
    """The default connection with PROJECTS synced; returns the sensor's resources and the
    list of the project lists each tick asked about."""
    configured = resources("http://127.0.0.1:9/api/1.0", tmp_path)
    configured["asana"] = AsanaResource(access_token=DEMO_TOKEN, base_url="http://127.0.0.1:9/api/1.0",
                                        requests_per_minute=requests_per_minute)
    state = SyncState()
    state.advance({gid: f"sync-{gid}" for gid in PROJECTS}, PROJECTS, START, full=True, archived=ARCHIVED)
    configured["warehouse"].state_store().save(state)
    asked: list[list[str]] = []

    async def look_at_feeds(client, state, projects=None, within=None, renewed=None):
        asked.append(list(projects))
        renewed.update({gid: f"renewed-{gid}" for gid in projects if gid not in ACTIVE})
        return {gid: (f"sync-{gid}:pending" if gid in ACTIVE else None) for gid in projects}

    monkeypatch.setattr(sensors, "look_at_feeds", look_at_feeds)
    return configured, asked


def evaluate(configured, instance, monkeypatch, at, cursor):
    monkeypatch.setattr(sensors, "_now", lambda: at)
    with dg.build_sensor_context(instance=instance, resources=configured, cursor=cursor) as context:
        return asana_events_sensor(context)


def test_300_projects_are_polled_by_activity_within_the_budget(tmp_path, monkeypatch):
    # 300 requests a minute: the sensor's 10% is 30 a minute, so 15 polls in a tick's 30 s. 280
    # projects are tracked (20 archived), so a project due is polled within ceil(280 / 15) = 19
    # ticks: an active one within 1 + 18 minutes of its last poll, a quiet one within 64 + 18.
    configured, asked = deployment(tmp_path, monkeypatch, requests_per_minute=300)
    instance = dg.DagsterInstance.ephemeral()
    register(instance, [DEFAULT])
    cursor, keys = None, []
    polls: dict[str, list[int]] = {gid: [] for gid in PROJECTS}
    for minute in range(260):
        result = evaluate(configured, instance, monkeypatch, START + timedelta(minutes=minute), cursor)
        cursor = result.cursor
        assert len(asked) == minute + 1 and len(asked[-1]) <= 15
        for gid in asked[-1]:
            polls[gid].append(minute)
        for request in result.run_requests or ():
            assert set(request.run_config["ops"]["asana_raw_sync"]["config"]["projects"]) <= ACTIVE
            keys.append((minute, request.run_key))
    assert not any(polls[gid] for gid in ARCHIVED)  # left to the reconcile
    tracked = set(PROJECTS) - set(ARCHIVED)
    assert all(polls[gid] and polls[gid][0] < 19 for gid in tracked)  # the first sweep

    def gaps(gid):
        return [b - a for a, b in pairwise(polls[gid])]

    assert max(max(gaps(gid)) for gid in ACTIVE) <= 19
    # Once the first sweeps are over, every 1 to 3 ticks: the quiet projects, first tracked together,
    # come due in waves a little larger than a tick's 15 polls, and the oldest due go first.
    assert all(max(gaps(gid)[-100:]) <= 3 for gid in ACTIVE)
    assert all(gaps(gid)[-100:].count(1) >= 80 for gid in ACTIVE)
    quiet = tracked - ACTIVE
    assert max(max(gaps(gid)) for gid in quiet) <= 82
    assert all(max(gaps(gid)) >= 32 for gid in quiet)  # backed off
    assert all(len([m for m in polls[gid] if m >= 196]) <= 2 for gid in quiet)  # at 64 minutes by now
    # The same pending events give the same run key, tick after tick.
    assert len({key for minute, key in keys if minute >= 160}) == 1
    # The cursor holds one time per connection; the schedule is kept beside the sync state.
    assert len(cursor) < 100
    saved = json.loads((tmp_path / "state" / "event_polls.json").read_text())
    # The tokens handed to polls that found nothing pending are kept (the quiet projects'), with
    # the time of the tick that polled them last; a project with events pending keeps its own.
    assert set(saved["tokens"]) == tracked - ACTIVE
    last = START + timedelta(minutes=259)
    assert all(START < datetime.fromisoformat(entry["taken_at"]) <= last for entry in saved["tokens"].values())
    assert {entry["sync"] for entry in saved["tokens"].values()} == {f"renewed-{gid}" for gid in tracked - ACTIVE}


def test_a_failed_poll_leaves_its_projects_due(tmp_path, monkeypatch):
    configured, asked = deployment(tmp_path, monkeypatch, requests_per_minute=300)
    instance = dg.DagsterInstance.ephemeral()
    register(instance, [DEFAULT])
    working = sensors.look_at_feeds

    async def failing(client, state, projects=None, within=None, renewed=None):
        asked.append(list(projects))
        raise RuntimeError("throttled")

    monkeypatch.setattr(sensors, "look_at_feeds", failing)
    failed = evaluate(configured, instance, monkeypatch, START, None)
    assert "could not poll" in failed.skip_reason.skip_message
    monkeypatch.setattr(sensors, "look_at_feeds", working)
    evaluate(configured, instance, monkeypatch, START + timedelta(minutes=1), failed.cursor)
    assert asked[1] == asked[0] == sorted(set(PROJECTS) - set(ARCHIVED))[:15]
