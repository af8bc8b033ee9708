"""API settings, from the environment (prefix LEDGER_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROLES = ("admin", "storefront", "finance", "risk", "analyst", "partner")


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    api_tokens: str = Field(default="", description="role=token,role=token,...")
    max_request_bytes: int = Field(default=1_048_576, gt=0, description="larger bodies get 413")
    rate_limit_per_minute: int = Field(default=0, ge=0, description="per client on orders/redemptions; 0 = off")
    read_wait_s: float = Field(default=2.0, gt=0, description="how long a read waits for min_position")
    ready_max_lag_events: int = Field(default=10_000, ge=0, description="readyz fails beyond this lag")
    sweep_interval_s: float = Field(default=5.0, gt=0)
    as_of_cached_events: int = Field(default=50_000, ge=0, description="decoded events each process keeps for "
                                     "as_of reads (~2 KB each); events past them are decoded again per read")
    serve_projections: bool = Field(default=True, description="run the projection runner in `serve`")
    serve_relay: bool = Field(default=False, description="run the Kafka relay beside the API (`serve --relay`)")

    def token_roles(self) -> dict[str, str]:
        """token -> role from LEDGER_API_TOKENS."""
        found: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in self.api_tokens.split(","))):
            role, _, token = part.partition("=")
            if role not in ROLES or not token:
                raise ValueError(f"LEDGER_API_TOKENS: {part.split('=')[0]!r} is not role=token with a role in {ROLES}")
            found[token] = role
        return found
