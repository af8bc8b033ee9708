"""Adapters that read a payment provider's signed callback: check its signature, its age, and
say which payment it confirms.

A provider is registered with a scheme (`ledger payments provider-set NAME --scheme ...`); the
scheme names the adapter here. `standard-webhooks` is the generic one: the Standard Webhooks
scheme (https://www.standardwebhooks.com), checked by its reference library (`standardwebhooks`,
MIT): headers `webhook-id`, `webhook-timestamp` (Unix seconds, at most 5 minutes from now either
way) and `webhook-signature` (`v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>`,
several space-separated are allowed), the secret given as `whsec_<base64>`. Its body:

    {"type": "payment.succeeded", "timestamp": "...",
     "data": {"order_id": "<uuid>", "payment_reference": "pi_123", "amount": "19.99"}}

Any other `type` is acknowledged and changes nothing. A provider with its own format gets an
adapter of its own: a class with `read(headers, body) -> Message` (raising `BadSignature` or
`BadPayload`), constructed from the provider's secret, added to `ADAPTERS` under its scheme."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from standardwebhooks import Webhook, WebhookVerificationError

CONFIRMS = "payment.succeeded"
MAX_MESSAGE_ID = 200


class BadSignature(Exception):
    """The callback is not signed by the provider's secret, is too old or too new, or lacks its headers."""


class BadPayload(Exception):
    """Signed, but not a body this adapter reads: the message says which field."""


@dataclass(frozen=True)
class PaymentNotice:
    """A payment the provider confirms: captured for the order, under the provider's reference."""

    order_id: UUID
    payment_reference: str
    amount: str


@dataclass(frozen=True)
class Message:
    """A callback whose signature holds: its id (the provider's, unique per message: a second
    delivery of the same id is a replay) and the payment it confirms, if any."""

    message_id: str
    notice: PaymentNotice | None


class ProviderAdapter(Protocol):
    def read(self, headers: Mapping[str, str], body: bytes) -> Message: ...


def _secret_bytes(secret: str) -> bytes:
    """The key of a `whsec_<base64>` secret; ValueError unless it is one of 24 to 64 bytes."""
    if not secret.startswith("whsec_"):
        raise ValueError("a Standard Webhooks secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("whsec_ must be followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a Standard Webhooks secret is 24 to 64 bytes")
    return key


class StandardWebhooks:
    """The generic adapter: Standard Webhooks signatures over the body above."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(_secret_bytes(secret))

    def read(self, headers: Mapping[str, str], body: bytes) -> Message:
        wanted = {k: headers.get(k, "") for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        if not all(v.isascii() for v in wanted.values()):
            raise BadSignature("the webhook headers are not ASCII")
        try:
            self._webhook.verify(body, wanted, json_parse=False)
        except WebhookVerificationError as error:
            raise BadSignature(str(error)) from None
        message_id = wanted["webhook-id"]
        if len(message_id) > MAX_MESSAGE_ID:
            raise BadPayload(f"webhook-id: at most {MAX_MESSAGE_ID} characters")
        return Message(message_id, _notice(body))


def _notice(body: bytes) -> PaymentNotice | None:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise BadPayload("body: not a JSON object") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise BadPayload("type: a JSON object with a string `type` is required")
    if payload["type"] != CONFIRMS:
        return None
    data = payload.get("data")
    if not isinstance(data, dict):
        raise BadPayload("data: an object is required")
    return PaymentNotice(order_id=_uuid(data, "order_id"), payment_reference=_text(data, "payment_reference"),
                         amount=_text(data, "amount"))


def _text(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise BadPayload(f"data.{field}: a non-empty string is required")
    return value


def _uuid(data: dict[str, Any], field: str) -> UUID:
    try:
        return UUID(_text(data, field))
    except ValueError:
        raise BadPayload(f"data.{field}: a UUID is required") from None


ADAPTERS: dict[str, Callable[[str], ProviderAdapter]] = {"standard-webhooks": StandardWebhooks}


def adapter(scheme: str, secret: str) -> ProviderAdapter:
    """The adapter of `scheme` over `secret`; ValueError naming what is wrong with either."""
    make = ADAPTERS.get(scheme)
    if make is None:
        raise ValueError(f"scheme: one of {', '.join(sorted(ADAPTERS))}")
    return make(secret)
