"""Several Asana connections in one deployment, each a dynamic partition with its own credentials,
warehouse, sync state and schedule; a revoked or rate-limited connection stalls no other."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx
import pytest
from cryptography.fernet import Fernet

from asana_assets.defs.automation import sensors
from asana_assets.defs.automation.schedules import full_sync_at_connection_hour, reconcile_at_connection_hour
from asana_assets.defs.automation.sensors import asana_connections_sensor, asana_events_sensor, asana_freshness_sensor
from asana_assets.defs.raw.assets import asana_raw_sync
from asana_assets.defs.raw.checks import freshness
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.defs.resources.compliance import ComplianceResource
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.lib.connections.store import TokenStore
from asana_assets.lib.connections.validation import connect_service_account
from asana_assets.lib.schema import RAW_TABLES
from asana_assets.lib.storage.postgres import ident
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world
from asana_assets.simulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI
from asana_assets_tests.support import POSTGRES_URL as URL
from asana_assets_tests.support.oauth import later
from asana_assets_tests.support.pipeline import ASSETS, QUOTA, RUN_CHECKS, materialize
from asana_assets_tests.support.postgres import PostgresTables
from asana_assets_tests.support.truth import assert_matches_truth
from asana_assets_tests.support.worlds import change_the_world

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SECOND_KEY = "2/1209000000000000/second:simulator"  # a second admin key into workspace A
# B's own key: a 429 pauses every process of its token, so a key shared with A would pause A too.
B_KEY = "2/1209000000000000/b:simulator"


@pytest.fixture
def instance(request):
    """An in-memory instance, where Dagster stores a run's events far faster than on disk; a test
    that evaluates a schedule asks for one on disk (indirect "on disk"): a schedule's context
    reaches its instance through a reference, which only an instance on disk has."""
    with (dg.instance_for_test() if getattr(request, "param", None) == "on disk"
          else dg.DagsterInstance.ephemeral()) as instance:
        yield instance


@pytest.fixture
def deployment(tmp_path, schema, server, monkeypatch, instance):
    """Workspaces A and B on two simulators; stored connections a (A), b (B) and c (A, second key)."""
    monkeypatch.setenv("ASANA_CONNECTION_KEYS", Fernet.generate_key().decode())
    store = TokenStore.at(tmp_path / "connections.json")
    world_a, world_b = generate_world(seed=3, tasks=160, now=NOW), generate_world(seed=5, tasks=120, now=NOW)
    config = dict(requests_per_minute=QUOTA, secret="tests")
    with (Simulator(world_a, SimulatorConfig(tokens={DEMO_TOKEN: None, SECOND_KEY: None}, **config)) as sim_a,
          Simulator(world_b, SimulatorConfig(tokens={B_KEY: None}, **config)) as sim_b):
        a = connect_service_account(sim_a.base_url, DEMO_TOKEN, store)
        b = connect_service_account(sim_b.base_url, B_KEY, store)
        c = connect_service_account(sim_a.base_url, SECOND_KEY, store)
        resources = {
            "asana": AsanaResource(connections_file=str(tmp_path / "connections.json"), requests_per_minute=QUOTA),
            "warehouse": WarehouseResource(directory=str(tmp_path / "wh"), postgres_url=URL, postgres_schema=schema),
        }
        yield dict(store=store, a=a.id, b=b.id, c=c.id, sim_a=sim_a, sim_b=sim_b, resources=resources,
                   instance=instance, schema=schema)
    with server.cursor() as cur:
        for connection in (a, b, c):
            cur.execute(f"DROP SCHEMA IF EXISTS {ident(f'{schema}_{connection.id}')} CASCADE")
    server.commit()


def sync(d, key, run_config=None, as_of=NOW):
    resources = {**d["resources"], "compliance": ComplianceResource(as_of=as_of.isoformat())}
    result = materialize([*ASSETS, *RUN_CHECKS], instance=d["instance"], partition=key, resources=resources,
                         run_config=run_config)
    assert result.success
    assert not [c for c in result.get_asset_check_evaluations() if c.check_name == "unique_keys" and not c.passed]
    return result


def tables(d, key):
    """The connection's Parquet and Postgres tables."""
    warehouse = d["resources"]["warehouse"].for_connection(key).warehouse()
    parquet = {t: warehouse.read(t) for t in RAW_TABLES}
    with PostgresTables(URL, warehouse.postgres_schema) as postgres:
        return parquet, {t: postgres.read(t) for t in RAW_TABLES}


def evaluate(sensor, d, cursor=None):
    with dg.build_sensor_context(instance=d["instance"], resources=d["resources"], cursor=cursor) as context:
        return sensor(context)


def test_connections_are_partitions_with_their_own_data_state_and_failures(deployment, monkeypatch):
    d = deployment
    # The connections sensor adds one partition per stored connection and asks for each first sync.
    added = evaluate(asana_connections_sensor, d)
    [request] = added.dynamic_partitions_requests
    assert sorted(request.partition_keys) == sorted([d["a"], d["b"], d["c"]])
    assert {r.partition_key for r in added.run_requests} == {d["a"], d["b"], d["c"]}
    d["instance"].add_dynamic_partitions("asana_connection", request.partition_keys)
    assert isinstance(evaluate(asana_connections_sensor, d), dg.SkipReason)  # nothing new

    for key in (d["a"], d["b"], d["c"]):
        synced = sync(d, key)
        # The Postgres table a materialization names is this connection's own schema's.
        tasks = next(m.materialization for m in synced.get_asset_materialization_events()
                     if m.asset_key == dg.AssetKey(["asana", "tasks"]))
        assert tasks.metadata["dagster/table_name"].value == f"{d['schema']}_{key}.tasks"
    world_a, world_b = d["sim_a"].world, d["sim_b"].world
    for parquet_and_postgres, world in ((tables(d, d["a"]), world_a), (tables(d, d["b"]), world_b)):
        for synced in parquet_and_postgres:  # each connection holds its own workspace, nothing else
            assert_matches_truth(synced, world.ground_truth())

    # A changes; B's key is throttled (Retry-After 60 s) and c's key is revoked at Asana.
    change_the_world(world_a)
    d["sim_b"].config.storm_retry_after = 60
    d["sim_b"].config.rate_limit_storm_rate = 1.0
    d["sim_a"].config.tokens = {DEMO_TOKEN: None}
    started, polled_at = time.monotonic(), datetime.now(UTC)
    polled = evaluate(asana_events_sensor, d)
    assert time.monotonic() - started < 50  # nobody waited out B's minute, even on a busy machine
    [request] = polled.run_requests
    assert request.partition_key == d["a"]
    assert not polled.skip_reason
    b_state = d["resources"]["warehouse"].for_connection(d["b"]).state_store().load()

    sync(d, d["a"], run_config=request.run_config, as_of=NOW + timedelta(hours=2))
    parquet, postgres = tables(d, d["a"])
    assert_matches_truth(parquet, world_a.ground_truth())
    assert_matches_truth(postgres, world_a.ground_truth())
    assert d["resources"]["warehouse"].for_connection(d["b"]).state_store().load() == b_state

    throttled = evaluate(asana_events_sensor, d).skip_reason.skip_message
    assert f"{d['a']}: no new events" in throttled  # the run advanced a's tokens
    assert f"{d['b']}: could not poll" in throttled and "rate-limited" in throttled
    # B slows down past the tick's budget: the tick does not wait for it.
    d["sim_b"].config.rate_limit_storm_rate = 0.0
    d["sim_b"].config.latency_ms = 8000
    budget = sensors.POLL_BUDGET
    monkeypatch.setattr(sensors, "POLL_BUDGET", 4)  # ample for A on a busy machine, short of B's 8 s
    slow = evaluate(asana_events_sensor, d).skip_reason.skip_message
    assert f"{d['b']}: could not poll: no answer within 4 s" in slow and f"{d['a']}: no new events" in slow
    monkeypatch.setattr(sensors, "POLL_BUDGET", budget)
    d["sim_b"].config.latency_ms = 0
    # B recovers: the next poll finds nothing new there. A tick a minute less the slack after
    # that poll (whatever the steps above took on a busy machine) finds no connection due.
    clock = sensors._now
    monkeypatch.setattr(sensors, "_now", lambda: polled_at + timedelta(minutes=1) - sensors.TICK_SLACK
                        - timedelta(seconds=1))
    spaced = evaluate(asana_events_sensor, d, cursor=polled.cursor)
    assert "due" in spaced.skip_message  # polls are spaced by each connection's poll_minutes
    monkeypatch.setattr(sensors, "_now", clock)
    looked = evaluate(asana_events_sensor, d).skip_reason.skip_message
    assert f"{d['a']}: no new events" in looked and f"{d['b']}: no new events" in looked
    assert f"{d['c']}: could not poll" in looked and "reconnect" in looked  # c's key is still refused


@pytest.mark.parametrize("instance", ["on disk"], indirect=True)
def test_each_connection_has_its_schedule_and_its_freshness(deployment):
    d = deployment
    store = d["store"]
    store.save(store.get(d["a"]).model_copy(update={"full_sync_hour": 5}))
    store.save(store.get(d["c"]).model_copy(update={"status": "revoked"}))
    d["instance"].add_dynamic_partitions("asana_connection", [d["a"], d["b"], d["c"]])

    def due_at(hour, schedule=reconcile_at_connection_hour, day=NOW):
        at = day.replace(hour=hour, minute=0)
        with dg.build_schedule_context(instance=d["instance"], resources=d["resources"],
                                       scheduled_execution_time=at) as context:
            requests = schedule(context)
        return [] if isinstance(requests, dg.SkipReason) else [r.partition_key for r in requests]

    assert due_at(5) == [d["a"]]
    assert due_at(3) == [d["b"]]  # the default hour; c is revoked and never scheduled
    assert due_at(4) == []
    sunday = NOW + timedelta(days=6)  # NOW is a Monday; the full sync is weekly, on Sundays
    assert due_at(5, full_sync_at_connection_hour) == []
    assert due_at(5, full_sync_at_connection_hour, sunday) == [d["a"]]
    assert due_at(5, day=sunday) == []

    sync(d, d["b"])
    now = datetime.now(UTC)
    assert freshness(d["instance"], [d["b"]], now).passed
    later = freshness(d["instance"], [d["b"]], now + timedelta(hours=27))
    assert not later.passed and later.metadata["stale"].data == [d["b"]]
    with dg.build_sensor_context(instance=d["instance"]) as context:
        [judged] = asana_freshness_sensor(context).asset_events
    assert not judged.passed and sorted(judged.metadata["stale"].data) == sorted([d["a"], d["c"]])  # never synced
    assert d["b"] in judged.metadata["last_synced"].data

    # Removing a connection removes its partition; its data stays where it was.
    store.remove(d["c"])
    [removed] = evaluate(asana_connections_sensor, d).dynamic_partitions_requests
    assert isinstance(removed, dg.DeleteDynamicPartitionsRequest) and removed.partition_keys == [d["c"]]


def test_the_default_connection_may_be_a_stored_one(deployment):
    """With ASANA_CONNECTION_ID naming a stored connection, that connection is the partition
    ``default``, with its own status and schedule; a passing error does not stop a connection."""
    d = deployment
    store = d["store"]
    asana = d["resources"]["asana"].model_copy(update={"connection_id": d["a"]})
    store.update(d["a"], full_sync_hour=7, status="revoked")
    store.update(d["b"], status="error")
    connections = {c.key: c for c in asana.connections()}
    assert set(connections) == {"default", d["b"], d["c"]}
    assert not connections["default"].active and connections["default"].full_sync_hour == 7
    assert connections[d["b"]].active  # an error may pass: the next sync says
    store.update(d["a"], status="active")
    assert {c.key: c.active for c in asana.connections()}["default"]


def test_a_cursor_from_another_version_counts_as_none(deployment):
    d = deployment
    d["instance"].add_dynamic_partitions("asana_connection", [d["a"]])
    for cursor in ("3f9a1c0b2d4e5f60", "[]", "17"):
        assert "no sync yet" in evaluate(asana_events_sensor, d, cursor=cursor).skip_reason.skip_message


# -- a stored OAuth connection while Asana's token endpoint is down

@pytest.fixture
def oauth_connection(tmp_path, monkeypatch):
    """A stored OAuth connection whose access token is due for a refresh at the next run."""
    from asana_assets.lib.connections import oauth

    monkeypatch.setattr(oauth, "BACKOFF_SECONDS", 0.01)  # the retries, without their production waits
    monkeypatch.setenv("ASANA_CONNECTION_KEYS", Fernet.generate_key().decode())
    store = TokenStore.at(tmp_path / "connections.json")
    with Simulator(generate_world(seed=3, tasks=60, now=NOW), SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        app = oauth.OAuthApp(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI, sim.base_url)
        pending = oauth.start_authorization(app)
        redirect = httpx.get(pending.url).headers["location"]
        connection = oauth.complete_authorization(app, pending, redirect, store)
        later(sim, store, connection.id, 3590)  # inside the refresh margin
        resources = {
            "asana": AsanaResource(connections_file=str(tmp_path / "connections.json"), requests_per_minute=QUOTA,
                                   oauth_client_id=DEMO_CLIENT_ID, oauth_client_secret=DEMO_CLIENT_SECRET,
                                   oauth_redirect_uri=DEMO_REDIRECT_URI),
            "warehouse": WarehouseResource(directory=str(tmp_path / "wh")),
        }
        yield {"sim": sim, "store": store, "id": connection.id, "resources": resources}


def sync_raw(c):
    return materialize([asana_raw_sync], partition=c["id"], resources=c["resources"], raise_on_error=False)


def step_error(result):
    """The user code's error under Dagster's wrapper: (class name, message)."""
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error.cause
    return error.cls_name, error.message


def test_a_503_from_the_token_endpoint_is_retried_and_the_run_succeeds(oauth_connection):
    c = oauth_connection
    c["sim"].api.oauth.fail_token_requests(1, "503")
    assert sync_raw(c).success
    assert c["sim"].api.oauth.requests["token"] == 3  # the exchange, the 503, the retried refresh
    synced = c["store"].get(c["id"])
    assert synced.status == "active" and synced.last_error is None and synced.last_synced_at is not None


def test_a_persisting_503_fails_the_run_retryably_and_keeps_the_connection_active(oauth_connection):
    c = oauth_connection
    c["sim"].api.oauth.fail_token_requests(100, "503")
    result = sync_raw(c)
    assert not result.success
    name, message = step_error(result)
    assert name == "ConnectionUnavailable"  # retryable: the run may be retried as it is
    assert "Asana's OAuth token endpoint could not answer (HTTP 503, 4 tries)" in message
    assert "the connection stays active" in message
    kept = c["store"].get(c["id"])
    assert kept.status == "active" and kept.last_error is None
    assert [s.key for s in c["resources"]["asana"].connections() if s.active] == [c["id"]]  # still scheduled


def test_a_refused_grant_fails_the_run_and_expires_the_connection(oauth_connection):
    c = oauth_connection
    for grant in c["sim"].api.oauth._refresh_tokens.values():
        grant.revoked = True  # the user removed the app in Asana: the refresh answers invalid_grant
    result = sync_raw(c)
    assert not result.success
    # The step fails with the cause and the fix, as the troubleshooting table words them.
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.user_failure_data.description == (
        "Asana no longer accepts this connection's authorization: reconnect the integration")
    assert c["store"].get(c["id"]).status == "expired"
    assert [s.key for s in c["resources"]["asana"].connections() if s.active] == []  # no longer scheduled
