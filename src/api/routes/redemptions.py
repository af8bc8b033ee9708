"""Redemption of a delivered code by the platform or a partner."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from api.deps import Caller, IdempotencyKey, ServicesDep, idempotency, rate_limited, require, respond
from api.models_catalog import RedemptionIn, RedemptionOut
from api.problems import NOT_FOUND
from ledger import commands as c

router = APIRouter(prefix="/v1/redemptions", tags=["redemptions"], responses=NOT_FOUND)  # an unknown code
Redeemer = Annotated[Caller, Depends(require("storefront", "partner"))]


@router.post("", response_model=RedemptionOut, dependencies=[Depends(rate_limited)])
def redeem(body: RedemptionIn, request: Request, svc: ServicesDep, caller: Redeemer,
           idempotency_key: IdempotencyKey = None) -> Response:
    """Refusals have their own problem types: unknown-code, key-not-delivered, already-redeemed,
    key-revoked, key-voided, key-expired, wrong-platform. The code is never echoed."""
    command = c.Redeem(ctx=caller.context(svc, request), **body.model_dump())
    # The idempotency record keeps a hash of the body, never the code itself.
    key = idempotency(caller, idempotency_key, "POST /v1/redemptions", body.model_dump())
    return respond(svc.ledger.execute(command, key), lambda redeemed: JSONResponse(RedemptionOut(
        key_id=redeemed.key_id, sku=redeemed.sku, position=redeemed.position).model_dump(mode="json")))
