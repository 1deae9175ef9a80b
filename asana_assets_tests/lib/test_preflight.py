"""Settings a sync would trip over after a long crawl fail before it, each naming what to change."""

from __future__ import annotations

import os
import socket

import pytest

from asana_assets.lib.connections.troubleshooting import ConnectionProblem, Source
from asana_assets.lib.preflight import check_postgres, check_reachable, check_workspace_gid, check_writable
from asana_assets_tests.support import POSTGRES_URL


@pytest.mark.parametrize("gid", ["12 34/../users", "abc", "12.5", "", "../1"])
def test_a_workspace_gid_that_is_not_digits_is_refused(gid):
    with pytest.raises(ConnectionProblem, match="ASANA_WORKSPACE_GID") as refused:
        check_workspace_gid(gid)
    assert "not a gid" in refused.value.cause


@pytest.mark.parametrize("gid", [None, "1209000000000001", "7"])
def test_a_numeric_or_absent_workspace_gid_passes(gid):
    check_workspace_gid(gid)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission")
def test_a_read_only_warehouse_is_refused(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ConnectionProblem, match="ASANA_WAREHOUSE_DIR"):
            check_writable(tmp_path / "warehouse")
    finally:
        tmp_path.chmod(0o700)


def test_a_warehouse_below_a_file_is_refused(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConnectionProblem, match="not writable"):
        check_writable(tmp_path / "a-file" / "warehouse")
    check_writable(tmp_path / "fine")


def test_an_unreachable_postgres_is_refused_without_its_password():
    with pytest.raises(ConnectionProblem, match="ASANA_POSTGRES_URL") as refused:
        check_postgres("postgresql://someone:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(refused.value)
    check_postgres(POSTGRES_URL)


def _closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: a connection to it is refused
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("url", "cause"), [
    ("http://127.0.0.1:{port}/api/1.0", "(127.0.0.1:{port} refused the connection)"),
    ("https://no-such-host.invalid/api/1.0", "(DNS: the host name no-such-host.invalid does not resolve)"),
    ("app.asana.com/api/1.0", "(not an http:// or https:// URL)"),
])
def test_an_unreachable_base_url_is_refused_naming_the_setting_its_value_and_the_cause(url, cause):
    port = _closed_port()
    url, cause = url.format(port=port), cause.format(port=port)
    with pytest.raises(ConnectionProblem) as refused:
        check_reachable(Source(url, "ASANA_BASE_URL"))
    assert refused.value.cause == f"the Asana API at ASANA_BASE_URL={url} could not be reached {cause}"
    assert refused.value.fix == "check ASANA_BASE_URL and the network between here and there (proxy, firewall, DNS)"


def test_a_base_url_that_takes_a_connection_passes():
    with socket.create_server(("127.0.0.1", 0)) as server:
        check_reachable(Source(f"http://127.0.0.1:{server.getsockname()[1]}/api/1.0", "ASANA_BASE_URL"))
