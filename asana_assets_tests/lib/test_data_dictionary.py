"""The committed data dictionary matches the Arrow schemas it documents."""

from __future__ import annotations

from asana_assets.lib.data_dictionary import data_dictionary
from asana_assets.lib.schema import TABLES
from asana_assets_tests.support import REPO


def test_the_committed_data_dictionary_matches_the_schemas():
    committed = (REPO / "docs" / "data-dictionary.md").read_text()
    assert committed == data_dictionary(), (
        "docs/data-dictionary.md is stale: python -m asana_assets.lib.data_dictionary > docs/data-dictionary.md")


def test_it_names_every_table_and_column():
    committed = (REPO / "docs" / "data-dictionary.md").read_text()
    for table, schema in TABLES.items():
        assert f"### `{table}`" in committed
        for name in schema.names:
            assert f"| `{name}` |" in committed, f"{table}.{name}"


def test_each_current_state_table_lists_the_columns_postgres_adds():
    """tasks mirrors the source (Postgres adds its bookkeeping columns); monitor_results is a
    history, appended per run (it has none)."""
    committed = (REPO / "docs" / "data-dictionary.md").read_text()
    tasks = committed.split("### `tasks`")[1].split("### ")[0]
    results = committed.split("### `monitor_results`")[1].split("### ")[0]
    for column in ("`_deleted_at` | `timestamp with time zone` (Postgres only)", "`_row_hash` | `bytea` (Postgres only)"):
        assert column in tasks
        assert column.split(" |")[0] not in results
