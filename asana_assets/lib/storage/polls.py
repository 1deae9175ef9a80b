"""Where the events sensor keeps its per-project poll schedule: beside the sync state (a JSON
file in the warehouse folder, or a named row of the Postgres state table), never in the sensor's
cursor, which stays small however many projects a connection has. Only the sensor writes it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from asana_assets.lib.asana.polls import PollSchedule
from asana_assets.lib.storage.files import write_atomically
from asana_assets.lib.storage.postgres import PostgresWarehouse


class PollStore:
    """The poll schedule in a JSON file, replaced atomically."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def load(self) -> PollSchedule:
        try:
            return PollSchedule.from_json(json.loads(self.path.read_text()))
        except (FileNotFoundError, ValueError):
            return PollSchedule()

    def save(self, schedule: PollSchedule) -> None:
        write_atomically(self.path, json.dumps(schedule.to_json(), separators=(",", ":")).encode())


class PostgresPollStore:
    """The poll schedule as a named document of the warehouse schema's state table."""

    NAME = "event_polls"

    def __init__(self, url: str, schema: str):
        self.url, self.schema = url, schema

    def load(self) -> PollSchedule:
        with PostgresWarehouse(self.url, self.schema) as postgres:
            return PollSchedule.from_json(postgres.load_state(self.NAME))

    def save(self, schedule: PollSchedule) -> None:
        with PostgresWarehouse(self.url, self.schema) as postgres:
            postgres.save_state(self.NAME, schedule.to_json())


def poll_store(directory: str | os.PathLike[str], postgres_url: str | None, schema: str) -> PollStore | PostgresPollStore:
    """The schedule's store for a warehouse: in Postgres when it is configured, else in its folder."""
    if postgres_url:
        return PostgresPollStore(postgres_url, schema)
    return PollStore(Path(directory) / "state" / "event_polls.json")
