"""The resources as the settings configure them."""


from __future__ import annotations

from pathlib import Path

import dagster as dg

from asana_assets import demo, settings
from asana_assets.defs.resources.asana import AsanaResource, DemoAsanaResource
from asana_assets.defs.resources.compliance import ComplianceResource
from asana_assets.defs.resources.warehouse import WarehouseResource


def _from(setting: settings.Setting):
    """An EnvVar when the variable is set (resolved at launch, so no value is baked in), else the default.
    (A share is read now: Dagster has no EnvVar for a float.)"""
    if not setting.is_set or isinstance(setting.default, float):
        return setting.get()
    return dg.EnvVar.int(setting.name) if isinstance(setting.default, int) else dg.EnvVar(setting.name)


def _quota_store():
    """Where the token budgets are shared: the setting, else the warehouse's Postgres, else a
    folder of the warehouse (beside its sync state)."""
    if settings.QUOTA_STORE.is_set:
        return _from(settings.QUOTA_STORE)
    if settings.POSTGRES_URL.is_set:
        return _from(settings.POSTGRES_URL)
    return str(Path(settings.WAREHOUSE_DIR.get()) / "state" / "quota")


def _asana() -> AsanaResource:
    """The demo's when ASANA_DEMO asks for it (the one place the demo is chosen), else the
    connection the settings configure."""
    shared = {
        "workspace_gid": _from(settings.WORKSPACE_GID),
        "max_concurrency": _from(settings.MAX_CONCURRENCY),
        "quota_store": _quota_store(),
        "sensor_quota_share": _from(settings.SENSOR_QUOTA_SHARE),
        "full_sync_hour": _from(settings.FULL_SYNC_HOUR),
        "poll_minutes": _from(settings.POLL_MINUTES),
    }
    if settings.DEMO.get():
        return DemoAsanaResource(**shared)  # the demo organisation's quota is its own
    return AsanaResource(
        **shared,
        access_token=_from(settings.ACCESS_TOKEN),
        connection_id=_from(settings.CONNECTION_ID),
        connections_file=_from(settings.CONNECTION_STORE),
        oauth_client_id=_from(settings.OAUTH_CLIENT_ID),
        oauth_client_secret=_from(settings.OAUTH_CLIENT_SECRET),
        oauth_redirect_uri=_from(settings.OAUTH_REDIRECT_URI),
        base_url=_from(settings.BASE_URL),
        requests_per_minute=_from(settings.REQUESTS_PER_MINUTE),
    )


def configured_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources as the settings configure them."""
    return {
        "asana": _asana(),
        "warehouse": WarehouseResource(
            directory=_from(settings.WAREHOUSE_DIR),
            postgres_url=_from(settings.POSTGRES_URL),
            postgres_schema=_from(settings.POSTGRES_SCHEMA),
        ),
        "compliance": ComplianceResource(**demo.COMPLIANCE) if settings.DEMO.get() else ComplianceResource(),
    }
