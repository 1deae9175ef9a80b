"""Shared fixtures: a real PostgreSQL server and a throwaway schema per test, and Asana's OpenAPI spec."""

from __future__ import annotations

import os
import uuid

import adbc_driver_postgresql.dbapi as adbc
import pytest

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


def pytest_collection_modifyitems(items):
    """Slow tests first, browser tests last; pytest-xdist's workers take tests in this order.

    Slow first, so the workers share out the long tests and finish together on short ones.
    Browser last: Playwright's sync API keeps an event loop marked running in the main thread
    for the rest of the session (of each worker), where ``asyncio.run`` would refuse to start."""
    items.sort(key=lambda item: (uses_browser(item), item.get_closest_marker("slow") is None))


def uses_browser(item) -> bool:
    """Whether the test drives Playwright (its ``page`` fixture, not another fixture of that name)."""
    return "playwright" in getattr(item, "fixturenames", ())
