"""Fulfilment of one paid order through upstream suppliers: every attempt, every answer.

A direct recharge or a platform grant is not taken from stock: after payment the order's
fulfilment sends it to a supplier, one attempt at a time. The rules that keep money safe:

- an attempt's id is recorded before the call (`AttemptStarted`), so a crash at any moment
  leaves a record of every request that may have reached a supplier;
- a new attempt (new id, same or another supplier) is started only after the last one ended
  in a failure the supplier stated; an attempt whose answer was lost stays outstanding and
  is asked about again, never guessed, never sent elsewhere, never refunded;
- success, failure and reversal are each recorded once: a repeated answer changes nothing,
  a contradicting one is refused (`AttemptConflict`);
- the fulfilment gives up (and the order is refunded) only with no attempt outstanding.

`OpenFulfilments` lists the fulfilments not yet ended, so that the worker that drives them
finds every one after a restart; it holds only open ones, so it never grows with history.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypedDict
from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.errors import AttemptConflict, InvalidOrderState
from ledger.domain.ids import OPEN_FULFILMENTS_ID, fulfilment_id, grant_id


class FulfilmentStatus(StrEnum):
    REQUESTED = "requested"  # no attempt outstanding: the next one may start
    SUBMITTED = "submitted"  # one attempt outstanding (its outcome may be unknown)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # gave up: the order was refunded
    REVERSED = "reversed"  # a success taken back by the supplier, and the order refunded

    @property
    def open(self) -> bool:
        return self in (FulfilmentStatus.REQUESTED, FulfilmentStatus.SUBMITTED)


class AttemptStatus(StrEnum):
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERSED = "reversed"


class Attempt(TypedDict):
    supplier: str
    supplier_product: str
    cost: Decimal
    status: str  # AttemptStatus
    unknown: bool  # an answer was lost at least once
    charged: Decimal | None
    supplier_ref: str | None
    reason: str | None


class Fulfilment(LedgerAggregate):
    """The upstream fulfilment of one paid order: its attempts and how each ended."""

    class Requested(LedgerAggregate.Created):
        """A paid order is to be fulfilled upstream: what to send (face value, sealed recipient) and until when."""

        order_id: UUID
        sku: str
        kind: str
        quantity: int
        amount: Decimal
        currency: str
        account_sealed: str
        account_hmac: str
        account_masked: str
        deadline: datetime
        on_reversal: str

    class AttemptStarted(LedgerAggregate.Event):
        """An attempt was recorded, before its request was sent: its id, supplier, supplier product and cost."""

        attempt_id: str
        supplier: str
        supplier_product: str
        cost: Decimal

        def apply(self, fulfilment: Fulfilment) -> None:
            fulfilment.attempts[self.attempt_id] = {
                "supplier": self.supplier, "supplier_product": self.supplier_product, "cost": self.cost,
                "status": AttemptStatus.SUBMITTED.value, "unknown": False, "charged": None, "supplier_ref": None,
                "reason": None,
            }
            fulfilment.current = self.attempt_id
            fulfilment.status = FulfilmentStatus.SUBMITTED

    class AttemptUnknown(LedgerAggregate.Event):
        """An attempt's answer was lost (timeout, connection, garbage): it stays outstanding and is asked about."""

        attempt_id: str
        reason: str

        def apply(self, fulfilment: Fulfilment) -> None:
            fulfilment.attempts[self.attempt_id]["unknown"] = True

    class AttemptResent(LedgerAggregate.Event):
        """The supplier said it never received an attempt: the same request, same id, was sent again."""

        attempt_id: str

    class AttemptSucceeded(LedgerAggregate.Event):
        """The supplier completed an attempt, and what it charged for it."""

        attempt_id: str
        supplier_ref: str | None
        charged: Decimal

        def apply(self, fulfilment: Fulfilment) -> None:
            attempt = fulfilment.attempts[self.attempt_id]
            attempt["status"], attempt["charged"] = AttemptStatus.SUCCEEDED.value, self.charged
            attempt["supplier_ref"] = self.supplier_ref
            fulfilment.current = None
            fulfilment.status = FulfilmentStatus.SUCCEEDED

    class AttemptFailed(LedgerAggregate.Event):
        """The supplier stated an attempt failed; `retryable`: another attempt may still succeed."""

        attempt_id: str
        reason: str
        retryable: bool
        supplier_ref: str | None

        def apply(self, fulfilment: Fulfilment) -> None:
            attempt = fulfilment.attempts[self.attempt_id]
            attempt["status"], attempt["reason"] = AttemptStatus.FAILED.value, self.reason
            attempt["supplier_ref"] = self.supplier_ref
            fulfilment.current = None
            fulfilment.status = FulfilmentStatus.REQUESTED
            if not self.retryable:
                fulfilment.permanent_failure = self.reason

    class AttemptReversed(LedgerAggregate.Event):
        """The supplier took back a completed attempt; `refulfil`: the order is fulfilled again, else refunded."""

        attempt_id: str
        reason: str
        refulfil: bool

        def apply(self, fulfilment: Fulfilment) -> None:
            fulfilment.attempts[self.attempt_id]["status"] = AttemptStatus.REVERSED.value
            fulfilment.status = FulfilmentStatus.REQUESTED if self.refulfil else FulfilmentStatus.REVERSED

    class Escalated(LedgerAggregate.Event):
        """An attempt's outcome is still unknown past the deadline: support is asked to look; asking goes on."""

        attempt_id: str
        reason: str

        def apply(self, fulfilment: Fulfilment) -> None:
            fulfilment.escalated = True

    class GaveUp(LedgerAggregate.Event):
        """No attempt can succeed any more (every route failed, or the deadline passed): the order is refunded."""

        reason: str

        def apply(self, fulfilment: Fulfilment) -> None:
            fulfilment.status = FulfilmentStatus.FAILED

    def __init__(self, order_id: UUID, sku: str, kind: str, quantity: int, amount: Decimal, currency: str,
                 account_sealed: str, account_hmac: str, account_masked: str, deadline: datetime,
                 on_reversal: str) -> None:
        self.order_id = order_id
        self.sku = sku
        self.kind = kind
        self.quantity = quantity
        self.amount = amount
        self.currency = currency
        self.account_sealed = account_sealed
        self.account_hmac = account_hmac
        self.account_masked = account_masked
        self.deadline = deadline
        self.on_reversal = on_reversal
        self.status = FulfilmentStatus.REQUESTED
        self.attempts: dict[str, Attempt] = {}
        self.current: str | None = None
        self.escalated = False
        self.permanent_failure: str | None = None  # a failure no supplier can get past (a wrong account)

    @classmethod
    def request(cls, ctx: Context, order_id: UUID, **fields: Any) -> Fulfilment:
        return cls._start(cls.Requested, fulfilment_id(order_id), ctx, order_id=order_id, **fields)

    # ---- what it knows ----

    def attempt(self, attempt_id: str) -> Attempt:
        found = self.attempts.get(attempt_id)
        if found is None:
            raise AttemptConflict(f"fulfilment {self.id} made no attempt {attempt_id}", attempt_id=attempt_id)
        return found

    def next_attempt_id(self) -> str:
        """The id of the next attempt: the supplier deduplicates on it, so it is never reused."""
        return f"{self.id}-{len(self.attempts) + 1}"

    @property
    def failed_suppliers(self) -> set[str]:
        """Suppliers that stated a failure for this fulfilment: routing tries the others first."""
        return {a["supplier"] for a in self.attempts.values() if a["status"] == AttemptStatus.FAILED.value}

    @property
    def succeeded(self) -> tuple[str, Attempt] | None:
        for attempt_id, attempt in self.attempts.items():
            if attempt["status"] == AttemptStatus.SUCCEEDED.value:
                return attempt_id, attempt
        return None

    # ---- attempts ----

    def start_attempt(self, ctx: Context, supplier: str, supplier_product: str, cost: Decimal) -> str:
        if self.status is not FulfilmentStatus.REQUESTED:
            raise InvalidOrderState(f"fulfilment {self.id} is {self.status}: no new attempt may start")
        attempt_id = self.next_attempt_id()
        self._emit(self.AttemptStarted, ctx, attempt_id=attempt_id, supplier=supplier,
                   supplier_product=supplier_product, cost=cost)
        return attempt_id

    def lost_answer(self, ctx: Context, attempt_id: str, reason: str) -> bool:
        """Record the first lost answer of the outstanding attempt; later ones change nothing."""
        attempt = self.attempt(attempt_id)
        if attempt["status"] != AttemptStatus.SUBMITTED.value or attempt["unknown"]:
            return False
        self._emit(self.AttemptUnknown, ctx, attempt_id=attempt_id, reason=reason)
        return True

    def resent(self, ctx: Context, attempt_id: str) -> None:
        if self.attempt(attempt_id)["status"] != AttemptStatus.SUBMITTED.value:
            raise AttemptConflict(f"attempt {attempt_id} has ended: it is not sent again", attempt_id=attempt_id)
        self._emit(self.AttemptResent, ctx, attempt_id=attempt_id)

    def succeed(self, ctx: Context, attempt_id: str, supplier_ref: str | None, charged: Decimal) -> bool:
        """False when this success was recorded already; AttemptConflict when the attempt had ended otherwise."""
        status = self.attempt(attempt_id)["status"]
        if status in (AttemptStatus.SUCCEEDED.value, AttemptStatus.REVERSED.value):
            return False
        if status != AttemptStatus.SUBMITTED.value:
            raise AttemptConflict(f"attempt {attempt_id} is {status}; a success is not recorded over it",
                                  attempt_id=attempt_id, status=status)
        self._emit(self.AttemptSucceeded, ctx, attempt_id=attempt_id, supplier_ref=supplier_ref, charged=charged)
        return True

    def fail(self, ctx: Context, attempt_id: str, reason: str, retryable: bool, supplier_ref: str | None) -> bool:
        """False when this failure was recorded already; AttemptConflict when the attempt had ended otherwise."""
        status = self.attempt(attempt_id)["status"]
        if status == AttemptStatus.FAILED.value:
            return False
        if status != AttemptStatus.SUBMITTED.value:
            raise AttemptConflict(f"attempt {attempt_id} is {status}; a failure is not recorded over it",
                                  attempt_id=attempt_id, status=status)
        self._emit(self.AttemptFailed, ctx, attempt_id=attempt_id, reason=reason, retryable=retryable,
                   supplier_ref=supplier_ref)
        return True

    def reverse(self, ctx: Context, attempt_id: str, reason: str) -> bool:
        """False when this reversal was recorded already; AttemptConflict unless the attempt had succeeded."""
        status = self.attempt(attempt_id)["status"]
        if status == AttemptStatus.REVERSED.value:
            return False
        if status != AttemptStatus.SUCCEEDED.value:
            raise AttemptConflict(f"attempt {attempt_id} is {status}; only a success can be reversed",
                                  attempt_id=attempt_id, status=status)
        self._emit(self.AttemptReversed, ctx, attempt_id=attempt_id, reason=reason,
                   refulfil=self.on_reversal == "refulfil")
        return True

    def escalate(self, ctx: Context, reason: str) -> bool:
        """Once per fulfilment, while an attempt is outstanding."""
        if self.escalated or self.current is None:
            return False
        self._emit(self.Escalated, ctx, attempt_id=self.current, reason=reason)
        return True

    def give_up(self, ctx: Context, reason: str) -> None:
        if self.status is not FulfilmentStatus.REQUESTED:
            raise InvalidOrderState(f"fulfilment {self.id} is {self.status}: it can only give up with no attempt "
                                    "outstanding")
        self._emit(self.GaveUp, ctx, reason=reason)


class OpenFulfilments(LedgerAggregate):
    """The fulfilments not yet ended: where the worker that drives them starts after a restart."""

    class Opened(LedgerAggregate.Created):
        """The list of open fulfilments was started (with the first one)."""

    class Added(LedgerAggregate.Event):
        """A fulfilment is open: the worker drives it until it ends."""

        fulfilment_id: UUID

        def apply(self, index: OpenFulfilments) -> None:
            index.ids.append(self.fulfilment_id)

    class Removed(LedgerAggregate.Event):
        """A fulfilment ended (succeeded, or gave up and was refunded)."""

        fulfilment_id: UUID

        def apply(self, index: OpenFulfilments) -> None:
            index.ids.remove(self.fulfilment_id)

    def __init__(self) -> None:
        self.ids: list[UUID] = []

    @classmethod
    def open(cls, ctx: Context) -> OpenFulfilments:
        return cls._start(cls.Opened, OPEN_FULFILMENTS_ID, ctx)

    def add(self, ctx: Context, fulfilment: UUID) -> None:
        if fulfilment not in self.ids:
            self._emit(self.Added, ctx, fulfilment_id=fulfilment)

    def remove(self, ctx: Context, fulfilment: UUID) -> None:
        if fulfilment in self.ids:
            self._emit(self.Removed, ctx, fulfilment_id=fulfilment)


class Grant(LedgerAggregate):
    """A membership or seat on a partner platform, for one account and one product: each delivered
    order extends its term from where it ends (or from now, when it has ended)."""

    class Started(LedgerAggregate.Created):
        """The first grant of a product to an account (by its keyed hash)."""

        sku: str
        account_hmac: str

    class Extended(LedgerAggregate.Event):
        """A delivered order extended the term: from its current end (or now, if it had ended) by its days."""

        order_id: UUID
        starts: datetime
        until: datetime

        def apply(self, grant: Grant) -> None:
            grant.until = self.until
            grant.ended = False

    class Ended(LedgerAggregate.Event):
        """The term reached its end (`until`) with no renewal: the grant is no longer valid."""

        until: datetime

        def apply(self, grant: Grant) -> None:
            grant.ended = True

    def __init__(self, sku: str, account_hmac: str) -> None:
        self.sku = sku
        self.account_hmac = account_hmac
        self.until: datetime | None = None
        self.ended = False

    @classmethod
    def start(cls, ctx: Context, sku: str, account_hmac: str) -> Grant:
        return cls._start(cls.Started, grant_id(sku, account_hmac), ctx, sku=sku, account_hmac=account_hmac)

    def extend(self, ctx: Context, order_id: UUID, days: int) -> datetime:
        starts = max(ctx.now, self.until) if self.until is not None else ctx.now
        until = starts + timedelta(days=days)
        self._emit(self.Extended, ctx, order_id=order_id, starts=starts, until=until)
        return until

    def end(self, ctx: Context) -> bool:
        """End the term if it has passed; a renewal moved `until` on, so it is read now, at the
        sweep (False: renewed, not yet due, or ended already)."""
        if self.ended or self.until is None or ctx.now < self.until:
            return False
        self._emit(self.Ended, ctx, until=self.until)
        return True
