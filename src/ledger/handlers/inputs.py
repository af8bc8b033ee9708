"""Checks on raw command input. Each failure names the field at fault."""

from __future__ import annotations

import re
from datetime import datetime

from ledger.domain import text as text_rule
from ledger.domain.errors import InvalidInput

_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def sku(value: str, field: str = "sku") -> str:
    if not isinstance(value, str) or not _SKU.match(value):
        raise InvalidInput(field, "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def text(value: str | None, field: str, *, required: bool = True, normal_form: bool = True) -> str:
    """Free text, as `ledger.domain.text` says: no control, zero-width or bidi characters, and
    already NFC (the API normalises what clients send; a caller of the ledger itself must too),
    so that one customer, channel or reference is never two."""
    if value is None or value == "":
        if required:
            raise InvalidInput(field, "is required")
        return ""
    if not isinstance(value, str):
        raise InvalidInput(field, text_rule.RULE)
    problem = text_rule.problem(value, normal_form=normal_form)
    if problem is not None:
        raise InvalidInput(field, problem)
    return value


def optional_text(value: str | None, field: str) -> str | None:
    return text(value, field, required=False) or None


def count(value: int | None, field: str, *, minimum: int = 1, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(field, f"must be a whole number of at least {minimum}")
    return value


def window(starts_at: datetime, ends_at: datetime) -> None:
    for name, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidInput(name, "must be a timezone-aware date-time")
    if ends_at <= starts_at:
        raise InvalidInput("ends_at", "must be after starts_at")
