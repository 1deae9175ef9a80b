"""Settings of a running simulator: tokens, OAuth apps, limits, token lifetimes and fault injection."""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEMO_TOKEN = "2/1209000000000000/demo:simulator"  # acts for the world's default (admin) user
DEMO_CLIENT_ID = "1209000000000001"  # a registered OAuth app, so the command-line simulator has one
DEMO_CLIENT_SECRET = "demo-client-secret"
DEMO_REDIRECT_URI = "http://localhost:8765/callback"

Share = Field(default=0.0, ge=0.0, le=1.0)


class OAuthApp(BaseModel):
    """An OAuth app registered with Asana: its secret and the redirect URIs it may use (exact match)."""

    model_config = ConfigDict(extra="forbid")

    secret: str = Field(repr=False)
    redirect_uris: list[str]


class SimulatorConfig(BaseModel):
    """How the simulated API behaves. Every fault is off by default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Bearer token -> user gid it acts for; None means the world's default user (an admin).
    tokens: dict[str, str | None] = Field(default_factory=lambda: {DEMO_TOKEN: None})

    # OAuth: registered apps by client_id, who approves authorisation requests (a user gid; None
    # means the world's default admin), whether they deny instead, and the access-token lifetime.
    oauth_apps: dict[str, OAuthApp] = Field(
        default_factory=lambda: {
            DEMO_CLIENT_ID: OAuthApp(secret=DEMO_CLIENT_SECRET, redirect_uris=[DEMO_REDIRECT_URI])
        }
    )
    oauth_approver: str | None = None
    oauth_deny: bool = False
    access_token_ttl_seconds: int = Field(default=3600, ge=1)

    # Rate limits, counted per token (the paid-plan defaults of the real API).
    requests_per_minute: int = Field(default=1500, ge=1)
    max_concurrent_reads: int = Field(default=50, ge=1)
    max_concurrent_writes: int = Field(default=15, ge=1)
    concurrency_retry_after: int = Field(default=1, ge=1)
    # Asana's cost limit, per token (None: off): the graph links a minute's answers may walk. An
    # answer's cost is the objects it holds (each a link walked to build it), charged once it is
    # built: the call that takes the balance below zero still succeeds, and calls find a 429 until
    # the balance, refilled continuously at this rate a minute, is positive again.
    cost_per_minute: int | None = Field(default=None, ge=1)

    # Listing and token lifetimes.
    max_unpaginated_results: int = Field(default=1000, ge=1)  # above this, a list without limit is a 400
    offset_ttl_seconds: float = Field(default=3600.0, gt=0)
    # Result sets "on the order of tens of thousands" are truncated even when paginated: the page
    # that reaches past this many results answers 400 (None: never). Exactly this many are served.
    max_listing_results: int | None = Field(default=None, ge=1)
    # A workspace with more projects than this is a large domain: listing them all at once
    # (/projects?workspace=, /workspaces/{gid}/projects) times out with a 504 (None: never).
    large_domain_projects: int | None = Field(default=None, ge=0)
    sync_token_ttl_seconds: float = Field(default=24 * 3600.0, gt=0)

    # How a project-membership event names its resource: by resource_type project_membership, or
    # as the memberships API does, resource_type membership with resource_subtype project_membership.
    membership_events: Literal["project_membership", "membership"] = "project_membership"

    # Fault injection, reproducible for a given fault_seed.
    latency_ms: float = Field(default=0.0, ge=0)
    latency_jitter_ms: float = Field(default=0.0, ge=0)  # adds uniform 0..jitter to each delay
    error_rate: float = Share  # 500 Internal Server Error
    unavailable_rate: float = Share  # 503 Service Unavailable
    rate_limit_storm_rate: float = Share  # forced 429s
    storm_retry_after: int = Field(default=1, ge=1)
    drop_rate: float = Share  # connection closed without a response
    malformed_rate: float = Share  # share of task and story gids served with a corrupted field
    fault_seed: int = 0
    # Calls refused whatever the token: a path, with after "?" the query parameters that must match
    # ("/projects/1/custom_field_settings", "/memberships?parent=1"), to the status that answers it.
    refusals: dict[str, Literal[401, 402, 403]] = Field(default_factory=dict)

    # Signs offsets and sync tokens so clients cannot forge or tamper with them.
    secret: str = Field(default_factory=lambda: secrets.token_hex(16), repr=False)

    @model_validator(mode="after")
    def _shares_fit(self) -> SimulatorConfig:
        if self.error_rate + self.unavailable_rate + self.rate_limit_storm_rate + self.drop_rate > 1:
            raise ValueError("error, unavailable, rate-limit-storm and drop rates must sum to at most 1")
        return self
