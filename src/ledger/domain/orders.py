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
    RESERVED = "reserved"  # keys (or, without stock, the order itself) held, waiting for payment
    FULFILLING = "fulfilling"  # paid; an upstream supplier is fulfilling it
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

    class RecipientGiven(LedgerAggregate.Event):
        """The account an upstream product is for: sealed, its keyed hash for look-ups, and masked to show."""

        account_sealed: str
        account_hmac: str
        account_masked: str

        def apply(self, order: Order) -> None:
            order.recipient = {"sealed": self.account_sealed, "hmac": self.account_hmac,
                               "masked": self.account_masked}

    class Held(LedgerAggregate.Event):
        """An order of goods not taken from stock awaits payment until the deadline."""

        until: datetime

        def apply(self, order: Order) -> None:
            order.status = OrderStatus.RESERVED
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

    class FulfilmentStarted(LedgerAggregate.Event):
        """The paid order went to its upstream fulfilment."""

        fulfilment_id: UUID

        def apply(self, order: Order) -> None:
            order.status = OrderStatus.FULFILLING
            order.reserved_until = None

    class Fulfilled(LedgerAggregate.Event):
        """A supplier completed the order: which attempt, the supplier's reference and the cost it charged."""

        attempt_id: str
        supplier: str
        supplier_ref: str | None
        cost: Decimal

        def apply(self, order: Order) -> None:
            order.status = OrderStatus.DELIVERED
            order.cost = self.cost

    class FulfilmentReversed(LedgerAggregate.Event):
        """The supplier took back the completed recharge: its cost is no longer the order's."""

        attempt_id: str
        supplier: str
        cost: Decimal

        def apply(self, order: Order) -> None:
            if order.status is OrderStatus.DELIVERED:  # until refunded or fulfilled anew
                order.status = OrderStatus.FULFILLING  # (an order an admin refunded stays refunded)
            order.cost -= self.cost

    class Granted(LedgerAggregate.Event):
        """Access without stock or supplier was granted at payment, valid until a date (None: for good)."""

        valid_until: datetime | None

        def apply(self, order: Order) -> None:
            order.status = OrderStatus.DELIVERED
            order.reserved_until = None
            order.valid_until = self.valid_until

    class AccessEnded(LedgerAggregate.Event):
        """The access granted at payment reached its end (`valid_until`): it is no longer valid."""

        valid_until: datetime

        def apply(self, order: Order) -> None:
            order.access_ended = True

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
                    and order.status in (OrderStatus.DELIVERED, OrderStatus.FULFILLING)):
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
        self.recipient: dict[str, str] | None = None  # upstream products: sealed, hmac, masked
        self.valid_until: datetime | None = None  # access granted at payment: until when
        self.access_ended = False

    @classmethod
    def place(cls, ctx: Context, order_id: UUID, **fields: Any) -> Order:
        return cls._start(cls.Placed, order_id, ctx, **fields)

    @property
    def fulfilling(self) -> bool:
        """Paid, and with an upstream supplier until it succeeds or gives up."""
        return self.status == OrderStatus.FULFILLING

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

    def give_recipient(self, ctx: Context, sealed: str, hmac: str, masked: str) -> None:
        self._emit(self.RecipientGiven, ctx, account_sealed=sealed, account_hmac=hmac, account_masked=masked)

    def hold(self, ctx: Context, until: datetime) -> None:
        """Await payment with nothing reserved: goods that are not taken from stock."""
        self._require(OrderStatus.PLACED)
        self._emit(self.Held, ctx, until=until)

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

    def start_fulfilment(self, ctx: Context, fulfilment_id: UUID) -> None:
        self._require_paid()
        self._emit(self.FulfilmentStarted, ctx, fulfilment_id=fulfilment_id)

    def fulfilled(self, ctx: Context, attempt_id: str, supplier: str, supplier_ref: str | None, cost: Decimal) -> None:
        self._require(OrderStatus.FULFILLING)
        self._emit(self.Fulfilled, ctx, attempt_id=attempt_id, supplier=supplier, supplier_ref=supplier_ref, cost=cost)

    def fulfilment_reversed(self, ctx: Context, attempt_id: str, supplier: str, cost: Decimal) -> None:
        """Also after an admin refunded the delivered order: the supplier's reversal still happened."""
        if self.status not in (OrderStatus.DELIVERED, OrderStatus.REFUNDED):
            raise InvalidOrderState(f"order {self.id} is {self.status}: only a delivered recharge is reversed",
                                    status=self.status.value)
        self._emit(self.FulfilmentReversed, ctx, attempt_id=attempt_id, supplier=supplier, cost=cost)

    def grant(self, ctx: Context, valid_until: datetime | None) -> None:
        self._require_paid()
        self._emit(self.Granted, ctx, valid_until=valid_until)

    def end_access(self, ctx: Context) -> bool:
        """End granted access at its `valid_until`; False when there is nothing to end (no end,
        not yet, ended already, or refunded: a refund took the access back)."""
        if (self.status != OrderStatus.DELIVERED or self.valid_until is None or self.access_ended
                or ctx.now < self.valid_until):
            return False
        self._emit(self.AccessEnded, ctx, valid_until=self.valid_until)
        return True

    def _require_paid(self) -> None:
        self._require(OrderStatus.RESERVED)
        if self.amount_paid < self.amount_due:
            raise InvalidOrderState(f"order {self.id} is not paid")

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
    ACCEPTED = "accepted"  # paid; an upstream supplier is fulfilling the order
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
