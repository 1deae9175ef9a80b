"""One publication per run: every step writes into the run's stage, and the run's last step
publishes all of its tables at once (`WarehouseResource.commit`).

The last step is the one with no selected asset downstream of its own: in the sync jobs,
``monitor_results``; in a run of the raw tables alone, the crawl. A run that fails before it
publishes nothing, and its re-execution continues in the same stage (the root run's).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from asana_assets.defs.partitions import partition_key
from asana_assets.defs.resources.warehouse import WarehouseResource


def root_run_id(context) -> str:
    """The evaluation a run belongs to: a re-execution continues its original run's."""
    return context.run.root_run_id or context.run.run_id


def run_warehouse(context, warehouse: WarehouseResource) -> WarehouseResource:
    """The warehouse of the connection (partition) this step works on, in this run's stage."""
    return warehouse.for_connection(partition_key(context)).for_run(root_run_id(context))


# Steps that act on what the run published (they write to Asana, not to the warehouse): the
# publication never waits for them.
AFTER_PUBLICATION = frozenset({dg.AssetKey(["asana", "remediation_tasks"])})


def _downstream(graph, keys) -> set[dg.AssetKey]:
    found, frontier = set(), set(keys)
    while frontier:
        children = set().union(*(graph.get(key).child_keys for key in frontier)) - found
        found |= children
        frontier = children
    return found


def commits_here(context: dg.AssetExecutionContext) -> bool:
    """True for the run's last step: no asset selected in this run depends on this step's."""
    graph = context.job_def.asset_layer.asset_graph
    selected = context.run.asset_selection or set(graph.get_all_asset_keys())
    mine = set(context.selected_asset_keys)
    return not ((_downstream(graph, mine) - mine - AFTER_PUBLICATION) & set(selected))


def commit_if_last(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dict[str, Any]:
    """Publish the run's tables when this is its last step; metadata about the publication."""
    if not commits_here(context):
        return {}
    published = warehouse.commit()
    context.log.info(f"Published this run's tables: {published['published_version'].value}")
    return published
