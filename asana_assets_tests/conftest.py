"""Shared fixtures: a real PostgreSQL server and a throwaway schema per test, and Asana's OpenAPI spec."""

from __future__ import annotations

import os
import uuid

import adbc_driver_postgresql.dbapi as adbc
import pytest
from xdist.scheduler import LoadScopeScheduling

from asana_assets.lib.storage.postgres import ident, libpq_url
from asana_assets_tests.support import POSTGRES_URL as URL
from asana_assets_tests.support.oas import load_oas


@pytest.fixture(scope="session")
def server():
    try:
        connection = adbc.connect(libpq_url(URL))
    except adbc.Error as error:
        if os.environ.get("CI"):
            pytest.fail(f"Postgres at {URL} is unreachable, and CI must run these tests: {error}")
        pytest.skip(f"no Postgres at {URL} (set ASANA_TEST_POSTGRES_URL): {error}")
    yield connection
    connection.close()


@pytest.fixture
def schema(server):
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    with server.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {ident(name)} CASCADE")
    server.commit()


@pytest.fixture(scope="session")
def oas():
    return load_oas()


CHROMIUM = "/usr/bin/chromium"  # the distribution's browser: no browser is downloaded


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches the distribution's Chromium."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing, and CI must run the browser tests (.ci/run installs it)")
        pytest.skip(f"no {CHROMIUM} (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


def pytest_xdist_auto_num_workers(config):
    """Two workers a core: most end-to-end tests wait on a simulator, a subprocess or a pace, so
    one worker a core leaves about half the machine idle."""
    return 2 * (os.cpu_count() or 1)


# Modules whose tests share one costly module fixture (a demo synced, the UI started): their tests
# go to one worker as one unit, so the fixture is made once, not once per worker.
SHARED_FIXTURE = ("asana_assets_tests/defs/test_ui.py", "asana_assets_tests/test_period_report.py")


class SharedFixtureUnits(LoadScopeScheduling):
    """pytest-xdist's load balancing, one test at a time, except the modules of SHARED_FIXTURE:
    each a unit, its browser tests (pytest-playwright's ``[chromium]``) a unit of their own, since
    they must run last on their worker. Units go out in collection order (see below)."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        if module not in SHARED_FIXTURE:
            return nodeid
        return module + (" browser" if "[chromium" in nodeid else "")


def pytest_xdist_make_scheduler(config, log):
    config.option.loadscopereorder = False  # collection order: slow first, browser last
    return SharedFixtureUnits(config, log)


def pytest_collection_modifyitems(items):
    """Slow tests first, browser tests last; pytest-xdist's workers take tests in this order.

    Slow first, so the workers share out the long tests and finish together on short ones.
    Browser last: Playwright's sync API keeps an event loop marked running in the main thread
    for the rest of the session (of each worker), where ``asyncio.run`` would refuse to start."""
    items.sort(key=lambda item: (uses_browser(item), item.get_closest_marker("slow") is None))


def uses_browser(item) -> bool:
    """Whether the test drives Playwright (its ``page`` fixture, not another fixture of that name)."""
    return "playwright" in getattr(item, "fixturenames", ())
