"""Finding a customer's orders by what they tell support (order id, customer id, recipient
account, payment reference, card key) and what happened to each, every attempt at every supplier
included. Read straight from the write side (`Ledger.reads`); the API's GET /v1/support/orders
and the UI's support page both answer from here."""

from __future__ import annotations

from uuid import UUID

from api.models_upstream import AttemptTrace, Escalation, FulfilmentTrace, SupportOrder
from api.services import Services
from ledger.domain.fulfilment import Fulfilment
from ledger.domain.orders import Order

SEARCH_KEYS = ("order_id", "customer_id", "account", "payment_reference", "key")


def find_orders(svc: Services, by: str, value: UUID | str, in_clear: bool, limit: int = 100) -> list[SupportOrder]:
    """The newest `limit` orders `by` (one of SEARCH_KEYS) names, newest first (only those are
    loaded: the ids come in the order they were placed). `in_clear`: the recipient account
    unmasked (the support role only)."""
    ids = list(dict.fromkeys(_order_ids(svc, by, value)))[-limit:]
    orders = [svc.ledger.reads.find(Order, order_id) for order_id in ids]
    found = sorted((o for o in orders if o is not None), key=lambda o: o.created_on, reverse=True)
    return [_order(svc, o, in_clear) for o in found]


def _order_ids(svc: Services, by: str, value: UUID | str) -> list[UUID]:
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
    lost: dict[str, str] = {}  # attempt -> how its answer was first lost
    for entry in svc.ledger.reads.stream(fulfilment.id):
        if entry.event == "AttemptStarted":
            started[entry.data["attempt_id"]] = entry.timestamp
        elif entry.event == "AttemptUnknown":
            lost.setdefault(entry.data["attempt_id"], str(entry.data["reason"]))
        elif entry.event == "Escalated":
            escalations.append(Escalation(attempt_id=entry.data["attempt_id"], reason=entry.data["reason"],
                                          at=entry.timestamp))
        elif entry.event == "GaveUp":
            gave_up = str(entry.data["reason"])
    attempts = [
        AttemptTrace(attempt_id=attempt_id, supplier=a["supplier"], supplier_product=a["supplier_product"],
                     currency=fulfilment.currency, cost=a["cost"], status=a["status"], unknown=a["unknown"],
                     lost_answer=lost.get(attempt_id), reason=a["reason"], supplier_ref=a["supplier_ref"],
                     charged=a["charged"], started_at=started.get(attempt_id))
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
