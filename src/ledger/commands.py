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
from ledger.results import (
    AttemptPlan,
    FulfilmentState,
    Imported,
    OrderChange,
    PaymentResult,
    Placed,
    Recalled,
    Redeemed,
    ValiditiesSwept,
    Written,
)
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
    # Upstream kinds (direct_recharge, platform_grant): the recipient account's pattern and how
    # to describe it, how long to keep trying after payment, and what a supplier's reversal does.
    account_pattern: str | None = None
    account_hint: str | None = None
    fulfilment_deadline_s: int | None = None
    on_reversal: str = "refund"


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
    recipient_account: str | None = field(default=None, repr=False)  # personal data: never in a repr


@dataclass(frozen=True, kw_only=True)
class CapturePayment(Command[PaymentResult]):
    """A payment provider's callback: idempotent by `payment_reference`."""

    order_id: UUID
    payment_reference: str
    amount: object
    provider: str


@dataclass(frozen=True, kw_only=True)
class SetPaymentProvider(Command[Written]):
    """Register a payment provider whose signed callbacks confirm payments, or change its secret."""

    name: str
    scheme: str
    secret: str = field(repr=False)  # sealed before it is recorded


@dataclass(frozen=True, kw_only=True)
class CancelOrder(Command[OrderChange]):
    order_id: UUID
    reason: str = "cancelled_by_customer"


@dataclass(frozen=True, kw_only=True)
class ExpireOrder(Command[OrderChange | None]):
    """Expire one order if its deadline has passed (the sweeper's command)."""

    order_id: UUID


@dataclass(frozen=True, kw_only=True)
class ExpireValidities(Command[ValiditiesSwept]):
    """End what is due by now (unredeemed keys, access, grant terms), at most `limit` entries
    of the day books; the sweeper sends it again while `more`."""

    limit: int = 500


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


# ---- upstream suppliers and fulfilment ----


@dataclass(frozen=True, kw_only=True)
class SetSupplier(Command[Written]):
    """Register an upstream supplier, or change its connection settings (by name)."""

    name: str
    base_url: str
    secret: str = field(repr=False)  # sealed before it is recorded
    currency: str
    timeout_ms: int = 5000
    concurrency: int = 8


@dataclass(frozen=True, kw_only=True)
class SetLowFloat(Command[Written]):
    """The available float under which a supplier's low-float alert fires (0: never)."""

    name: str
    threshold: object


@dataclass(frozen=True, kw_only=True)
class FundSupplier(Command[Written]):
    """Money prepaid to a supplier: its float grows."""

    name: str
    amount: object
    reference: str


@dataclass(frozen=True, kw_only=True)
class SettleSupplier(Command[Written]):
    """A payment to a supplier against what is owed to it; idempotent by `reference`."""

    supplier: str
    amount: object
    currency: str
    reference: str
    period: str = ""  # the statement it settles, e.g. 2026-11


@dataclass(frozen=True, kw_only=True)
class SetOffer(Command[Written]):
    """A supplier's offer for an upstream product: its code for it, the cost per unit, a priority."""

    sku: str
    supplier: str
    supplier_product: str
    cost: object
    priority: int = 0


@dataclass(frozen=True, kw_only=True)
class RemoveOffer(Command[Written]):
    sku: str
    supplier: str


@dataclass(frozen=True, kw_only=True)
class StartAttempt(Command[AttemptPlan | FulfilmentState]):
    """The fulfilment worker asks what to send next: the outstanding attempt if there is one, else
    a new attempt on the best route (cheapest healthy offer the float covers), or nothing when
    it must wait, or has ended (giving up, with a refund, when no route is left)."""

    fulfilment_id: UUID
    unhealthy: tuple[str, ...] = ()  # suppliers whose breaker is open: skipped while others remain


@dataclass(frozen=True, kw_only=True)
class RecordAttempt(Command[FulfilmentState]):
    """What a supplier said of an attempt (its answer, a status look-up, or a callback), or that
    its answer was lost: recorded once; a repeat changes nothing, a contradiction is refused."""

    fulfilment_id: UUID
    attempt_id: str
    outcome: str  # pending | succeeded | failed | reversed | unknown | resent
    supplier: str | None = None  # a callback's supplier: must be the attempt's
    supplier_ref: str | None = None
    reason: str | None = None
    retryable: bool = True
    charged: object | None = None
