"""Every ``ASANA_*`` setting: its name, default and meaning. No other module reads them.

A setting is read when it is used, never at import, so a process that changes its environment
(a test, the demo) is seen as it is then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ASANA_API_BASE = "https://app.asana.com/api/1.0"
SWITCH = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | bool | int | float | None
    meaning: str

    @property
    def is_set(self) -> bool:
        return bool(os.environ.get(self.name))

    def get(self) -> str | bool | int | float | None:
        """The environment's value (a switch or a number where the default is one), else the default."""
        raw = os.environ.get(self.name)
        if not raw:
            return self.default
        if isinstance(self.default, bool):  # before the numbers: a bool is an int too
            if raw.lower() not in SWITCH:
                raise ValueError(f"{self.name} must be 1, true or yes (on), or 0, false or no (off), not {raw!r}")
            return SWITCH[raw.lower()]
        if not isinstance(self.default, int | float):
            return raw
        try:
            return type(self.default)(raw)
        except ValueError:
            kind = "a whole number" if isinstance(self.default, int) else "a number"
            raise ValueError(f"{self.name} must be {kind}, not {raw!r}") from None


# -- the demo: the simulator's generated organisation instead of a real Asana (demo.py)
DEMO = Setting(
    "ASANA_DEMO", False,
    "Sync the demo simulator's generated organisation (1, true or yes); refused while anything points at a "
    "real Asana or ASANA_POSTGRES_URL is set",
)
DEMO_BASE_URL = Setting(
    "ASANA_DEMO_BASE_URL", None,
    "Set by the demo, not by hand: the API base of the simulator it serves, for the processes it starts",
)

# -- the Asana connection configured in the environment (the partition `default`)
ACCESS_TOKEN = Setting("ASANA_ACCESS_TOKEN", "", "Personal access token or service-account token")
CONNECTION_ID = Setting("ASANA_CONNECTION_ID", None, "A stored connection to use instead of a token")
BASE_URL = Setting("ASANA_BASE_URL", ASANA_API_BASE, "API base URL")
WORKSPACE_GID = Setting("ASANA_WORKSPACE_GID", None, "The workspace to sync; unset: every workspace the token sees")
REQUESTS_PER_MINUTE = Setting(
    "ASANA_REQUESTS_PER_MINUTE", 1500, "Request budget per minute: 1500 on paid plans, 150 on free ones"
)
MAX_CONCURRENCY = Setting("ASANA_MAX_CONCURRENCY", 50, "Requests in flight at once (Asana allows 50 reads)")
FULL_SYNC_HOUR = Setting("ASANA_FULL_SYNC_HOUR", 3, "UTC hour of the default connection's daily reconcile and weekly full sync")
POLL_MINUTES = Setting("ASANA_POLL_MINUTES", 1, "Least minutes between two polls of the default connection's events")

# -- one quota per token, shared by every process that uses it (runs, the events sensor's polls)
SENSOR_QUOTA_SHARE = Setting(
    "ASANA_SENSOR_QUOTA_SHARE", 0.1,
    "The events sensor's cap: its share of each token's requests a minute and reads in flight; runs take what it "
    "leaves (the rest alone, when the shared budget is out of reach)",
)
QUOTA_STORE = Setting(
    "ASANA_QUOTA_STORE", None,
    "Where the processes using a token share its budget: a postgresql:// URL or a folder; unset: "
    "ASANA_POSTGRES_URL when set, else the folder state/quota of the warehouse",
)

# -- stored connections
CONNECTION_STORE = Setting(
    "ASANA_CONNECTION_STORE", "asana_connections.json",
    "The connection store: a file path, or a postgresql:// URL (schema asana_connections)",
)
CONNECTION_KEYS = Setting(
    "ASANA_CONNECTION_KEYS", "", "Fernet keys of the stored tokens, comma-separated, newest first",
)
OAUTH_CLIENT_ID = Setting("ASANA_OAUTH_CLIENT_ID", "", "The registered OAuth app's client id")
OAUTH_CLIENT_SECRET = Setting("ASANA_OAUTH_CLIENT_SECRET", "", "The OAuth app's client secret")
OAUTH_REDIRECT_URI = Setting("ASANA_OAUTH_REDIRECT_URI", "", "The OAuth app's redirect URI")
SERVICE_ACCOUNT_KEY = Setting(
    "ASANA_SERVICE_ACCOUNT_KEY", "", "A service-account key for `asana-connections connect service-account`",
)

# -- where the tables land
WAREHOUSE_DIR = Setting("ASANA_WAREHOUSE_DIR", "warehouse", "Root folder of the Parquet warehouse")
POSTGRES_URL = Setting(
    "ASANA_POSTGRES_URL", None, "Postgres to mirror every table into (never the demo's); unset: Parquet only",
)
POSTGRES_SCHEMA = Setting("ASANA_POSTGRES_SCHEMA", "asana", "Postgres schema of the default connection's tables")

ALL = (
    DEMO, DEMO_BASE_URL, ACCESS_TOKEN, CONNECTION_ID, BASE_URL, WORKSPACE_GID, REQUESTS_PER_MINUTE, MAX_CONCURRENCY,
    FULL_SYNC_HOUR, POLL_MINUTES, SENSOR_QUOTA_SHARE, QUOTA_STORE, CONNECTION_STORE, CONNECTION_KEYS, OAUTH_CLIENT_ID,
    OAUTH_CLIENT_SECRET, OAUTH_REDIRECT_URI, SERVICE_ACCOUNT_KEY, WAREHOUSE_DIR, POSTGRES_URL, POSTGRES_SCHEMA,
)
