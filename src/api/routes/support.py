"""Customer support: find orders by what a customer tells you, and see what happened to each,
every attempt at every supplier included. Read straight from the write side (`Ledger.reads`)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError

from api.deps import Caller, ServicesDep, require
from api.models_upstream import (
    AttemptTrace,
    Escalation,
    FulfilmentTrace,
    SearchKey,
    SupportOrder,
    SupportOrdersOut,
)
from api.services import Services
from ledger.domain.fulfilment import Fulfilment
from ledger.domain.orders import Order

router = APIRouter(prefix="/v1/support", tags=["support"])
Support = Annotated[Caller, Depends(require("support"))]
SEARCH_KEYS = ("order_id", "customer_id", "account", "payment_reference", "key")


def _exactly_one(given: dict[str, object]) -> tuple[str, object]:
    named = [(k, v) for k, v in given.items() if v is not None]
    if len(named) == 1:
        return named[0]
    fields = [k for k, _ in named] or list(SEARCH_KEYS)
    raise RequestValidationError([{"loc": ("query", f), "msg": f"give exactly one of {', '.join(SEARCH_KEYS)}",
                                   "type": "value_error"} for f in fields])


def _order_ids(svc: Services, by: str, value: object) -> list[UUID]:
    reads = svc.ledger.reads
    if by == "order_id":
        assert isinstance(value, UUID)
        return [value]
    assert isinstance(value, str)
    if by == "customer_id":
        return reads.orders_of_customer(value)
    if by == "account":
        return reads.orders_for_account(value)
    found = reads.order_paid_by(value) if by == "payment_reference" else reads.order_of_key(value)
    return [found] if found is not None else []


def _trace(svc: Services, fulfilment: Fulfilment) -> FulfilmentTrace:
    started, escalations, gave_up = {}, [], None
    for entry in svc.ledger.reads.stream(fulfilment.id):
        if entry.event == "AttemptStarted":
            started[entry.data["attempt_id"]] = entry.timestamp
        elif entry.event == "Escalated":
            escalations.append(Escalation(attempt_id=entry.data["attempt_id"], reason=entry.data["reason"],
                                          at=entry.timestamp))
        elif entry.event == "GaveUp":
            gave_up = str(entry.data["reason"])
    attempts = [
        AttemptTrace(attempt_id=attempt_id, supplier=a["supplier"], supplier_product=a["supplier_product"],
                     currency=fulfilment.currency, cost=a["cost"], status=a["status"], unknown=a["unknown"],
                     reason=a["reason"], supplier_ref=a["supplier_ref"], charged=a["charged"],
                     started_at=started.get(attempt_id))
        for attempt_id, a in fulfilment.attempts.items()
    ]
    return FulfilmentTrace(fulfilment_id=fulfilment.id, status=fulfilment.status.value, deadline=fulfilment.deadline,
                           attempts=attempts, escalations=escalations, gave_up=gave_up)


def _account(svc: Services, order: Order, in_clear: bool) -> str | None:
    if order.recipient is None:
        return None
    return svc.ledger.vault.accounts.unseal(order.recipient["sealed"]) if in_clear else order.recipient["masked"]


def _order(svc: Services, order: Order, in_clear: bool) -> SupportOrder:
    fulfilment = svc.ledger.reads.fulfilment_of(order.id)
    return SupportOrder(
        order_id=order.id, status=order.status.value, customer_id=order.customer_id, sku=order.sku,
        quantity=order.quantity, channel=order.channel, currency=order.currency, amount_due=order.amount_due,
        amount_paid=order.amount_paid, amount_refunded=order.amount_refunded, placed_at=order.created_on,
        payment_references=list(order.payments), recipient_account=_account(svc, order, in_clear),
        key_ids=order.delivered or order.reserved,
        fulfilment=_trace(svc, fulfilment) if fulfilment is not None else None,
    )


@router.get("/orders", response_model=SupportOrdersOut)
def search_orders(
    svc: ServicesDep, caller: Support,
    order_id: Annotated[UUID | None, Query()] = None,
    customer_id: Annotated[SearchKey | None, Query()] = None,
    account: Annotated[SearchKey | None, Query(description="a recipient account, found by its keyed hash")] = None,
    payment_reference: Annotated[SearchKey | None, Query()] = None,
    key: Annotated[SearchKey | None, Query(description="a card key's code or its key id")] = None,
) -> SupportOrdersOut:
    """The orders matching exactly one of the search keys (none: an empty list), newest first, each
    with its status, money, payments, keys, recipient account and every fulfilment attempt. The
    recipient account is in clear for the support role only; any other role sees it masked."""
    by, value = _exactly_one({"order_id": order_id, "customer_id": customer_id, "account": account,
                              "payment_reference": payment_reference, "key": key})
    position = svc.reads.head()
    orders = [svc.ledger.reads.find(Order, order_id) for order_id in dict.fromkeys(_order_ids(svc, by, value))]
    found = sorted((o for o in orders if o is not None), key=lambda o: o.created_on, reverse=True)
    in_clear = caller.role == "support"
    return SupportOrdersOut(orders=[_order(svc, o, in_clear) for o in found], position=position)
