"""Small shared helpers for the rule tests: a stocked product, a paid order, the log head."""

from __future__ import annotations

from itertools import count
from typing import Any
from uuid import UUID

from ledger.results import Imported, PaymentResult, Placed
from ledger.service.ledger import Ledger
from shell.demo import iter_events

_serial = count(1)


def head(ledger: Ledger) -> int:
    """The position of the last stored event (0 for an empty store)."""
    return ledger.app.recorder.max_notification_id() or 0


def stocked_product(
    ledger: Ledger,
    sku: str = "GAME-1",
    keys: int = 3,
    *,
    price: str = "10.00",
    currency: str = "USD",
    unit_cost: str = "6.00",
    prefix: str | None = None,
    **product: Any,
) -> list[str]:
    """Define a product and import `keys` codes for it; return the codes in import order."""
    ctx = ledger.context("admin")
    ledger.define_product(ctx, sku=sku, name=f"{sku} key", face_value=price, currency=currency, price=price, **product)
    return import_codes(ledger, sku, keys, unit_cost=unit_cost, prefix=prefix)


def import_codes(
    ledger: Ledger, sku: str, n: int, *, unit_cost: str = "6.00", prefix: str | None = None
) -> list[str]:
    """Import `n` fresh codes for an existing product as one batch; return them."""
    codes = fresh_codes(n, prefix or sku)
    import_batch(ledger, sku, codes, unit_cost=unit_cost)
    return codes


def fresh_codes(n: int, prefix: str = "KEY") -> list[str]:
    """`n` well-formed codes never handed out before in this test run."""
    return [f"{prefix}-{next(_serial):06d}-XQ7Z" for _ in range(n)]


def import_batch(ledger: Ledger, sku: str, codes: list[str], *, unit_cost: str = "6.00") -> Imported:
    return ledger.import_keys(
        ledger.context("admin"), sku=sku, supplier="acme", unit_cost=unit_cost,
        codes=list(enumerate(codes, start=1)),
    )


def place(ledger: Ledger, customer: str = "alice", sku: str = "GAME-1", quantity: int = 1, **kwargs: Any) -> Placed:
    return ledger.place_order(ledger.context("storefront"), customer_id=customer, sku=sku, quantity=quantity, **kwargs)


def pay(ledger: Ledger, placed: Placed, reference: str = "pay-1", amount: object = None) -> PaymentResult:
    return ledger.capture_payment(
        ledger.context("psp"), placed.order_id, payment_reference=reference,
        amount=placed.amount_due if amount is None else amount, provider="psp",
    )


def buy(ledger: Ledger, customer: str = "alice", sku: str = "GAME-1", quantity: int = 1,
        reference: str | None = None, **kwargs: Any) -> tuple[Placed, PaymentResult]:
    """Place and pay an order; return both results."""
    placed = place(ledger, customer, sku, quantity, **kwargs)
    result = pay(ledger, placed, reference or f"pay-{placed.order_id}")
    assert result.outcome == "delivered", result
    return placed, result


def delivered_codes(ledger: Ledger, order_id: UUID) -> list[str]:
    return [k.code for k in ledger.reads.order_keys(order_id)]


def all_events(ledger: Ledger) -> list[Any]:
    return list(iter_events(ledger))
