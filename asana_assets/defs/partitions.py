"""Asana connections as Dagster dynamic partitions.

Every asset is partitioned by connection, so one deployment syncs several workspaces or
customers: each connection has its own credentials, warehouse namespace, sync state and
schedule, and its runs are queued apart from the others' (see dagster.yaml).

The partition ``default`` is the connection configured in the environment (ASANA_ACCESS_TOKEN
or ASANA_CONNECTION_ID, or the demo simulator with ASANA_DEMO); every other connection stored with
``asana-connections`` is a partition named by its id.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

CONNECTIONS = dg.DynamicPartitionsDefinition(name="asana_connection")
DEFAULT = "default"


@dataclass(frozen=True)
class ConnectionSchedule:
    """One connection as the schedule and the sensors see it."""

    key: str  # its partition key
    active: bool  # False: revoked or expired; its data stays, nothing is synced
    full_sync_hour: int  # UTC hour of the daily reconcile and the weekly full sync
    poll_minutes: int  # least minutes between two looks at its events feeds


def connection_partitions(instance: dg.DagsterInstance) -> set[str]:
    """The connections the instance has a partition for."""
    return set(instance.get_dynamic_partitions(CONNECTIONS.name))


def partition_requests(existing: set[str], wanted: set[str]) -> list:
    """The requests that make the instance's partitions the wanted ones: a new connection is
    added, a deleted one removed (its runs and materializations stay in the instance)."""
    requests = []
    if wanted - existing:
        requests.append(CONNECTIONS.build_add_request(sorted(wanted - existing)))
    if existing - wanted:
        requests.append(CONNECTIONS.build_delete_request(sorted(existing - wanted)))
    return requests


def register(instance: dg.DagsterInstance, keys: list[str]) -> None:
    """Add these connections' partitions to the instance, for runs launched outside the sensor."""
    missing = [key for key in keys if not instance.has_dynamic_partition(CONNECTIONS.name, key)]
    if missing:
        instance.add_dynamic_partitions(CONNECTIONS.name, missing)


def partition_key(context) -> str:
    """The connection a run (or a check invoked directly, without a partition) works on."""
    return context.partition_key if context.has_partition_key else DEFAULT


def serving(connections: list[ConnectionSchedule], instance: dg.DagsterInstance) -> list[ConnectionSchedule]:
    """The active connections that have a partition."""
    partitions = connection_partitions(instance)
    return [c for c in connections if c.active and c.key in partitions]
