"""What a command answers: plain frozen values, each with the log position of its last
event (for read-your-writes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True)
class Written:
    """The id a command wrote to, and the log position of its last event."""

    id: UUID
    position: int


@dataclass(frozen=True)
class Placed:
    order_id: UUID
    status: str
    amount_due: Decimal
    currency: str
    reserved_until: datetime
    key_ids: list[UUID]
    position: int
    recipient_masked: str | None = None  # an upstream product's recipient account, masked (never in clear)


@dataclass(frozen=True)
class PaymentResult:
    order_id: UUID
    payment_reference: str
    outcome: str  # delivered | refunded
    amount: Decimal
    key_ids: list[UUID]
    reason: str
    position: int
    replayed: bool = False


@dataclass(frozen=True)
class OrderChange:
    order_id: UUID
    status: str
    position: int
    released_key_ids: list[UUID] = field(default_factory=list)
    revoked_key_ids: list[UUID] = field(default_factory=list)


@dataclass(frozen=True)
class Imported:
    batch_id: UUID
    key_ids: list[UUID]
    position: int


@dataclass(frozen=True)
class Recalled:
    batch_id: UUID
    voided: int
    cancelled_orders: list[UUID]
    position: int


@dataclass(frozen=True)
class Redeemed:
    key_id: UUID
    sku: str
    position: int


@dataclass(frozen=True)
class AttemptPlan:
    """What the fulfilment worker is to send (or ask about): one attempt, outstanding. `resolve`:
    it was sent before (by this process or one that died), so its status is asked first."""

    fulfilment_id: UUID
    attempt_id: str
    supplier: str
    supplier_product: str
    amount: Decimal
    currency: str
    account_sealed: str
    resolve: bool
    position: int


@dataclass(frozen=True)
class FulfilmentState:
    """Where a fulfilment stands after a command: `changed` when the command recorded something."""

    fulfilment_id: UUID
    status: str
    changed: bool
    position: int
    waiting: str | None = None  # why no attempt was started now (no healthy route the float covers)


Result = (Written | Placed | PaymentResult | OrderChange | Imported | Recalled | Redeemed | AttemptPlan
          | FulfilmentState | None)


@dataclass(frozen=True)
class ValiditiesSwept:
    """What one `ExpireValidities` ended (keys, accesses, grants) and whether due entries remain."""

    ended: int
    handled: int  # due entries looked at: ended, or found redeemed, revoked, refunded or renewed
    more: bool
    position: int
