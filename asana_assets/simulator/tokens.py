"""Opaque, tamper-proof tokens for pagination offsets and event sync tokens.

A token is base64url(HMAC[:12] + JSON payload). Clients cannot read positions out of it in any
useful way, and any change, foreign secret or truncation fails verification.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

_MAC_BYTES = 12


class Signer:
    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def sign(self, *fields: Any) -> str:
        payload = orjson.dumps(fields)
        return base64.urlsafe_b64encode(self._mac(payload) + payload).rstrip(b"=").decode()

    def verify(self, token: str) -> list[Any] | None:
        """The signed fields, or None for anything this signer did not issue unchanged."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, binascii.Error):
            return None
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        return orjson.loads(payload)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
