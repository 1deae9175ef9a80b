"""Claims that die with their holder: file locks (``flock``) the kernel releases when the
process holding them exits, however it exits (``kill -9`` and the OOM killer included).

A claim file also says who holds it (pid, when, what for), so a refusal can name the holder.
They work between processes of one machine (or of a filesystem with working ``flock``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Claim:
    """A held claim; `release` (or the holder's death) gives it up."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # and with it the lock
            self.fd = -1


class ClaimHeld(Exception):
    """Another live process holds the claim; ``holder`` is what it wrote (pid, since, purpose)."""

    def __init__(self, path: Path, holder: dict) -> None:
        super().__init__(f"{path.name} is held by {holder or 'another process'}")
        self.holder = holder


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def holder_of(path: Path) -> dict:
    """What the claim's holder wrote, or {} when unreadable."""
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def try_claim(path: str | os.PathLike[str], purpose: str) -> Claim:
    """Take the claim without waiting; raises `ClaimHeld` when a live process holds it."""
    path = Path(path)
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ClaimHeld(path, holder_of(path)) from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "since": datetime.now(UTC).isoformat(), "purpose": purpose}).encode())
    return Claim(path, fd)


def is_held(path: str | os.PathLike[str]) -> bool:
    """Whether a live process holds the claim now."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        claim = try_claim(path, "probe")
    except ClaimHeld:
        return True
    claim.release()
    return False


@contextmanager
def exclusive(path: str | os.PathLike[str]) -> Iterator[None]:
    """Wait for, then hold, the lock at ``path`` for the block (e.g. one first use of a store)."""
    fd = _open(Path(path))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
