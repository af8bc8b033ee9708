"""Connectors to upstream suppliers: the generic HTTP protocol of docs/upstream.md, and the
interface another connector implements.

A connector says what the supplier said, exactly, or raises `LostAnswer` when it cannot know:
a timeout, a broken connection, a 5xx, a body that is not the protocol's. A lost answer is an
unknown outcome: the caller asks again later, never guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

STATUSES = ("pending", "succeeded", "failed", "reversed")
# Failures no other supplier can get past: the account or the product is wrong.
PERMANENT_REASONS = frozenset({"account_invalid", "product_unknown"})
MAX_ANSWER_BYTES = 64 * 1024
REFUSED = frozenset({400, 401, 403, 413, 422})  # a request the protocol says was not recorded


class LostAnswer(Exception):
    """What the supplier did is unknown: ask again later."""


@dataclass(frozen=True)
class Request:
    """One attempt, as sent: the supplier deduplicates on `request_id`."""

    request_id: str
    product: str
    account: str
    amount: Decimal
    currency: str
    callback_url: str | None


@dataclass(frozen=True)
class Answer:
    request_id: str
    status: str  # pending | succeeded | failed | reversed
    supplier_ref: str | None = None
    reason: str | None = None
    retryable: bool = True
    charged: Decimal | None = None


class Connector(Protocol):
    """What the worker needs of a supplier."""

    def submit(self, request: Request) -> Answer:
        """Send (or send again, same id) one request; LostAnswer when the outcome is unknown."""
        ...

    def status(self, request_id: str) -> Answer | None:
        """What became of a request; None when the supplier never received it (404)."""
        ...

    def close(self) -> None: ...


def signature(secret: str, message: bytes) -> str:
    """The `X-Signature` header: `sha256=` and the hex HMAC-SHA256 of the raw body (or path)."""
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed(secret: str, message: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(signature(secret, message), header)


def parse_answer(body: bytes, request_id: str | None = None) -> Answer:
    """A protocol answer or callback body; ValueError naming what is wrong."""
    if len(body) > MAX_ANSWER_BYTES:
        raise ValueError(f"answer over {MAX_ANSWER_BYTES} bytes")
    data: Any = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("answer is not a JSON object")
    rid, status = data.get("request_id"), data.get("status")
    if not isinstance(rid, str) or (request_id is not None and rid != request_id):
        raise ValueError("answer names another request_id")
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    ref, reason, retryable, charged = (data.get(k) for k in ("supplier_ref", "reason", "retryable", "charged"))
    if (ref is not None and not isinstance(ref, str)) or (reason is not None and not isinstance(reason, str)):
        raise ValueError("supplier_ref and reason are text")
    if retryable is None:
        retryable = reason not in PERMANENT_REASONS
    if not isinstance(retryable, bool):
        raise ValueError("retryable is true or false")
    amount = None
    if charged is not None:
        try:
            amount = Decimal(charged) if isinstance(charged, str) else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount < 0:
            raise ValueError("charged is a non-negative decimal string")
    return Answer(rid, status, ref, reason, retryable, amount)


class HttpConnector:
    """The generic protocol over HTTP (docs/upstream.md), one keep-alive pool per supplier."""

    def __init__(self, base_url: str, secret: str, timeout_ms: int, concurrency: int) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self._client = httpx.Client(
            timeout=timeout_ms / 1000,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    def submit(self, request: Request) -> Answer:
        body = json.dumps({
            "request_id": request.request_id, "product": request.product, "account": request.account,
            "amount": str(request.amount), "currency": request.currency, "callback_url": request.callback_url,
        }, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Signature": signature(self._secret, body)}
        return self._ask("POST", "/v1/recharges", body, headers, request.request_id)  # type: ignore[return-value]

    def status(self, request_id: str) -> Answer | None:
        path = f"/v1/recharges/{request_id}"
        return self._ask("GET", path, b"", {"X-Signature": signature(self._secret, path.encode())}, request_id,
                         missing_ok=True)

    def _ask(self, method: str, path: str, body: bytes, headers: dict[str, str], request_id: str,
             *, missing_ok: bool = False) -> Answer | None:
        try:
            with self._client.stream(method, self.base_url + path, content=body, headers=headers) as response:
                if response.status_code == 404 and missing_ok:
                    return None
                data = b""
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        raise LostAnswer(f"answer over {MAX_ANSWER_BYTES} bytes")
        except httpx.HTTPError as error:
            raise LostAnswer(type(error).__name__) from None
        if method == "POST" and response.status_code in REFUSED:
            # Refused before anything was recorded: this supplier did nothing, so the attempt
            # failed and another route may be tried. (A 409 is not one: the id is known there.)
            return Answer(request_id, "failed", reason=f"refused_http_{response.status_code}")
        if response.status_code not in (200, 202):
            raise LostAnswer(f"HTTP {response.status_code}")
        try:
            return parse_answer(data, request_id)
        except ValueError as error:
            raise LostAnswer(f"not the protocol's answer: {error}") from None

    def statement(self, start: datetime | None, end: datetime | None) -> str:
        """The supplier's CSV statement of [start, end) (`GET /v1/statement`, signed over path and query)."""
        query = urlencode({k: v.isoformat() for k, v in (("from", start), ("to", end)) if v is not None})
        path = "/v1/statement" + (f"?{query}" if query else "")
        try:
            response = self._client.get(self.base_url + path, headers={"X-Signature": signature(self._secret,
                                                                                               path.encode())})
        except httpx.HTTPError as error:
            raise LostAnswer(type(error).__name__) from None
        if response.status_code != 200:
            raise LostAnswer(f"HTTP {response.status_code}")
        return response.text

    def close(self) -> None:
        self._client.close()
