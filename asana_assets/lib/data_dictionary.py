"""The data dictionary: every table and column, written from the Arrow schemas, which are the
single source of the warehouse's types and descriptions.

    python -m asana_assets.lib.data_dictionary > docs/data-dictionary.md

A test checks that the committed file matches the schemas.
"""

from __future__ import annotations

import pyarrow as pa

from asana_assets.lib.schema import (
    AUDIT_TABLES,
    DERIVED_TABLES,
    FOREIGN_KEYS,
    HISTORY_TABLES,
    RAW_TABLES,
    describe,
    primary_key,
)


def _kind(table: str) -> str:
    if table in HISTORY_TABLES:
        return "history: one part per run, appended"
    if not primary_key(table):
        return "replaced whole by each sync; no key"
    return "current state: rows gone from the source are removed"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(name: str, schema: pa.Schema) -> list[str]:
    key = primary_key(name)
    references = dict(FOREIGN_KEYS.get(name, ()))
    lines = [f"### `{name}`", "", f"Key: {', '.join(f'`{c}`' for c in key) or 'none'}; {_kind(name)}.", "",
             "| column | type | description |", "|---|---|---|"]
    for field in schema:
        note = f" References `{references[field.name]}`." if field.name in references else ""
        lines.append(f"| `{field.name}` | `{field.type}` | {_cell(describe(schema, field.name))}{note} |")
    return [*lines, ""]


def data_dictionary() -> str:
    lines = ["# Data dictionary", "",
             "Every table of the warehouse, as Parquet (`warehouse/asana/`) and in Postgres (schema `asana`, "
             "`asana_<connection id>` for a stored connection). gids are strings, timestamps UTC. Generated from "
             "the Arrow schemas in `asana_assets/lib/schema.py`: "
             "`python -m asana_assets.lib.data_dictionary > docs/data-dictionary.md`.", ""]
    for title, tables in (("Raw tables", RAW_TABLES), ("Audit log (Enterprise+)", AUDIT_TABLES),
                          ("Compliance tables", DERIVED_TABLES)):
        lines += [f"## {title}", ""]
        for name, schema in tables.items():
            lines += _table(name, schema)
    return "\n".join(lines)


if __name__ == "__main__":
    print(data_dictionary(), end="")
