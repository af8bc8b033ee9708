"""Orders: placement, the payment callback, status, keys (the one route that shows codes),
cancellation and refunds."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from api.deps import Caller, IdempotencyKey, ServicesDep, idempotency, rate_limited, require, respond
from api.models import (
    CancelIn,
    KeyOut,
    KeysOut,
    OrderChangeOut,
    OrderIn,
    OrderOut,
    OrderView,
    PaymentIn,
    PaymentOut,
    RefundIn,
    TimelineEvent,
    order_status,
)
from api.problems import NOT_FOUND
from ledger import commands as c

router = APIRouter(prefix="/v1/orders", tags=["orders"], responses=NOT_FOUND)  # an unknown order or product
Storefront = Annotated[Caller, Depends(require("storefront"))]
Admin = Annotated[Caller, Depends(require("admin"))]
Payments = Annotated[Caller, Depends(require("payments"))]  # a trusted back end; never the storefront


def _json(model: OrderOut | PaymentOut | OrderChangeOut, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


@router.post("", status_code=201, response_model=OrderOut, dependencies=[Depends(rate_limited)])
def place_order(body: OrderIn, request: Request, svc: ServicesDep, caller: Storefront,
                idempotency_key: IdempotencyKey = None) -> Response:
    command = c.PlaceOrder(ctx=caller.context(svc, request), **body.model_dump())
    fingerprinted = body.model_dump()
    if body.recipient_account is not None:  # personal data: fingerprinted by its keyed hash, never in clear
        fingerprinted["recipient_account"] = svc.ledger.vault.account_fingerprint(body.recipient_account)
    key = idempotency(caller, idempotency_key, "POST /v1/orders", fingerprinted)
    return respond(svc.ledger.execute(command, key), lambda placed: _json(OrderOut(
        order_id=placed.order_id, status=order_status(placed.status), amount_due=placed.amount_due,
        currency=placed.currency, reserved_until=placed.reserved_until,
        recipient_account_masked=placed.recipient_masked, position=placed.position), 201))


@router.post("/{order_id}/payments", response_model=PaymentOut)
def capture_payment(order_id: UUID, body: PaymentIn, request: Request, svc: ServicesDep, caller: Payments,
                    idempotency_key: IdempotencyKey = None) -> Response:
    """A payment confirmed by a trusted back end (the `payments` role), idempotent by `payment_reference`.
    A storefront token may not confirm a payment (403); a provider's own callback comes signed to
    POST /v1/payment-providers/{name}/webhooks."""
    command = c.CapturePayment(ctx=caller.context(svc, request), order_id=order_id, **body.model_dump())
    key = idempotency(caller, idempotency_key, f"POST /v1/orders/{order_id}/payments", body.model_dump())
    return respond(svc.ledger.execute(command, key), lambda result: _json(PaymentOut.of(result)))


@router.get("/{order_id}", response_model=OrderView)
def get_order(order_id: UUID, svc: ServicesDep, caller: Storefront) -> OrderView:
    order = svc.ledger.reads.order(order_id)
    timeline = [TimelineEvent(at=e.timestamp, stream=e.stream, event=e.event, version=e.version)
                for e in svc.ledger.reads.stream(order_id)]
    return OrderView(
        order_id=order.id, status=order_status(order.status.value), customer_id=order.customer_id, sku=order.sku,
        quantity=order.quantity, channel=order.channel, currency=order.currency, unit_price=order.unit_price,
        discount=order.discount, amount_due=order.amount_due, amount_paid=order.amount_paid,
        amount_refunded=order.amount_refunded, reserved_until=order.reserved_until,
        recipient_account_masked=order.recipient["masked"] if order.recipient else None,
        key_ids=order.delivered or order.reserved, timeline=timeline,
        position=svc.reads.head(),
    )


@router.get("/{order_id}/keys", response_model=KeysOut)
def get_keys(order_id: UUID, svc: ServicesDep, caller: Annotated[Caller, Depends(require("storefront"))]) -> KeysOut:
    """The delivered codes: the only route that ever returns a code. A revoked key (a refund) or a
    voided one (a recall) is never shown."""
    keys = [KeyOut(key_id=k.key_id, code=k.code, status=k.status) for k in svc.ledger.reads.order_keys(order_id)]
    return KeysOut(keys=keys, position=svc.reads.head())


@router.post("/{order_id}/cancel", response_model=OrderChangeOut)
def cancel_order(order_id: UUID, request: Request, svc: ServicesDep, caller: Admin, body: CancelIn | None = None,
                 idempotency_key: IdempotencyKey = None) -> Response:
    body = body or CancelIn()
    command = c.CancelOrder(ctx=caller.context(svc, request), order_id=order_id, reason=body.reason)
    key = idempotency(caller, idempotency_key, f"POST /v1/orders/{order_id}/cancel", body.model_dump())
    return respond(svc.ledger.execute(command, key), lambda change: _json(OrderChangeOut(
        order_id=change.order_id, status=order_status(change.status), position=change.position,
        released_key_ids=change.released_key_ids, revoked_key_ids=[])))


@router.post("/{order_id}/refunds", response_model=OrderChangeOut)
def refund_order(order_id: UUID, body: RefundIn, request: Request, svc: ServicesDep, caller: Admin,
                 idempotency_key: IdempotencyKey = None) -> Response:
    command = c.RefundOrder(ctx=caller.context(svc, request), order_id=order_id, **body.model_dump())
    key = idempotency(caller, idempotency_key, f"POST /v1/orders/{order_id}/refunds", body.model_dump(mode="json"))
    return respond(svc.ledger.execute(command, key), lambda change: _json(OrderChangeOut(
        order_id=change.order_id, status=order_status(change.status), position=change.position, released_key_ids=[],
        revoked_key_ids=change.revoked_key_ids)))
