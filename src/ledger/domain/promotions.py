"""Coupons and flash sales. Every use and every release of a use is an event, and the
caps are checked against the aggregate's own version, so they hold under concurrency."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.errors import CouponExhausted, CouponNotApplicable, FlashSaleLimitReached
from ledger.domain.ids import coupon_id, flash_sale_id
from ledger.domain.money import quantize


class DiscountKind(StrEnum):
    AMOUNT = "amount"
    PERCENT = "percent"


class _Uses(LedgerAggregate):
    """Live uses by order (released ones drop out) and per-customer counts."""

    def __init__(self) -> None:
        self.uses: dict[str, str] = {}  # order id -> customer id
        self.units: dict[str, int] = {}  # order id -> units (flash sales)

    def uses_by(self, customer_id: str) -> int:
        return sum(1 for c in self.uses.values() if c == customer_id)

    def units_by(self, customer_id: str) -> int:
        return sum(self.units[o] for o, c in self.uses.items() if c == customer_id)

    def holds(self, order_id: UUID) -> bool:
        return str(order_id) in self.uses

    def _add_use(self, order_id: UUID, customer_id: str, units: int) -> None:
        self.uses[str(order_id)] = customer_id
        self.units[str(order_id)] = units

    def _drop_use(self, order_id: UUID) -> None:
        self.uses.pop(str(order_id), None)
        self.units.pop(str(order_id), None)


class Coupon(_Uses):
    """A coupon campaign: its discount, scope, window and caps, and its live uses."""

    class Created(LedgerAggregate.Created):
        """A coupon campaign was created: discount, scope, window and caps."""

        code: str
        kind: str
        value: Decimal
        currency: str
        min_spend: Decimal
        skus: list[str]
        starts_at: datetime
        ends_at: datetime
        total_cap: int | None
        per_customer_cap: int | None

    class Used(LedgerAggregate.Event):
        """An order used the coupon (the use is live until released)."""

        order_id: UUID
        customer_id: str
        discount: Decimal

        def apply(self, coupon: Coupon) -> None:
            coupon._add_use(self.order_id, self.customer_id, 1)

    class UseReleased(LedgerAggregate.Event):
        """The order expired or was cancelled: the use is given back."""

        order_id: UUID
        reason: str

        def apply(self, coupon: Coupon) -> None:
            coupon._drop_use(self.order_id)

    def __init__(
        self, code: str, kind: str, value: Decimal, currency: str, min_spend: Decimal, skus: list[str],
        starts_at: datetime, ends_at: datetime, total_cap: int | None, per_customer_cap: int | None,
    ) -> None:
        super().__init__()
        self.code = code
        self.kind = DiscountKind(kind)
        self.value = value
        self.currency = currency
        self.min_spend = min_spend
        self.skus = list(skus)
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.total_cap = total_cap
        self.per_customer_cap = per_customer_cap

    @classmethod
    def create(
        cls, ctx: Context, code: str, kind: str, value: Decimal, currency: str, min_spend: Decimal,
        skus: list[str], starts_at: datetime, ends_at: datetime, total_cap: int | None,
        per_customer_cap: int | None,
    ) -> Coupon:
        return cls._start(
            cls.Created, coupon_id(code), ctx, code=code, kind=kind, value=value, currency=currency,
            min_spend=min_spend, skus=skus, starts_at=starts_at, ends_at=ends_at, total_cap=total_cap,
            per_customer_cap=per_customer_cap,
        )

    @property
    def uses_left(self) -> int | None:
        return None if self.total_cap is None else max(0, self.total_cap - len(self.uses))

    def discount_for(self, sku: str, subtotal: Decimal, currency: str, customer_id: str, now: datetime) -> Decimal:
        """The discount this coupon gives, or the rule that stops it."""
        if not self.starts_at <= now < self.ends_at:
            raise CouponNotApplicable(f"coupon {self.code} is not valid at this time", coupon=self.code)
        if self.skus and sku not in self.skus:
            raise CouponNotApplicable(f"coupon {self.code} does not apply to {sku}", coupon=self.code)
        if currency != self.currency:
            raise CouponNotApplicable(f"coupon {self.code} is in {self.currency}", coupon=self.code)
        if subtotal < self.min_spend:
            raise CouponNotApplicable(
                f"coupon {self.code} needs a minimum spend of {self.min_spend}", coupon=self.code
            )
        if self.total_cap is not None and len(self.uses) >= self.total_cap:
            raise CouponExhausted(f"coupon {self.code} has no uses left", coupon=self.code)
        if self.per_customer_cap is not None and self.uses_by(customer_id) >= self.per_customer_cap:
            raise CouponExhausted(f"coupon {self.code} was already used by this customer", coupon=self.code)
        if self.kind == DiscountKind.AMOUNT:
            return min(self.value, subtotal)
        return min(quantize(subtotal * self.value / 100, currency), subtotal)

    def use(self, ctx: Context, order_id: UUID, customer_id: str, discount: Decimal) -> None:
        self._emit(self.Used, ctx, order_id=order_id, customer_id=customer_id, discount=discount)

    def release(self, ctx: Context, order_id: UUID, reason: str) -> None:
        if self.holds(order_id):
            self._emit(self.UseReleased, ctx, order_id=order_id, reason=reason)


class FlashSale(_Uses):
    """A flash sale of one SKU: special price inside a window, total and per-customer caps."""

    class Created(LedgerAggregate.Created):
        """A flash sale was created: SKU, window, price, quantity, per-customer limit."""

        sale_id: str
        sku: str
        starts_at: datetime
        ends_at: datetime
        price: Decimal
        total_quantity: int
        per_customer_limit: int | None

    class Claimed(LedgerAggregate.Event):
        """An order claimed units of the flash sale."""

        order_id: UUID
        customer_id: str
        units: int

        def apply(self, sale: FlashSale) -> None:
            sale._add_use(self.order_id, self.customer_id, self.units)

    class ClaimReleased(LedgerAggregate.Event):
        """The order expired or was cancelled: the units are given back."""

        order_id: UUID
        reason: str

        def apply(self, sale: FlashSale) -> None:
            sale._drop_use(self.order_id)

    def __init__(
        self, sale_id: str, sku: str, starts_at: datetime, ends_at: datetime, price: Decimal,
        total_quantity: int, per_customer_limit: int | None,
    ) -> None:
        super().__init__()
        self.sale_id = sale_id
        self.sku = sku
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.price = price
        self.total_quantity = total_quantity
        self.per_customer_limit = per_customer_limit

    @classmethod
    def create(
        cls, ctx: Context, sale_id: str, sku: str, starts_at: datetime, ends_at: datetime, price: Decimal,
        total_quantity: int, per_customer_limit: int | None,
    ) -> FlashSale:
        return cls._start(
            cls.Created, flash_sale_id(sale_id), ctx, sale_id=sale_id, sku=sku, starts_at=starts_at,
            ends_at=ends_at, price=price, total_quantity=total_quantity, per_customer_limit=per_customer_limit,
        )

    @property
    def units_left(self) -> int:
        return max(0, self.total_quantity - sum(self.units.values()))

    def check_claim(self, customer_id: str, units: int) -> None:
        if units > self.units_left:
            raise FlashSaleLimitReached(
                f"flash sale {self.sale_id} has {self.units_left} left", sale=self.sale_id
            )
        if self.per_customer_limit is not None and self.units_by(customer_id) + units > self.per_customer_limit:
            raise FlashSaleLimitReached(
                f"flash sale {self.sale_id} allows {self.per_customer_limit} per customer", sale=self.sale_id
            )

    def claim(self, ctx: Context, order_id: UUID, customer_id: str, units: int) -> None:
        self._emit(self.Claimed, ctx, order_id=order_id, customer_id=customer_id, units=units)

    def release(self, ctx: Context, order_id: UUID, reason: str) -> None:
        if self.holds(order_id):
            self._emit(self.ClaimReleased, ctx, order_id=order_id, reason=reason)
