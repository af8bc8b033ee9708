"""Coupon and FlashSale on their own: caps, windows, scope and exactly rounded discounts."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from ledger.domain.errors import CouponExhausted, CouponNotApplicable, FlashSaleLimitReached
from ledger.domain.ids import coupon_id, flash_sale_id
from ledger.domain.promotions import DiscountKind, FlashSale
from tests.unit.domain import CTX, NOW, D, coupon, pending


def test_a_coupon_is_never_used_beyond_its_cap_and_a_released_use_comes_back() -> None:
    capped = coupon(total_cap=2)
    first, second = uuid4(), uuid4()
    for order_id, customer in ((first, "a"), (second, "b")):
        discount = capped.discount_for("GAME-1", D("20.00"), "USD", customer, NOW)
        capped.use(CTX, order_id, customer, discount)
    assert capped.uses_left == 0
    with pytest.raises(CouponExhausted) as exhausted:
        capped.discount_for("GAME-1", D("20.00"), "USD", "c", NOW)
    assert exhausted.value.details == {"coupon": "TAKE5"}
    capped.release(CTX, first, "expired")
    assert capped.uses_left == 1 and capped.discount_for("GAME-1", D("20.00"), "USD", "c", NOW) == D("5.00")
    capped.release(CTX, first, "expired again")  # not held any more: nothing happens
    assert pending(capped)[-1] == "UseReleased" and pending(capped) == []


def test_a_per_customer_cap_counts_only_that_customer() -> None:
    once = coupon(per_customer_cap=1)
    once.use(CTX, uuid4(), "alice", D("5.00"))
    with pytest.raises(CouponExhausted, match="already used by this customer"):
        once.discount_for("GAME-1", D("20.00"), "USD", "alice", NOW)
    assert once.discount_for("GAME-1", D("20.00"), "USD", "bob", NOW) == D("5.00")
    assert once.uses_left is None  # no total cap


@pytest.mark.parametrize(("when", "applies"), [
    (timedelta(seconds=-1), False), (timedelta(0), True), (timedelta(hours=23, minutes=59), True),
    (timedelta(days=1), False),  # the window is [starts_at, ends_at)
])
def test_a_coupon_applies_only_inside_its_window(when: timedelta, applies: bool) -> None:
    window = coupon()
    if applies:
        assert window.discount_for("GAME-1", D("20.00"), "USD", "a", NOW + when) == D("5.00")
    else:
        with pytest.raises(CouponNotApplicable, match="not valid at this time"):
            window.discount_for("GAME-1", D("20.00"), "USD", "a", NOW + when)


def test_scope_currency_and_minimum_spend() -> None:
    scoped = coupon(skus=["GAME-1"], min_spend="15.00")
    with pytest.raises(CouponNotApplicable, match="does not apply to GAME-2"):
        scoped.discount_for("GAME-2", D("20.00"), "USD", "a", NOW)
    with pytest.raises(CouponNotApplicable, match="is in USD"):
        scoped.discount_for("GAME-1", D("20.00"), "EUR", "a", NOW)
    with pytest.raises(CouponNotApplicable, match=r"minimum spend of 15\.00"):
        scoped.discount_for("GAME-1", D("14.99"), "USD", "a", NOW)
    assert scoped.discount_for("GAME-1", D("15.00"), "USD", "a", NOW) == D("5.00")


@pytest.mark.parametrize(("kind", "value", "subtotal", "currency", "expected"), [
    (DiscountKind.AMOUNT, "5.00", "3.50", "USD", "3.50"),  # never more than the subtotal
    (DiscountKind.PERCENT, "10", "0.05", "USD", "0.01"),  # 0.005 rounds half up
    (DiscountKind.PERCENT, "10", "0.04", "USD", "0.00"),  # 0.004 rounds down
    (DiscountKind.PERCENT, "15", "33.33", "USD", "5.00"),  # 4.9995
    (DiscountKind.PERCENT, "33", "10.00", "USD", "3.30"),
    (DiscountKind.PERCENT, "10", "155", "JPY", "16"),  # no minor units: 15.5 -> 16
    (DiscountKind.PERCENT, "12.5", "1.005", "KWD", "0.126"),  # three minor units: 0.125625
    (DiscountKind.PERCENT, "150", "8.00", "USD", "8.00"),  # never more than the subtotal
])
def test_discounts_are_exact_in_the_currency_minor_units(kind: DiscountKind, value: str, subtotal: str,
                                                         currency: str, expected: str) -> None:
    offer = coupon(kind, value, currency=currency)
    discount = offer.discount_for("GAME-1", D(subtotal), currency, "a", NOW)
    assert str(discount) == expected  # the value and its number of places


def test_coupon_codes_are_one_aggregate_however_they_are_typed() -> None:
    assert coupon().id == coupon_id("TAKE5") == coupon_id(" take5 ")


def test_a_flash_sale_never_sells_beyond_its_quantity_or_its_per_customer_limit() -> None:
    sale = FlashSale.create(CTX, "spring", "GAME-1", NOW, NOW + timedelta(hours=1), D("7.00"), total_quantity=3,
                            per_customer_limit=2)
    assert sale.id == flash_sale_id("spring")
    sale.check_claim("alice", 2)
    first = uuid4()
    sale.claim(CTX, first, "alice", 2)
    with pytest.raises(FlashSaleLimitReached, match="allows 2 per customer"):
        sale.check_claim("alice", 1)
    with pytest.raises(FlashSaleLimitReached, match="has 1 left"):
        sale.check_claim("bob", 2)
    sale.claim(CTX, uuid4(), "bob", 1)
    assert sale.units_left == 0
    sale.release(CTX, first, "expired")
    assert sale.units_left == 2 and sale.units_by("alice") == 0
    sale.check_claim("alice", 2)
