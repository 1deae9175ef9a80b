"""A warehouse written before a column was added: the next incremental sync is a full one, so
the new column is filled rather than dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import World
from asana_assets_tests.support.pipeline import run_pipeline

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_an_incremental_sync_over_an_older_table_is_a_full_one(tmp_path):
    w = World(now=NOW - timedelta(days=1))
    ws = w.add_workspace("Acme", ["acme.com"])
    ann = w.add_user("Ann", "ann@acme.com")
    w.add_workspace_membership(ann, ws)
    w.default_user = ann.gid
    project = w.add_project(ws, "Platform")
    w.add_section(project, "To do")
    kind = w.add_custom_field(ws, "Type", "enum", enum_options=["Bug", "Change"])
    w.add_custom_field_setting(project, kind)
    task = w.create_task("Rotate keys", project=project, actor=ann)
    w.set_custom_field(task, kind, "Change", actor=ann)
    assert run_pipeline(w, tmp_path, NOW).success
    stories = ParquetWarehouse(tmp_path).path("stories")
    pq.write_table(pq.read_table(stories).drop_columns(["custom_field_gid"]), stories)  # as an older version wrote it

    run = run_pipeline(w, tmp_path, NOW + timedelta(hours=1), mode="incremental")
    assert run.success
    [tasks] = [m for m in run.get_asset_materialization_events() if m.asset_key.path[-1] == "tasks"]
    assert tasks.materialization.metadata["sync_mode"].value.startswith("full")
    fields = ParquetWarehouse(tmp_path).read("stories")["custom_field_gid"].to_pylist()
    assert fields.count(kind.gid) == 1  # the enum change story names its field again
