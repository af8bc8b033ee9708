"""Supplier reconciliation: a supplier's statement (docs/upstream.md, `GET /v1/statement`) held
against the attempts the ledger recorded with it.

Every charge on the statement must match one attempt that succeeded here, with the same amount,
and every attempt that succeeded here (in the statement's period) one charge. Each difference
names the request, what each side says, and the log positions to look at:

| kind | what it means |
| --- | --- |
| `money_lost` | charged there, but the order was refunded to the customer here |
| `charged_not_succeeded` | charged there, but the attempt failed or is still outstanding here |
| `unknown_request` | charged there for a request id the ledger never sent |
| `amount_differs` | both say succeeded, with different amounts |
| `reversed_here_charged_there` | the supplier's reversal was recorded here, the statement still charges |
| `reversed_there_succeeded_here` | the statement says reversed, the ledger still holds the success |
| `claim` | succeeded here, absent there: the supplier was not charged (or left it off) |
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from uuid import UUID

from eventsourcing.utils import get_topic

from ledger.application import LedgerApp
from ledger.domain.fulfilment import Fulfilment
from ledger.domain.orders import Order
from ledger.storage import event_log

COLUMNS = ("request_id", "status", "charged", "currency", "completed_at")


class StatementError(ValueError):
    """A statement that is not the protocol's CSV; the message names the file and line."""


@dataclass(frozen=True)
class StatementLine:
    request_id: str
    status: str  # succeeded | reversed
    charged: Decimal
    currency: str
    completed_at: datetime
    line: int


@dataclass
class AttemptRecord:
    """One attempt as the log tells it: where it went, how it ended, and its order's fate."""

    attempt_id: str
    order_id: UUID
    supplier: str
    status: str = "submitted"  # submitted | succeeded | failed | reversed
    charged: Decimal | None = None
    succeeded_at: datetime | None = None
    positions: list[int] = field(default_factory=list)
    order_refunded: bool = False


@dataclass(frozen=True)
class Difference:
    kind: str
    request_id: str
    here: str
    there: str
    positions: tuple[int, ...]


def read_statement(text: str, source: str) -> list[StatementLine]:
    """The statement's rows; StatementError naming `source` and the line at fault."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise StatementError(f"{source}:1: the header must be {','.join(COLUMNS)}")
    lines = []
    for number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(COLUMNS):
            raise StatementError(f"{source}:{number}: {len(row)} columns, not {len(COLUMNS)}")
        request_id, status, charged, currency, completed_at = (cell.strip() for cell in row)
        if status not in ("succeeded", "reversed"):
            raise StatementError(f"{source}:{number}: status {status!r} is not succeeded or reversed")
        try:
            amount = Decimal(charged)
            when = datetime.fromisoformat(completed_at.replace("Z", "+00:00"))
        except (InvalidOperation, ValueError):
            raise StatementError(f"{source}:{number}: charged must be a decimal and completed_at an ISO "
                                 "date-time") from None
        if not amount.is_finite() or amount < 0 or when.tzinfo is None:
            raise StatementError(f"{source}:{number}: charged must not be negative and completed_at needs a zone")
        lines.append(StatementLine(request_id, status, amount, currency, when, number))
    return lines


_TOPICS = [get_topic(cls) for cls in (
    Fulfilment.Requested, Fulfilment.AttemptStarted, Fulfilment.AttemptSucceeded, Fulfilment.AttemptFailed,
    Fulfilment.AttemptReversed, Order.Refunded,
)]


def attempts_with(app: LedgerApp, supplier: str) -> dict[str, AttemptRecord]:
    """Every attempt sent to `supplier`, folded from the log (only the events that tell it)."""
    orders: dict[UUID, UUID] = {}  # fulfilment -> order
    attempts: dict[str, AttemptRecord] = {}
    refunded: set[UUID] = set()
    decode = event_log.decoder(app)
    for notification in event_log.notifications(app, topics=_TOPICS):
        event = decode(notification)
        if isinstance(event, Fulfilment.Requested):
            orders[event.originator_id] = event.order_id
        elif isinstance(event, Fulfilment.AttemptStarted):
            if event.supplier == supplier:
                attempts[event.attempt_id] = AttemptRecord(event.attempt_id, orders[event.originator_id], supplier,
                                                           positions=[notification.id])
        elif isinstance(event, Order.Refunded):
            refunded.add(event.originator_id)
        else:
            record = attempts.get(event.attempt_id)
            if record is None:
                continue
            record.positions.append(notification.id)
            if isinstance(event, Fulfilment.AttemptSucceeded):
                record.status, record.charged, record.succeeded_at = "succeeded", event.charged, event.timestamp
            elif isinstance(event, Fulfilment.AttemptFailed):
                record.status = "failed"
            else:
                record.status = "reversed"
    for record in attempts.values():
        record.order_refunded = record.order_id in refunded
    return attempts


def differences(attempts: dict[str, AttemptRecord], statement: Iterable[StatementLine],
                period: tuple[datetime, datetime] | None = None) -> list[Difference]:
    """What does not match, in statement order, then the claims. `period`: [from, to) of the
    statement; successes here outside it are not expected on it."""
    found: list[Difference] = []
    listed: set[str] = set()

    def differ(kind: str, request_id: str, here: str, there: str, record: AttemptRecord | None) -> None:
        found.append(Difference(kind, request_id, here, there, tuple(record.positions) if record else ()))

    for line in statement:
        listed.add(line.request_id)
        there = f"{line.status} {line.charged} {line.currency}"
        record = attempts.get(line.request_id)
        if record is None:
            if line.charged > 0:
                differ("unknown_request", line.request_id, "never sent", there, None)
            continue
        here = f"{record.status} {record.charged if record.charged is not None else ''}".strip()
        if line.status == "reversed":
            if record.status == "succeeded":
                differ("reversed_there_succeeded_here", line.request_id, here, there, record)
        elif record.status == "succeeded":
            if record.charged != line.charged:
                differ("amount_differs", line.request_id, here, there, record)
        elif record.status == "reversed":
            differ("reversed_here_charged_there", line.request_id, here, there, record)
        else:
            kind = "money_lost" if record.order_refunded else "charged_not_succeeded"
            differ(kind, line.request_id, here + (", order refunded" if record.order_refunded else ""), there, record)
    for record in attempts.values():
        if record.status != "succeeded" or record.attempt_id in listed:
            continue
        if period is not None and record.succeeded_at is not None \
                and not period[0] <= record.succeeded_at < period[1]:
            continue
        differ("claim", record.attempt_id, f"succeeded {record.charged}", "not on the statement", record)
    return found
