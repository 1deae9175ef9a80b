"""Checks a sync passes before it crawls, each failing in seconds with what to change: a crawl
of a large workspace takes minutes, and its result must have somewhere to go."""

from __future__ import annotations

import os
import re
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from asana_assets.lib.connections.troubleshooting import ConnectionProblem, Source, unreachable

POSTGRES_TIMEOUT_S = 5
CONNECT_TIMEOUT_S = 5


def check_reachable(source: Source) -> None:
    """The API's host resolves and takes a connection: the client would retry an unreachable one
    for a minute before saying so."""
    url = urlsplit(source.base_url)
    try:
        host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        host = port = None
    if url.scheme not in ("http", "https") or not host:
        raise ConnectionProblem(*unreachable(source, "not an http:// or https:// URL"))
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except socket.gaierror:
        cause = f"DNS: the host name {host} does not resolve"
    except ConnectionRefusedError:
        cause = f"{host}:{port} refused the connection"
    except TimeoutError:
        cause = f"{host}:{port} timed out: no answer within {CONNECT_TIMEOUT_S} s"
    except OSError as error:
        cause = f"{host}:{port}: {error.strerror or type(error).__name__}"
    else:
        return
    raise ConnectionProblem(*unreachable(source, cause))


def check_workspace_gid(gid: str | None) -> None:
    """A workspace gid is digits: anything else would be sent as a path (``12 34/../users``)."""
    if gid is not None and not re.fullmatch(r"[0-9]+", gid):
        raise ConnectionProblem(
            f"the workspace gid {gid!r} is not a gid (gids are digits)",
            "set ASANA_WORKSPACE_GID to the digits of the workspace's gid (`asana-connections list` shows it), "
            "or unset it to sync every workspace the token sees",
        )


def check_writable(directory: str | os.PathLike[str]) -> None:
    """The warehouse folder exists or can be made, and takes a file."""
    folder = Path(directory)
    probe = folder / f".write-check-{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConnectionProblem(
            f"the warehouse folder {folder} is not writable ({error.strerror or type(error).__name__})",
            "set ASANA_WAREHOUSE_DIR to a folder this process can write, or fix its permissions",
        ) from None


def check_postgres(url: str) -> None:
    """The Postgres server answers and accepts the login."""
    import adbc_driver_postgresql.dbapi as adbc

    from asana_assets.lib.storage.postgres import libpq_url

    target = libpq_url(url)
    separator = "&" if "?" in target else "?"
    try:
        adbc.connect(f"{target}{separator}connect_timeout={POSTGRES_TIMEOUT_S}").close()
    except adbc.Error:
        # The driver's text can quote the URL, password included: say where, not what it said.
        where = re.sub(r"//[^@/]*@", "//", target).split("?")[0]
        raise ConnectionProblem(
            f"PostgreSQL at {where} cannot be reached or refused the login",
            "check ASANA_POSTGRES_URL (host, port, database, user, password) and that the server is up",
        ) from None
