"""Request and response bodies. Money travels as decimal strings; codes only in KeysOut."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

Money = Annotated[Decimal, PlainSerializer(lambda d: str(d), return_type=str, when_used="json")]
MoneyIn = Annotated[str, Field(pattern=r"^\d{1,12}(\.\d{1,4})?$", examples=["9.99"])]
# As the ledger checks text (ledger.handlers.inputs.text): printable, no surrounding spaces.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f\s]([^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s])?$"
Text = Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)]
Sku = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["GAME-1"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RelayOut(BaseModel):
    position: int
    lag_events: int
    error: str | None
    error_since: str | None


class ReadyOut(BaseModel):
    ready: bool
    head: int | None = None
    lag_events: int | None = None
    reason: str | None = Field(default=None, description="why the store could not be read")
    relay: RelayOut | None = Field(default=None, description="reported when a relay is configured; never gating")


class Positioned(BaseModel):
    position: int = Field(description="log position of the last event this command wrote (or read models reflect)")


class OrderIn(Strict):
    customer_id: Text
    sku: Sku
    quantity: int = Field(ge=1, le=10_000)
    channel: Text = "default"
    coupon_code: Text | None = None
    client_ip: Text | None = None
    device_id: Text | None = None


class OrderOut(Positioned):
    order_id: UUID
    status: str
    amount_due: Money
    currency: str
    reserved_until: datetime


class PaymentIn(Strict):
    payment_reference: Text
    amount: MoneyIn
    provider: Text


class PaymentOut(Positioned):
    order_id: UUID
    payment_reference: str
    outcome: str
    amount: Money
    key_ids: list[UUID]
    reason: str
    replayed: bool


class TimelineEvent(BaseModel):
    at: datetime
    stream: str
    event: str
    version: int


class OrderView(Positioned):
    order_id: UUID
    status: str
    customer_id: str
    sku: str
    quantity: int
    channel: str
    currency: str
    unit_price: Money
    discount: Money
    amount_due: Money
    amount_paid: Money
    amount_refunded: Money
    reserved_until: datetime | None
    key_ids: list[UUID]
    timeline: list[TimelineEvent]


class KeyOut(BaseModel):
    key_id: UUID
    code: str
    status: str


class KeysOut(Positioned):
    keys: list[KeyOut]


class CancelIn(Strict):
    reason: Text = "cancelled_by_customer"


class RefundIn(Strict):
    amount: MoneyIn
    reason: Text
    key_ids: list[UUID] | None = None
    override_redeemed: bool = False


class OrderChangeOut(Positioned):
    order_id: UUID
    status: str
    released_key_ids: list[UUID]
    revoked_key_ids: list[UUID]
