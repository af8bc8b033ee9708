"""The wire format of docs/upstream.md: what a recharge request must hold, the states and the
reason codes a supplier answers with, and the error answers.

Nothing here does I/O: `parse_request` turns body bytes into a `RechargeRequest` or raises
`Refused` with the HTTP status and reason the document gives for it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

MAX_BODY_BYTES = 65_536

PENDING, SUCCEEDED, FAILED, REVERSED = "pending", "succeeded", "failed", "reversed"
FINAL = (SUCCEEDED, FAILED, REVERSED)

# Failure reasons and whether another attempt (a new request_id, here later or at another
# supplier) may succeed. False: the account or product itself cannot be recharged anywhere.
RETRYABLE = {
    "account_invalid": False,
    "product_unknown": False,
    "supplier_error": True,
    "insufficient_balance": True,
    "out_of_stock": True,
    "maintenance": True,
}
REVERSAL_REASON = "supplier_reversed"

REQUEST_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")  # RFC 3986 unreserved: the same in a path
AMOUNT = re.compile(r"(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?")
CURRENCY = re.compile(r"[A-Z]{3}")
MAX_PRODUCT, MAX_ACCOUNT, MAX_CALLBACK_URL = 64, 128, 2048
CENT = Decimal("0.01")


class Refused(Exception):
    """A request the protocol refuses before recording anything: an error answer."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail

    def body(self) -> dict[str, str]:
        return {"reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class RechargeRequest:
    request_id: str
    product: str
    account: str
    amount: Decimal
    currency: str
    callback_url: str | None

    def same_order(self, other: RechargeRequest) -> bool:
        """Whether `other` asks for the same recharge (the callback address is not part of it)."""
        return (self.product, self.account, self.amount, self.currency) == (
            other.product, other.account, other.amount, other.currency)


def money(amount: Decimal) -> str:
    """An amount as the protocol writes it: a decimal string with two decimals."""
    return str(amount.quantize(CENT, rounding=ROUND_HALF_UP))


def charge_for(amount: Decimal, cost_rate: Decimal) -> Decimal:
    """What the supplier charges for `amount`: amount x rate, rounded half-up to the cent."""
    return (amount * cost_rate).quantize(CENT, rounding=ROUND_HALF_UP)


def timestamp(moment: datetime) -> str:
    """UTC, microseconds, `Z`: 2026-03-01T12:00:00.000000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is UTC. ValueError if it is neither."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_request(body: bytes) -> RechargeRequest:
    """The request in a POST /v1/recharges body; unknown fields are ignored."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "malformed_json", "the body is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "malformed_json", "the body is not a JSON object")
    request_id = _text(data, "request_id", REQUEST_ID, "1 to 128 of A-Z a-z 0-9 . _ ~ -")
    product = _text(data, "product", None, f"1 to {MAX_PRODUCT} characters, no spaces around", MAX_PRODUCT)
    account = _text(data, "account", None, f"1 to {MAX_ACCOUNT} characters, no spaces around", MAX_ACCOUNT)
    amount = _text(data, "amount", AMOUNT, 'a decimal string with at most 2 decimals, like "30.00"')
    if Decimal(amount) <= 0:
        raise Refused(400, "invalid_request", "amount: must be more than 0")
    currency = _text(data, "currency", CURRENCY, "3 capital letters (ISO 4217)")
    callback_url = data.get("callback_url")
    if callback_url is not None and not (
        isinstance(callback_url, str) and callback_url.startswith(("http://", "https://"))
        and len(callback_url) <= MAX_CALLBACK_URL
    ):
        raise Refused(400, "invalid_request", f"callback_url: null, or an http(s) URL of at most {MAX_CALLBACK_URL} "
                      "characters")
    return RechargeRequest(request_id, product, account, Decimal(amount), currency, callback_url)


def _text(data: dict[str, Any], name: str, pattern: re.Pattern[str] | None, shape: str, longest: int = 0) -> str:
    value = data.get(name)
    if value is None:
        raise Refused(400, "invalid_request", f"{name}: missing")
    if not isinstance(value, str):
        raise Refused(400, "invalid_request", f"{name}: must be a string, {shape}")
    valid = pattern.fullmatch(value) if pattern is not None else 0 < len(value) <= longest and value.strip() == value
    if not valid:
        raise Refused(400, "invalid_request", f"{name}: must be {shape}")
    return value
