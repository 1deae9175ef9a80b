"""What every table asset shares, raw or derived: its key, and the metadata of a materialization
(row count, schema, where it landed, a preview)."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pyarrow as pa

from asana_assets.lib.schema import describe

PREVIEW_ROWS = 5
PREVIEW_WIDTH = 40


def table_key(table: str) -> dg.AssetKey:
    """Every table, raw or derived, is the asset ``asana/<table>``."""
    return dg.AssetKey(["asana", table])


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=f.name, type=str(f.type), description=describe(schema, f.name))
            for f in schema
        ]
    )


def preview(table: pa.Table) -> dg.MetadataValue:
    """The first rows as Markdown, long texts shortened so the table stays readable."""
    frame = table.slice(0, PREVIEW_ROWS).to_pandas()
    for name in frame.columns:
        if frame[name].dtype == object or str(frame[name].dtype) in {"str", "string"}:
            frame[name] = frame[name].map(
                lambda v: v if not isinstance(v, str) or len(v) <= PREVIEW_WIDTH else v[: PREVIEW_WIDTH - 1] + "…"
            )
    return dg.MetadataValue.md(frame.to_markdown(index=False))


def table_metadata(name: str, table: pa.Table, postgres_schema: str, **extra: Any) -> dict[str, Any]:
    """``postgres_schema`` is the connection's: each connection's tables live in a schema of its own."""
    return {
        "dagster/row_count": table.num_rows,
        "dagster/column_schema": column_schema(table.schema),
        "dagster/table_name": f"{postgres_schema}.{name}",
        "preview": preview(table),
        **extra,
    }
