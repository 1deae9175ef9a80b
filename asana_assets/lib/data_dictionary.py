"""The data dictionary: every table and column, written from the table registry (lib/schema.py),
the single source of the warehouse's types and descriptions, the columns Postgres adds to keep a
table current (lib/storage/postgres.py), and every Postgres view with its columns
(lib/storage/views.py).

    python -m asana_assets.lib.data_dictionary > docs/data-dictionary.md

A test checks that the committed file matches them.
"""

from __future__ import annotations

from asana_assets.lib.schema import AUDIT, DERIVED, RAW, REGISTRY, TableSpec, describe
from asana_assets.lib.storage.postgres import DELETED_AT, ROW_HASH, column_comments, columns, is_current
from asana_assets.lib.storage.views import VIEWS, View

LAYERS = ((RAW, "Raw tables"), (AUDIT, "Audit log (Enterprise+)"), (DERIVED, "Compliance tables"))


def _kind(spec: TableSpec) -> str:
    if spec.history:
        return "history: one part per run, appended"
    if not spec.key:
        return "replaced whole by each sync; no key"
    return "current state: rows gone from the source are removed"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(spec: TableSpec) -> list[str]:
    references = dict(spec.references)
    lines = [f"### `{spec.name}`", "", spec.description, "",
             f"Key: {', '.join(f'`{c}`' for c in spec.key) or 'none'}; {_kind(spec)}.", "",
             "| column | type | description |", "|---|---|---|"]
    for field in spec.schema:
        note = f" References `{references[field.name]}`." if field.name in references else ""
        lines.append(f"| `{field.name}` | `{field.type}` | {_cell(describe(spec.schema, field.name))}{note} |")
    if is_current(spec.name):
        types, comments = columns(spec.name), column_comments(spec.name)
        lines += [f"| `{name}` | `{types[name]}` (Postgres only) | {_cell(comments[name])} |"
                  for name in (DELETED_AT, ROW_HASH)]
    return [*lines, ""]


def _view(name: str, view: View) -> list[str]:
    lines = [f"### `{name}`", "", _cell(view.comment), "",
             f"Over {', '.join(f'`{t}`' for t in view.tables)} (created when they all exist).", "",
             "| column | description |", "|---|---|"]
    lines += [f"| `{column}` | {_cell(text)} |" for column, text in view.columns.items()]
    return [*lines, ""]


def data_dictionary() -> str:
    lines = ["# Data dictionary", "",
             "Every table of the warehouse, as Parquet (`warehouse/asana/`) and in Postgres (schema `asana`, "
             "`asana_<connection id>` for a stored connection), and the Postgres views over them. gids are strings, "
             "timestamps UTC. Generated from the table registry in `asana_assets/lib/schema.py` and the views in "
             "`asana_assets/lib/storage/views.py`: "
             "`python -m asana_assets.lib.data_dictionary > docs/data-dictionary.md`.", ""]
    for layer, title in LAYERS:
        lines += [f"## {title}", ""]
        for spec in REGISTRY.values():
            if spec.layer == layer:
                lines += _table(spec)
    lines += ["## Views (Postgres)", ""]
    for name, view in VIEWS.items():
        lines += _view(name, view)
    return "\n".join(lines)


if __name__ == "__main__":
    print(data_dictionary(), end="")
