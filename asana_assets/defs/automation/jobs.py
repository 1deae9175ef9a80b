"""The sync jobs; each runs one connection (partition) at a time."""

import dagster as dg

from asana_assets.defs.raw.assets import SyncConfig, asana_raw_sync
from asana_assets.defs.raw.checks import FRESHNESS_CHECK

SYNC = dg.AssetSelection.all() - dg.AssetSelection.checks(FRESHNESS_CHECK)  # judged between runs, not by them

full_sync = dg.define_asset_job(
    "asana_full_sync", selection=SYNC,
    description="Crawl every Asana table of a connection, derive the compliance tables, run the monitors, "
                "write the evidence pack.",
)
incremental_sync = dg.define_asset_job(
    "asana_incremental_sync", selection=SYNC,
    config=dg.RunConfig(ops={asana_raw_sync.node_def.name: SyncConfig(mode="incremental")}),
    description="Apply the changes a connection's events feeds report, then re-derive and re-check everything.",
)
reconcile_sync = dg.define_asset_job(
    "asana_reconcile_sync", selection=SYNC,
    config=dg.RunConfig(ops={asana_raw_sync.node_def.name: SyncConfig(mode="reconcile")}),
    description="List every project's sections, members and tasks and re-read only what changed (what the events "
                "feeds missed, deletions included), then re-derive and re-check everything.",
)
