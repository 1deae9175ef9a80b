"""What every route handler works with, the server's own and a feature module's (audit.py) alike:
one API call, the error that answers it, and the paging rules all paged routes share.
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from .clock import iso, parse_iso
from .config import SimulatorConfig
from .schema import Spec, default_spec, parse_opt_fields
from .tokens import Signer

API = "/api/1.0"
NOW = "9999-12-31T23:59:59.999Z"  # completed_since=now: nothing was completed after this
DIGITS = re.compile(r"[0-9]+")
INVALID_OFFSET = "offset: Your pagination token is invalid or has expired. Restart from the first page."


class ApiError(Exception):
    """An API failure, answered as ``{"errors": [...]}`` plus any extra top-level keys (``sync``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        phrase: str | None = None,
        **top_level: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.headers, self.phrase, self.top_level = (
            status,
            message,
            headers,
            phrase,
            top_level,
        )


class Call:
    """One API call as a handler sees it: parameters, body and the acting user."""

    __slots__ = ("body", "query", "request", "user")

    def __init__(self, request: web.Request, user: str, body: dict[str, Any]) -> None:
        self.request, self.query, self.user, self.body = request, request.query, user, body

    @property
    def data(self) -> dict[str, Any]:
        data = self.body.get("data", {})
        if not isinstance(data, dict):
            raise ApiError(400, "data: Value is not an object")
        return data

    def path_gid(self, name: str) -> str:
        value = self.request.match_info[name]
        if not DIGITS.fullmatch(value):
            raise ApiError(400, f"{name.removesuffix('_gid')}: Not a Long: {value}")
        return value

    def flag(self, name: str) -> bool | None:
        """A boolean query parameter; the SDK sends True/False, so case does not matter."""
        value = self.query.get(name)
        if value is None:
            return None
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise ApiError(400, f"{name}: Not a boolean: {value}")
        return lowered == "true"

    def time(self, name: str) -> str | None:
        """A date-time query parameter as a comparable timestamp (``completed_since`` takes ``now``)."""
        value = self.query.get(name)
        if value is None:
            return None
        if name == "completed_since" and value.lower() == "now":
            return NOW
        try:
            return iso(parse_iso(value))
        except ValueError:
            raise ApiError(400, f"{name}: Not a valid date-time: {value}") from None

    @property
    def pretty(self) -> bool:
        value = self.query.get("opt_pretty")
        options = self.body.get("options") or {}
        return (value is not None and value.lower() != "false") or bool(options.get("pretty"))

    def spec(self, rtype: str, names: tuple[str, ...]) -> Spec:
        """opt_fields (query, or ``options.fields`` in a write body) or the default field set."""
        raw = self.query.get("opt_fields")
        fields = (self.body.get("options") or {}).get("fields")
        if raw is None and fields:
            raw = ",".join(fields)
        return default_spec(rtype, names) if raw is None else parse_opt_fields(raw)


class Offsets:
    """Page offsets: signed tokens bound to the result set they page through (its fingerprint),
    honoured for ``offset_ttl_seconds`` after they were issued."""

    def __init__(self, signer: Signer, config: SimulatorConfig) -> None:
        self.signer, self.config = signer, config

    def position(self, offset: str | None, fingerprint: str) -> int:
        """Where a page starts: 0 without an offset, else the position the offset was issued for."""
        if offset is None:
            return 0
        fields = self.signer.verify(offset)
        if (
            not fields
            or fields[0] != "offset"
            or fields[2] != fingerprint
            or time.time() - fields[3] > self.config.offset_ttl_seconds
        ):
            raise ApiError(400, INVALID_OFFSET)
        return fields[1]

    def next_page(self, request: web.Request, position: int, fingerprint: str) -> dict[str, str]:
        """The ``next_page`` object of a page whose successor starts at ``position``."""
        return next_page(request, self.signer.sign("offset", position, fingerprint, time.time()))


def next_page(request: web.Request, token: str) -> dict[str, str]:
    """The ``next_page`` object that resumes ``request`` at the offset ``token``."""
    relative = str(request.rel_url.update_query(offset=token))
    return {
        "offset": token,
        "path": relative.removeprefix(API),
        "uri": f"{request.scheme}://{request.host}{relative}",
    }


def page_limit(query: MultiMapping[str]) -> int | None:
    """The ``limit`` parameter (1 to 100), or None when the call sets none."""
    raw = query.get("limit")
    if raw is None:
        return None
    if not DIGITS.fullmatch(raw) or not 1 <= int(raw) <= 100:
        raise ApiError(400, f"limit: Must be between 1 and 100, got {raw}")
    return int(raw)
