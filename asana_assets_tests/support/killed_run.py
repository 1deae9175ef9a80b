"""An incremental sync that stops dead inside its publication's Postgres transaction, while
loading ``tasks``: it writes a marker file there and waits to be killed (test_pipeline_postgres
sends SIGKILL)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from asana_assets.lib.storage.postgres import PostgresWarehouse
from asana_assets_tests.support.pipeline import ASSETS, RUN_CHECKS, materialize, resources

STALLED_TABLE = "tasks"


def main() -> None:
    env = os.environ
    marker, original = Path(env["TEST_MARKER"]), PostgresWarehouse._remove_absent

    def stalled(self, cur, table, *args):
        removed = original(self, cur, table, *args)  # upserted and pruned, not yet committed
        if table == STALLED_TABLE:
            marker.write_text(STALLED_TABLE)
            time.sleep(600)
        return removed

    PostgresWarehouse._remove_absent = stalled
    materialize(
        [*ASSETS, *RUN_CHECKS],
        resources=resources(env["TEST_ASANA_BASE_URL"], Path(env["TEST_WAREHOUSE_DIR"]),
                            (env["TEST_POSTGRES_URL"], env["TEST_POSTGRES_SCHEMA"]), as_of=env["TEST_AS_OF"]),
        run_config={"ops": {"asana_raw_sync": {"config": {"mode": "incremental"}}}},
    )


if __name__ == "__main__":
    main()
