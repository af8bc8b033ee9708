"""The one writer: concurrent commands of every kind group-commit into few transactions, each
caller gets its own answer, and a command that fails (by a rule, or by a bug) leaves no trace
while the rest of its batch commits."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ledger import commands as c
from ledger.domain.errors import DomainError, InvalidInput, OutOfStock, TooManyUnpaidReservations
from ledger.domain.orders import OrderStatus
from ledger.handlers import HANDLERS
from ledger.results import PaymentResult, Placed
from ledger.service.ledger import Ledger
from ledger.writer.outcomes import Idempotency, IdempotencyKeyReused
from ledger.writer.remote import CommandServer, RemoteWriter
from ledger.writer.writer import Writer
from tests.conftest import LedgerFactory
from tests.helpers import head, place, stocked_product


def _concurrently(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run every job on its own thread, all released at once; each one's result or exception."""
    results: list[Any] = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = jobs[i]()
        except Exception as error:
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_hundred_mixed_commands_group_commit_and_each_caller_gets_its_own_answer(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stocked_product(ledger, "GC-1", keys=28, price="10.00")
    stocked_product(ledger, "GC-2", keys=5, price="4.00")
    stocked_product(ledger, "GC-BUG", keys=3, price="1.00")
    paid_orders = [place(ledger, f"payer-{i}", "GC-1") for i in range(10)]
    before = head(ledger)
    batches_before = len(ledger.writer.batch_sizes)

    # One command kind hits a bug half-way: after it has reserved keys, it raises.
    real = HANDLERS[c.CancelOrder]

    def broken(command: c.CancelOrder, uow: Any) -> Any:
        if command.reason == "bug":
            HANDLERS[c.PlaceOrder](c.PlaceOrder(ctx=command.ctx, customer_id="ghost", sku="GC-BUG", quantity=3), uow)
            raise RuntimeError("a bug in a handler")
        return real(command, uow)

    monkeypatch.setitem(HANDLERS, c.CancelOrder, broken)
    ctx = ledger.context
    jobs: list[Callable[[], Any]] = []
    jobs += [lambda i=i: ledger.place_order(ctx("storefront"), customer_id=f"gc1-{i}", sku="GC-1", quantity=1)
             for i in range(15)]  # 28 keys: 10 held by the payers, 15 here, 3 by the hoarder
    jobs += [lambda i=i: ledger.place_order(ctx("storefront"), customer_id=f"gc2-{i}", sku="GC-2", quantity=1)
             for i in range(100)]  # 5 keys: 95 refusals, each recorded
    jobs += [lambda i=i: ledger.place_order(ctx("storefront"), customer_id="", sku="GC-1", quantity=1)
             for i in range(20)]  # invalid input: nothing written
    jobs += [lambda i=i: ledger.place_order(ctx("storefront"), customer_id="hoarder", sku="GC-1", quantity=1,
                                            client_ip="10.9.9.9") for i in range(5)]  # cap 3 unpaid
    jobs += [lambda o=o: ledger.capture_payment(ctx("psp"), o.order_id, payment_reference=f"gc-pay-{o.order_id}",
                                                amount="10.00", provider="psp") for o in paid_orders]
    jobs += [lambda o=o: ledger.capture_payment(ctx("psp"), o.order_id, payment_reference=f"gc-pay-{o.order_id}",
                                                amount="10.00", provider="psp") for o in paid_orders]  # repeats
    jobs += [lambda: ledger.cancel_order(ctx("admin"), paid_orders[0].order_id, "bug")]
    jobs += [lambda i=i: ledger.redeem(ctx("player"), code=f"NO-SUCH-{i}-XQ7Z", account_id="a") for i in range(39)]
    assert len(jobs) == 200

    results = _concurrently(jobs)

    kinds = Counter(type(r).__name__ for r in results)
    assert kinds["Placed"] == 15 + 5 + 3
    assert kinds["OutOfStock"] == 95
    assert kinds["InvalidInput"] == 20
    assert kinds["TooManyUnpaidReservations"] == 2
    assert kinds["PaymentResult"] == 20
    assert kinds["RuntimeError"] == 1
    assert kinds["UnknownCode"] == 39

    # Every caller got its own answer: distinct orders, the payment replayed with the same keys.
    placed = [r for r in results if isinstance(r, Placed)]
    assert len({p.order_id for p in placed}) == len(placed)
    payments = [r for r in results if isinstance(r, PaymentResult)]
    by_order: dict[Any, list[PaymentResult]] = {}
    for p in payments:
        by_order.setdefault(p.order_id, []).append(p)
    for pair in by_order.values():
        assert len(pair) == 2 and pair[0].key_ids == pair[1].key_ids and pair[0].outcome == "delivered"
        assert sorted(p.replayed for p in pair) == [False, True]
    refusals = [r for r in results if isinstance(r, OutOfStock)]
    assert all(r.order_id is not None and r.details["position"] > before for r in refusals)
    assert all(isinstance(r, DomainError) for r in results if isinstance(r, InvalidInput | TooManyUnpaidReservations))

    # The failing ones changed nothing; the bug's reservation is gone; the others all landed.
    stock = ledger.reads.stock("GC-1")
    assert len(stock.available) == 0 and stock.delivered == 10
    assert len(stock.reservations) == 15 + 3  # the payers' keys are delivered
    assert ledger.reads.customer("ghost") is None
    assert len(ledger.reads.stock("GC-BUG").available) == 3 and not ledger.reads.stock("GC-BUG").reservations
    assert ledger.reads.order(paid_orders[0].order_id).status == OrderStatus.DELIVERED
    assert ledger.reads.stock("GC-2").available == []
    for refusal in refusals:
        assert ledger.reads.order(refusal.order_id).status == OrderStatus.REJECTED

    # ... in far fewer transactions than commands.
    batches = list(ledger.writer.batch_sizes)[batches_before:]
    assert sum(batches) == 200 and len(batches) < 100, batches


def test_a_stored_answer_is_replayed_by_a_writer_that_never_held_it(
    make_ledger: LedgerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The idempotency key travels beside the command, to the writer and over its socket; the
    writer looks for the stored answer once, in the batch's read-ahead: after a restart a retry
    is answered from the store without running its command again."""
    first = make_ledger()
    stocked_product(first, "IDEM-1", keys=1)
    order = c.PlaceOrder(ctx=first.context("storefront"), customer_id="idem", sku="IDEM-1", quantity=1)
    placed = first.execute(order, Idempotency("storefront:t", "k-1", "order"))
    refused = first.execute(replace(order, customer_id="late"), Idempotency("storefront:t", "k-2", "late"))
    assert not placed.replayed and isinstance(refused.error, OutOfStock)
    first.close()

    restarted = make_ledger()
    ran: list[c.PlaceOrder] = []
    real = HANDLERS[c.PlaceOrder]

    def counted(command: c.PlaceOrder, uow: Any) -> Any:
        ran.append(command)
        return real(command, uow)

    monkeypatch.setitem(HANDLERS, c.PlaceOrder, counted)
    address = str(tmp_path / "writer.sock")
    assert isinstance(restarted.writer, Writer)
    server = CommandServer(restarted.writer, address, b"secret")
    remote = RemoteWriter(address, b"secret")
    try:
        again = remote.execute(order, Idempotency("storefront:t", "k-1", "order"))
        refused_again = remote.execute(order, Idempotency("storefront:t", "k-2", "late"))
        other = remote.execute(order, Idempotency("storefront:t", "k-1", "another body"))
    finally:
        remote.close()
        server.close()
    assert again.replayed and again.value == placed.value
    assert refused_again.replayed and isinstance(refused_again.error, OutOfStock)
    assert refused_again.error.details == refused.error.details
    assert isinstance(other.error, IdempotencyKeyReused) and not other.replayed
    assert ran == []
