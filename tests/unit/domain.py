"""Builders for domain unit tests: aggregates made directly, with no store, ledger or clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from ledger.domain.base import LedgerAggregate
from ledger.domain.catalog import DEFAULT_CHANNEL, Product, ProductKind
from ledger.domain.context import Context
from ledger.domain.orders import Order
from ledger.domain.promotions import Coupon, DiscountKind
from ledger.domain.stock import Stock
from ledger.domain.supply import Key

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CTX = Context(now=NOW, actor="test")
D = Decimal


def later(**delta: float) -> Context:
    return CTX.at(NOW + timedelta(**delta))


def pending(aggregate: LedgerAggregate) -> list[str]:
    """The names of the events an aggregate has triggered and not yet had collected."""
    return [type(event).__name__ for event in aggregate.collect_events()]


def order(quantity: int = 1, unit_price: str = "10.00", discount: str = "0.00", currency: str = "USD") -> Order:
    subtotal = D(unit_price) * quantity
    return Order.place(
        CTX, uuid4(), customer_id="alice", sku="GAME-1", quantity=quantity, channel=DEFAULT_CHANNEL,
        currency=currency, unit_price=D(unit_price), subtotal=subtotal, discount=D(discount),
        amount_due=subtotal - D(discount), coupon_code=None, flash_sale_id=None, client_ip=None, device_id=None,
    )


def reserved_order(quantity: int = 1, **kwargs: Any) -> tuple[Order, list[UUID]]:
    placed = order(quantity, **kwargs)
    keys = [uuid4() for _ in range(quantity)]
    placed.reserve(CTX, keys, NOW + timedelta(minutes=15))
    return placed, keys


def delivered_order(quantity: int = 1, unit_cost: str = "6.00", **kwargs: Any) -> tuple[Order, list[UUID]]:
    placed, keys = reserved_order(quantity, **kwargs)
    placed.capture(CTX, "pay-1", placed.amount_due, "psp")
    placed.deliver(CTX, [{"key_id": k, "batch_id": uuid4(), "unit_cost": unit_cost} for k in keys])
    return placed, keys


def key(platform: str | None = None, unit_cost: str = "6.00") -> Key:
    return Key.register(CTX, uuid4(), batch_id=uuid4(), sku="GAME-1", supplier="acme", unit_cost=D(unit_cost),
                        platform=platform, code_hmac="hmac", sealed_code="sealed")


def stock(*batch_sizes: int) -> tuple[Stock, dict[UUID, list[UUID]]]:
    """A SKU's stock replenished with batches of the given sizes; the batches' keys by batch id."""
    batches = {uuid4(): [uuid4() for _ in range(size)] for size in batch_sizes}
    pool = Stock.open(CTX, "GAME-1")
    for batch_id, keys in batches.items():
        pool.replenish(CTX, batch_id, keys)
    return pool, batches


def coupon(kind: DiscountKind = DiscountKind.AMOUNT, value: str = "5.00", *, total_cap: int | None = None,
           per_customer_cap: int | None = None, min_spend: str = "0", skus: list[str] | None = None,
           currency: str = "USD") -> Coupon:
    return Coupon.create(
        CTX, "TAKE5", kind=kind.value, value=D(value), currency=currency, min_spend=D(min_spend), skus=skus or [],
        starts_at=NOW, ends_at=NOW + timedelta(days=1), total_cap=total_cap, per_customer_cap=per_customer_cap,
    )


def product(kind: ProductKind = ProductKind.CARD_KEY, per_customer_limit: int | None = None,
            prices: dict[str, Decimal] | None = None) -> Product:
    return Product.define(
        CTX, sku="GAME-1", name="Game", kind=kind.value, face_value=D("10"), currency="USD",
        prices=prices or {DEFAULT_CHANNEL: D("10.00")}, validity_days=None, platform=None,
        per_customer_limit=per_customer_limit, low_stock_threshold=2, reservation_timeout_s=None,
    )
