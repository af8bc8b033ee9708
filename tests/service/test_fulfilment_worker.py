"""The fulfilment worker's order of work, against scripted suppliers (a `Connector` of our own,
as another connector would be written): the outstanding attempt is resolved before anything
else, a request never received is sent again with the same id, a failure moves on, a lost
answer is asked about again, and a worker that dies is replaced by one that finishes the job.
The real HTTP protocol, against the simulator as a process, is tests/e2e/test_recharge.py."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from ledger.domain.fulfilment import Fulfilment
from ledger.domain.ids import fulfilment_id
from ledger.domain.suppliers import Supplier
from ledger.fulfilment.breaker import Breakers
from ledger.fulfilment.connector import Answer, Connector, LostAnswer, Request, parse_answer
from ledger.fulfilment.worker import FulfilmentWorker
from ledger.service.ledger import Ledger
from ledger.writer.writer import Writer
from tests.service.test_fulfilment import paid_recharge, recharge_product

Script = Callable[[Request], Answer]


class ScriptedSupplier:
    """A supplier that keeps its own book, as a real one does: a repeated id is the same request."""

    def __init__(self, name: str, decide: Script) -> None:
        self.name = name
        self.decide = decide
        self.book: dict[str, Answer] = {}
        self.sent: list[str] = []
        self.lose_next = 0  # answers to lose (the request is still processed)
        self.drop_next = 0  # requests never received

    def submit(self, request: Request) -> Answer:
        self.sent.append(request.request_id)
        if self.drop_next:
            self.drop_next -= 1
            raise LostAnswer("ConnectError")
        answer = self.book.setdefault(request.request_id, self.decide(request))
        if self.lose_next:
            self.lose_next -= 1
            raise LostAnswer("ReadTimeout")
        return answer

    def status(self, request_id: str) -> Answer | None:
        return self.book.get(request_id)

    def close(self) -> None:
        pass


def succeed(request: Request) -> Answer:
    return Answer(request.request_id, "succeeded", "ref-" + request.request_id[-1], charged=Decimal("9.50"))


def fail(request: Request) -> Answer:
    return Answer(request.request_id, "failed", reason="supplier_error")


def worker_for(ledger: Ledger, suppliers: dict[str, ScriptedSupplier]) -> FulfilmentWorker:
    def connector(supplier: Supplier, secret: str) -> Connector:
        assert secret == "s3cret-s3cret-s3cret"  # unsealed for the connector, never stored in clear
        return suppliers[supplier.name]

    return FulfilmentWorker(ledger, ledger.settings, connector=connector, threads=4)


def charged_accounts(suppliers: dict[str, ScriptedSupplier]) -> dict[str, int]:
    successes: dict[str, int] = defaultdict(int)
    for supplier in suppliers.values():
        for request_id, answer in supplier.book.items():
            if answer.status == "succeeded":
                successes[request_id.rsplit("-", 1)[0]] += 1
    return successes


def test_a_paid_recharge_is_delivered_by_the_cheapest_supplier(ledger: Ledger) -> None:
    recharge_product(ledger)
    suppliers = {"cheap": ScriptedSupplier("cheap", succeed), "dear": ScriptedSupplier("dear", succeed)}
    placed = paid_recharge(ledger)
    assert worker_for(ledger, suppliers).drive(fulfilment_id(placed.order_id)) is None
    order = ledger.reads.order(placed.order_id)
    assert (str(order.status), order.cost) == ("delivered", Decimal("9.50"))
    assert suppliers["cheap"].sent == [f"{fulfilment_id(placed.order_id)}-1"] and suppliers["dear"].sent == []


def test_a_failure_goes_on_to_the_next_route_at_once(ledger: Ledger) -> None:
    recharge_product(ledger)
    suppliers = {"cheap": ScriptedSupplier("cheap", fail), "dear": ScriptedSupplier("dear", succeed)}
    placed = paid_recharge(ledger)
    assert worker_for(ledger, suppliers).drive(fulfilment_id(placed.order_id)) is None
    assert str(ledger.reads.order(placed.order_id).status) == "delivered"
    assert [len(s.sent) for s in suppliers.values()] == [1, 1]


def test_a_lost_answer_is_asked_about_and_never_sent_elsewhere(ledger: Ledger) -> None:
    recharge_product(ledger)
    suppliers = {"cheap": ScriptedSupplier("cheap", succeed), "dear": ScriptedSupplier("dear", succeed)}
    suppliers["cheap"].lose_next = 1
    placed = paid_recharge(ledger)
    worker = worker_for(ledger, suppliers)
    assert worker.drive(fulfilment_id(placed.order_id)) == ledger.settings.fulfilment_poll_s  # asked again later
    assert str(ledger.reads.order(placed.order_id).status) == "fulfilling"
    assert worker.drive(fulfilment_id(placed.order_id)) is None  # the status look-up finds the success
    assert str(ledger.reads.order(placed.order_id).status) == "delivered"
    assert suppliers["cheap"].sent == [f"{fulfilment_id(placed.order_id)}-1"]  # sent once, asked once
    assert suppliers["dear"].sent == []
    assert dict(charged_accounts(suppliers)) == {str(fulfilment_id(placed.order_id)): 1}


def test_a_request_never_received_is_sent_again_with_the_same_id(ledger: Ledger) -> None:
    recharge_product(ledger)
    suppliers = {"cheap": ScriptedSupplier("cheap", succeed), "dear": ScriptedSupplier("dear", succeed)}
    suppliers["cheap"].drop_next = 1
    placed = paid_recharge(ledger)
    worker = worker_for(ledger, suppliers)
    worker.drive(fulfilment_id(placed.order_id))
    assert worker.drive(fulfilment_id(placed.order_id)) is None
    attempt = f"{fulfilment_id(placed.order_id)}-1"
    assert suppliers["cheap"].sent == [attempt, attempt]
    fulfilment = ledger.reads.find(Fulfilment, fulfilment_id(placed.order_id))
    assert fulfilment is not None and list(fulfilment.attempts) == [attempt]
    assert [e.event for e in ledger.reads.stream(fulfilment.id)] == [
        "Requested", "AttemptStarted", "AttemptUnknown", "AttemptResent", "AttemptSucceeded"]


def test_a_worker_that_died_after_recording_an_attempt_is_followed_by_one_that_resolves_it(ledger: Ledger) -> None:
    """The attempt is in the store, the request may have reached the supplier: the next worker asks."""
    recharge_product(ledger)
    suppliers = {"cheap": ScriptedSupplier("cheap", succeed), "dear": ScriptedSupplier("dear", succeed)}
    placed = paid_recharge(ledger)

    class Died(Exception):
        pass

    def dies_after_sending(request: Request) -> Answer:
        suppliers["cheap"].book[request.request_id] = succeed(request)  # it reached the supplier...
        raise Died  # ...and the worker died before hearing back

    suppliers["cheap"].decide = dies_after_sending
    with pytest.raises(Died):
        worker_for(ledger, suppliers).drive(fulfilment_id(placed.order_id))
    suppliers["cheap"].decide = succeed
    assert worker_for(ledger, suppliers).drive(fulfilment_id(placed.order_id)) is None
    assert str(ledger.reads.order(placed.order_id).status) == "delivered"
    assert len(suppliers["cheap"].sent) == 1  # resolved by its status, not sent again


def test_the_worker_drives_every_open_fulfilment_with_bounded_requests_per_supplier(ledger: Ledger) -> None:
    recharge_product(ledger, suppliers={"only": "9.60"})
    in_flight, peak, lock = 0, 0, threading.Lock()

    def slow(request: Request) -> Answer:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        threading.Event().wait(0.02)
        with lock:
            in_flight -= 1
        return succeed(request)

    from ledger import commands as c
    ledger.execute(c.SetSupplier(ctx=ledger.context("admin"), name="only", base_url="http://127.0.0.1:9000",
                                 secret="s3cret-s3cret-s3cret", currency="USD", concurrency=2)).get()
    suppliers = {"only": ScriptedSupplier("only", slow)}
    orders = [paid_recharge(ledger, account=f"1381234{n:04d}") for n in range(12)]
    worker = worker_for(ledger, suppliers)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        for _ in range(500):
            if all(str(ledger.reads.order(o.order_id).status) == "delivered" for o in orders):
                break
            threading.Event().wait(0.02)
    finally:
        stop.set()
        thread.join()
        worker.close()
    assert [str(ledger.reads.order(o.order_id).status) for o in orders] == ["delivered"] * 12
    assert peak <= 2


def test_a_breaker_opens_after_consecutive_failures_and_lets_a_probe_through_later() -> None:
    now = [0.0]
    breakers = Breakers(failures=3, open_s=10, clock=lambda: now[0])
    for _ in range(3):
        breakers.failed("flaky")
    assert breakers.unhealthy() == ("flaky",)
    now[0] = 11
    assert breakers.unhealthy() == ()  # one probe may go
    assert breakers.unhealthy() == ("flaky",)  # and the next waits again
    breakers.succeeded("flaky")
    assert breakers.unhealthy() == ()


@pytest.mark.parametrize("body", [b"[]", b"{}", b'{"request_id": "x", "status": "done"}',
                                  b'{"request_id": "other", "status": "succeeded"}',
                                  b'{"request_id": "x", "status": "succeeded", "charged": 9.5}',
                                  b'{"request_id": "x", "status": "succeeded", "charged": "-1"}', b"\xff",
                                  b'{"request_id": "x", "status": "failed", "retryable": "no"}', b" " * 70_000])
def test_an_answer_that_is_not_the_protocols_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_answer(body, "x")


def test_a_failure_names_whether_another_supplier_may_succeed() -> None:
    answer: Any = parse_answer(b'{"request_id": "x", "status": "failed", "reason": "account_invalid"}', "x")
    assert answer.retryable is False
    answer = parse_answer(b'{"request_id": "x", "status": "failed", "reason": "out_of_stock"}', "x")
    assert answer.retryable is True


def test_a_success_reversed_before_the_worker_heard_of_it_is_recorded_as_both(ledger: Ledger) -> None:
    recharge_product(ledger)

    def reversed_already(request: Request) -> Answer:
        return Answer(request.request_id, "reversed", "ref-1", reason="supplier_reversed", charged=Decimal("0.00"))

    suppliers = {"cheap": ScriptedSupplier("cheap", reversed_already), "dear": ScriptedSupplier("dear", succeed)}
    placed = paid_recharge(ledger)
    worker_for(ledger, suppliers).drive(fulfilment_id(placed.order_id))
    order = ledger.reads.order(placed.order_id)
    assert (str(order.status), order.amount_refunded) == ("refunded", Decimal("10.50"))  # the product refunds


def _delivered(ledger: Ledger, placed: Any, within_s: float = 10.0) -> bool:
    for _ in range(int(within_s / 0.01)):
        if str(ledger.reads.order(placed.order_id).status) == "delivered":
            return True
        threading.Event().wait(0.01)
    return False


def test_a_worker_beside_the_writer_has_the_payment_start_the_attempt_and_sends_it_at_once(ledger: Ledger) -> None:
    """One commit fewer between payment and delivery: the payment's transaction holds the first
    attempt, and the request leaves when it commits, with no status asked first."""
    recharge_product(ledger)
    suppliers = {"cheap": ScriptedSupplier("cheap", succeed), "dear": ScriptedSupplier("dear", succeed)}
    asked: list[str] = []
    suppliers["cheap"].status = lambda request_id: asked.append(request_id)  # type: ignore[method-assign,func-returns-value]
    commits: list[list[str]] = []
    assert isinstance(ledger.writer, Writer)
    ledger.writer.committed.append(lambda events: commits.append([type(e).__qualname__ for e in events]))
    worker = worker_for(ledger, suppliers)
    worker.follow(ledger.writer)
    try:
        placed = paid_recharge(ledger)
        assert _delivered(ledger, placed)
    finally:
        worker.close()
    fid = fulfilment_id(placed.order_id)
    assert suppliers["cheap"].sent == [f"{fid}-1"] and asked == [] and suppliers["dear"].sent == []
    payment = next(names for names in commits if "Fulfilment.Requested" in names)
    assert "Fulfilment.AttemptStarted" in payment and "Supplier.FloatHeld" in payment
    assert [e.event for e in ledger.reads.stream(fid)] == ["Requested", "AttemptStarted", "AttemptSucceeded"]
    after = paid_recharge(ledger, account="13812340000")  # the worker closed: the payment leaves the attempt to it
    assert [e.event for e in ledger.reads.stream(fulfilment_id(after.order_id))] == ["Requested"]


def test_an_attempt_the_payment_started_whose_worker_died_before_sending_is_asked_about_then_sent_once(
        ledger: Ledger) -> None:
    recharge_product(ledger)
    suppliers = {"cheap": ScriptedSupplier("cheap", succeed), "dear": ScriptedSupplier("dear", succeed)}
    dying = {"cheap": ScriptedSupplier("cheap", succeed), "dear": ScriptedSupplier("dear", succeed)}
    died = threading.Event()

    def dies_before_sending(request: Request) -> Answer:
        died.set()
        raise SystemExit  # the process ends between the payment's commit and the request

    dying["cheap"].submit = dies_before_sending  # type: ignore[method-assign]
    first = worker_for(ledger, dying)
    first.follow(ledger.writer)
    try:
        placed = paid_recharge(ledger)
        assert died.wait(10)
    finally:
        first.close()
    fid = fulfilment_id(placed.order_id)
    assert [e.event for e in ledger.reads.stream(fid)] == ["Requested", "AttemptStarted"]
    assert worker_for(ledger, suppliers).drive(fid) is None  # 404 from the status look-up: the same id is sent
    assert suppliers["cheap"].sent == [f"{fid}-1"]
    assert [e.event for e in ledger.reads.stream(fid)] == ["Requested", "AttemptStarted", "AttemptResent",
                                                            "AttemptSucceeded"]
    assert str(ledger.reads.order(placed.order_id).status) == "delivered"


def cheap_failed_enough_to_open_its_breaker(ledger: Ledger) -> tuple[dict[str, ScriptedSupplier], FulfilmentWorker]:
    """The cheap supplier fails as many recharges in a row as open its breaker (the dear one delivers them)."""
    recharge_product(ledger)
    suppliers = {"cheap": ScriptedSupplier("cheap", fail), "dear": ScriptedSupplier("dear", succeed)}
    first = worker_for(ledger, suppliers)
    for n in range(ledger.settings.fulfilment_breaker_failures):
        first.drive(fulfilment_id(paid_recharge(ledger, account=f"1381234{n:04d}").order_id))
    return suppliers, first


def test_a_restarted_worker_keeps_a_failing_suppliers_breaker_open_from_the_log(ledger: Ledger) -> None:
    suppliers, first = cheap_failed_enough_to_open_its_breaker(ledger)
    assert first.breakers.is_open("cheap")
    first.close()
    restarted = worker_for(ledger, suppliers)  # a new process: nothing in memory but the log
    assert restarted.breakers.is_open("cheap") and not restarted.breakers.is_open("dear")
    placed = paid_recharge(ledger, account="13899990000")
    assert restarted.drive(fulfilment_id(placed.order_id)) is None
    assert suppliers["cheap"].sent[-1] != f"{fulfilment_id(placed.order_id)}-1"  # not sent to the open breaker
    assert suppliers["dear"].sent[-1] == f"{fulfilment_id(placed.order_id)}-1"


def test_a_success_after_the_failures_leaves_a_restarted_workers_breaker_closed(ledger: Ledger) -> None:
    suppliers, first = cheap_failed_enough_to_open_its_breaker(ledger)
    suppliers["cheap"].decide = succeed
    first.breakers.succeeded("cheap")  # a probe went through
    first.drive(fulfilment_id(paid_recharge(ledger, account="13899990000").order_id))
    assert suppliers["cheap"].book[suppliers["cheap"].sent[-1]].status == "succeeded"
    assert not worker_for(ledger, suppliers).breakers.is_open("cheap")
