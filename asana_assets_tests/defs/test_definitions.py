"""The code location: it loads, materializes into Parquet with metadata, and runs from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from cryptography.fernet import Fernet
from dotenv import dotenv_values

from asana_assets import demo, settings
from asana_assets.defs.partitions import DEFAULT, register
from asana_assets.defs.raw.assets import asana_raw_sync
from asana_assets.defs.raw.checks import quarantine_is_empty
from asana_assets.defs.resources.asana import AsanaResource, DemoAsanaResource
from asana_assets.defs.resources.compliance import ComplianceResource
from asana_assets.defs.resources.configured import configured_resources
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.defs.tables import table_key
from asana_assets.lib.connections.session import whoami
from asana_assets.lib.connections.store import TokenStore
from asana_assets.lib.connections.troubleshooting import ConnectionProblem
from asana_assets.lib.connections.validation import connect_service_account
from asana_assets.lib.schema import RAW_TABLES, TABLES
from asana_assets.lib.storage.postgres import ident
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world
from asana_assets_tests.support import BIN, POSTGRES_URL, REPO, cli_env, free_port
from asana_assets_tests.support.pipeline import ASSETS, materialize

QUOTA = 1_000_000


@pytest.fixture(scope="module")
def simulator():
    world = generate_world(seed=2, tasks=250, now=datetime(2026, 3, 1, tzinfo=UTC))
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        yield sim


def resources(sim, directory) -> dict:
    return {
        "asana": AsanaResource(access_token=DEMO_TOKEN, base_url=sim.base_url, requests_per_minute=QUOTA),
        "warehouse": WarehouseResource(directory=str(directory)),
    }


def test_definitions_load_with_every_table():
    from asana_assets.definitions import defs

    keys = set(defs.resolve_asset_graph().get_all_asset_keys())
    # Every table, and the one asset that writes to Asana instead (findings as tasks, opt-in).
    assert keys == {table_key(t) for t in TABLES} | {dg.AssetKey(["asana", "remediation_tasks"])}
    assert defs.resolve_job_def("asana_full_sync")


def test_materialize_writes_typed_parquet_with_metadata(simulator, tmp_path):
    result = materialize([asana_raw_sync, quarantine_is_empty], resources=resources(simulator, tmp_path))
    assert result.success
    truth = simulator.world.ground_truth()
    by_key = {m.asset_key: m for m in result.get_asset_materialization_events()}
    for table, schema in RAW_TABLES.items():
        meta = by_key[table_key(table)].materialization.metadata
        data = pq.read_table(tmp_path / "asana" / f"{table}.parquet")
        assert data.schema.equals(schema, check_metadata=False)
        assert meta["dagster/row_count"].value == data.num_rows
        assert [c.name for c in meta["dagster/column_schema"].schema.columns] == schema.names
        assert "preview" in meta
        if table in truth:
            assert data.num_rows == len(truth[table])
    [check] = result.get_asset_check_evaluations()
    assert check.passed


def test_a_subset_crawls_only_what_it_needs(simulator, tmp_path):
    simulator.stats.reset()
    result = materialize([asana_raw_sync], selection=[table_key("users")], resources=resources(simulator, tmp_path))
    assert result.success
    assert [p.name for p in (tmp_path / "asana").iterdir()] == ["users.parquet"]
    assert set(simulator.stats.by_route) <= {"/api/1.0/workspaces", "/api/1.0/workspaces/{workspace_gid}/workspace_memberships",
                                             "/api/1.0/users"}  # the users listing: their avatars


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["dagster", "asset", "materialize", "-m", "asana_assets.definitions", "--select", "*", "--partition", DEFAULT],
        ["dg", "launch", "--assets", "*", "--partition", DEFAULT],
        ["asana-connections", "sync"],
    ],
)
def test_cli_syncs_any_server_that_speaks_the_api(simulator, tmp_path, command):
    env = cli_env(
        tmp_path, ASANA_BASE_URL=simulator.base_url, ASANA_ACCESS_TOKEN=DEMO_TOKEN,
        ASANA_REQUESTS_PER_MINUTE=str(QUOTA),
    )
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        register(instance, [DEFAULT])  # as the connections sensor does (asana-connections sync does it itself)
    done = subprocess.run(
        [str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True, timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    tasks = pq.read_table(tmp_path / "wh" / "asana" / "tasks.parquet")
    assert tasks.num_rows == len(simulator.world.ground_truth()["tasks"])


@pytest.mark.slow
def test_asana_demo_syncs_the_demo_simulator(tmp_path):
    done = subprocess.run(
        [str(BIN / "asana-connections"), "sync"],
        env=cli_env(tmp_path, ASANA_DEMO="1"), capture_output=True, text=True, timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "demo Asana workspace" in done.stderr + done.stdout
    for table in TABLES:
        assert (tmp_path / "wh" / "asana" / f"{table}.parquet").exists() or any(
            (tmp_path / "wh" / "asana" / table).glob("*.parquet"))
    assert list((tmp_path / "wh" / "evidence").glob("*/manifest.json"))
    assert pq.read_table(tmp_path / "wh" / "asana" / "tasks.parquet").num_rows > 300
    source = _manifest(tmp_path / "wh")["parameters"]["source"]  # the evidence says it is the demo's
    assert source["demo"] is True and source["base_url"].startswith("http://127.0.0.1:")


def test_a_broken_connection_shows_its_cause_and_fix(simulator):
    from asana_assets.defs.raw.checks import connection_valid

    context = dg.build_asset_check_context()
    working = connection_valid(context, AsanaResource(access_token=DEMO_TOKEN, base_url=simulator.base_url))
    broken = connection_valid(context, AsanaResource(access_token="revoked-token", base_url=simulator.base_url))
    assert working.passed and not broken.passed
    assert broken.description == (
        "ASANA_ACCESS_TOKEN is not accepted (401): set a valid personal access token or service-account token")
    assert broken.metadata["cause"].text == "ASANA_ACCESS_TOKEN is not accepted (401)"


@pytest.mark.slow
@pytest.mark.parametrize("command", [["dagster", "definitions", "validate", "-w", "workspace.yaml"], ["dg", "check", "defs"]])
def test_the_code_location_loads_from_the_repository_root(tmp_path, command):
    """Run where ./dagster.yaml (the Postgres production instance) applies, with nothing set:
    the committed .env supplies its local defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASANA_", "DAGSTER_"))}
    done = subprocess.run(
        [str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True, timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_the_deployments_workspace_reaches_the_code_location_on_its_own_server():
    """workspace.code-server.yaml as docs/operations.md runs it: a code server of its own, which
    the daemon and the webserver reach at DAGSTER_CODE_SERVER_HOST and _PORT."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASANA_", "DAGSTER_"))}
    env |= {"DAGSTER_CODE_SERVER_HOST": "127.0.0.1", "DAGSTER_CODE_SERVER_PORT": str(port)}
    server = subprocess.Popen([str(BIN / "dagster"), "code-server", "start", "-m", "asana_assets.definitions",
                               "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        up = [str(BIN / "dagster"), "api", "grpc-health-check", "--host", "127.0.0.1", "--port", str(port)]
        deadline = time.monotonic() + 180
        while subprocess.run(up, env=env, capture_output=True, timeout=60).returncode != 0:
            assert time.monotonic() < deadline, "the code server never answered"
            time.sleep(1)
        done = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.code-server.yaml"],
                              env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Validation successful for code location asana_assets" in done.stdout + done.stderr
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_the_environment_wins_over_the_committed_env_file(monkeypatch):
    """Dagster's tools load ./.env over the environment; each value defers to a variable that is set."""
    env_file = REPO / ".env"
    monkeypatch.delenv("DAGSTER_PG_DB", raising=False)
    assert dotenv_values(env_file)["DAGSTER_PG_DB"] == "postgres"
    monkeypatch.setenv("DAGSTER_PG_DB", "production")
    assert dotenv_values(env_file)["DAGSTER_PG_DB"] == "production"


# -- the demo serves only where ASANA_DEMO asks for it and nothing else is configured

def _sync_default(env) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "asana-connections"), "sync"], env=env, capture_output=True, text=True,
                          timeout=300, cwd=REPO, check=False)


def _schema_exists(server, name: str) -> bool:
    with server.cursor() as cur:
        cur.execute("SELECT to_regnamespace($1) IS NOT NULL", (ident(name),))
        [(exists,)] = cur.fetchall()
    return exists


@pytest.mark.slow
def test_the_demo_never_writes_into_a_configured_warehouse(tmp_path, schema, server):
    done = _sync_default(cli_env(tmp_path, ASANA_DEMO="1", ASANA_POSTGRES_URL=POSTGRES_URL,
                                 ASANA_POSTGRES_SCHEMA=schema))
    assert done.returncode == 1
    assert (
        "ASANA_DEMO asks for the demo but ASANA_POSTGRES_URL is set: unset ASANA_POSTGRES_URL for the demo, or "
        "unset ASANA_DEMO and set ASANA_ACCESS_TOKEN or ASANA_CONNECTION_ID (the demo simulator never writes into "
        "a configured warehouse)"
    ) in done.stderr
    assert "demo Asana workspace" not in done.stderr + done.stdout
    assert not _schema_exists(server, schema)  # nothing written to Postgres, not even the sync state
    assert not list((tmp_path / "wh").rglob("*.parquet"))


@pytest.mark.slow
def test_the_code_location_loads_beside_a_configured_warehouse_without_credentials(tmp_path):
    """It loads (the UI and `dagster definitions validate` work); what needs Asana fails with the fix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASANA_", "DAGSTER_"))}
    env |= {"ASANA_POSTGRES_URL": POSTGRES_URL, "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-m", "asana_assets.definitions"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list(tmp_path.glob("*.parquet")) and "demo Asana workspace" not in done.stderr


NO_CREDENTIALS = (
    "no Asana credentials are configured: set ASANA_ACCESS_TOKEN or ASANA_CONNECTION_ID (connect with "
    "`asana-connections connect`, then set ASANA_CONNECTION_ID to the connection's id); for the demo simulator, "
    "set ASANA_DEMO=1"
)


def refusals(asana: AsanaResource) -> list[ConnectionProblem]:
    """What each use of the resource that needs Asana refuses with."""
    found = []
    for use in (lambda: asana.run(whoami), asana.connections, lambda: asana.for_connection(DEFAULT)):
        with pytest.raises(ConnectionProblem) as refused:
            use()
        found.append(refused.value)
    return found


@pytest.fixture
def nothing_set(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no connection store file here
    for setting in settings.ALL:
        monkeypatch.delenv(setting.name, raising=False)
    return monkeypatch


def test_without_credentials_every_use_names_the_settings_the_demo_included(nothing_set):
    """Without ASANA_DEMO nothing is inferred: no demo, whatever else is (or is not) configured."""
    for name, value in (("ASANA_WAREHOUSE_DIR", "wh"), ("ASANA_POSTGRES_URL", POSTGRES_URL)):
        nothing_set.setenv(name, value)
        asana = configured_resources()["asana"].process_config_and_initialize()
        assert type(asana) is AsanaResource
        assert {str(refused) for refused in refusals(asana)} == {NO_CREDENTIALS}
    # An API base without a token: a deployment being set up lists no connection, and uses refuse.
    asana = AsanaResource(base_url="http://127.0.0.1:9/api/1.0")
    assert asana.connections() == []
    with pytest.raises(ConnectionProblem) as refused:
        asana.run(whoami)
    assert str(refused.value) == NO_CREDENTIALS


@pytest.mark.parametrize(("name", "value"), [
    ("ASANA_ACCESS_TOKEN", "2/1/real"), ("ASANA_CONNECTION_ID", "c1"), ("ASANA_BASE_URL", "https://asana.example/api"),
    ("ASANA_CONNECTION_STORE", "postgresql://db.example/store"),
])
def test_the_demo_refuses_beside_a_real_asana(nothing_set, name, value):
    nothing_set.setenv("ASANA_DEMO", "1")
    nothing_set.setenv(name, value)
    for refused in refusals(configured_resources()["asana"]):
        assert refused.cause == f"ASANA_DEMO asks for the demo but {name} is set"
        assert refused.fix.startswith(f"unset {name} for the demo, or unset ASANA_DEMO to sync that Asana")
    assert demo.running_base_url() is None  # nothing started


def test_the_demo_refuses_beside_a_connection_store_file(nothing_set, tmp_path):
    nothing_set.setenv("ASANA_DEMO", "1")
    (tmp_path / "asana_connections.json").write_text("{}")
    with pytest.raises(ConnectionProblem) as refused:
        DemoAsanaResource().connections()
    assert refused.value.cause == "ASANA_DEMO asks for the demo but the connection store asana_connections.json exists"


# -- the evidence says where the data came from

def _manifest(directory: Path) -> dict:
    [manifest] = directory.rglob("evidence/*/manifest.json")
    return json.loads(manifest.read_text())


def test_the_manifest_names_the_source_and_the_connection(simulator, tmp_path, monkeypatch):
    configured = {**resources(simulator, tmp_path / "token"), "compliance": ComplianceResource()}
    assert materialize([*ASSETS], resources=configured).success
    parameters = _manifest(tmp_path / "token")["parameters"]
    assert parameters["source"] == {"base_url": simulator.base_url, "demo": False}
    assert parameters["connection"] == {"partition": "default"}

    monkeypatch.setenv("ASANA_CONNECTION_KEYS", Fernet.generate_key().decode())
    store = TokenStore.at(tmp_path / "connections.json")
    stored = connect_service_account(simulator.base_url, DEMO_TOKEN, store)
    workspace = simulator.world.objects[simulator.world.workspaces[0]]
    configured = {
        "asana": AsanaResource(connections_file=str(tmp_path / "connections.json"), requests_per_minute=QUOTA),
        "warehouse": WarehouseResource(directory=str(tmp_path / "stored")),
        "compliance": ComplianceResource(),
    }
    assert materialize([*ASSETS], partition=stored.id, resources=configured).success
    parameters = _manifest(tmp_path / "stored")["parameters"]
    assert parameters["source"] == {"base_url": simulator.base_url, "demo": False}
    assert parameters["connection"] == {
        "partition": stored.id, "id": stored.id, "auth_method": "service_account",
        "workspace_gid": workspace.gid, "workspace_name": workspace.name,
    }
