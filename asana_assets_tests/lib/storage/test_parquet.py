"""The Parquet warehouse: atomic current tables, and history tables that append per run."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

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


def rows(store: ParquetWarehouse, table: str) -> list[dict]:
    return store.read(table).to_pylist()


def test_a_run_publishes_all_its_tables_in_one_step_or_none(tmp_path):
    first = ParquetWarehouse(tmp_path, stage="run1")
    first.write("a", pa.table({"run_id": ["run1"], "n": [1]}, schema=SCHEMA))
    first.write("b", pa.table({"run_id": ["run1"], "n": [1]}, schema=SCHEMA))
    first.write_part("h", "run1", pa.table({"run_id": ["run1"], "n": [1]}, schema=SCHEMA))
    assert not (tmp_path / "asana").exists()  # nothing visible before the commit
    assert rows(first, "a") == [{"run_id": "run1", "n": 1}]  # the run reads back what it staged
    first.commit()
    published = ParquetWarehouse(tmp_path)
    assert (tmp_path / "asana").is_symlink()
    assert rows(published, "a") == rows(published, "b") == [{"run_id": "run1", "n": 1}]

    # Run 2 rewrites a, then dies before its commit: readers still see run 1's a and b, and
    # its history part is not kept.
    second = ParquetWarehouse(tmp_path, stage="run2")
    second.write("a", pa.table({"run_id": ["run2"], "n": [2]}, schema=SCHEMA))
    second.write_part("h", "run2", pa.table({"run_id": ["run2"], "n": [2]}, schema=SCHEMA))
    assert rows(published, "a") == [{"run_id": "run1", "n": 1}]
    assert published.read_history("h", SCHEMA).to_pylist() == [{"run_id": "run1", "n": 1}]

    # Run 3 rewrites b only; its commit keeps run 1's a (run 2 never published) and drops run 2's stage.
    third = ParquetWarehouse(tmp_path, stage="run3")
    third.write("b", pa.table({"run_id": ["run3"], "n": [3]}, schema=SCHEMA))
    third.write_part("h", "run3", pa.table({"run_id": ["run3"], "n": [3]}, schema=SCHEMA))
    third.commit()
    assert rows(published, "a") == [{"run_id": "run1", "n": 1}]
    assert rows(published, "b") == [{"run_id": "run3", "n": 3}]
    assert sorted(r["run_id"] for r in published.read_history("h", SCHEMA).to_pylist()) == ["run1", "run3"]
    assert not list((tmp_path / "versions").glob("*.partial"))


def test_old_versions_are_kept_for_rollback_up_to_the_retention(tmp_path):
    for run in range(1, 6):
        store = ParquetWarehouse(tmp_path, stage=f"run{run}")
        store.write("a", pa.table({"run_id": [f"run{run}"], "n": [run]}, schema=SCHEMA))
        store.commit(keep=3)
    versions = sorted(p.name for p in (tmp_path / "versions").iterdir())
    assert [v.rsplit("-", 1)[1] for v in versions] == ["run3", "run4", "run5"]
    assert (tmp_path / "asana").resolve().name == versions[-1]


def test_a_warehouse_written_before_versions_becomes_the_first_version(tmp_path):
    plain = ParquetWarehouse(tmp_path)
    plain.write("a", pa.table({"run_id": ["old"], "n": [0]}, schema=SCHEMA))
    plain.write("b", pa.table({"run_id": ["old"], "n": [0]}, schema=SCHEMA))
    staged = ParquetWarehouse(tmp_path, stage="new")
    staged.write("a", pa.table({"run_id": ["new"], "n": [1]}, schema=SCHEMA))
    staged.commit()
    assert rows(plain, "a") == [{"run_id": "new", "n": 1}] and rows(plain, "b") == [{"run_id": "old", "n": 0}]
    assert len(list((tmp_path / "versions").iterdir())) == 2  # the adopted folder and the new version


def test_count_history_counts_every_part_by_key_and_a_staged_part_replaces_its_published_one(tmp_path):
    schema = pa.schema([("run_id", pa.string()), ("status", pa.string()), ("n", pa.int64())])
    store = ParquetWarehouse(tmp_path)
    assert store.count_history("h", schema, ["run_id", "status"]).to_pylist() == []  # no part yet
    store.write_part("h", "r1", pa.table({"run_id": ["r1"] * 3, "status": ["ok", "alarm", "ok"], "n": [1, 2, 3]},
                                         schema=schema))
    # A second part with a row of r1 too: counted with r1's own (hand-counted: r1 ok 3, alarm 1).
    store.write_part("h", "r2", pa.table({"run_id": ["r2", "r1"], "status": ["ok", "ok"], "n": [4, 5]},
                                         schema=schema))
    staged = ParquetWarehouse(tmp_path, stage="r3")
    staged.write_part("h", "r2", pa.table({"run_id": ["r2", "r2"], "status": [None, None], "n": [6, 7]},
                                          schema=schema))

    def counts(warehouse):
        table = warehouse.count_history("h", schema, ["run_id", "status"])
        return sorted((r["run_id"], r["status"] or "", r["rows"]) for r in table.to_pylist())

    assert counts(store) == [("r1", "alarm", 1), ("r1", "ok", 3), ("r2", "ok", 1)]
    assert counts(staged) == [("r1", "alarm", 1), ("r1", "ok", 2), ("r2", "", 2)]


def test_count_history_counts_a_part_of_several_row_groups_each_with_its_own_dictionary(tmp_path):
    """A large run's part (a million monitor results) is written in several row groups, and each
    group's text keys are encoded with a dictionary of their own: counting must not fail on them."""
    schema = pa.schema([("run_id", pa.string()), ("status", pa.string()), ("n", pa.int64())])
    store = ParquetWarehouse(tmp_path)
    part = pa.table({"run_id": ["r1"] * 5, "status": ["ok", "ok", "alarm", "unknown", "ok"], "n": [1, 2, 3, 4, 5]},
                    schema=schema)
    store.folder("h").mkdir(parents=True)
    pq.write_table(part, store.folder("h") / "r1.parquet", row_group_size=2)  # groups: ok ok | alarm unknown | ok
    assert pq.ParquetFile(store.folder("h") / "r1.parquet").num_row_groups == 3
    counted = store.count_history("h", schema, ["run_id", "status"]).to_pylist()
    assert sorted((r["status"], r["rows"]) for r in counted) == [("alarm", 1), ("ok", 3), ("unknown", 1)]
