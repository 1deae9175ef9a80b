"""The sanity gate a sync passes before it replaces anything.

A server that answers 200 with nothing (another account's token, a proxy, an outage page)
looks like a workspace whose every record was deleted. Replacing the warehouse with that would
erase the evidence, so a result that removes more than a share of a table's rows, or that sees
no workspace where the warehouse has one, is refused before anything is written; an operator
who knows the deletion is real confirms it explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from asana_assets.lib.schema import primary_key

DEFAULT_MAX_SHARE = 0.2
# Below this many rows removed, a share says little (one project of four is 25%): no refusal.
MIN_ROWS = 25


@dataclass(frozen=True)
class Removal:
    table: str
    before: int
    removed: int

    @property
    def share(self) -> float:
        return self.removed / self.before


class MassDeletionRefused(Exception):
    """A sync whose result would remove too much; nothing was written."""

    def __init__(self, removals: list[Removal], max_share: float, lost_workspaces: bool) -> None:
        parts = [f"{r.table}: {r.removed} of {r.before} rows ({r.share:.0%})" for r in removals]
        cause = (
            ("the source answered with no workspace although the warehouse holds one; " if lost_workspaces else "")
            + f"the sync would remove more than {max_share:.0%} of "
            + (", ".join(parts) if parts else "the warehouse's rows")
        )
        self.cause = f"sync refused before writing anything: {cause}"
        self.fix = (
            "check that the token belongs to the right account and that Asana (or the proxy in front of it) "
            "answers normally; if the deletion is real, run again with allow_mass_deletion "
            "(`asana-connections sync --allow-mass-deletion`, or the run config "
            "ops.asana_raw_sync.config.allow_mass_deletion: true)"
        )
        super().__init__(f"{self.cause}. To do: {self.fix}")
        self.removals = removals


def removed_rows(table: str, current: pa.Table, new: pa.Table) -> int:
    """Rows of ``current`` whose key ``new`` no longer has."""
    key = list(primary_key(table))
    if not key or current.num_rows == 0:
        return 0
    gone = current.select(key).join(new.select(key).group_by(key).aggregate([]), keys=key, join_type="left anti")
    return gone.num_rows


def check_replacement(current: Mapping[str, pa.Table], new: Mapping[str, pa.Table],
                      max_share: float = DEFAULT_MAX_SHARE) -> None:
    """Raise `MassDeletionRefused` when replacing ``current`` by ``new`` removes too much.

    ``current`` holds the warehouse's tables (only those that exist), ``new`` the sync's."""
    removals = []
    for table, before in current.items():
        if table not in new or not primary_key(table):
            continue
        removed = removed_rows(table, before, new[table])
        if removed >= MIN_ROWS and removed / before.num_rows > max_share:
            removals.append(Removal(table, before.num_rows, removed))
    lost_workspaces = (
        "workspaces" in current and current["workspaces"].num_rows > 0
        and "workspaces" in new and new["workspaces"].num_rows == 0
    )
    if removals or lost_workspaces:
        raise MassDeletionRefused(removals, max_share, lost_workspaces)
