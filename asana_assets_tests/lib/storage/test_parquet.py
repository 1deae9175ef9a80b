"""The Parquet warehouse: atomic current tables, and history tables that append per run."""

from __future__ import annotations

import pyarrow as pa

from asana_assets.lib.storage.parquet import ParquetWarehouse

SCHEMA = pa.schema([("run_id", pa.string()), ("n", pa.int64())])


def test_a_history_table_appends_per_run_and_a_retry_replaces_its_own_part(tmp_path):
    store = ParquetWarehouse(tmp_path)
    assert store.read_history("h", SCHEMA).num_rows == 0
    store.write_part("h", "r1", pa.table({"run_id": ["r1"], "n": [1]}, schema=SCHEMA))
    store.write_part("h", "r2", pa.table({"run_id": ["r2"], "n": [2]}, schema=SCHEMA))
    store.write_part("h", "r2", pa.table({"run_id": ["r2", "r2"], "n": [3, 4]}, schema=SCHEMA))
    assert sorted(store.read_history("h", SCHEMA).to_pylist(), key=lambda r: r["n"]) == [
        {"run_id": "r1", "n": 1}, {"run_id": "r2", "n": 3}, {"run_id": "r2", "n": 4},
    ]


def test_a_current_table_is_replaced_whole_and_leaves_no_temporary_file(tmp_path):
    store = ParquetWarehouse(tmp_path)
    store.write("t", pa.table({"run_id": ["a"], "n": [1]}, schema=SCHEMA))
    store.write("t", pa.table({"run_id": ["b"], "n": [2]}, schema=SCHEMA))
    assert store.read("t").to_pylist() == [{"run_id": "b", "n": 2}]
    assert [p.name for p in store.path("t").parent.iterdir()] == ["t.parquet"]
