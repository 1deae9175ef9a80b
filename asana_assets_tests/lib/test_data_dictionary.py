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
