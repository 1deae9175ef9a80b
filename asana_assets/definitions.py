"""The code location: every Dagster definition of the project is assembled here."""

from __future__ import annotations

import os

import dagster as dg

from asana_assets import automation, compliance_assets, demo, raw_assets
from asana_assets.client import ASANA_API_BASE
from asana_assets.connections import DEFAULT_STORE, STORE_ENV
from asana_assets.resources import AsanaResource, ComplianceResource, WarehouseResource


def _env(name: str, default):
    """An EnvVar when the variable is set (resolved at launch), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_int(name: str, default: int):
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def resources() -> dict:
    return {
        "asana": AsanaResource(
            access_token=_env("ASANA_ACCESS_TOKEN", ""),
            connection_id=_env("ASANA_CONNECTION_ID", None),
            connections_file=_env(STORE_ENV, DEFAULT_STORE),
            oauth_client_id=_env("ASANA_OAUTH_CLIENT_ID", ""),
            oauth_client_secret=_env("ASANA_OAUTH_CLIENT_SECRET", ""),
            oauth_redirect_uri=_env("ASANA_OAUTH_REDIRECT_URI", ""),
            base_url=_env("ASANA_BASE_URL", ASANA_API_BASE),
            workspace_gid=_env("ASANA_WORKSPACE_GID", None),
            requests_per_minute=_env_int("ASANA_REQUESTS_PER_MINUTE", 1500),
            max_concurrency=_env_int("ASANA_MAX_CONCURRENCY", 50),
            full_sync_hour=_env_int("ASANA_FULL_SYNC_HOUR", 3),
            poll_minutes=_env_int("ASANA_POLL_MINUTES", 1),
        ),
        "warehouse": WarehouseResource(
            directory=_env("ASANA_WAREHOUSE_DIR", "warehouse"),
            postgres_url=_env("ASANA_POSTGRES_URL", None),
            postgres_schema=_env("ASANA_POSTGRES_SCHEMA", "asana"),
        ),
        "compliance": ComplianceResource(),
    }


demo.ensure_source()

defs = dg.Definitions(
    assets=[raw_assets.asana_raw_sync, *compliance_assets.compliance_assets],
    asset_checks=[
        *raw_assets.raw_checks, *compliance_assets.monitor_checks, *compliance_assets.quality_checks,
        automation.connections_fresh,
    ],
    jobs=[automation.full_sync, automation.incremental_sync],
    schedules=[automation.daily_full_sync],
    sensors=[automation.asana_connections_sensor, automation.asana_events_sensor, automation.asana_freshness_sensor],
    resources=resources(),
    # The steps are light (one async crawl, pandas transforms, checks that read Parquet): running
    # them in the run's own process avoids a Python start-up per step. Scale-out executors are a
    # run-config change away.
    executor=dg.in_process_executor,
)
