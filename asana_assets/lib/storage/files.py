"""Small private files: written atomically and readable by their owner only (the sync state,
the connection records)."""

from __future__ import annotations

import json
import os
import uuid
from contextlib import AbstractContextManager
from pathlib import Path

from asana_assets.lib.asana.state import SyncState
from asana_assets.lib.storage.locks import exclusive


def write_atomically(path: Path, payload: bytes) -> None:
    """Replace a small file whole (a reader sees the old one or the new one), readable by its
    owner only from the first byte: a chmod after writing would leave a window open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class JsonFileStorage:
    """Connection records (JSON documents) in one file, readable only by its owner (0600),
    replaced atomically."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict]:
        return json.loads(self.path.read_bytes()) if self.path.exists() else {}

    def save(self, records: dict[str, dict]) -> None:
        write_atomically(self.path, json.dumps(records, indent=2).encode())

    def locked(self) -> AbstractContextManager[None]:
        return exclusive(self.path.with_name(f".{self.path.name}.lock"))



class StateStore:
    """The sync state as a JSON file, replaced atomically (a crash leaves the previous state)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def load(self) -> SyncState:
        if not self.path.exists():
            return SyncState()
        return SyncState(**json.loads(self.path.read_text()))

    def save(self, state: SyncState) -> None:
        write_atomically(self.path, json.dumps(state.__dict__, indent=2, sort_keys=True).encode())


