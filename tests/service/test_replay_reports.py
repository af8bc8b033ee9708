"""The shipped example reports give the hand-computed answer on a small history."""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.service.ledger import Ledger
from projections.engine.replay import load_report, replay, write_csv
from tests.conftest import FakeClock

REPORTS = Path(__file__).resolve().parents[2] / "docs" / "reports"


def buy(ledger: Ledger, customer: str, sku: str, quantity: int, ref: str) -> None:
    placed = ledger.place_order(ledger.context("storefront"), customer_id=customer, sku=sku, quantity=quantity)
    ledger.capture_payment(
        ledger.context("psp"), placed.order_id, payment_reference=ref, amount=placed.amount_due, provider="psp"
    )


@pytest.fixture
def history(ledger: Ledger, clock: FakeClock) -> Ledger:
    """Week 9 of 2026: alice and bob buy; week 10: alice again, carol first time."""
    admin = ledger.context("admin")
    ledger.define_product(admin, sku="MUSIC-1M", name="Music", face_value="5", currency="USD", price="4.00")
    x = [(i, f"X-{i}") for i in range(1, 4)]
    y = [(i, f"Y-{i}") for i in range(1, 5)]
    ledger.import_keys(admin, sku="MUSIC-1M", supplier="xeno", unit_cost="2.00", codes=x)
    batch_y = ledger.import_keys(admin, sku="MUSIC-1M", supplier="yotta", unit_cost="3.00", codes=y)
    buy(ledger, "alice", "MUSIC-1M", 2, "p1")
    buy(ledger, "bob", "MUSIC-1M", 1, "p2")
    clock.advance(days=7)
    buy(ledger, "alice", "MUSIC-1M", 1, "p3")  # Y-1
    buy(ledger, "carol", "MUSIC-1M", 1, "p4")  # Y-2
    ledger.recall_batch(ledger.context("admin"), batch_y.batch_id, "supplier says leaked")  # voids Y-3, Y-4
    return ledger


def test_weekly_cohort_repurchase(history: Ledger) -> None:
    report = load_report(f"{REPORTS / 'cohort_repurchase.py'}:CohortRepurchase")()
    result = replay(history.app, report)
    assert list(report.rows()) == [
        {"cohort_week": "2026-W09", "customers": 2, "repurchased": 1, "rate": Decimal("0.5000")},
        {"cohort_week": "2026-W10", "customers": 1, "repurchased": 0, "rate": Decimal("0.0000")},
    ]
    assert result.events_read == history.app.recorder.max_notification_id()


def test_supplier_cost_versus_sell_through(history: Ledger, tmp_path: Path) -> None:
    report = load_report(f"{REPORTS / 'supplier_sell_through.py'}:SupplierSellThrough")()
    replay(history.app, report)
    out = tmp_path / "suppliers.csv"
    assert write_csv(report.rows(), out) == 2
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {"supplier": "xeno", "received": "3", "received_cost": "6.00", "sold": "3", "sold_cost": "6.00",
         "voided": "0", "sell_through": "1.0000"},
        {"supplier": "yotta", "received": "4", "received_cost": "12.00", "sold": "2", "sold_cost": "6.00",
         "voided": "2", "sell_through": "0.5000"},
    ]


def test_replay_stops_at_a_position_or_a_time(history: Ledger, clock: FakeClock) -> None:
    spec = f"{REPORTS / 'cohort_repurchase.py'}:CohortRepurchase"
    week_one = clock.now - timedelta(days=1)  # after week 9's orders, before week 10's
    by_time = load_report(spec)()
    replay(history.app, by_time, until_time=week_one)
    assert [r["cohort_week"] for r in by_time.rows()] == ["2026-W09"]
    by_position = load_report(spec)()
    result = replay(history.app, by_position, until_position=5)
    assert result.last_position == 5 and list(by_position.rows()) == []


def test_a_bad_report_spec_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="module:Class"):
        load_report("no-colon")
    with pytest.raises(ValueError, match="no report file"):
        load_report(f"{tmp_path / 'missing.py'}:X")
    with pytest.raises(ValueError, match="not a subclass"):
        load_report("decimal:Decimal")
