"""OAuth connections in tests: the clock moved on for a connection's access token."""

from __future__ import annotations

from datetime import timedelta


def later(simulator, store, connection_id: str, seconds: float) -> None:
    """``seconds`` later for the connection's access token, at Asana (the simulator's token clock)
    and in the store (issued and expiring that much earlier): a refresh falls due without waiting."""
    simulator.api.oauth.advance(seconds)
    shift = timedelta(seconds=seconds)

    def earlier(_connection, tokens):
        return tokens.model_copy(update={"expires_at": tokens.expires_at - shift, "issued_at": tokens.issued_at - shift})

    store.change_tokens(connection_id, store.get(connection_id).base_url, earlier)
