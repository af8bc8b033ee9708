"""Money is exact, and bad input is refused with a clear error before anything is written."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import InvalidInput, UnknownCoupon, UnknownProduct
from ledger.domain.money import format_amount, minor_units, parse_amount
from ledger.service.ledger import Ledger
from tests.conftest import LedgerFactory
from tests.helpers import head, place, stocked_product


def _define(ledger: Ledger, **overrides: object) -> None:
    fields: dict[str, object] = {
        "sku": "GAME-1", "name": "Game", "face_value": "10.00", "currency": "USD", "price": "9.99",
    }
    fields.update(overrides)
    ledger.define_product(ledger.context("admin"), **fields)  # type: ignore[arg-type]


# ---- money ----


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    (Decimal("10"), "USD", "10.00"), (Decimal("2635.2"), "USD", "2635.20"), (Decimal("5937.50"), "USD", "5937.50"),
    (Decimal("27872.9000"), "USD", "27872.90"), (Decimal("0E-4"), "USD", "0.00"), (Decimal("-0.00"), "EUR", "0.00"),
    (Decimal("-30"), "USD", "-30.00"), (Decimal("1E+3"), "USD", "1000.00"), (Decimal("500.0000"), "JPY", "500"),
    (Decimal("1.25"), "KWD", "1.250"), (0, "USD", "0.00"), ("9.5", "EUR", "9.50"),
])
def test_money_is_shown_with_exactly_the_currencys_minor_units(amount: Decimal, currency: str, shown: str) -> None:
    assert format_amount(amount, currency) == shown


@given(cents=st.integers(min_value=-10**15, max_value=10**15), currency=st.sampled_from(["USD", "JPY", "KWD"]),
       scale=st.integers(min_value=0, max_value=4))
def test_money_shown_is_what_commands_accept(cents: int, currency: str, scale: int) -> None:
    """Whatever scale a store gives back, the text parses back to the same amount, with the
    currency's own number of decimals (and no exponent)."""
    places = minor_units(currency)
    amount = Decimal(cents).scaleb(-places)
    stored = amount.quantize(Decimal(1).scaleb(-max(places, scale))).normalize() if scale else amount
    shown = format_amount(stored, currency)
    assert "E" not in shown and len(shown.partition(".")[2]) == places
    assert parse_amount(shown.lstrip("-"), currency, "amount") == abs(amount)


@pytest.mark.parametrize("field", ["price", "face_value"])
def test_float_amounts_are_refused_naming_the_field(ledger: Ledger, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _define(ledger, **{field: 9.99})
    assert caught.value.field == field
    assert "float" in caught.value.message
    assert head(ledger) == 0


def test_float_channel_price_names_the_channel(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput) as caught:
        _define(ledger, channel_prices={"app": 8.5})
    assert caught.value.field == "channel_prices.app"
    assert head(ledger) == 0


def test_float_unit_cost_on_import_is_refused(ledger: Ledger) -> None:
    _define(ledger)
    before = head(ledger)
    with pytest.raises(InvalidInput) as caught:
        ledger.import_keys(ledger.context("admin"), sku="GAME-1", supplier="acme", unit_cost=4.2,
                           codes=[(1, "AAAA-BBBB-CCCC")])
    assert caught.value.field == "unit_cost"
    assert head(ledger) == before
    assert ledger.reads.stock("GAME-1").available == []


def test_float_payment_amount_is_refused_and_nothing_is_delivered(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1, price="10.00")
    placed = place(ledger)
    before = head(ledger)
    with pytest.raises(InvalidInput) as caught:
        ledger.capture_payment(ledger.context("psp"), placed.order_id, payment_reference="p-1", amount=10.0,
                               provider="psp")
    assert caught.value.field == "amount"
    assert head(ledger) == before
    order = ledger.reads.order(placed.order_id)
    assert order.status == "reserved" and order.amount_paid == 0


def test_too_many_decimals_are_refused_not_rounded(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput) as caught:
        _define(ledger, price="9.995")
    assert caught.value.field == "price"
    assert "2 decimal places" in caught.value.message
    assert head(ledger) == 0


def test_exact_decimal_prices_keep_their_value(ledger: Ledger) -> None:
    stocked_product(ledger, keys=3, price="0.10")
    placed = place(ledger, quantity=3)
    assert placed.amount_due == Decimal("0.30")  # not 0.30000000000000004
    assert isinstance(placed.amount_due, Decimal)
    assert ledger.reads.order(placed.order_id).subtotal == Decimal("0.30")


def test_yen_has_no_minor_units(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput) as caught:
        _define(ledger, currency="JPY", price="1000.5", face_value="1000")
    assert caught.value.field == "price"
    assert "0 decimal places" in caught.value.message
    assert head(ledger) == 0

    stocked_product(ledger, sku="YEN-1", keys=1, price="1000", currency="JPY", unit_cost="700")
    product = ledger.reads.product("YEN-1")
    assert product.prices["default"] == Decimal("1000")
    assert product.prices["default"].as_tuple().exponent == 0
    placed = place(ledger, sku="YEN-1")
    assert placed.amount_due == Decimal(1000) and placed.currency == "JPY"

    before = head(ledger)
    with pytest.raises(InvalidInput):
        ledger.capture_payment(ledger.context("psp"), placed.order_id, payment_reference="y-1", amount="1000.0",
                               provider="psp")
    assert head(ledger) == before


@pytest.mark.parametrize("value", ["-1.00", "abc", "NaN", "Infinity", True, None])
def test_non_amounts_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_amount(value, "USD", "price")
    assert caught.value.field == "price"


def test_three_decimal_currency() -> None:
    assert parse_amount("1.234", "KWD", "price") == Decimal("1.234")
    with pytest.raises(InvalidInput):
        parse_amount("1.2345", "KWD", "price")


def test_bad_currency_code_is_refused(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput) as caught:
        _define(ledger, currency="usd")
    assert caught.value.field == "currency"
    assert head(ledger) == 0


# ---- order input ----


def test_unknown_sku_is_not_found_and_writes_nothing(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    with pytest.raises(UnknownProduct):
        place(ledger, sku="NO-SUCH-SKU")
    assert head(ledger) == before
    assert ledger.reads.customer("alice") is None


@pytest.mark.parametrize("quantity", [0, -1, True, "1"])
def test_bad_quantity_is_refused_and_writes_nothing(ledger: Ledger, quantity: object) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    with pytest.raises(InvalidInput) as caught:
        place(ledger, quantity=quantity)  # type: ignore[arg-type]
    assert caught.value.field == "quantity"
    assert head(ledger) == before
    assert len(ledger.reads.stock("GAME-1").available) == 1


def test_quantity_above_the_per_order_maximum_is_refused(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(max_quantity_per_order=2)
    stocked_product(ledger, keys=3)
    before = head(ledger)
    with pytest.raises(InvalidInput) as caught:
        place(ledger, quantity=3)
    assert caught.value.field == "quantity"
    assert head(ledger) == before


@pytest.mark.parametrize("sku", ["-GAME", "GAME 1", "", "A" * 65, "GAME/1", "ゲーム"])
def test_bad_sku_pattern_is_refused(ledger: Ledger, sku: str) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    with pytest.raises(InvalidInput) as caught:
        place(ledger, sku=sku)
    assert caught.value.field == "sku"
    assert head(ledger) == before
    with pytest.raises(InvalidInput) as caught:
        _define(ledger, sku=sku)
    assert caught.value.field == "sku"
    assert head(ledger) == before


@pytest.mark.parametrize("customer", ["", None, " alice", "al\x00ice", "alice\u200b", "\u202eecila", "ali\u2066ce",
                                      "caf\u0065\u0301"])
def test_empty_or_malformed_customer_id_is_refused(ledger: Ledger, customer: object) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    with pytest.raises(InvalidInput) as caught:
        place(ledger, customer=customer)  # type: ignore[arg-type]
    assert caught.value.field == "customer_id"
    assert head(ledger) == before
    assert len(ledger.reads.stock("GAME-1").available) == 1


def test_unknown_coupon_is_not_found_and_writes_nothing(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    with pytest.raises(UnknownCoupon):
        place(ledger, coupon_code="NOPE")
    assert head(ledger) == before
    assert len(ledger.reads.stock("GAME-1").available) == 1


def test_errors_carry_a_stable_code(ledger: Ledger) -> None:
    with pytest.raises(UnknownProduct) as not_found:
        place(ledger, sku="MISSING")
    assert not_found.value.code == "unknown-product" and not_found.value.status == 404
    with pytest.raises(InvalidInput) as invalid:
        place(ledger, quantity=0)
    assert invalid.value.code == "invalid-input" and invalid.value.status == 422
    assert str(invalid.value).startswith("quantity:")
