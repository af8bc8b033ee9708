"""Every write to the ledger as a small frozen value: what was asked, by whom, when.

A command is data. It says nothing about how it is carried out; its handler
(`ledger.handlers`) decides, and the writer (`ledger.writer`) runs it and commits.
Fields arrive as the caller gave them (amounts as text, say): the handler checks them
and names the field at fault, so bad input changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Generic, TypeVar
from uuid import UUID

from ledger.domain.catalog import DEFAULT_CHANNEL, ProductKind
from ledger.domain.context import Context
from ledger.domain.errors import LineError
from ledger.results import Imported, OrderChange, PaymentResult, Placed, Recalled, Redeemed, Written
from ledger.supplier_import.importer import ImportProgress

R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class Command(Generic[R]):
    """A write, answered by an `R` (`ledger.results`) or refused by a `DomainError`."""

    ctx: Context
    # A command that writes a great many events runs alone in its own transaction.
    exclusive: ClassVar[bool] = False


# ---- catalogue and promotions ----


@dataclass(frozen=True, kw_only=True)
class DefineProduct(Command[Written]):
    sku: str
    name: str
    kind: str = ProductKind.CARD_KEY.value
    face_value: object
    currency: str
    price: object
    channel_prices: dict[str, object] | None = None
    validity_days: int | None = None
    platform: str | None = None
    per_customer_limit: int | None = None
    low_stock_threshold: int = 0
    reservation_timeout_s: int | None = None


@dataclass(frozen=True, kw_only=True)
class ChangePrice(Command[Written]):
    sku: str
    price: object
    channel: str = DEFAULT_CHANNEL


@dataclass(frozen=True, kw_only=True)
class RetireProduct(Command[Written]):
    sku: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class CreateCoupon(Command[Written]):
    code: str
    kind: str
    value: object
    currency: str
    starts_at: datetime
    ends_at: datetime
    min_spend: object = "0"
    skus: list[str] | None = None
    total_cap: int | None = None
    per_customer_cap: int | None = None


@dataclass(frozen=True, kw_only=True)
class CreateFlashSale(Command[Written]):
    sale_id: str
    sku: str
    starts_at: datetime
    ends_at: datetime
    price: object
    total_quantity: int
    per_customer_limit: int | None = None


# ---- orders ----


@dataclass(frozen=True, kw_only=True)
class PlaceOrder(Command[Placed]):
    customer_id: str
    sku: str
    quantity: int
    channel: str = "default"
    coupon_code: str | None = None
    client_ip: str | None = None
    device_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class CapturePayment(Command[PaymentResult]):
    """A payment provider's callback: idempotent by `payment_reference`."""

    order_id: UUID
    payment_reference: str
    amount: object
    provider: str


@dataclass(frozen=True, kw_only=True)
class CancelOrder(Command[OrderChange]):
    order_id: UUID
    reason: str = "cancelled_by_customer"


@dataclass(frozen=True, kw_only=True)
class ExpireOrder(Command[OrderChange | None]):
    """Expire one order if its deadline has passed (the sweeper's command)."""

    order_id: UUID


@dataclass(frozen=True, kw_only=True)
class RefundOrder(Command[OrderChange]):
    order_id: UUID
    amount: object
    reason: str
    key_ids: list[UUID] | None = None
    override_redeemed: bool = False


# ---- supply ----


@dataclass(frozen=True, kw_only=True)
class ImportKeys(Command[Imported]):
    """A supplier batch: all or nothing. `codes` are (line, code) pairs; `line_errors` are
    problems the file reader already found, reported together with the codes' own."""

    exclusive: ClassVar[bool] = True
    sku: str
    supplier: str
    unit_cost: object
    codes: list[tuple[int, str]] = field(repr=False)  # secrets: never in a repr or a log
    line_errors: list[LineError] | None = None
    progress: ImportProgress | None = field(default=None, repr=False, compare=False)  # a CLI's bars


@dataclass(frozen=True, kw_only=True)
class RecallBatch(Command[Recalled]):
    batch_id: UUID
    reason: str


@dataclass(frozen=True, kw_only=True)
class Redeem(Command[Redeemed]):
    code: str = field(repr=False)
    account_id: str
    platform: str | None = None
