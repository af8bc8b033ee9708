"""Request and response bodies of upstream fulfilment: suppliers, their floats and offers,
settlements, suppliers' callbacks, and support's search.

A supplier's secret is write-only: it is accepted by `SupplierIn` and appears in no response.
A recipient account is shown masked (`138****5678`), in clear only to the support role."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from api.models import NFC, TEXT_PATTERN, Money, MoneyIn, Positioned, Priced, Strict, Text
from api.models_catalog import Currency
from ledger.domain.text import REFUSED_CLASS

# A supplier's name names topics, routes and metrics: the shape of a SKU.
SUPPLIER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
SupplierName = Annotated[str, Field(pattern=SUPPLIER_NAME, examples=["sup-a"])]
# An http(s) URL without query or fragment: an ASCII host name or IPv4 address, an optional port, a path.
# (An IPv6 literal is left out: whether one is well formed is more than a pattern can say.)
# The path keeps the ledger's text rule (ledger.domain.text): no control, zero-width or bidi character.
BASE_URL = rf"^https?://[A-Za-z0-9._~%!$&'()*+,;=-]+(:[0-9]{{1,5}})?(/[^{REFUSED_CLASS}\s?#]*)?$"


# ---- suppliers ----


class SupplierIn(Strict):
    # NFC after the Field: before it, pydantic leaves the pattern out of the schema.
    base_url: Annotated[str, Field(max_length=200, pattern=BASE_URL, examples=["https://supplier.example/api"]), NFC]
    secret: Annotated[str, Field(
        min_length=16, max_length=200, pattern=TEXT_PATTERN, repr=False,
        json_schema_extra={"writeOnly": True, "format": "password"},
        description="the shared secret of docs/upstream.md's signatures: sealed at once, never returned or logged")]
    currency: Currency = Field(description="the float's currency; it cannot change once the supplier exists")
    timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 5000
    concurrency: Annotated[int, Field(ge=1, le=1000, description="requests in flight at most")] = 8


class SupplierWritten(Positioned):
    name: str


class FloatIn(Strict):
    amount: MoneyIn
    reference: Text = Field(description="the transfer's reference, for the books")


class LowFloatIn(Strict):
    threshold: MoneyIn = Field(description="alert when the available float falls to this; 0: never")


class SettlementIn(Strict):
    amount: MoneyIn
    currency: Currency
    reference: Text = Field(description="the payment's reference: a settlement is recorded once per reference")
    period: Text | None = Field(default=None, description="the statement it settles, e.g. 2026-11")


class StatementDifference(BaseModel):
    kind: Literal["money_lost", "charged_not_succeeded", "unknown_request", "amount_differs",
                  "reversed_here_charged_there", "reversed_there_succeeded_here", "claim"]
    request_id: str
    here: str = Field(description="what the ledger recorded of the attempt")
    there: str = Field(description="what the statement says")
    positions: list[int] = Field(description="log positions of the attempt's events, to look at")


class StatementReconciliation(Positioned):
    """A supplier's statement held against the attempts recorded with it (docs/recharge.md)."""

    supplier: str
    lines: int
    differences: list[StatementDifference]


class SettlementOut(Positioned):
    supplier: str
    reference: str


class FloatState(Priced):
    """The prepaid float: funded, less charged, less held by outstanding attempts, is available."""

    currency: str
    funded: Money
    charged: Money
    held: Money
    available: Money
    low_threshold: Money = Field(description="the low-float alert fires when available falls to it (0: never)")
    low: bool = Field(description="the alert fired and the float was not refilled above the threshold since")


class Health(BaseModel):
    breaker: Literal["closed", "open", "unknown"] = Field(
        description="the fulfilment worker's circuit breaker for this supplier; unknown when no worker runs in "
                    "the serving process")
    outstanding: int = Field(description="attempts sent and not yet answered (from the log)")


class SupplierOffer(Priced):
    sku: str
    supplier_product: str
    currency: str
    cost: Money
    priority: int


class SupplierOut(BaseModel):
    name: str
    base_url: str
    currency: str
    timeout_ms: int
    concurrency: int
    float: FloatState
    health: Health
    offers: list[SupplierOffer]


class SuppliersOut(Positioned):
    suppliers: list[SupplierOut]


# ---- offers ----


class OfferIn(Strict):
    supplier_product: Text = Field(description="the supplier's own product code")
    cost: MoneyIn = Field(description="what one unit costs at this supplier, in the product's currency")
    priority: Annotated[int, Field(ge=0, le=1_000_000_000, description="among equal costs, lower first")] = 0


class OfferOut(Positioned):
    sku: str
    supplier: str


# ---- callbacks (docs/upstream.md) ----

CALLBACK_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["request_id", "status"],
    "properties": {
        "request_id": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[A-Za-z0-9._~-]+$",
                       "description": "the attempt's id as the ledger sent it: `<fulfilment id>-<n>`"},
        "status": {"type": "string", "enum": ["pending", "succeeded", "failed", "reversed"]},
        "supplier_ref": {"type": ["string", "null"]},
        "reason": {"type": ["string", "null"]},
        "retryable": {"type": ["boolean", "null"]},
        "charged": {"type": ["string", "null"], "pattern": r"^\d{1,12}(\.\d{1,2})?$"},
    },
}


# ---- support ----


class AttemptTrace(Priced):
    attempt_id: str
    supplier: str
    supplier_product: str
    currency: str
    cost: Money = Field(description="the offer's cost it was sent at")
    status: str = Field(description="submitted, succeeded, failed or reversed")
    unknown: bool = Field(description="an answer was lost at least once (timeout, broken connection, garbage)")
    lost_answer: str | None = Field(default=None, description="how its answer was first lost, when it was")
    reason: str | None
    supplier_ref: str | None
    charged: Money | None
    started_at: datetime | None


class Escalation(BaseModel):
    attempt_id: str
    reason: str
    at: datetime


class FulfilmentTrace(BaseModel):
    fulfilment_id: UUID
    status: str = Field(description="requested, submitted, succeeded, failed (refunded) or reversed")
    deadline: datetime
    attempts: list[AttemptTrace]
    escalations: list[Escalation]
    gave_up: str | None = Field(description="why it ended without success, if it did")


class SupportOrder(Priced):
    order_id: UUID
    status: str
    customer_id: str
    sku: str
    quantity: int
    channel: str
    currency: str
    amount_due: Money
    amount_paid: Money
    amount_refunded: Money
    placed_at: datetime | None
    payment_references: list[str]
    recipient_account: str | None = Field(description="in clear for the support role; masked for any other")
    key_ids: list[UUID]
    fulfilment: FulfilmentTrace | None


class SupportOrdersOut(Positioned):
    orders: list[SupportOrder]


SearchKey = Text
