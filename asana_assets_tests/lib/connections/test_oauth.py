"""The OAuth connection flow against the simulator: authorize, exchange, use, refresh, revoke;
and runs that outlast their access tokens."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import dagster as dg
import httpx
import pytest
from cryptography.fernet import Fernet

from asana_assets.lib.asana.client import AuthenticationError
from asana_assets.lib.asana.crawl import crawl
from asana_assets.lib.connections.oauth import (
    OAuthApp,
    OAuthError,
    access_token,
    complete_authorization,
    fresh_tokens,
    revoke,
    start_authorization,
)
from asana_assets.lib.connections.session import OAuthRefresher, Quota, run_with_client, whoami
from asana_assets.lib.connections.store import TokenStore
from asana_assets.lib.connections.troubleshooting import (
    RECONNECT,
    ConnectionExpired,
    ConnectionProblem,
    ConnectionUnavailable,
    troubleshoot,
)
from asana_assets.simulator import Simulator, SimulatorConfig, generate_world
from asana_assets.simulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI
from asana_assets_tests.support.oauth import later
from asana_assets_tests.support.truth import assert_matches_truth

NOW = datetime(2026, 6, 1, tzinfo=UTC)
EXPIRED = "Asana no longer accepts this connection's authorization: reconnect the integration"
QUOTA = Quota(requests_per_minute=1_000_000, max_concurrency=50, sensor_share=0.1)  # pacing out of the way


@pytest.fixture()
def simulator():
    with Simulator(generate_world(seed=3, tasks=60, now=NOW), SimulatorConfig(access_token_ttl_seconds=3600)) as sim:
        yield sim


@pytest.fixture()
def app(simulator):
    return OAuthApp(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI, simulator.base_url)


@pytest.fixture()
def key():
    return Fernet.generate_key().decode()


@pytest.fixture()
def store(tmp_path, key):
    return TokenStore.at(tmp_path / "connections.json", key)


def approve(pending) -> str:
    """What a browser does: open the authorization URL and land on the redirect."""
    response = httpx.get(pending.url)
    assert response.status_code == 302
    return response.headers["location"]


def connect(app, store):
    pending = start_authorization(app)
    return complete_authorization(app, pending, approve(pending), store)


def through(app, store, connection, work, quota=QUOTA):
    """``work(client)`` in a run of the stored connection, as the Dagster resource runs it."""
    return run_with_client(app.base_url, OAuthRefresher(app, store, connection.id), quota, work)


def me(simulator, token):
    return httpx.get(f"{simulator.base_url}/users/me", headers={"Authorization": f"Bearer {token}"})


def test_full_flow_authorize_use_expire_refresh_revoke(simulator, app, store):
    pending = start_authorization(app)
    assert "code_challenge_method=S256" in pending.url and f"state={pending.state}" in pending.url
    connection = complete_authorization(app, pending, approve(pending), store)
    assert connection.auth_method == "oauth" and connection.status == "active"
    assert connection.user_gid == simulator.world.default_user
    token = access_token(app, store, connection.id)
    refresh_token = store.tokens(connection.id).refresh_token.get_secret_value()
    assert me(simulator, token).json()["data"]["gid"] == simulator.world.default_user

    simulator.api.oauth.advance(3601)  # expired at Asana, not by the stored clock: the 401 refreshes it
    assert me(simulator, token).status_code == 401
    assert through(app, store, connection, whoami)["gid"] == simulator.world.default_user
    fresh = access_token(app, store, connection.id)
    assert fresh != token and me(simulator, fresh).status_code == 200

    assert store.tokens(connection.id).refresh_token.get_secret_value() == refresh_token  # kept across refreshes
    # The user revokes the app in Asana: its tokens stop working and the refresh is refused.
    httpx.post(app.endpoint("revoke"), data={"client_id": app.client_id, "client_secret": app.client_secret, "token": refresh_token}).raise_for_status()
    assert me(simulator, fresh).status_code == 401
    with pytest.raises(ConnectionExpired):
        through(app, store, connection, whoami)
    expired = store.get(connection.id)
    assert expired.status == "expired" and expired.last_error == EXPIRED


def test_a_token_close_to_expiry_is_refreshed_before_use(simulator, app, store):
    connection = connect(app, store)
    first = store.tokens(connection.id).access_token.get_secret_value()
    assert access_token(app, store, connection.id) == first  # an hour to go: kept
    later(simulator, store, connection.id, 3600 - 60)  # a minute to go, inside the five minutes' margin
    fresh = access_token(app, store, connection.id)
    assert fresh != first and me(simulator, fresh).status_code == 200


def test_a_short_lived_token_is_refreshed_in_its_last_quarter(simulator, app, store):
    simulator.config.access_token_ttl_seconds = 60  # shorter than the five minutes' margin
    connection = connect(app, store)
    first = store.tokens(connection.id).access_token.get_secret_value()
    later(simulator, store, connection.id, 44)
    assert access_token(app, store, connection.id) == first
    later(simulator, store, connection.id, 2)  # 14 s of its 60 to go
    assert access_token(app, store, connection.id) != first
    assert simulator.api.oauth.issued == {"authorization_code": 1, "refresh_token": 1}


def test_a_run_refreshes_a_due_token_before_the_request(simulator, app, store):
    connection = connect(app, store)
    later(simulator, store, connection.id, 3590)
    simulator.api.stats.reset()
    assert through(app, store, connection, whoami)["gid"] == simulator.world.default_user
    assert simulator.api.oauth.issued["refresh_token"] == 1
    assert simulator.api.stats.total == 1 and simulator.api.stats.by_status[401] == 0  # no request refused


def test_requests_refused_together_refresh_once_and_are_each_sent_again(simulator, app, store):
    connection = connect(app, store)
    simulator.api.oauth.advance(3601)  # expired at Asana, not by the stored clock
    simulator.api.stats.reset()

    async def at_once(client):
        return await asyncio.gather(*(client.get_data("/users/me") for _ in range(2)))

    assert [user["gid"] for user in through(app, store, connection, at_once)] == [simulator.world.default_user] * 2
    assert simulator.api.oauth.issued["refresh_token"] == 1
    assert simulator.api.stats.by_status == {401: 2, 200: 2}


def test_processes_refused_at_once_refresh_once(simulator, app, store, tmp_path, key):
    """Each process opens the store itself; those that waited on its lock find the token
    refreshed there and use it: Asana limits refreshes."""
    connection = connect(app, store)
    refused = store.tokens(connection.id).access_token.get_secret_value()
    stores = [TokenStore.at(tmp_path / "connections.json", key) for _ in range(4)]
    with ThreadPoolExecutor(len(stores)) as processes:
        fresh = list(processes.map(lambda own: fresh_tokens(app, own, connection.id, refused), stores))
    assert simulator.api.oauth.issued["refresh_token"] == 1
    assert len({tokens.access_token.get_secret_value() for tokens in fresh}) == 1
    assert fresh[0] == store.tokens(connection.id) and fresh[0].access_token.get_secret_value() != refused


def test_a_401_that_a_refresh_cannot_cure_is_raised(simulator, app, store):
    connection = connect(app, store)
    simulator.config.refusals = {"/users/me": 401}  # whatever the token
    simulator.api.stats.reset()
    with pytest.raises(AuthenticationError) as refused:
        through(app, store, connection, whoami)
    assert refused.value.status == 401 and troubleshoot(refused.value).fix == RECONNECT
    assert simulator.api.oauth.issued["refresh_token"] == 1 and simulator.api.stats.by_status == {401: 2}


def test_a_bare_token_refused_fails_with_the_clear_error(simulator):
    with pytest.raises(AuthenticationError) as refused:
        run_with_client(simulator.base_url, "not-a-token", QUOTA, whoami)
    assert refused.value.status == 401 and "not-a-token" not in str(refused.value)
    assert simulator.api.stats.by_status == {401: 1} and simulator.api.oauth.requests.total() == 0


def test_a_refresh_refused_mid_run_expires_the_connection(simulator, app, store):
    connection = connect(app, store)
    for grant in simulator.api.oauth._refresh_tokens.values():
        grant.revoked = True  # the user removed the app in Asana: its tokens answer 401, the refresh invalid_grant
    with pytest.raises(ConnectionExpired):
        through(app, store, connection, whoami)
    expired = store.get(connection.id)
    assert expired.status == "expired" and expired.last_error == EXPIRED


@pytest.mark.slow
def test_a_crawl_outlasting_its_access_tokens_completes_in_one_run(simulator, app, store):
    """Tokens of 2 s, a crawl of about 8: refreshed as it goes, with no request repeated but those
    answered 401, and the same tables as a crawl that no expiry interrupts."""
    async def crawled(client):
        return await crawl(client)

    connection = connect(app, store)
    simulator.api.stats.reset()
    through(app, store, connection, crawled)
    unexpired = simulator.api.stats.total

    simulator.config.access_token_ttl_seconds = 2
    simulator.config.latency_ms = 300
    connection = connect(app, store)
    simulator.api.stats.reset()
    start = time.monotonic()
    result = through(app, store, connection, crawled, Quota(1_000_000, max_concurrency=4, sensor_share=0.1))
    elapsed = time.monotonic() - start

    assert elapsed > 3 * 2  # several tokens' lives
    assert simulator.api.oauth.issued["refresh_token"] >= 3
    assert simulator.api.stats.total - simulator.api.stats.by_status[401] == unexpired
    assert_matches_truth(result.tables, simulator.world.ground_truth())


def test_revoke_forgets_tokens_and_asana_refuses_them(simulator, app, store):
    connection = connect(app, store)
    token = access_token(app, store, connection.id)
    assert revoke(store, connection.id, app).status == "revoked"
    assert me(simulator, token).status_code == 401
    with pytest.raises(ConnectionExpired):
        access_token(app, store, connection.id)


def test_wrong_state_is_refused(app, store):
    pending = start_authorization(app)
    redirect = approve(pending).replace(f"state={pending.state}", "state=forged")
    with pytest.raises(OAuthError, match="state differs"):
        complete_authorization(app, pending, redirect, store)
    assert store.connections() == []


def test_wrong_verifier_is_refused(app, store):
    pending = start_authorization(app)
    other = start_authorization(app)  # same state, another PKCE verifier
    forged = type(pending)(pending.url, pending.state, other.code_verifier)
    with pytest.raises(OAuthError, match="invalid_grant"):
        complete_authorization(app, forged, approve(pending), store)
    assert store.connections() == []


def test_a_bare_pasted_code_is_accepted(app, store):
    pending = start_authorization(app)
    code = httpx.URL(approve(pending)).params["code"]
    assert complete_authorization(app, pending, code, store).status == "active"


def test_denied_authorization_says_what_to_do(simulator, app, store):
    simulator.config.oauth_deny = True
    pending = start_authorization(app)
    with pytest.raises(OAuthError, match="access_denied") as refused:
        complete_authorization(app, pending, approve(pending), store)
    assert "workspace admin" in refused.value.fix


def test_a_non_admin_login_is_refused_and_its_grant_revoked(simulator, app, store):
    world = simulator.world
    member = next(
        m for m in world.objects.values() if getattr(m, "resource_type", "") == "workspace_membership" and not m.is_admin and m.is_active
    )
    simulator.config.oauth_approver = member.user
    pending = start_authorization(app)
    with pytest.raises(Exception, match="not an admin of workspace"):
        complete_authorization(app, pending, approve(pending), store)
    assert store.connections() == []
    assert all(grant.revoked for grant in simulator.api.oauth._refresh_tokens.values())


def test_the_simulator_checks_clients_and_redirects(app):
    authorize = app.endpoint("authorize")
    bad_redirect = httpx.get(authorize, params={"client_id": app.client_id, "redirect_uri": "https://evil.example/cb", "response_type": "code", "state": "s"})
    assert bad_redirect.status_code == 400  # never redirected to an unregistered URI
    no_state = httpx.get(authorize, params={"client_id": app.client_id, "redirect_uri": app.redirect_uri, "response_type": "code"})
    assert "error=invalid_request" in no_state.headers["location"]
    wrong_secret = httpx.post(app.endpoint("token"), data={"client_id": app.client_id, "client_secret": "x", "grant_type": "refresh_token"})
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    unknown = httpx.post(app.endpoint("revoke"), data={"client_id": app.client_id, "client_secret": app.client_secret, "token": "unknown"})
    assert unknown.status_code == 200


def test_a_stored_oauth_connection_syncs_until_it_is_revoked(simulator, app, tmp_path, monkeypatch):
    """The Dagster resource syncs through a stored OAuth connection, refreshing its expired
    access token; once revoked, the sync and the connection check both say to reconnect."""
    from asana_assets.defs.raw.checks import connection_valid
    from asana_assets.defs.resources.asana import AsanaResource
    from asana_assets.lib.asana.crawl import crawl

    key = Fernet.generate_key().decode()
    monkeypatch.setenv("ASANA_CONNECTION_KEYS", key)
    store = TokenStore.at(tmp_path / "connections.json", key)
    connection = connect(app, store)
    asana = AsanaResource(
        connection_id=connection.id, connections_file=str(tmp_path / "connections.json"), requests_per_minute=60_000,
        oauth_client_id=DEMO_CLIENT_ID, oauth_client_secret=DEMO_CLIENT_SECRET, oauth_redirect_uri=DEMO_REDIRECT_URI,
    )

    def sync(table: str):
        return asana.run(lambda client: crawl(client, tables={table})).tables[table]

    assert sync("tasks").num_rows == len(simulator.world.ground_truth()["tasks"])
    asana.record_sync()
    assert store.get(connection.id).last_synced_at is not None
    simulator.api.oauth.advance(3601)  # expired at Asana: the 401 refreshes it and that request is sent again
    assert sync("users").num_rows > 0
    revoke(store, connection.id, app)
    with pytest.raises(ConnectionExpired):
        sync("users")
    check = connection_valid(dg.build_asset_check_context(), asana)
    assert not check.passed and "reconnect" in check.description


# -- the token endpoint unavailable: only a refused grant expires a connection

@pytest.fixture()
def quick_backoff(monkeypatch):
    """Retries without the production waits (1, 2, 4 s), so an outage test takes no seconds."""
    from asana_assets.lib.connections import oauth

    monkeypatch.setattr(oauth, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(oauth, "MAX_RETRY_AFTER", 0.01)


def connected_and_stale(simulator, app, store):
    """An OAuth connection whose access token expires within the refresh margin: the next use
    refreshes it."""
    connection = connect(app, store)
    later(simulator, store, connection.id, 3590)
    return connection, store.tokens(connection.id)


@pytest.mark.parametrize("fault", ["503", "500", "429", "drop"])
def test_one_failed_refresh_is_retried_and_the_connection_stays_active(simulator, app, store, quick_backoff, fault):
    connection, stale = connected_and_stale(simulator, app, store)
    simulator.api.oauth.fail_token_requests(1, fault)
    fresh = access_token(app, store, connection.id)
    assert fresh != stale.access_token.get_secret_value() and me(simulator, fresh).status_code == 200
    # exchange, the failed refresh, the retried one: three requests reached the token endpoint
    assert simulator.api.oauth.requests["token"] == 3
    kept = store.get(connection.id)
    assert kept.status == "active" and kept.last_error is None


def test_an_outage_of_the_token_endpoint_fails_retryably_and_expires_nothing(simulator, app, store, quick_backoff):
    connection, stale = connected_and_stale(simulator, app, store)
    simulator.api.oauth.fail_token_requests(100, "503")
    with pytest.raises(ConnectionUnavailable) as unavailable:
        access_token(app, store, connection.id)
    assert unavailable.value.retryable
    assert str(unavailable.value) == (
        "Asana's OAuth token endpoint could not answer (HTTP 503, 4 tries): "
        "nothing to reconnect, the connection stays active: a later run or retry refreshes it"
    )
    assert simulator.api.oauth.requests["token"] == 1 + 4  # the exchange, then four tries
    kept = store.get(connection.id)
    assert kept.status == "active" and kept.last_error is None
    assert store.tokens(connection.id) == stale  # nothing was replaced
    # Asana is back: the same connection refreshes without anyone reconnecting.
    simulator.api.oauth.fail_token_requests(0)
    assert me(simulator, access_token(app, store, connection.id)).status_code == 200


def test_a_refused_grant_expires_the_connection(simulator, app, store, quick_backoff):
    connection, _ = connected_and_stale(simulator, app, store)
    for grant in simulator.api.oauth._refresh_tokens.values():
        grant.revoked = True  # the user removed the app in Asana: invalid_grant
    with pytest.raises(ConnectionExpired):
        access_token(app, store, connection.id)
    assert simulator.api.oauth.requests["token"] == 2  # a refusal is final: no retry
    expired = store.get(connection.id)
    assert expired.status == "expired" and expired.last_error == EXPIRED


def test_a_refused_app_secret_is_a_settings_fault_not_an_expiry(simulator, app, store, quick_backoff):
    connection, _ = connected_and_stale(simulator, app, store)
    wrong = OAuthApp(app.client_id, "not-the-secret", app.redirect_uri, app.base_url)
    with pytest.raises(OAuthError) as refused:
        access_token(wrong, store, connection.id)
    assert not isinstance(refused.value, ConnectionExpired)
    assert refused.value.cause == "Asana refused the OAuth request (HTTP 401 invalid_client)"
    assert "ASANA_OAUTH_CLIENT_SECRET" in refused.value.fix
    assert store.get(connection.id).status == "active"


def test_a_refresh_goes_only_to_the_base_url_its_tokens_were_granted_for(simulator, app, store):
    """An app pointed elsewhere (a connection read after its record was edited) sends nothing."""
    connection, _ = connected_and_stale(simulator, app, store)
    with Simulator(generate_world(seed=4, tasks=10, now=NOW)) as other:
        elsewhere = OAuthApp(app.client_id, app.client_secret, app.redirect_uri, other.base_url)
        with pytest.raises(ConnectionProblem, match="its tokens were granted for"):
            access_token(elsewhere, store, connection.id)
        with pytest.raises(ConnectionProblem, match="its tokens were granted for"):
            revoke(store, connection.id, elsewhere)
        assert other.api.oauth.requests.total() == 0 and other.api.stats.total == 0
    assert simulator.api.oauth.requests["token"] == 1  # only the exchange: no refresh was sent anywhere
