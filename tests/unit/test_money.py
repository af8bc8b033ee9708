"""Money on its own: amounts parse exactly to their currency's minor units, or are refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.errors import InvalidInput
from ledger.domain.money import check_currency, minor_units, parse_amount, quantize
from tests.profiles import examples
from tests.unit.domain import D


@pytest.mark.parametrize(("value", "currency", "expected"), [
    ("30", "USD", "30.00"), ("2635.2", "USD", "2635.20"), (" 0.10 ", "EUR", "0.10"), (7, "USD", "7.00"),
    ("1500", "JPY", "1500"), ("1.005", "KWD", "1.005"), ("0", "USD", "0.00"), ("1E+2", "USD", "100.00"),
])
def test_amounts_parse_exactly_to_the_currency_minor_units(value: object, currency: str, expected: str) -> None:
    assert str(parse_amount(value, currency, "amount")) == expected


@pytest.mark.parametrize(("value", "currency", "why"), [
    (1.5, "USD", "not a float"), (True, "USD", "not a float"), ("1.005", "USD", "USD has 2 decimal places"),
    ("1.5", "JPY", "JPY has 0 decimal places"), ("-0.01", "USD", "must not be negative"),
    ("NaN", "USD", "finite"), ("Infinity", "USD", "finite"), ("ten", "USD", "is not a decimal amount"),
    ("", "USD", "is not a decimal amount"), (None, "USD", "is not a decimal amount"),
])
def test_bad_amounts_are_refused_naming_the_field(value: object, currency: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as refused:
        parse_amount(value, currency, "unit_cost")
    assert refused.value.field == "unit_cost"


def test_zero_can_be_refused_and_currencies_are_checked() -> None:
    with pytest.raises(InvalidInput, match="greater than zero"):
        parse_amount("0.00", "USD", "price", allow_zero=False)
    assert check_currency("EUR") == "EUR"
    for bad in ("usd", "US", "EURO", 978):
        with pytest.raises(InvalidInput, match="ISO 4217"):
            check_currency(bad)  # type: ignore[arg-type]
    assert (minor_units("USD"), minor_units("JPY"), minor_units("BHD")) == (2, 0, 3)


def test_quantize_rounds_half_up_away_from_zero() -> None:
    assert [str(quantize(D(v), "USD")) for v in ("0.005", "0.015", "0.0249", "2.675", "-0.005")] == [
        "0.01", "0.02", "0.02", "2.68", "-0.01"]
    assert str(quantize(D("0.5"), "JPY")) == "1" and str(quantize(D("0.0005"), "KWD")) == "0.001"


@settings(max_examples=examples(100), deadline=None)
@given(st.integers(0, 10**12), st.sampled_from(["USD", "JPY", "KWD"]))
def test_any_amount_in_minor_units_parses_to_itself(minor: int, currency: str) -> None:
    places = minor_units(currency)
    text = f"{minor // 10**places}.{minor % 10**places:0{places}d}" if places else str(minor)
    amount = parse_amount(text, currency, "amount")
    assert amount == Decimal(minor).scaleb(-places) and str(amount) == text
    assert sum([amount] * 3, Decimal(0)) == Decimal(3 * minor).scaleb(-places)  # no drift, ever
