"""Bodies of the admin's token routes: a token's id, role and dates, never its secret."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TokenOut(BaseModel):
    token_id: str = Field(description="what events (`actor`) and logs name: never the secret nor a hash of it")
    role: str
    source: Literal["stored", "env"] = Field(description="`ledger tokens create`, or LEDGER_API_TOKENS")
    created_at: str | None = Field(description="UTC; none for a token of LEDGER_API_TOKENS")
    last_used_at: str | None = Field(description="UTC, to the minute or so; stored tokens only")
    revoked_at: str | None = Field(description="UTC; a revoked token is refused (401) by every process "
                                   "within about a second")


class TokensOut(BaseModel):
    tokens: list[TokenOut]
