"""Validity on its own: a key, access and a grant end when due, once, and only when still live;
a day's book keeps its entries in due order and sweeps them from the front."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import uuid4

import pytest

from ledger.domain.errors import KeyExpired
from ledger.domain.fulfilment import Grant
from ledger.domain.supply import KeyStatus
from ledger.domain.validity import DueKind, ValidityCursor, ValidityDay
from tests.unit.domain import CTX, NOW, D, key, later, order, pending

DUE = NOW + timedelta(days=30)


def test_a_delivered_key_expires_at_its_due_time_once_and_then_is_refused() -> None:
    k = key()
    k.deliver(CTX, uuid4())
    pending(k)
    assert not k.expire(later(days=30, seconds=-1), DUE, D("10.00"), "USD")
    assert k.expire(later(days=30), DUE, D("10.00"), "USD")
    assert pending(k) == ["Expired"] and k.status == KeyStatus.EXPIRED
    assert not k.expire(later(days=31), DUE, D("10.00"), "USD")
    with pytest.raises(KeyExpired):
        k.redeem(later(days=31), "alice", None)


@pytest.mark.parametrize("ending", ["redeem", "revoke", "in_stock"])
def test_a_redeemed_revoked_or_undelivered_key_never_expires(ending: str) -> None:
    k = key()
    order_id = uuid4()
    if ending != "in_stock":
        k.deliver(CTX, order_id)
    if ending == "redeem":
        k.redeem(CTX, "alice", None)
    elif ending == "revoke":
        k.revoke(CTX, order_id, "refund", override=False)
    pending(k)
    assert not k.expire(later(days=400), DUE, D("10.00"), "USD")
    assert pending(k) == []


def test_access_ends_at_its_valid_until_unless_refunded() -> None:
    o = order()
    o.hold(CTX, NOW + timedelta(minutes=15))
    o.capture(CTX, "pay-1", o.amount_due, "psp")
    o.grant(CTX, DUE)
    pending(o)
    assert not o.end_access(later(days=29))
    assert o.end_access(later(days=30)) and pending(o) == ["AccessEnded"]
    assert not o.end_access(later(days=31))


def test_a_grant_ends_only_when_its_current_term_has_passed() -> None:
    g = Grant.start(CTX, "VIDEO-1M", "hmac")
    g.extend(CTX, uuid4(), 30)
    g.extend(later(days=10), uuid4(), 30)  # renewed: until day 60
    pending(g)
    assert not g.end(later(days=30))
    assert g.end(later(days=60)) and pending(g) == ["Ended"]
    assert not g.end(later(days=61))
    g.extend(later(days=70), uuid4(), 30)
    assert not g.ended and g.end(later(days=100))


def test_a_days_book_keeps_due_order_and_sweeps_from_the_front() -> None:
    day = DUE.date()
    book = ValidityDay.open(CTX, day)
    first, second, early = uuid4(), uuid4(), uuid4()
    book.schedule(CTX, DueKind.KEY, first, DUE, "GAME-1", D("10.00"), "USD")
    book.schedule(CTX, DueKind.KEY, second, DUE + timedelta(hours=2), "GAME-1", D("10.00"), "USD")
    book.schedule(CTX, DueKind.GRANT, early, DUE - timedelta(hours=1), "VIDEO-1M", D("15.00"), "USD")
    assert [e["subject_id"] for e in book.entries] == [early, first, second]
    assert [e["subject_id"] for e in book.due(DUE, 10)] == [early, first]
    assert [e["subject_id"] for e in book.due(DUE, 1)] == [early]
    book.sweep(later(days=30), 2)
    assert [e["subject_id"] for e in book.due(DUE + timedelta(hours=3), 10)] == [second]
    assert not book.finished(DUE + timedelta(hours=3))
    book.sweep(later(days=30), 1)
    assert book.finished(DUE + timedelta(days=1))
    with pytest.raises(ValueError):
        book.schedule(CTX, DueKind.KEY, uuid4(), DUE + timedelta(days=1), "GAME-1", D("10.00"), "USD")


def test_the_cursor_only_moves_forward() -> None:
    cursor = ValidityCursor.start(CTX, date(2026, 3, 1))
    cursor.advance(CTX, date(2026, 3, 5))
    cursor.advance(CTX, date(2026, 3, 2))
    assert cursor.first_day == date(2026, 3, 5)
