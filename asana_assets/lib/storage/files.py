"""Small private files: written atomically and readable by their owner only (the documents of
`documents.py`, the demo's state)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


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
