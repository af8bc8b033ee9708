"""Validity: what a delivery, grant or extension schedules, and the sweep that ends it when due.

See `ledger.domain.validity`: a book per UTC day, a cursor at the first day not yet swept. A
sweep reads the cursor, the books from its day to today, and at most `limit` due entries: it
never reads the history."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from ledger.commands import ExpireValidities
from ledger.domain.context import Context
from ledger.domain.errors import UnknownCode, UnknownOrder
from ledger.domain.fulfilment import Grant
from ledger.domain.ids import VALIDITY_CURSOR_ID, validity_day_id
from ledger.domain.orders import Order
from ledger.domain.supply import Key
from ledger.domain.validity import Due, DueKind, ValidityCursor, ValidityDay, utc_day
from ledger.handlers import inputs
from ledger.results import ValiditiesSwept
from ledger.writer.session import Session


def schedule(uow: Session, ctx: Context, kind: DueKind, subject_id: UUID, due: datetime, sku: str,
             value: Decimal, currency: str) -> None:
    """Enter `subject_id` in the book of its due day (opening the book, and the cursor, if need be)."""
    day = utc_day(due)
    book = uow.find(ValidityDay, validity_day_id(day))
    if book is None:
        book = ValidityDay.open(ctx, day)
        uow.add(book)
    if uow.find(ValidityCursor, VALIDITY_CURSOR_ID) is None:
        uow.add(ValidityCursor.start(ctx, utc_day(ctx.now)))
    book.schedule(ctx, kind, subject_id, due, sku, value, currency)


def expire_validities(cmd: ExpireValidities, uow: Session) -> ValiditiesSwept:
    limit = inputs.count(cmd.limit, "limit", minimum=1)
    assert limit is not None
    now = cmd.ctx.now
    cursor = uow.find(ValidityCursor, VALIDITY_CURSOR_ID)
    if cursor is None:  # nothing was ever scheduled
        return ValiditiesSwept(0, 0, False, 0)
    today = utc_day(now)
    day, ended, handled, more = cursor.first_day, 0, 0, False
    while day <= today:
        book = uow.find(ValidityDay, validity_day_id(day))
        if book is not None:
            due = book.due(now, limit - handled)
            for entry in due:
                ended += _end(uow, cmd.ctx, entry)
            book.sweep(cmd.ctx, len(due))
            handled += len(due)
            if handled >= limit:
                more = bool(book.due(now, 1)) or day < today
                break
            if not book.finished(now):
                break  # today's book: the rest is not due yet
        elif day == today:
            break
        day += timedelta(days=1)
    cursor.advance(cmd.ctx, day)
    return ValiditiesSwept(ended, handled, more, 0)


def _end(uow: Session, ctx: Context, entry: Due) -> int:
    kind, subject = DueKind(entry["kind"]), entry["subject_id"]
    if kind is DueKind.KEY:
        key = uow.load(Key, subject, UnknownCode(f"no key {subject}"))
        return int(key.expire(ctx, entry["due"], entry["value"], entry["currency"]))
    if kind is DueKind.ACCESS:
        return int(uow.load(Order, subject, UnknownOrder(f"no order {subject}")).end_access(ctx))
    grant = uow.find(Grant, subject)
    return int(grant is not None and grant.end(ctx))
