"""An order from placement to delivery, expiry, cancellation or refund."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.errors import InvalidInput, InvalidOrderState, RefundExceedsPaid


class OrderStatus(StrEnum):
    PLACED = "placed"
    REJECTED = "rejected"
    RESERVED = "reserved"  # keys held, waiting for payment
    DELIVERED = "delivered"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"  # every paid unit of money went back


class Order(LedgerAggregate):
    """One customer order of one SKU, from placement to delivery, expiry, cancellation or refund."""

    class Placed(LedgerAggregate.Created):
        """A customer placed an order: SKU, quantity, channel, price, discount, amount due."""

        customer_id: str
        sku: str
        quantity: int
        channel: str
        currency: str
        unit_price: Decimal
        subtotal: Decimal
        discount: Decimal
        amount_due: Decimal
        coupon_code: str | None
        flash_sale_id: str | None
        client_ip: str | None
        device_id: str | None

    class Rejected(LedgerAggregate.Event):
        """The order was refused by a rule (out of stock, limit, coupon, risk), with evidence."""

        reason: str
        message: str
        evidence: dict[str, Any]

        def apply(self, order: Order) -> None:
            order.status = OrderStatus.REJECTED

    class KeysReserved(LedgerAggregate.Event):
        """Keys were reserved for the order until the deadline."""

        key_ids: list[UUID]
        until: datetime

        def apply(self, order: Order) -> None:
            order.status = OrderStatus.RESERVED
            order.reserved = list(self.key_ids)
            order.reserved_until = self.until

    class PaymentCaptured(LedgerAggregate.Event):
        """The payment provider's money was captured for the order."""

        payment_reference: str
        amount: Decimal
        provider: str

        def apply(self, order: Order) -> None:
            order.payments[self.payment_reference] = self.amount
            order.amount_paid += self.amount

    class PaymentRejected(LedgerAggregate.Event):
        """A payment callback was refused (its amount did not match the amount due)."""

        payment_reference: str
        amount: Decimal
        provider: str
        reason: str

        def apply(self, order: Order) -> None:
            order.rejected_payments += 1

    class KeysDelivered(LedgerAggregate.Event):
        """The paid order received its keys, each with its batch and unit cost: the cost at time of sale."""

        keys: list[dict[str, Any]]
        total_cost: Decimal

        def apply(self, order: Order) -> None:
            order.status = OrderStatus.DELIVERED
            order.delivered = [k["key_id"] for k in self.keys]
            order.reserved = []
            order.cost = self.total_cost

    class Expired(LedgerAggregate.Event):
        """The unpaid reservation lapsed and its keys were released."""

        released_key_ids: list[UUID]

        def apply(self, order: Order) -> None:
            order.status = OrderStatus.EXPIRED
            order.reserved = []

    class Cancelled(LedgerAggregate.Event):
        """The unpaid order was cancelled and its keys were released."""

        reason: str
        released_key_ids: list[UUID]

        def apply(self, order: Order) -> None:
            order.status = OrderStatus.CANCELLED
            order.reserved = []

    class Refunded(LedgerAggregate.Event):
        """Money went back to the buyer; listed keys were revoked."""

        amount: Decimal
        reason: str
        revoked_key_ids: list[UUID]
        override_redeemed: bool
        automatic: bool

        def apply(self, order: Order) -> None:
            order.amount_refunded += self.amount
            order.revoked.extend(self.revoked_key_ids)
            # An automatic refund gives back a payment that bought nothing (a duplicate, or one
            # for an order that cannot be served); what the order was paid for is not touched,
            # so its status stays, even when nothing else was paid (a free order's stray payment).
            if (not self.automatic and order.amount_refunded == order.amount_paid
                    and order.status == OrderStatus.DELIVERED):
                order.status = OrderStatus.REFUNDED

    def __init__(
        self, customer_id: str, sku: str, quantity: int, channel: str, currency: str, unit_price: Decimal,
        subtotal: Decimal, discount: Decimal, amount_due: Decimal, coupon_code: str | None,
        flash_sale_id: str | None, client_ip: str | None, device_id: str | None,
    ) -> None:
        self.customer_id = customer_id
        self.sku = sku
        self.quantity = quantity
        self.channel = channel
        self.currency = currency
        self.unit_price = unit_price
        self.subtotal = subtotal
        self.discount = discount
        self.amount_due = amount_due
        self.coupon_code = coupon_code
        self.flash_sale_id = flash_sale_id
        self.client_ip = client_ip
        self.device_id = device_id
        self.status = OrderStatus.PLACED
        self.reserved: list[UUID] = []
        self.reserved_until: datetime | None = None
        self.delivered: list[UUID] = []
        self.revoked: list[UUID] = []
        self.payments: dict[str, Decimal] = {}
        self.rejected_payments = 0
        self.amount_paid = Decimal(0)
        self.amount_refunded = Decimal(0)
        self.cost = Decimal(0)

    @classmethod
    def place(cls, ctx: Context, order_id: UUID, **fields: Any) -> Order:
        return cls._start(cls.Placed, order_id, ctx, **fields)

    @property
    def refundable(self) -> Decimal:
        return self.amount_paid - self.amount_refunded

    def reject(self, ctx: Context, reason: str, message: str, evidence: dict[str, Any] | None = None) -> None:
        self._require(OrderStatus.PLACED)
        self._emit(self.Rejected, ctx, reason=reason, message=message, evidence=evidence or {})

    def reserve(self, ctx: Context, key_ids: list[UUID], until: datetime) -> None:
        if self.status not in (OrderStatus.PLACED, OrderStatus.EXPIRED):
            raise InvalidOrderState(f"order {self.id} is {self.status}, cannot reserve keys")
        if len(key_ids) != self.quantity:
            raise InvalidOrderState(f"order {self.id} needs {self.quantity} keys, got {len(key_ids)}")
        self._emit(self.KeysReserved, ctx, key_ids=key_ids, until=until)

    def capture(self, ctx: Context, reference: str, amount: Decimal, provider: str) -> None:
        if reference in self.payments:
            raise InvalidOrderState(f"payment {reference} was already captured on order {self.id}")
        self._emit(self.PaymentCaptured, ctx, payment_reference=reference, amount=amount, provider=provider)

    def reject_payment(self, ctx: Context, reference: str, amount: Decimal, provider: str, reason: str) -> None:
        self._emit(
            self.PaymentRejected, ctx, payment_reference=reference, amount=amount, provider=provider, reason=reason
        )

    def deliver(self, ctx: Context, keys: list[dict[str, Any]]) -> None:
        self._require(OrderStatus.RESERVED)
        if [k["key_id"] for k in keys] != self.reserved:
            raise InvalidOrderState(f"order {self.id} must be delivered exactly the keys it reserved")
        if self.amount_paid < self.amount_due:
            raise InvalidOrderState(f"order {self.id} is not paid")
        total = sum((Decimal(k["unit_cost"]) for k in keys), Decimal(0))
        self._emit(self.KeysDelivered, ctx, keys=keys, total_cost=total)

    def expire(self, ctx: Context) -> None:
        self._require(OrderStatus.RESERVED)
        self._emit(self.Expired, ctx, released_key_ids=self.reserved)

    def cancel(self, ctx: Context, reason: str) -> None:
        self._require(OrderStatus.RESERVED)
        self._emit(self.Cancelled, ctx, reason=reason, released_key_ids=self.reserved)

    def refund(
        self, ctx: Context, amount: Decimal, reason: str, revoked_key_ids: list[UUID], override_redeemed: bool,
        automatic: bool,
    ) -> None:
        if amount <= 0:
            raise InvalidInput("amount", "must be greater than zero")
        if amount > self.refundable:
            raise RefundExceedsPaid(
                f"refund of {amount} exceeds the {self.refundable} {self.currency} still refundable",
                refundable=str(self.refundable),
            )
        unknown = [k for k in revoked_key_ids if k not in self.delivered or k in self.revoked]
        if unknown:
            raise InvalidInput("key_ids", f"not delivered by this order or already revoked: {unknown}")
        self._emit(
            self.Refunded, ctx, amount=amount, reason=reason, revoked_key_ids=revoked_key_ids,
            override_redeemed=override_redeemed, automatic=automatic,
        )

    def _require(self, status: OrderStatus) -> None:
        if self.status is not status:
            raise InvalidOrderState(f"order {self.id} is {self.status}, not {status}", status=self.status.value)


class PaymentOutcome(StrEnum):
    DELIVERED = "delivered"
    REFUNDED = "refunded"  # captured, then returned in full: no goods could be given
    REJECTED = "rejected"


class Payment(LedgerAggregate):
    """One provider payment, keyed by its reference: the idempotency record of a callback."""

    class Recorded(LedgerAggregate.Created):
        """The outcome of one payment reference: delivered, refunded in full, or rejected."""

        reference: str
        order_id: UUID
        amount: Decimal
        currency: str
        provider: str
        outcome: str
        key_ids: list[UUID]
        reason: str

    def __init__(
        self, reference: str, order_id: UUID, amount: Decimal, currency: str, provider: str, outcome: str,
        key_ids: list[UUID], reason: str,
    ) -> None:
        self.reference = reference
        self.order_id = order_id
        self.amount = amount
        self.currency = currency
        self.provider = provider
        self.outcome = PaymentOutcome(outcome)
        self.key_ids = list(key_ids)
        self.reason = reason

    @classmethod
    def record(
        cls, ctx: Context, payment_id: UUID, reference: str, order_id: UUID, amount: Decimal, currency: str,
        provider: str, outcome: PaymentOutcome, key_ids: list[UUID], reason: str = "",
    ) -> Payment:
        return cls._start(
            cls.Recorded, payment_id, ctx, reference=reference, order_id=order_id, amount=amount,
            currency=currency, provider=provider, outcome=outcome.value, key_ids=key_ids, reason=reason,
        )
