"""Settings a sync would trip over after a long crawl fail before it, each naming what to change."""

from __future__ import annotations

import os

import pytest

from asana_assets.lib.connections.troubleshooting import ConnectionProblem
from asana_assets.lib.preflight import check_postgres, check_workspace_gid, check_writable
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
