"""The admin's view of the API tokens: list them (never a secret) and revoke one by its id."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from starlette.concurrency import run_in_threadpool

from api.deps import Caller, ServicesDep, require
from api.models_tokens import TokenOut, TokensOut
from api.problems import NOT_FOUND
from api.token_store import TokenRow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/tokens", tags=["tokens"])
Admin = Annotated[Caller, Depends(require("admin"))]
TokenIdPath = Annotated[str, Path(pattern=r"^(tok|env)_[0-9a-f]{16}$", examples=["tok_3f9a0c1d2e4b5a69"])]


def _out(row: TokenRow) -> TokenOut:
    return TokenOut(token_id=row.token_id, role=row.role, source=row.source,  # type: ignore[arg-type]
                    created_at=row.created_at, last_used_at=row.last_used_at, revoked_at=row.revoked_at)


@router.get("", response_model=TokensOut)
async def list_tokens(svc: ServicesDep, caller: Admin) -> TokensOut:
    """Every token this server honours or once did: stored ones (`ledger tokens create`) and
    those of its LEDGER_API_TOKENS, revoked ones too."""
    rows = await run_in_threadpool(svc.tokens.store.rows, svc.tokens.env_roles)
    return TokensOut(tokens=[_out(row) for row in rows])


@router.post("/{token_id}/revoke", response_model=TokenOut, responses=NOT_FOUND)
async def revoke_token(token_id: TokenIdPath, svc: ServicesDep, caller: Admin) -> TokenOut:
    """Revoke a token: every process of the deployment refuses it (401) within about a second.
    Revoking a revoked token changes nothing. A revoked token of LEDGER_API_TOKENS stays refused:
    take it out of the variable too."""
    row = await run_in_threadpool(svc.tokens.store.revoke, token_id, svc.tokens.env_roles)
    if row is None:
        raise HTTPException(404, f"no token {token_id}")
    log.warning("token %s (%s) revoked by %s:%s", token_id, row.role, caller.role, caller.token_id)
    return _out(row)
