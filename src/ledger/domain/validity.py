"""When things stop being valid: a book per UTC day of what becomes due that day, and a cursor.

A delivered card key whose product has `validity_days`, access granted until a date, and a
platform grant's term each get an entry in the book of the UTC day they end, written in the same
transaction as the delivery, grant or extension. The sweeper (`ExpireValidities`) reads the
cursor (the first day not yet swept), then only the books from that day to today, and in each
only the entries not yet swept: its cost follows what is due, never the history.

A book keeps its entries in order of when they are due (ties in the order they came). An entry
is scheduled while it is not yet due, and the sweep takes only due entries, so a new entry never
lands before one already swept: `swept` counts the entries handled, from the front.
"""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TypedDict
from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.ids import VALIDITY_CURSOR_ID, validity_day_id


class DueKind(StrEnum):
    KEY = "key"  # a delivered card key: Key.Expired unless redeemed, revoked or voided
    ACCESS = "access"  # a digital_access order: Order.AccessEnded
    GRANT = "grant"  # a platform grant's term: Grant.Ended unless renewed


class Due(TypedDict):
    kind: str  # DueKind
    subject_id: UUID  # the key, order or grant
    due: datetime
    sku: str
    value: Decimal  # what the buyer paid for it (a key: its order's unit price)
    currency: str


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def day_end(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


class ValidityDay(LedgerAggregate):
    """What becomes due on one UTC day, and how much of it the sweeper has handled."""

    class Opened(LedgerAggregate.Created):
        """The first entry of a day's book is to be written (`day`: ISO, UTC)."""

        day: str

    class Scheduled(LedgerAggregate.Event):
        """Something stops being valid at `due` (on this book's day) unless redeemed or renewed first."""

        kind: str
        subject_id: UUID
        due: datetime
        sku: str
        value: Decimal
        currency: str

        def apply(self, book: ValidityDay) -> None:
            entry: Due = {"kind": self.kind, "subject_id": self.subject_id, "due": self.due, "sku": self.sku,
                          "value": self.value, "currency": self.currency}
            if not book.entries or book.entries[-1]["due"] <= self.due:
                book.entries.append(entry)  # the usual case: delivered later, due later
            else:
                at = bisect.bisect_right(book.entries, self.due, lo=book.swept, key=lambda e: e["due"])
                book.entries.insert(at, entry)

    class Swept(LedgerAggregate.Event):
        """The sweeper handled the next `count` due entries (each ended, or found redeemed or renewed)."""

        count: int

        def apply(self, book: ValidityDay) -> None:
            book.swept += self.count

    def __init__(self, day: str) -> None:
        self.day = day
        self.entries: list[Due] = []
        self.swept = 0

    @classmethod
    def open(cls, ctx: Context, day: date) -> ValidityDay:
        return cls._start(cls.Opened, validity_day_id(day), ctx, day=day.isoformat())

    def schedule(self, ctx: Context, kind: DueKind, subject_id: UUID, due: datetime, sku: str, value: Decimal,
                 currency: str) -> None:
        if utc_day(due).isoformat() != self.day:
            raise ValueError(f"{due} is not on {self.day}")
        if due <= ctx.now:
            raise ValueError("only what is not yet due is scheduled")
        self._emit(self.Scheduled, ctx, kind=kind.value, subject_id=subject_id, due=due, sku=sku, value=value,
                   currency=currency)

    def due(self, now: datetime, limit: int) -> list[Due]:
        """The next entries due by `now`, at most `limit`."""
        found = []
        for entry in self.entries[self.swept:self.swept + limit]:
            if entry["due"] > now:
                break
            found.append(entry)
        return found

    def sweep(self, ctx: Context, count: int) -> None:
        if count:
            self._emit(self.Swept, ctx, count=count)

    def finished(self, now: datetime) -> bool:
        """The day is over and every entry of it was handled."""
        return now >= day_end(date.fromisoformat(self.day)) and self.swept == len(self.entries)


class ValidityCursor(LedgerAggregate):
    """The first UTC day whose book is not yet fully swept: the sweeper starts there."""

    class Started(LedgerAggregate.Created):
        """The first validity was scheduled: sweeping starts on its day (ISO, UTC)."""

        day: str

    class Advanced(LedgerAggregate.Event):
        """Every day before `day` (ISO, UTC) is swept."""

        day: str

        def apply(self, cursor: ValidityCursor) -> None:
            cursor.day = self.day

    def __init__(self, day: str) -> None:
        self.day = day

    @property
    def first_day(self) -> date:
        return date.fromisoformat(self.day)

    @classmethod
    def start(cls, ctx: Context, day: date) -> ValidityCursor:
        return cls._start(cls.Started, VALIDITY_CURSOR_ID, ctx, day=day.isoformat())

    def advance(self, ctx: Context, day: date) -> None:
        if day > self.first_day:
            self._emit(self.Advanced, ctx, day=day.isoformat())
