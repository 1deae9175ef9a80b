"""Hostile text is data: generated strings round-trip through Parquet exactly, and through
Postgres exactly except a NUL, which is stored in the documented escaped form."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pyarrow as pa

from asana_assets.lib.schema import RAW_TABLES, to_arrow
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.lib.storage.postgres import PostgresWarehouse
from asana_assets.lib.storage.text import escape_nul, nul_quarantine, unescape_nul
from asana_assets_tests.support import POSTGRES_URL as URL
from asana_assets_tests.support.postgres import PostgresTables

NOW = datetime(2026, 3, 1, tzinfo=UTC)
# One code point from each Unicode plane in use (BMP, SMP, SIP, TIP, SSP, private use), avoiding
# the surrogate range, which UTF-8 cannot encode.
PLANES = [(0x20, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x1FFFF), (0x20000, 0x2FFFF), (0x30000, 0x3FFFF),
          (0xE0000, 0xEFFFF), (0xF0000, 0x10FFFF)]
CONTROLS = [chr(c) for c in range(0x00, 0x20)] + ["\x7f", "\u0085", "\u2028", "\u2029", "\ufeff", "\u200b"]


def hostile_strings(seed: int, count: int) -> list[str]:
    """Control characters (NUL included), every plane, quotes and backslashes, SQL and JSON
    look-alikes, and one note of a megabyte."""
    rng = random.Random(seed)
    alphabet = CONTROLS + ["\\", "\\0", '"', "'", "$1", "\\u0000", "%s", ";--", "{}", "[]", "é", "ß"]
    out = ["", "\x00", "before\x00after", "\\0 is not a NUL", "back\\slash\x00", "\x00" * 3,
           "x" * (1 << 20), "🙂" * 1000]
    while len(out) < count:
        parts = []
        for _ in range(rng.randint(1, 40)):
            if rng.random() < 0.5:
                low, high = rng.choice(PLANES)
                parts.append(chr(rng.randint(low, high)))
            else:
                parts.append(rng.choice(alphabet))
        out.append("".join(parts))
    return out


def users(names: list[str]) -> pa.Table:
    return to_arrow("users", [{"gid": str(1000 + i), "name": name, "email": f"u{i}@example.com",
                               "photo_url": name[:100]} for i, name in enumerate(names)])


def test_parquet_keeps_every_generated_string_exactly(tmp_path):
    names = hostile_strings(seed=1, count=400)
    store = ParquetWarehouse(tmp_path)
    store.write("users", users(names))
    assert store.read("users")["name"].to_pylist() == names


def test_postgres_keeps_every_string_and_escapes_only_nul(schema):
    names = hostile_strings(seed=2, count=400)
    with PostgresWarehouse(URL, schema) as postgres:
        postgres.load("users", users(names))
    with PostgresTables(URL, schema) as postgres:
        stored = dict(zip(*(postgres.read("users")[c].to_pylist() for c in ("gid", "name"))))
    for i, name in enumerate(names):
        value = stored[str(1000 + i)]
        if "\x00" in name:
            assert "\x00" not in value and unescape_nul(value) == name
        else:
            assert value == name  # untouched, backslashes included


def test_the_escaped_form_is_the_documented_one():
    # Written by hand from the rule: backslash doubled, then NUL as \0; values without NUL untouched.
    table = pa.table({"gid": ["1", "2", "3"], "name": ["a\x00b", "c\\d", "e\\\x00"],
                      "tags": pa.array([["x\x00"], ["y\\"], None], pa.list_(pa.string()))})
    escaped = escape_nul(table)
    assert escaped["name"].to_pylist() == ["a\\0b", "c\\d", "e\\\\\\0"]
    assert escaped["tags"].to_pylist() == [["x\\0"], ["y\\"], None]
    assert unescape_nul("e\\\\\\0") == "e\\\x00"
    # A slice of a table (a batch of a larger one) is escaped the same.
    assert escape_nul(table.slice(1)).to_pylist() == escaped.slice(1).to_pylist()
    assert escape_nul(table.slice(0, 1))["tags"].to_pylist() == [["x\\0"]]


def test_every_record_holding_a_nul_is_flagged_once_with_its_columns():
    tables = {"users": users(["fine", "bad\x00name", "also fine"]),
              "workspaces": to_arrow("workspaces", [{"gid": "9", "name": "W", "email_domains": ["a\x00.com"]}])}
    flagged = nul_quarantine(tables, NOW, RAW_TABLES["quarantine"])
    rows = sorted(flagged.to_pylist(), key=lambda r: r["table"])
    assert [(r["table"], r["gid"]) for r in rows] == [("users", "1001"), ("workspaces", "9")]
    assert "in name" in rows[0]["error"] and "in email_domains" in rows[1]["error"]
    assert '"name":"bad\\u0000name"' in rows[0]["raw"]
