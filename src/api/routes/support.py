"""Customer support's API: find orders by what a customer tells you, and see what happened to
each, every attempt at every supplier included (`api.support_search`)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError

from api.deps import Caller, ServicesDep, require
from api.models_upstream import SearchKey, SupportOrdersOut
from api.support_search import SEARCH_KEYS, find_orders

router = APIRouter(prefix="/v1/support", tags=["support"])
Support = Annotated[Caller, Depends(require("support"))]


def _exactly_one(given: dict[str, object]) -> tuple[str, object]:
    named = [(k, v) for k, v in given.items() if v is not None]
    if len(named) == 1:
        return named[0]
    fields = [k for k, _ in named] or list(SEARCH_KEYS)
    raise RequestValidationError([{"loc": ("query", f), "msg": f"give exactly one of {', '.join(SEARCH_KEYS)}",
                                   "type": "value_error"} for f in fields])


@router.get("/orders", response_model=SupportOrdersOut)
def search_orders(
    svc: ServicesDep, caller: Support,
    order_id: Annotated[UUID | None, Query()] = None,
    customer_id: Annotated[SearchKey | None, Query()] = None,
    account: Annotated[SearchKey | None, Query(description="a recipient account, found by its keyed hash")] = None,
    payment_reference: Annotated[SearchKey | None, Query()] = None,
    key: Annotated[SearchKey | None, Query(description="a card key's code or its key id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="the newest this many orders")] = 100,
) -> SupportOrdersOut:
    """The newest `limit` orders matching exactly one of the search keys (none: an empty list), each
    with its status, money, payments, keys, recipient account and every fulfilment attempt. The
    recipient account is in clear for the support role only; any other role sees it masked."""
    by, value = _exactly_one({"order_id": order_id, "customer_id": customer_id, "account": account,
                              "payment_reference": payment_reference, "key": key})
    position = svc.reads.head()
    assert isinstance(value, UUID | str)
    return SupportOrdersOut(orders=find_orders(svc, by, value, in_clear=caller.role == "support", limit=limit),
                            position=position)
