"""Placing, paying, expiring, cancelling and refunding orders: one function per command."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.commands import CancelOrder, CapturePayment, ExpireOrder, PlaceOrder, RefundOrder
from ledger.domain.catalog import Product
from ledger.domain.context import Context
from ledger.domain.errors import (
    AmountMismatch,
    InvalidInput,
    InvalidOrderState,
    OrderRejected,
    PaymentReferenceConflict,
    UnknownBatch,
    UnknownCode,
    UnknownCoupon,
    UnknownOrder,
    UnknownProduct,
)
from ledger.domain.holders import HolderKind
from ledger.domain.ids import (
    coupon_id,
    flash_sale_id,
    holder_id,
    normalise_coupon_code,
    payment_id,
    product_id,
    recipient_id,
    stock_id,
)
from ledger.domain.money import parse_amount
from ledger.domain.orders import Order, OrderStatus, Payment, PaymentOutcome
from ledger.domain.promotions import Coupon, FlashSale
from ledger.domain.recipients import Recipient, mask
from ledger.domain.stock import KeysOf, Stock
from ledger.domain.supply import Batch, Key
from ledger.domain.validity import DueKind
from ledger.entropy import random_uuid
from ledger.handlers import inputs
from ledger.handlers.fulfilment import start_fulfilment
from ledger.handlers.offers import (
    Wanted,
    assess_risk,
    claim,
    evidence,
    holder_keys,
    make_offer,
    order_holders,
    placed_fields,
    zero_prices,
)
from ledger.handlers.validity import schedule
from ledger.results import OrderChange, PaymentResult, Placed
from ledger.writer.session import Session

# Why a captured payment went straight back: the order could not be given goods.
_NO_GOODS = {
    OrderStatus.EXPIRED: "expired_out_of_stock",
    OrderStatus.CANCELLED: "order_cancelled",
    OrderStatus.REJECTED: "order_rejected",
    OrderStatus.DELIVERED: "duplicate_payment",
    OrderStatus.FULFILLING: "duplicate_payment",
    OrderStatus.REFUNDED: "duplicate_payment",
    OrderStatus.PLACED: "order_not_reserved",
}


def keys_of(uow: Session) -> KeysOf:
    """A batch's keys in import order, from the batch (which the writer keeps in memory)."""

    def keys(batch_id: UUID) -> Sequence[UUID]:
        return uow.load(Batch, batch_id, UnknownBatch(f"no batch {batch_id}")).key_ids

    return keys


def load_order(uow: Session, order_id: UUID) -> Order:
    return uow.load(Order, order_id, UnknownOrder(f"no order {order_id}", order_id=str(order_id)))


# ---- placing ----


def holder_ids(cmd: PlaceOrder) -> list[UUID]:
    """The customer, IP and device an order would count against (read ahead by the writer)."""
    keys = holder_keys(cmd.customer_id, cmd.client_ip or cmd.ctx.client_ip, cmd.device_id or cmd.ctx.device_id)
    return [holder_id(kind, value) for kind, value in keys]


def place_order(cmd: PlaceOrder, uow: Session) -> Placed:
    inputs.text(cmd.customer_id, "customer_id")
    inputs.sku(cmd.sku)
    inputs.count(cmd.quantity, "quantity")
    if cmd.quantity > uow.settings.max_quantity_per_order:
        raise InvalidInput("quantity", f"at most {uow.settings.max_quantity_per_order} per order")
    inputs.text(cmd.channel, "channel")
    coupon_code = normalise_coupon_code(inputs.text(cmd.coupon_code, "coupon_code", required=False)) or None
    client_ip = inputs.optional_text(cmd.client_ip or cmd.ctx.client_ip, "client_ip")
    device_id = inputs.optional_text(cmd.device_id or cmd.ctx.device_id, "device_id")
    ctx = Context(now=cmd.ctx.now, actor=cmd.ctx.actor, correlation_id=cmd.ctx.correlation_id,
                  causation_id=cmd.ctx.causation_id, client_ip=client_ip, device_id=device_id)  # into every event
    wanted = Wanted(cmd.customer_id, cmd.sku, cmd.quantity, cmd.channel, coupon_code, client_ip, device_id)
    order_id = random_uuid()
    product = uow.load(Product, product_id(cmd.sku), UnknownProduct(f"no product {cmd.sku}", sku=cmd.sku))
    product.check_sellable()
    account = product.check_account(inputs.optional_text(cmd.recipient_account, "recipient_account"))
    try:
        coupon = None
        if coupon_code:
            coupon = uow.load(Coupon, coupon_id(coupon_code), UnknownCoupon(f"no coupon {coupon_code}"))
        offer = make_offer(uow, ctx, product, wanted, coupon, check_unpaid=True)
        assess_risk(uow, wanted, offer)
        until = ctx.now + timedelta(seconds=product.reservation_timeout_s or uow.settings.reservation_timeout_s)
        order = Order.place(ctx, order_id, **placed_fields(wanted, product.currency, offer.prices()))
        if account:
            fingerprint = uow.vault.account_fingerprint(account)
            order.give_recipient(ctx, uow.vault.accounts.seal(account), fingerprint, mask(account))
            name_recipient(uow, ctx, fingerprint, order_id)
        keys = hold(uow, ctx, offer.stock, product, order, until)
        claim(ctx, offer, order)
        uow.add(order)
    except OrderRejected as rejection:
        # Only the refusal is written: the holders first seen by the checks, and anything
        # else they touched, stay unwritten. Risk needs to see refusals, so it is kept.
        uow.rollback()
        rejected = Order.place(ctx, order_id, **placed_fields(wanted, product.currency, zero_prices()))
        rejected.reject(ctx, rejection.code, rejection.message, evidence(rejection))
        uow.add(rejected)
        uow.keep()
        rejection.order_id = order_id
        raise
    return Placed(order_id, order.status.value, order.amount_due, order.currency, until, keys, 0,
                  order.recipient["masked"] if order.recipient else None)


def name_recipient(uow: Session, ctx: Context, account_hmac: str, order_id: UUID) -> None:
    """The account's index (support's search by account) lists the order, in its transaction."""
    recipient = uow.find(Recipient, recipient_id(account_hmac))
    if recipient is None:
        recipient = Recipient.open(ctx, account_hmac)
        uow.add(recipient)
    recipient.name(ctx, order_id)


def hold(uow: Session, ctx: Context, stock: Stock, product: Product, order: Order, until: datetime) -> list[UUID]:
    """Hold what the order needs until `until`: its keys, or (goods not taken from stock) the order
    itself, on the SKU's book all the same, so the sweeper expires it unpaid."""
    from_stock = product.kind.fulfilled_from_stock
    keys = stock.reserve(ctx, order.id, order.quantity if from_stock else 0, until, keys_of(uow))
    if from_stock:
        order.reserve(ctx, keys, until)
    else:
        order.hold(ctx, until)
    return keys


# ---- paying ----


def capture_payment(cmd: CapturePayment, uow: Session) -> PaymentResult:
    """Idempotent by payment reference: a repeated callback returns the first result."""
    inputs.text(cmd.payment_reference, "payment_reference")
    inputs.text(cmd.provider, "provider")
    ctx, reference = cmd.ctx, cmd.payment_reference
    recorded = uow.find_claim(Payment, payment_id(reference))
    if recorded is not None:
        return _replay(recorded, cmd.order_id)
    order = load_order(uow, cmd.order_id)
    paid = parse_amount(cmd.amount, order.currency, "amount")
    awaiting = order.status in (OrderStatus.RESERVED, OrderStatus.EXPIRED)
    if awaiting and paid != order.amount_due:
        _reject_payment(uow, ctx, order, reference, paid, cmd.provider)
    order.capture(ctx, reference, paid, cmd.provider)
    if order.status == OrderStatus.EXPIRED:
        _re_reserve(uow, ctx, order)
    if order.status == OrderStatus.RESERVED:
        keys, reason = _hand_over(uow, ctx, order), ""
        outcome = PaymentOutcome.ACCEPTED if order.fulfilling else PaymentOutcome.DELIVERED
    else:
        # No goods can be given (cancelled, rejected, already paid, or stock gone
        # after expiry): money is never kept without goods.
        keys, outcome, reason = [], PaymentOutcome.REFUNDED, _NO_GOODS[order.status]
        if paid > 0:
            order.refund(ctx, paid, reason, [], override_redeemed=False, automatic=True)
    uow.add(Payment.record(ctx, payment_id(reference), reference, order.id, paid, order.currency, cmd.provider,
                           outcome, keys, reason))
    return PaymentResult(order.id, reference, outcome.value, paid, keys, reason, 0)


def _reject_payment(uow: Session, ctx: Context, order: Order, reference: str, paid: Decimal, provider: str) -> None:
    """A wrong amount is recorded (order and payment), and the caller told so."""
    reason = f"amount {paid} does not match the {order.amount_due} {order.currency} due"
    order.reject_payment(ctx, reference, paid, provider, reason)
    uow.add(Payment.record(ctx, payment_id(reference), reference, order.id, paid, order.currency, provider,
                           PaymentOutcome.REJECTED, [], reason))
    uow.keep()
    raise AmountMismatch(reason, amount_due=str(order.amount_due))


def _replay(payment: Payment, order_id: UUID) -> PaymentResult:
    if payment.order_id != order_id:
        raise PaymentReferenceConflict(
            f"payment {payment.reference} belongs to another order", payment_reference=payment.reference
        )
    if payment.outcome == PaymentOutcome.REJECTED:
        raise AmountMismatch(payment.reason, payment_reference=payment.reference)
    # The first write's position is not kept on the aggregate; the writer answers with the
    # log head, which is at or after it.
    return PaymentResult(payment.order_id, payment.reference, payment.outcome.value, payment.amount,
                         payment.key_ids, payment.reason, 0, replayed=True)


def _re_reserve(uow: Session, ctx: Context, order: Order) -> None:
    """A payment after expiry: take fresh keys and promotions if every rule still allows."""
    product = uow.load(Product, product_id(order.sku), UnknownProduct(f"no product {order.sku}"))
    coupon = uow.find(Coupon, coupon_id(order.coupon_code)) if order.coupon_code else None
    if product.retired:
        return  # no new sales of a retired product: the payment is refunded
    try:
        offer = make_offer(uow, ctx, product, Wanted.of(order), coupon, check_unpaid=False,
                           use_sale=bool(order.flash_sale_id))
        if order.flash_sale_id and (offer.sale is None or offer.sale.sale_id != order.flash_sale_id):
            return  # the sale price it was sold at is gone
        hold(uow, ctx, offer.stock, product, order, ctx.now)
    except OrderRejected:
        return
    for holder in offer.holders:
        if holder.kind == HolderKind.CUSTOMER:
            holder.late_purchase(ctx, order.id, order.sku, order.quantity)
    if coupon is not None:
        coupon.use(ctx, order.id, order.customer_id, order.discount)
    if offer.sale is not None:  # use_sale above: only an order sold at the sale price has one
        offer.sale.claim(ctx, order.id, order.customer_id, order.quantity)


def _hand_over(uow: Session, ctx: Context, order: Order) -> list[UUID]:
    """Give the paid order its goods: its keys, its access, or its upstream fulfilment; the keys."""
    product = uow.load(Product, product_id(order.sku), UnknownProduct(f"no product {order.sku}"))
    stock = uow.load(Stock, stock_id(order.sku), UnknownProduct(f"no stock for {order.sku}"))
    if product.kind.fulfilled_from_stock:
        return _deliver(uow, ctx, order, stock, product)
    stock.deliver(ctx, order.id)  # the order's hold leaves the SKU's book
    if product.kind.fulfilled_upstream:
        start_fulfilment(uow, ctx, order, product)
    else:
        days = product.validity_days
        valid_until = ctx.now + timedelta(days=days) if days else None
        order.grant(ctx, valid_until)
        if valid_until is not None:
            schedule(uow, ctx, DueKind.ACCESS, order.id, valid_until, order.sku, order.subtotal, order.currency)
    for holder in order_holders(uow, order):
        holder.close(ctx, order.id, order.quantity, "paid")
    return []


def _deliver(uow: Session, ctx: Context, order: Order, stock: Stock, product: Product) -> list[UUID]:
    batches = stock.reserved_batches(order.id)
    key_ids = stock.deliver(ctx, order.id)
    delivered: list[dict[str, Any]] = []
    for key_id, batch_id in zip(key_ids, batches, strict=True):
        key = uow.cached(Key, key_id)
        if key is None and batch_id is None:  # reserved before stock knew each key's batch
            key = uow.load(Key, key_id, UnknownCode(f"no key {key_id}"))
        if key is not None:
            key.deliver(ctx, order.id)
            batch_id = key.batch_id
        else:
            uow.record(Key.delivery(ctx, key_id, order.id))
        assert batch_id is not None
        batch = uow.load(Batch, batch_id, UnknownBatch(f"no batch {batch_id}"))
        delivered.append({"key_id": key_id, "batch_id": batch.id, "supplier": batch.supplier,
                          "unit_cost": batch.unit_cost})
    order.deliver(ctx, delivered)
    if product.validity_days:  # each key stops being redeemable after its product's validity
        due = ctx.now + timedelta(days=product.validity_days)
        for key_id in key_ids:
            schedule(uow, ctx, DueKind.KEY, key_id, due, order.sku, order.unit_price, order.currency)
    for holder in order_holders(uow, order):
        holder.close(ctx, order.id, order.quantity, "paid")
    return key_ids


# ---- closing unpaid orders ----


def cancel_order(cmd: CancelOrder, uow: Session) -> OrderChange:
    inputs.text(cmd.reason, "reason")
    order = load_order(uow, cmd.order_id)
    if order.status != OrderStatus.RESERVED:
        raise InvalidOrderState(
            f"order {cmd.order_id} is {order.status}; only unpaid orders can be cancelled, paid ones refunded",
            status=order.status.value,
        )
    released = close_reservation(uow, cmd.ctx, order, "cancelled", cmd.reason)
    return OrderChange(order.id, order.status.value, 0, released_key_ids=released)


def expire_order(cmd: ExpireOrder, uow: Session) -> OrderChange | None:
    """None when there was nothing to do (paid, cancelled, or not yet due)."""
    order = load_order(uow, cmd.order_id)
    now = cmd.ctx.now
    if order.status != OrderStatus.RESERVED or order.reserved_until is None or order.reserved_until > now:
        return None
    released = close_reservation(uow, cmd.ctx, order, "expired", "reservation_deadline")
    return OrderChange(order.id, order.status.value, 0, released_key_ids=released)


def close_reservation(uow: Session, ctx: Context, order: Order, outcome: str, reason: str) -> list[UUID]:
    stock = uow.load(Stock, stock_id(order.sku), UnknownProduct(f"no stock for {order.sku}"))
    released = stock.release(ctx, order.id, reason)
    for holder in order_holders(uow, order):
        holder.close(ctx, order.id, order.quantity, outcome)
    if order.coupon_code:
        coupon = uow.find(Coupon, coupon_id(order.coupon_code))
        if coupon is not None:
            coupon.release(ctx, order.id, reason)
    if order.flash_sale_id:
        sale = uow.find(FlashSale, flash_sale_id(order.flash_sale_id))
        if sale is not None:
            sale.release(ctx, order.id, reason)
    if outcome == "expired":
        order.expire(ctx)
    else:
        order.cancel(ctx, reason)
    return released


# ---- refunds ----


def refund_order(cmd: RefundOrder, uow: Session) -> OrderChange:
    """Refund money; revoke keys. A full refund revokes every key unless told which."""
    inputs.text(cmd.reason, "reason")
    order = load_order(uow, cmd.order_id)
    if order.fulfilling:
        # A supplier may still recharge the account (an attempt outstanding, or the next one due):
        # the money cannot go back as well. The fulfilment refunds the order itself if none can.
        raise InvalidOrderState(f"order {order.id} is being fulfilled by a supplier: it is refunded on its own "
                                "if no supplier can, and may be refunded once delivered", status=order.status.value)
    refund = parse_amount(cmd.amount, order.currency, "amount", allow_zero=False)
    revoke = list(cmd.key_ids) if cmd.key_ids is not None else (
        [k for k in order.delivered if k not in order.revoked] if refund == order.refundable else []
    )
    order.refund(cmd.ctx, refund, cmd.reason, revoke, cmd.override_redeemed, automatic=False)
    for key_id in revoke:
        key = uow.load(Key, key_id, UnknownCode(f"no key {key_id}"))
        key.revoke(cmd.ctx, order.id, cmd.reason, cmd.override_redeemed)
    return OrderChange(order.id, order.status.value, 0, revoked_key_ids=revoke)
