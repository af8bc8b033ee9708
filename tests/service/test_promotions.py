"""Coupons and flash sales: exact discounts, scopes, windows and caps that hold."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from ledger.domain.errors import (
    CouponExhausted,
    CouponNotApplicable,
    FlashSaleLimitReached,
    InvalidInput,
    OrderRejected,
)
from ledger.domain.ids import flash_sale_id
from ledger.domain.promotions import FlashSale
from ledger.service.ledger import Ledger
from tests.conftest import FakeClock
from tests.helpers import buy, head, pay, place, stocked_product


def _coupon(ledger: Ledger, clock: FakeClock, code: str = "SAVE", kind: str = "amount", value: str = "2.50",
            *, starts_at: datetime | None = None, ends_at: datetime | None = None, **kwargs: object) -> None:
    ledger.create_coupon(
        ledger.context("marketing"), code=code, kind=kind, value=value, currency=kwargs.pop("currency", "USD"),
        starts_at=starts_at or clock.now, ends_at=ends_at or clock.now + timedelta(days=7),
        **kwargs,  # type: ignore[arg-type]
    )


def _sale(ledger: Ledger) -> FlashSale:
    sale = ledger.app.repository.get(flash_sale_id("FS1"))
    assert isinstance(sale, FlashSale)
    return sale


def _assert_rejected_without_effect(ledger: Ledger, rejection: OrderRejected, available: int) -> None:
    assert rejection.order_id is not None
    order = ledger.reads.order(rejection.order_id)
    assert order.status == "rejected"
    assert len(ledger.reads.stock(order.sku).available) == available


# ---- coupons ----


def test_amount_coupon(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=2, price="10.00")
    _coupon(ledger, clock, value="2.50")
    placed = place(ledger, coupon_code="save")  # codes are case-insensitive
    assert placed.amount_due == Decimal("7.50")
    order = ledger.reads.order(placed.order_id)
    assert (order.subtotal, order.discount, order.coupon_code) == (Decimal("10.00"), Decimal("2.50"), "SAVE")
    assert pay(ledger, placed).outcome == "delivered"


def test_amount_coupon_never_makes_the_price_negative(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=1, price="10.00")
    _coupon(ledger, clock, value="25.00")
    placed = place(ledger, coupon_code="SAVE")
    assert placed.amount_due == Decimal("0.00")
    assert ledger.reads.order(placed.order_id).discount == Decimal("10.00")


def test_percent_coupon_is_exact_and_rounds_half_up(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=3, price="9.99")
    _coupon(ledger, clock, kind="percent", value="15")
    placed = place(ledger, coupon_code="SAVE")
    assert placed.amount_due == Decimal("8.49")  # 15 % of 9.99 is 1.4985 -> 1.50
    assert ledger.reads.order(placed.order_id).discount == Decimal("1.50")
    placed = place(ledger, customer="bob", quantity=2, coupon_code="SAVE")
    assert placed.amount_due == Decimal("16.98")  # 19.98 - 3.00 (2.997)


def test_percent_coupon_in_yen_rounds_to_whole_yen(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, sku="YEN-1", keys=1, price="999", currency="JPY", unit_cost="500")
    _coupon(ledger, clock, kind="percent", value="15", currency="JPY")
    placed = place(ledger, sku="YEN-1", coupon_code="SAVE")
    assert placed.amount_due == Decimal("849")  # 999 - 150 (149.85 rounded half up)
    assert placed.amount_due.as_tuple().exponent == 0


def test_percent_coupon_above_100_is_refused(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    with pytest.raises(InvalidInput) as caught:
        _coupon(ledger, clock, kind="percent", value="101")
    assert caught.value.field == "value"
    assert head(ledger) == before


def test_minimum_spend(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=3, price="10.00")
    _coupon(ledger, clock, min_spend="20.00")
    with pytest.raises(CouponNotApplicable) as caught:
        place(ledger, coupon_code="SAVE")
    _assert_rejected_without_effect(ledger, caught.value, 3)
    assert "minimum spend" in caught.value.message
    assert place(ledger, quantity=2, coupon_code="SAVE").amount_due == Decimal("17.50")


def test_coupon_scoped_to_other_skus_does_not_apply(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, sku="GAME-1", keys=1)
    stocked_product(ledger, sku="GAME-2", keys=1)
    _coupon(ledger, clock, skus=["GAME-2"])
    with pytest.raises(CouponNotApplicable) as caught:
        place(ledger, sku="GAME-1", coupon_code="SAVE")
    _assert_rejected_without_effect(ledger, caught.value, 1)
    assert place(ledger, sku="GAME-2", coupon_code="SAVE").amount_due == Decimal("7.50")


def test_coupon_in_another_currency_does_not_apply(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=1)
    _coupon(ledger, clock, value="2.50", currency="EUR")
    with pytest.raises(CouponNotApplicable):
        place(ledger, coupon_code="SAVE")


def test_coupon_validity_window(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=3)
    start = clock.now + timedelta(hours=1)
    _coupon(ledger, clock, starts_at=start, ends_at=start + timedelta(hours=1))
    with pytest.raises(CouponNotApplicable) as early:
        place(ledger, coupon_code="SAVE")
    assert "not valid at this time" in early.value.message
    clock.advance(hours=1)  # exactly at the start: valid
    assert place(ledger, coupon_code="SAVE").amount_due == Decimal("7.50")
    clock.advance(minutes=59, seconds=59)
    assert place(ledger, customer="bob", coupon_code="SAVE").amount_due == Decimal("7.50")
    clock.advance(seconds=1)  # exactly at the end: over
    with pytest.raises(CouponNotApplicable):
        place(ledger, customer="carol", coupon_code="SAVE")


def test_coupon_total_cap(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=3)
    _coupon(ledger, clock, total_cap=2)
    buy(ledger, customer="a", coupon_code="SAVE")
    buy(ledger, customer="b", coupon_code="SAVE")
    assert ledger.reads.coupon("SAVE").uses_left == 0
    with pytest.raises(CouponExhausted) as caught:
        place(ledger, customer="c", coupon_code="SAVE")
    _assert_rejected_without_effect(ledger, caught.value, 1)
    assert ledger.reads.coupon("SAVE").uses_left == 0
    assert place(ledger, customer="c").amount_due == Decimal("10.00")


def test_coupon_per_customer_cap(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=4)
    _coupon(ledger, clock, per_customer_cap=1)
    buy(ledger, customer="alice", coupon_code="SAVE")
    with pytest.raises(CouponExhausted) as caught:
        place(ledger, customer="alice", coupon_code="SAVE")
    assert "already used by this customer" in caught.value.message
    _assert_rejected_without_effect(ledger, caught.value, 3)
    assert place(ledger, customer="bob", coupon_code="SAVE").amount_due == Decimal("7.50")


def test_one_time_code_is_held_by_an_unpaid_order_until_it_expires(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=3)
    _coupon(ledger, clock, code="ONE-TIME", total_cap=1)
    held = place(ledger, customer="alice", coupon_code="ONE-TIME")
    assert ledger.reads.coupon("ONE-TIME").uses_left == 0
    for customer in ("alice", "bob"):
        with pytest.raises(CouponExhausted):
            place(ledger, customer=customer, coupon_code="ONE-TIME")
    assert ledger.reads.coupon("ONE-TIME").uses_left == 0

    clock.advance(minutes=15)
    assert [c.order_id for c in ledger.expire_due(ledger.context("sweeper"))] == [held.order_id]
    assert ledger.reads.coupon("ONE-TIME").uses_left == 1
    reused = place(ledger, customer="bob", coupon_code="ONE-TIME")
    assert reused.amount_due == Decimal("7.50")
    assert ledger.reads.coupon("ONE-TIME").uses_left == 0

    # The first buyer's late payment cannot take the code back: money goes back instead.
    late = pay(ledger, held, "late")
    assert late.outcome == "refunded"
    order = ledger.reads.order(held.order_id)
    assert order.delivered == [] and order.amount_refunded == order.amount_paid
    assert ledger.reads.coupon("ONE-TIME").uses_left == 0


def test_cancelling_gives_the_coupon_use_back(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=2)
    _coupon(ledger, clock, total_cap=1)
    placed = place(ledger, coupon_code="SAVE")
    ledger.cancel_order(ledger.context("alice"), placed.order_id)
    assert ledger.reads.coupon("SAVE").uses_left == 1


def test_paid_coupon_use_is_kept(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=2)
    _coupon(ledger, clock, total_cap=1)
    buy(ledger, coupon_code="SAVE")
    clock.advance(days=1)
    ledger.expire_due(ledger.context("sweeper"))
    assert ledger.reads.coupon("SAVE").uses_left == 0


# ---- flash sales ----


def _flash_sale(ledger: Ledger, clock: FakeClock, *, total: int = 3, per_customer: int | None = 2) -> datetime:
    start = clock.now + timedelta(hours=1)
    ledger.create_flash_sale(
        ledger.context("marketing"), sale_id="FS1", sku="GAME-1", starts_at=start, ends_at=start + timedelta(hours=1),
        price="5.00", total_quantity=total, per_customer_limit=per_customer,
    )
    return start


def test_flash_sale_price_applies_only_inside_the_window(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=5, price="10.00")
    _flash_sale(ledger, clock)
    assert place(ledger, customer="early").amount_due == Decimal("10.00")
    clock.advance(hours=1)
    inside = place(ledger, customer="alice")
    assert inside.amount_due == Decimal("5.00")
    order = ledger.reads.order(inside.order_id)
    assert order.flash_sale_id == "FS1" and order.unit_price == Decimal("5.00")
    clock.advance(hours=1)
    assert place(ledger, customer="late").amount_due == Decimal("10.00")


def test_flash_sale_per_customer_limit(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=5, price="10.00")
    _flash_sale(ledger, clock, total=5, per_customer=2)
    clock.advance(hours=1)
    with pytest.raises(FlashSaleLimitReached) as too_many:
        place(ledger, quantity=3)
    _assert_rejected_without_effect(ledger, too_many.value, 5)
    buy(ledger, quantity=2)
    with pytest.raises(FlashSaleLimitReached) as caught:
        place(ledger)
    assert "per customer" in caught.value.message
    _assert_rejected_without_effect(ledger, caught.value, 3)
    assert _sale(ledger).units_left == 3
    assert place(ledger, customer="bob", quantity=2).amount_due == Decimal("10.00")


def test_flash_sale_total_quantity_then_list_price(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=5, price="10.00")
    _flash_sale(ledger, clock, total=3, per_customer=None)
    clock.advance(hours=1)
    assert place(ledger, customer="a", quantity=2).amount_due == Decimal("10.00")
    assert place(ledger, customer="b").amount_due == Decimal("5.00")
    assert _sale(ledger).units_left == 0
    sold_out = place(ledger, customer="c")
    assert sold_out.amount_due == Decimal("10.00")
    assert ledger.reads.order(sold_out.order_id).flash_sale_id is None
    assert sum(_sale(ledger).units.values()) == 3


def test_flash_sale_claims_are_released_on_expiry(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=4, price="10.00")
    _flash_sale(ledger, clock, total=2, per_customer=2)
    clock.advance(hours=1)
    held = place(ledger, quantity=2)
    assert held.amount_due == Decimal("10.00")
    assert _sale(ledger).units_left == 0
    clock.advance(minutes=15)
    assert [c.order_id for c in ledger.expire_due(ledger.context("sweeper"))] == [held.order_id]
    assert _sale(ledger).units_left == 2
    assert _sale(ledger).units_by("alice") == 0
    again = place(ledger, quantity=2)
    assert again.amount_due == Decimal("10.00")  # 2 x 5.00 again: the claim came back


def test_late_payment_after_the_flash_sale_ended_is_refunded(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=2, price="10.00")
    _flash_sale(ledger, clock)
    clock.advance(hours=1)
    sale_order = place(ledger, customer="bob")
    assert sale_order.amount_due == Decimal("5.00")
    clock.advance(hours=1)  # the sale is over and the reservation has lapsed
    ledger.expire_due(ledger.context("sweeper"))
    result = pay(ledger, sale_order, "late")
    assert result.outcome == "refunded"
    order = ledger.reads.order(sale_order.order_id)
    assert order.delivered == [] and order.amount_refunded == Decimal("5.00")


def test_overlapping_flash_sales_are_refused(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=1)
    start = _flash_sale(ledger, clock)
    before = head(ledger)
    with pytest.raises(InvalidInput) as caught:
        ledger.create_flash_sale(
            ledger.context("marketing"), sale_id="FS2", sku="GAME-1", starts_at=start + timedelta(minutes=30),
            ends_at=start + timedelta(hours=2), price="4.00", total_quantity=1,
        )
    assert caught.value.field == "starts_at"
    assert head(ledger) == before


def test_late_list_price_payment_during_a_flash_sale_takes_no_sale_units(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=5, price="10.00")
    start = clock.now + timedelta(minutes=30)
    ledger.create_flash_sale(
        ledger.context("marketing"), sale_id="FS1", sku="GAME-1", starts_at=start, ends_at=start + timedelta(hours=1),
        price="5.00", total_quantity=2, per_customer_limit=1,
    )
    list_price = place(ledger)
    assert list_price.amount_due == Decimal("10.00")
    clock.advance(minutes=31)  # the reservation lapsed; the sale has started
    ledger.expire_due(ledger.context("sweeper"))
    assert pay(ledger, list_price, "late").outcome == "delivered"
    assert ledger.reads.order(list_price.order_id).flash_sale_id is None
    # Paid at list price: the sale's units and the customer's sale allowance are untouched.
    assert _sale(ledger).units_left == 2
    assert _sale(ledger).units_by("alice") == 0
    assert place(ledger).amount_due == Decimal("5.00")
