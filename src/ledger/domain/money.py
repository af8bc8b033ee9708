"""Exact money: Decimal amounts with a currency's own number of minor units. Never float."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ledger.domain.errors import InvalidInput

# ISO 4217 exponents that differ from the common 2.
_MINOR_UNITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "KWD": 3, "BHD": 3, "OMR": 3}
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def check_currency(currency: str, field: str = "currency") -> str:
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise InvalidInput(field, "must be a three-letter ISO 4217 code, e.g. USD")
    return currency


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def parse_amount(value: object, currency: str, field: str, *, allow_zero: bool = True) -> Decimal:
    """Parse an exact, non-negative amount; reject floats and excess precision."""
    if isinstance(value, float | bool):
        raise InvalidInput(field, "must be a decimal string or integer, not a float")
    try:
        amount = Decimal(str(value).strip()) if isinstance(value, str) else Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidInput(field, f"{value!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise InvalidInput(field, "must be a finite amount")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidInput(field, "must be greater than zero" if not allow_zero else "must not be negative")
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > minor_units(currency):
        raise InvalidInput(field, f"{currency} has {minor_units(currency)} decimal places")
    return quantize(amount, currency)


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def amount_text(amount: Decimal) -> str:
    """An amount as a plain decimal string, as precise as it is: never exponent notation, never "-0"."""
    return f"{amount + 0:f}"


def format_amount(amount: Decimal | int | str, currency: str) -> str:
    """Money as text, exactly as commands accept it: a decimal string with exactly the currency's
    minor units ("30.00", "2635.20"; "500" in JPY, "1.250" in KWD). The one formatting of money
    for responses, CSV exports and CLI tables."""
    return amount_text(quantize(amount if isinstance(amount, Decimal) else Decimal(str(amount)), currency))
