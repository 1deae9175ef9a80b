"""Text a store cannot hold as it is: the NUL character (U+0000) in Postgres.

Parquet keeps every string exactly. Postgres ``text`` refuses U+0000, so a value holding one is
written to Postgres in an escaped form, and only such values are: each backslash doubled, then
each NUL written as the two characters ``\\0``. `unescape_nul` reverses it. Every record holding
a NUL is also listed in ``quarantine`` (see `nul_quarantine`), so a reader knows which values
were escaped; the record itself stays in its table.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import orjson
import pyarrow as pa
import pyarrow.compute as pc

NUL = "\x00"


def _strings(array: pa.ChunkedArray, change: Callable[[pa.Array], pa.Array]) -> pa.ChunkedArray:
    """``change`` applied to the strings of a string or list-of-string column."""
    def each(chunk: pa.Array) -> pa.Array:
        if pa.types.is_list(chunk.type):
            # A slice's items are values[start:end]: rebuilt from offsets that start at 0.
            start, end = chunk.offsets[0].as_py(), chunk.offsets[-1].as_py()
            values = change(chunk.values.slice(start, end - start))
            offsets = pc.subtract(chunk.offsets, pa.scalar(start, pa.int32()))
            return pa.ListArray.from_arrays(offsets, values, type=chunk.type, mask=chunk.is_null())
        return change(chunk)

    return pa.chunked_array([each(chunk) for chunk in array.chunks], type=array.type)


def _text_columns(table: pa.Table) -> list[int]:
    return [
        i for i, field in enumerate(table.schema)
        if pa.types.is_string(field.type) or (pa.types.is_list(field.type) and pa.types.is_string(field.type.value_type))
    ]


def _escape(values: pa.Array) -> pa.Array:
    holds = pc.fill_null(pc.match_substring(values, NUL), False)
    if not pc.any(holds).as_py():
        return values
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), NUL, "\\0")
    return pc.if_else(holds, escaped, values)


def escape_nul(table: pa.Table) -> pa.Table:
    """The table with every text value that holds a NUL escaped for Postgres; others untouched."""
    for i in _text_columns(table):
        table = table.set_column(i, table.schema.field(i), _strings(table.column(i), _escape))
    return table


def unescape_nul(value: str) -> str:
    """The original of a value `escape_nul` escaped: ``\\0`` is a NUL, ``\\\\`` a backslash."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in "0\\":
            out.append(NUL if value[i + 1] == "0" else "\\")
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def nul_rows(table: pa.Table) -> tuple[pa.Array, list[str]]:
    """A mask of the rows holding a NUL in any text value, and the names of those columns."""
    mask = pa.array([False] * table.num_rows, pa.bool_())
    columns = []
    for i in _text_columns(table):
        column = table.column(i)
        flat = column if pa.types.is_string(column.type) else None
        if flat is None:  # a list column: does any of a row's strings hold a NUL?
            joined = pc.binary_join(column, "")
            holds = pc.fill_null(pc.match_substring(joined, NUL), False)
        else:
            holds = pc.fill_null(pc.match_substring(flat, NUL), False)
        if pc.any(holds).as_py():
            columns.append(table.schema.field(i).name)
            mask = pc.or_(mask, holds)
    return mask, columns


def nul_quarantine(tables: dict[str, pa.Table], observed_at: datetime, schema: pa.Schema) -> pa.Table:
    """A quarantine row for each record holding a NUL: its table, gid, which columns, and the
    record as JSON (NUL written ``\\u0000``)."""
    rows = []
    for name, table in tables.items():
        if name == "quarantine" or table.num_rows == 0:
            continue
        mask, columns = nul_rows(table)
        if not columns:
            continue
        flagged = table.filter(mask)
        error = (f"holds a NUL character (U+0000) in {', '.join(columns)}: kept exactly in Parquet, "
                 "escaped in Postgres (a backslash doubled, NUL written \\0)")
        gids = flagged["gid"].to_pylist() if "gid" in flagged.column_names else [None] * flagged.num_rows
        for gid, record in zip(gids, flagged.to_pylist()):
            rows.append({"table": name, "gid": gid, "error": error, "observed_at": observed_at,
                         "raw": orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()})
    return pa.Table.from_pylist(rows, schema=schema)
