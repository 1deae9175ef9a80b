"""Service-account connections, the encrypted token store, troubleshooting and the CLI."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from asana_assets import cli
from asana_assets.lib.asana.client import (
    AsanaConnectionError,
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
)
from asana_assets.lib.connections.records import Connection, Tokens
from asana_assets.lib.connections.store import TokenStore
from asana_assets.lib.connections.troubleshooting import (
    ConnectionExpired,
    ConnectionProblem,
    ConnectionRefused,
    Source,
    describe,
    troubleshoot,
)
from asana_assets.lib.connections.validation import connect_service_account
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world
from asana_assets.simulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI

NOW = datetime(2026, 6, 1, tzinfo=UTC)
MEMBER_KEY = "2/1209000000000000/member:simulator"


@pytest.fixture(scope="module")
def simulator():
    world = generate_world(seed=3, tasks=60, now=NOW)
    member = next(
        m for m in world.objects.values()
        if getattr(m, "resource_type", "") == "workspace_membership" and m.is_active and not m.is_admin
    )
    config = SimulatorConfig(tokens={DEMO_TOKEN: None, MEMBER_KEY: member.user})
    with Simulator(world, config) as sim:
        yield sim


@pytest.fixture()
def keys():
    return Fernet.generate_key().decode()


@pytest.fixture()
def store(tmp_path, keys):
    return TokenStore.at(tmp_path / "connections.json", keys)


def test_a_non_admin_key_is_refused_with_the_reason(simulator, store):
    with pytest.raises(ConnectionRefused) as refused:
        connect_service_account(simulator.base_url, MEMBER_KEY, store)
    workspace = simulator.world.objects[simulator.world.workspaces[0]]
    assert str(refused.value) == (
        f"this key's user is not an admin of workspace {workspace.name} ({workspace.gid}): "
        "connect with a workspace admin or owner's key"
    )
    assert store.connections() == []


def test_an_unknown_workspace_is_refused(simulator, store):
    with pytest.raises(ConnectionRefused, match="not a member of workspace 42"):
        connect_service_account(simulator.base_url, DEMO_TOKEN, store, workspace_gid="42")


def test_an_invalid_key_is_a_401_that_says_reconnect(simulator, store):
    with pytest.raises(AuthenticationError) as failed:
        connect_service_account(simulator.base_url, "not-a-key", store)
    assert troubleshoot(failed.value).fix == "reconnect the integration"


def test_an_admin_key_is_accepted_and_stored_encrypted(simulator, store, tmp_path):
    connection = connect_service_account(simulator.base_url, DEMO_TOKEN, store)
    assert connection.user_gid == simulator.world.default_user and connection.status == "active"
    assert connection.workspace_gid == simulator.world.workspaces[0] and connection.last_validated_at
    assert store.get(connection.id) == connection
    assert store.tokens(connection.id).access_token.get_secret_value() == DEMO_TOKEN
    assert DEMO_TOKEN not in repr(store.tokens(connection.id)) and DEMO_TOKEN not in repr(connection)
    path = tmp_path / "connections.json"
    raw = path.read_bytes()
    assert DEMO_TOKEN.encode() not in raw and b"demo:simulator" not in raw
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_rotation_re_encrypts_with_the_newest_key(simulator, tmp_path, keys):
    path = tmp_path / "connections.json"
    connections = [connect_service_account(simulator.base_url, DEMO_TOKEN, TokenStore.at(path, keys)) for _ in range(2)]
    newest = Fernet.generate_key().decode()
    assert TokenStore.at(path, f"{newest},{keys}").rotate() == 2
    old_only, new_only = TokenStore.at(path, keys), TokenStore.at(path, newest)
    for connection in connections:
        with pytest.raises(ConnectionProblem, match="none of the keys"):
            old_only.tokens(connection.id)
        assert new_only.tokens(connection.id).access_token.get_secret_value() == DEMO_TOKEN
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_store_needs_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("ASANA_CONNECTION_KEYS", raising=False)
    with pytest.raises(ConnectionProblem, match="no encryption key"):
        TokenStore.at(tmp_path / "c.json")


@pytest.mark.parametrize(
    ("failure", "cause", "fix"),
    [
        (AuthenticationError("GET", "/users/me", 401), "401 Unauthorized", "reconnect the integration"),
        (ForbiddenError("GET", "/projects/1", 403), "403 Forbidden", "admin or workspace-owner access"),
        (NotFoundError("GET", "/tasks/7?opt_fields=x", 404), "no longer available (/tasks/7)", "the sync goes on with the rest"),
        (RateLimitedError("GET", "/tasks", 429, retry_after=30), "429", "retry after 30 s"),
        (ConnectionExpired(), "no longer accepts this connection's authorization", "reconnect the integration"),
        (RuntimeError(f"leaks {DEMO_TOKEN}"), "unexpected error (RuntimeError)", "contact support"),
    ],
)
def test_troubleshooting_says_what_to_do(failure, cause, fix):
    trouble = troubleshoot(failure)
    assert cause in trouble.cause and fix in trouble.fix
    assert DEMO_TOKEN not in str(trouble)


BARE = Source("https://asana.example/api/1.0", "ASANA_BASE_URL", "42", "ASANA_WORKSPACE_GID", "ASANA_ACCESS_TOKEN")
STORED = Source("https://asana.example/api/1.0", workspace_gid="42")


@pytest.mark.parametrize(
    ("failure", "source", "expected"),
    [
        (AuthenticationError("GET", "/workspaces/42", 401), BARE,
         "ASANA_ACCESS_TOKEN is not accepted (401): set a valid personal access token or service-account token"),
        (AuthenticationError("GET", "/workspaces/42", 401), STORED,
         "401 Unauthorized: Asana rejected the token (invalid, expired or revoked): reconnect the integration"),
        (NotFoundError("GET", "/workspaces/42?opt_fields=name", 404), BARE,
         "ASANA_WORKSPACE_GID=42 does not exist or is not visible to the token (404): set ASANA_WORKSPACE_GID to a "
         "workspace the token sees, or unset it to sync every one"),
        (NotFoundError("GET", "/workspaces/42", 404), STORED,
         "the connection's workspace 42 does not exist or is not visible to the token (404): connect again with "
         "--workspace set to a workspace it sees"),
        (NotFoundError("GET", "/projects/42", 404), BARE,  # not the workspace: a container gone mid-sync
         "404 Not Found: the project or task is no longer available (/projects/42): verify it still exists and is "
         "shared with the connected user; the sync goes on with the rest"),
        (AsanaConnectionError("GET", "/workspaces/42", messages=["ReadTimeout: the request timed out"]), BARE,
         "the Asana API at ASANA_BASE_URL=https://asana.example/api/1.0 could not be reached (ReadTimeout: the "
         "request timed out): check ASANA_BASE_URL and the network between here and there (proxy, firewall, DNS)"),
    ],
)
def test_a_sync_failure_names_the_setting_that_caused_it_and_its_value(failure, source, expected):
    assert describe(failure, source) == expected


def test_cli_connects_lists_validates_and_revokes_without_showing_tokens(simulator, tmp_path, keys, monkeypatch, capsys):
    monkeypatch.setenv("ASANA_CONNECTION_KEYS", keys)
    monkeypatch.setenv("ASANA_SERVICE_ACCOUNT_KEY", DEMO_TOKEN)
    for name, value in (("CLIENT_ID", DEMO_CLIENT_ID), ("CLIENT_SECRET", DEMO_CLIENT_SECRET), ("REDIRECT_URI", DEMO_REDIRECT_URI)):
        monkeypatch.setenv(f"ASANA_OAUTH_{name}", value)
    store = ["--store", str(tmp_path / "c.json")]
    assert cli.main([*store, "connect", "service-account", "--base-url", simulator.base_url]) == 0
    assert cli.main([*store, "connect", "oauth", "--auto", "--base-url", simulator.base_url]) == 0
    assert cli.main([*store, "list"]) == 0
    assert cli.main([*store, "validate"]) == 0
    connections = TokenStore.at(tmp_path / "c.json", keys).connections()
    assert {c.auth_method for c in connections} == {"oauth", "service_account"}
    assert all(c.status == "active" for c in connections)
    oauth = next(c for c in connections if c.auth_method == "oauth")
    secrets = TokenStore.at(tmp_path / "c.json", keys).tokens(oauth.id)
    assert cli.main([*store, "revoke", oauth.id]) == 0
    assert cli.main([*store, "list"]) == 0
    out = capsys.readouterr().out
    assert "revoked" in out and "active" in out
    for secret in (DEMO_TOKEN, secrets.access_token.get_secret_value(), secrets.refresh_token.get_secret_value(), keys):
        assert secret not in out
    monkeypatch.setenv("ASANA_SERVICE_ACCOUNT_KEY", MEMBER_KEY)
    assert cli.main([*store, "connect", "service-account", "--base-url", simulator.base_url]) == 1
    assert "connect with a workspace admin or owner's key" in capsys.readouterr().err


def test_cli_schedules_and_removes_a_connection(simulator, tmp_path, keys, monkeypatch, capsys):
    monkeypatch.setenv("ASANA_CONNECTION_KEYS", keys)
    monkeypatch.setenv("ASANA_SERVICE_ACCOUNT_KEY", DEMO_TOKEN)
    store = ["--store", str(tmp_path / "c.json")]
    assert cli.main([*store, "connect", "service-account", "--base-url", simulator.base_url]) == 0
    [connection] = TokenStore.at(tmp_path / "c.json", keys).connections()
    assert (connection.full_sync_hour, connection.poll_minutes) == (3, 1)
    assert cli.main([*store, "schedule", connection.id, "--full-sync-hour", "5"]) == 0
    assert cli.main([*store, "schedule", connection.id, "--poll-minutes", "15"]) == 0
    assert "daily at 05:00 UTC, events polled every 15 min" in capsys.readouterr().out
    scheduled = TokenStore.at(tmp_path / "c.json", keys).get(connection.id)
    assert (scheduled.full_sync_hour, scheduled.poll_minutes) == (5, 15)
    for refused in (["--full-sync-hour", "24"], ["--poll-minutes", "0"]):
        with pytest.raises(SystemExit):  # argparse's usage error, nothing saved
            cli.main([*store, "schedule", connection.id, *refused])
    assert TokenStore.at(tmp_path / "c.json", keys).get(connection.id) == scheduled
    assert cli.main([*store, "remove", connection.id]) == 0
    assert TokenStore.at(tmp_path / "c.json", keys).connections() == []
    assert cli.main([*store, "remove", connection.id]) == 1
    assert "there is no connection" in capsys.readouterr().err


def test_the_store_can_live_in_postgres_encrypted(schema, monkeypatch):
    """Records can live in a Postgres table; the tokens stay Fernet-encrypted there."""
    import adbc_driver_postgresql.dbapi as adbc

    from asana_assets.lib.connections import store as stores
    from asana_assets.lib.connections.records import Connection, Tokens
    from asana_assets.lib.connections.store import TokenStore
    from asana_assets.lib.storage.documents import PostgresDocuments
    from asana_assets.lib.storage.sql import ident, libpq_url
    from asana_assets_tests.support import POSTGRES_URL as URL

    monkeypatch.setattr(stores, "SCHEMA", schema)
    assert isinstance(stores.storage_at(URL).documents, PostgresDocuments)
    secret = "2/1209/postgres-store:do-not-leak-9d3"
    store = TokenStore.at(URL, Fernet.generate_key().decode())
    connection = Connection(auth_method="service_account", base_url="http://x/api/1.0", workspace_gid="1",
                            user_gid="2", user_name="Admin", user_email="admin@example.com")
    store.save(connection, Tokens(access_token=secret))
    assert store.tokens(connection.id).access_token.get_secret_value() == secret
    with adbc.connect(libpq_url(URL)) as db, db.cursor() as cur:
        cur.execute(f"SELECT id, record::text FROM {ident(schema)}.{ident('connections')}")
        [(name, stored)] = cur.fetchall()
    assert name == "connections"  # one document holds every record
    assert connection.id in stored and secret not in stored and "do-not-leak" not in stored


def test_writers_in_parallel_lose_no_update(tmp_path, keys):
    """Runs of several connections write the store at once; none undoes another's change."""
    path = tmp_path / "c.json"
    store = TokenStore.at(path, keys)
    ids = [connect_service_account_offline(store) for _ in range(4)]

    def bump(connection_id):
        for hour in range(12):
            TokenStore.at(path, keys).update(connection_id, full_sync_hour=hour)

    threads = [threading.Thread(target=bump, args=(cid,)) for cid in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [store.get(cid).full_sync_hour for cid in ids] == [11] * 4


def test_an_oauth_connection_is_revoked_before_it_is_removed(tmp_path, keys):
    store = TokenStore.at(tmp_path / "c.json", keys)
    oauth = Connection(auth_method="oauth", base_url="http://asana", workspace_gid="1", user_gid="2",
                       user_name="Admin", user_email="admin@example.com")
    store.save(oauth, Tokens(access_token=SecretStr("a"), refresh_token=SecretStr("r")))
    with pytest.raises(ConnectionProblem, match="revoke it first"):
        store.remove(oauth.id)
    store.forget_tokens(oauth)
    store.remove(oauth.id)
    assert store.connections() == []


def connect_service_account_offline(store: TokenStore) -> str:
    connection = Connection(auth_method="service_account", base_url="http://asana", workspace_gid="1",
                            user_gid="2", user_name="Admin", user_email="admin@example.com")
    store.save(connection, Tokens(access_token=SecretStr("key")))
    return connection.id


# -- a stored token goes only where it was granted

def point_elsewhere(path, connection_id, base_url):
    """What someone who can edit the store (but holds no key) can do: change a record's base URL."""
    records = json.loads(path.read_text())
    records[connection_id]["connection"]["base_url"] = base_url
    path.write_text(json.dumps(records))


def test_an_edited_base_url_is_refused_and_nothing_is_sent_there(simulator, tmp_path, keys, monkeypatch, capsys):
    from asana_assets.defs.resources.asana import AsanaResource
    from asana_assets.lib.connections.session import whoami

    path = tmp_path / "c.json"
    connection = connect_service_account(simulator.base_url, DEMO_TOKEN, TokenStore.at(path, keys))
    with Simulator(generate_world(seed=4, tasks=10, now=NOW)) as other:
        point_elsewhere(path, connection.id, other.base_url)
        expected = (
            f"connection {connection.id} names the base URL {other.base_url}, but its tokens were granted for "
            f"{simulator.base_url}; nothing was sent: put its base_url back to {simulator.base_url} in the "
            "connection store (it was changed there), or reconnect the integration at the new address"
        )
        with pytest.raises(ConnectionProblem) as refused:
            TokenStore.at(path, keys).tokens(connection.id)
        assert str(refused.value) == expected
        monkeypatch.setenv("ASANA_CONNECTION_KEYS", keys)
        asana = AsanaResource(connection_id=connection.id, connections_file=str(path))
        with pytest.raises(ConnectionProblem, match="nothing was sent"):
            asana.run(whoami)
        assert cli.main(["--store", str(path), "validate", connection.id]) == 0  # recorded, not raised
        assert other.api.stats.total == 0 and other.api.oauth.requests.total() == 0
    validated = TokenStore.at(path, keys).get(connection.id)
    assert validated.status == "error" and validated.last_error == expected  # not expired: putting it back cures it
    assert DEMO_TOKEN not in capsys.readouterr().out
    point_elsewhere(path, connection.id, simulator.base_url + "/")  # the same address, spelled with a slash
    assert TokenStore.at(path, keys).tokens(connection.id).access_token.get_secret_value() == DEMO_TOKEN


def test_tokens_stored_before_sealing_ask_for_rotate_key_then_work(simulator, tmp_path, keys, capsys, monkeypatch):
    """A store written by an earlier version: tokens encrypted without their base URL."""
    path = tmp_path / "c.json"
    connection = connect_service_account(simulator.base_url, DEMO_TOKEN, TokenStore.at(path, keys))
    records = json.loads(path.read_text())
    earlier = {"access_token": DEMO_TOKEN, "refresh_token": None, "expires_at": None}
    records[connection.id]["tokens"] = Fernet(keys).encrypt(json.dumps(earlier).encode()).decode()
    path.write_text(json.dumps(records))
    with pytest.raises(ConnectionProblem) as refused:
        TokenStore.at(path, keys).tokens(connection.id)
    assert refused.value.cause == (
        f"connection {connection.id}'s tokens were stored before tokens were sealed with their base URL"
    )
    assert "`asana-connections rotate-key`" in refused.value.fix
    monkeypatch.setenv("ASANA_CONNECTION_KEYS", keys)
    assert cli.main(["--store", str(path), "list"]) == 0
    assert simulator.base_url in capsys.readouterr().out  # what the operator checks before sealing
    assert cli.main(["--store", str(path), "rotate-key"]) == 0
    assert TokenStore.at(path, keys).tokens(connection.id).base_url == simulator.base_url
    point_elsewhere(path, connection.id, "http://127.0.0.1:9/api/1.0")  # sealed now: an edit is refused
    with pytest.raises(ConnectionProblem, match="nothing was sent"):
        TokenStore.at(path, keys).tokens(connection.id)


def test_the_postgres_store_adopts_the_records_earlier_versions_kept(schema, server, monkeypatch, tmp_path):
    """Earlier versions kept a row per connection, first in the warehouse's schema, then in the
    store's own: the first opening moves the table to the store's schema and its rows into the
    one document, every record and token intact; a store already adopted is left as it is."""
    import adbc_driver_postgresql.dbapi as adbc

    from asana_assets.lib.connections import store as stores
    from asana_assets.lib.storage.sql import ident, libpq_url
    from asana_assets_tests.support import POSTGRES_URL as URL

    own = f"{schema}_connections"  # throwaway stand-ins for asana_connections and asana
    monkeypatch.setattr(stores, "SCHEMA", own)
    monkeypatch.setattr(stores, "EARLIER", schema)
    keys = Fernet.generate_key().decode()
    sealer = TokenStore.at(tmp_path / "sealed.json", keys)  # seals the records as a store writes them
    try:
        records = {}
        for name, secret in (("Admin", "k1"), ("Other", "k2")):
            connection = Connection(auth_method="service_account", base_url="http://x/api/1.0", workspace_gid="1",
                                    user_gid="2", user_name=name, user_email="admin@example.com")
            sealer.save(connection, Tokens(access_token=SecretStr(secret)))
            records[connection.id] = (connection, secret)
        with adbc.connect(libpq_url(URL)) as db, db.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {ident(schema)}")
            cur.execute(f"CREATE TABLE {ident(schema)}.connections (id text PRIMARY KEY, record jsonb NOT NULL)")
            for cid, record in sealer.storage.load().items():
                cur.execute(f"INSERT INTO {ident(schema)}.connections VALUES ($1, $2::jsonb)", (cid, json.dumps(record)))
            db.commit()

        now = TokenStore.at(URL, keys)
        assert sorted(c.id for c in now.connections()) == sorted(records)
        for cid, (connection, secret) in records.items():
            assert now.get(cid) == connection
            assert now.tokens(cid).access_token.get_secret_value() == secret
        with adbc.connect(libpq_url(URL)) as db, db.cursor() as cur:
            cur.execute("SELECT to_regclass($1) IS NULL", (f"{ident(schema)}.connections",))
            assert cur.fetchone() == (True,)
            cur.execute(f"SELECT id FROM {ident(own)}.connections")
            assert cur.fetchall() == [("connections",)]

        gone, *kept = records
        now.remove(gone)
        assert sorted(c.id for c in TokenStore.at(URL, keys).connections()) == sorted(kept)  # not adopted again
    finally:
        with server.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {ident(own)} CASCADE")
        server.commit()


def test_a_failed_sync_tells_a_known_cause_and_never_an_unknown_errors_text():
    """What `asana-connections sync` prints of a failed run's steps."""
    import dagster as dg

    @dg.asset
    def refused():
        raise ConnectionExpired()

    @dg.asset
    def broken():
        raise RuntimeError(f"the proxy answered 502 to Bearer {DEMO_TOKEN}")

    result = dg.materialize([refused, broken], raise_on_error=False)
    assert sorted(cli._step_failures(result)) == [
        "Asana no longer accepts this connection's authorization: reconnect the integration",
        "unexpected error (RuntimeError), in the run's log",
    ]
