"""Postgres spellings shared by the stores: quoted identifiers and connection URLs."""

from __future__ import annotations

import os
import re

POSTGRES_URL = re.compile(r"^postgres(?:ql)?(?:\+\w+)?://")


def ident(name: str) -> str:
    """A quoted identifier, as psycopg's ``sql.Identifier`` renders it."""
    return '"' + name.replace('"', '""') + '"'


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy's ``postgresql+psycopg2://`` spelling (dagster.yaml's) as well as libpq's."""
    return POSTGRES_URL.sub("postgresql://", url)


def is_postgres(location: str | os.PathLike[str]) -> bool:
    """Whether a store's location is a Postgres URL (else it is a path)."""
    return bool(POSTGRES_URL.match(str(location)))
