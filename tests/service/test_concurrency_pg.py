"""Races on real PostgreSQL: many writers, threads and spawned processes, on the same aggregates.

Every caller must see success or a DomainError; never an IntegrityError. Contention counts are
printed (run with -s) so that a rising retry rate shows up before it becomes a failure.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from ledger.domain.errors import CouponExhausted, DomainError
from ledger.domain.ids import stock_id
from ledger.domain.orders import Order
from ledger.domain.stock import Stock
from ledger.domain.supply import Key, KeyStatus
from ledger.service.ledger import Ledger
from tests.concurrency_worker import Result, buy_many, process_main
from tests.conftest import FakeClock, LedgerFactory

pytestmark = pytest.mark.postgres

WORKERS = 16
ATTEMPTS = 500
LAST_KEYS = 100
SOLD_BEFORE = 20
# Distinct customers per attempt, so only the stock decides; the pool fits every worker thread.
RACE_SETTINGS: dict[str, Any] = {"max_unpaid_per_customer": 5, "command_attempts": 40}


def stock_up(ledger: Ledger, sku: str, keys: int, sold: int = 0) -> None:
    admin = ledger.context("admin")
    ledger.define_product(admin, sku=sku, name=sku, face_value="5", currency="USD", price="5.00")
    codes = [(i, f"{sku}-KEY-{i:04d}") for i in range(1, keys + 1)]
    ledger.import_keys(admin, sku=sku, supplier="acme", unit_cost="2.00", codes=codes)
    for n in range(sold):
        placed = ledger.place_order(ledger.context(), customer_id=f"early-{n}", sku=sku, quantity=1)
        ledger.capture_payment(
            ledger.context(), placed.order_id, payment_reference=f"early-{n}", amount=placed.amount_due, provider="p"
        )


def check_race(ledger: Ledger, sku: str, results: list[Result], label: str, seconds: float) -> None:
    print(f"\n[{label}] {len(results)} attempts in {seconds:.1f}s: {dict(Counter(o for _, o, _ in results))}")
    unexpected = [r for r in results if r[1].startswith("UNEXPECTED")]
    assert not unexpected, unexpected[:3]
    assert len(results) == ATTEMPTS and sorted(a for a, _, _ in results) == list(range(ATTEMPTS))
    outcomes = Counter(outcome.removesuffix("+pay-retry") for _, outcome, _ in results)
    assert set(outcomes) <= {"delivered", "OutOfStock", "Contention"}, outcomes
    delivered = [k for _, outcome, keys in results if outcome.startswith("delivered") for k in keys]
    assert outcomes["delivered"] == LAST_KEYS == len(delivered) == len(set(delivered))

    stock = ledger.reads.stock(sku)
    assert stock.available == [] and stock.reservations == {}
    assert stock.delivered == LAST_KEYS + SOLD_BEFORE
    reserved: list[UUID] = []
    for event in ledger.app.events.get(stock_id(sku)):
        if isinstance(event, Stock.Reserved):
            reserved += event.key_ids
    assert len(reserved) == len(set(reserved)) == LAST_KEYS + SOLD_BEFORE, "a key was reserved twice"
    assert set(delivered) <= set(reserved)
    for key_id in delivered:
        events = list(ledger.app.events.get(key_id))
        assert sum(isinstance(e, Key.Delivered) for e in events) == 1


def test_threads_race_for_the_last_keys(make_ledger: LedgerFactory, pg_url: str) -> None:
    ledger = make_ledger(pg_url, postgres_pool_size=WORKERS, **RACE_SETTINGS)
    stock_up(ledger, "RACE-T", LAST_KEYS + SOLD_BEFORE, sold=SOLD_BEFORE)
    start = threading.Barrier(WORKERS)
    began = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(buy_many, ledger, "RACE-T", list(range(w, ATTEMPTS, WORKERS)), start)
                   for w in range(WORKERS)]
        results = [r for f in futures for r in f.result()]
    check_race(ledger, "RACE-T", results, "threads", time.monotonic() - began)


def test_processes_race_for_the_last_keys(make_ledger: LedgerFactory, pg_url: str) -> None:
    ledger = make_ledger(pg_url, **RACE_SETTINGS)
    stock_up(ledger, "RACE-P", LAST_KEYS + SOLD_BEFORE, sold=SOLD_BEFORE)
    spawn = multiprocessing.get_context("spawn")
    opening, start, queue = spawn.Lock(), spawn.Barrier(WORKERS), spawn.Queue()
    settings = {**RACE_SETTINGS, "postgres_pool_size": 1}
    processes = [
        spawn.Process(target=process_main, args=(pg_url, "RACE-P", list(range(w, ATTEMPTS, WORKERS)), settings,
                                                 opening, start, queue), daemon=True)
        for w in range(WORKERS)
    ]
    began = time.monotonic()  # the figure includes spawning and opening 16 ledgers
    for process in processes:
        process.start()
    try:
        results = [r for _ in processes for r in queue.get(timeout=90)]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
    assert [p.exitcode for p in processes] == [0] * WORKERS
    check_race(ledger, "RACE-P", results, "processes", time.monotonic() - began)


def test_one_payment_callback_delivered_fifty_times_at_once(make_ledger: LedgerFactory, pg_url: str) -> None:
    ledger = make_ledger(pg_url, postgres_pool_size=25)
    stock_up(ledger, "CALLBACK", 5)
    placed = ledger.place_order(ledger.context(), customer_id="payer", sku="CALLBACK", quantity=2)
    start = threading.Barrier(50)

    def deliver(_: int) -> Any:
        start.wait()
        try:
            return ledger.capture_payment(
                ledger.context("psp"), placed.order_id, payment_reference="psp-callback-1",
                amount=placed.amount_due, provider="psp",
            )
        except DomainError as error:
            return error

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(deliver, range(50)))
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    assert {tuple(r.key_ids) for r in results} == {tuple(placed.key_ids)}
    assert [r.replayed for r in results].count(False) == 1
    events = list(ledger.app.events.get(placed.order_id))
    assert sum(isinstance(e, Order.KeysDelivered) for e in events) == 1
    assert sum(isinstance(e, Order.PaymentCaptured) for e in events) == 1
    order = ledger.reads.order(placed.order_id)
    assert order.amount_paid == placed.amount_due and order.amount_refunded == 0
    for key_id in placed.key_ids:
        key_events = list(ledger.app.events.get(key_id))
        assert sum(isinstance(e, Key.Delivered) for e in key_events) == 1
    assert ledger.reads.stock("CALLBACK").delivered == 2
    uow_keys = [ledger.reads.order_keys(placed.order_id)]
    assert all(k.status == KeyStatus.DELIVERED for k in uow_keys[0])


def test_fifty_orders_race_for_a_ten_use_coupon(make_ledger: LedgerFactory, pg_url: str, clock: FakeClock) -> None:
    ledger = make_ledger(pg_url, postgres_pool_size=25)
    stock_up(ledger, "COUPONED", 60)
    ledger.create_coupon(
        ledger.context("admin"), code="TEN-ONLY", kind="amount", value="1.00", currency="USD",
        starts_at=clock.now - timedelta(hours=1), ends_at=clock.now + timedelta(hours=1), total_cap=10,
    )
    start = threading.Barrier(50)

    def order(n: int) -> Any:
        start.wait()
        try:
            return ledger.place_order(
                ledger.context("storefront"), customer_id=f"hunter-{n}", sku="COUPONED", quantity=1,
                coupon_code="ten-only",
            )
        except DomainError as error:
            return error

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(order, range(50)))
    print("\n[coupon]", Counter(type(r).__name__ for r in results))
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 10 and all(r.amount_due == 4 for r in won)
    assert all(isinstance(e, CouponExhausted) for e in lost), Counter(type(e).__name__ for e in lost)
    coupon = ledger.reads.coupon("TEN-ONLY")
    assert len(coupon.uses) == 10 and coupon.uses_left == 0
    assert set(coupon.uses) == {str(r.order_id) for r in won}
    assert len(ledger.reads.stock("COUPONED").reservations) == 10
