"""The read side's seam: handlers registered by event class (a wrong one fails at class
definition), lag and head as the runner sees them, and one paging of the log."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.domain.base import LedgerAggregate
from ledger.domain.orders import Order
from ledger.domain.stock import Stock
from ledger.service.ledger import Ledger
from ledger.storage import event_log
from projections.engine.base import Projection, Table
from projections.engine.events import UnknownEvent, handles
from projections.engine.read_side import ReadSide, lag
from projections.engine.registry import build_projections
from projections.engine.replay import Report
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from tests.conftest import FakeClock
from tests.helpers import buy, head, stocked_product

# ---- registering a handler for an unknown event fails ----


def test_a_handler_for_an_event_no_aggregate_declares_fails_at_class_definition() -> None:
    class Bogus(LedgerAggregate.Event):  # an event class, but no ledger aggregate declares it
        pass

    with pytest.raises(UnknownEvent, match="not an event any ledger aggregate declares"):

        class Broken(Projection):
            name = "broken"
            tables = (Table("rows", ("id",), (("id", "TEXT"),)),)

            @handles(Bogus)
            def on_bogus(self, e: Bogus, position: int) -> None:
                pass


@pytest.mark.parametrize("thing", [LedgerAggregate.Event, Order.Event, str, "Order.Placed", None])
def test_a_handler_for_something_that_is_not_a_domain_event_fails(thing: Any) -> None:
    with pytest.raises(UnknownEvent):

        class Broken(Report):
            @handles(thing)
            def on_thing(self, e: Any) -> None:
                pass


def test_a_misspelt_event_cannot_even_be_named() -> None:
    with pytest.raises(AttributeError):

        class Broken(Report):
            @handles(Order.Placd)  # type: ignore[attr-defined]
            def placed(self, e: Any) -> None:
                pass


def test_a_handler_named_in_the_old_way_but_not_registered_fails() -> None:
    """`on_Order_Placd` used to be silently ignored; an unregistered `on_X_Y` is refused now."""
    with pytest.raises(UnknownEvent, match="on_Order_Placd is not registered"):

        class Broken(Report):
            def on_Order_Placd(self, e: Any) -> None:
                pass


def test_two_handlers_for_one_event_fail() -> None:
    with pytest.raises(UnknownEvent, match="twice"):

        class Broken(Report):
            @handles(Order.Placed)
            def first(self, e: Order.Placed) -> None:
                pass

            @handles(Order.Placed)
            def second(self, e: Order.Placed) -> None:
                pass


def test_registered_handlers_are_dispatched_by_topic_and_keep_topics(ledger: Ledger) -> None:
    class Counting(Report):
        def __init__(self) -> None:
            self.placed = 0
            self.reserved = 0

        @handles(Order.Placed)
        def count_placed(self, e: Order.Placed) -> None:
            self.placed += 1

        @handles(Stock.Reserved)
        def count_reserved(self, e: Stock.Reserved) -> None:
            self.reserved += len(e.key_ids)

        def rows(self) -> list[dict[str, Any]]:
            return []

    assert Counting.handled_topics() == {"ledger.domain.orders:Order.Placed", "ledger.domain.stock:Stock.Reserved"}
    report = Counting()
    stocked_product(ledger, keys=3)
    buy(ledger, quantity=2)
    report.handlers()["ledger.domain.orders:Order.Placed"](None)
    assert report.placed == 1
    store = ViewStore(ledger.settings)
    try:
        for projection in build_projections(store):
            assert projection.topics == frozenset(projection.handlers) == type(projection).handled_topics()
            assert all(callable(h) for h in projection.handlers.values())
    finally:
        store.close()


# ---- lag and head ----


def test_the_seams_lag_and_head_match_the_runner(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=5)
    buy(ledger, "alice")
    store = ViewStore(ledger.settings)
    reads = ReadSide(ledger.app, store)
    try:
        runner = Runner(ledger.app, store, build_projections(store), batch_size=3)
        assert reads.head() == runner.head() == head(ledger) > 0
        behind = reads.lag()
        assert (behind.head, behind.position, behind.events) == (runner.head(), runner.position, head(ledger))

        runner.run_once()  # one batch of 3
        assert reads.lag().position == runner.position == 3
        assert reads.lag().events == runner.head() - runner.position

        runner.catch_up()
        assert reads.lag().events == 0 and reads.lag().position == runner.position == runner.head()
        buy(ledger, "bob")  # new events the runner has not seen
        clock.advance(minutes=5)
        behind = reads.lag()
        assert behind.head == runner.head() == head(ledger)
        assert behind.events == runner.head() - runner.position > 0
        assert behind.seconds(ledger.app, clock()) == 300.0  # the first unseen event waited five minutes
        status = {s.name: s for s in reads.status()}
        assert {s.lag_events for s in status.values()} == {behind.events}
        assert lag(ledger.app, store, [p.tracking_name for p in runner.projections]) == behind
        runner.close()
    finally:
        store.close()


# ---- paging the log ----


def test_one_paging_returns_the_whole_log_in_order_across_page_boundaries(ledger: Ledger) -> None:
    stocked_product(ledger, keys=6)
    for customer in ("alice", "bob", "carol"):
        buy(ledger, customer)
    everything = ledger.app.recorder.select_notifications(1, 1_000_000)
    ids = [n.id for n in everything]
    assert len(ids) > 20 and ids == sorted(ids)

    for size in (1, 4, 7, len(ids), len(ids) + 5):
        pages = list(event_log.pages(ledger.app, size=size))
        assert all(0 < len(p) <= size for p in pages)
        assert [n.id for p in pages for n in p] == ids, size
    assert [n.id for n in event_log.notifications(ledger.app, size=3)] == ids
    # From a position, to a stop, and filtered by topic: still in order, nothing missed or repeated.
    assert [n.id for n in event_log.notifications(ledger.app, ids[4], stop=ids[-3], size=4)] == ids[5:-2]
    placed = "ledger.domain.orders:Order.Placed"
    assert [n.id for n in event_log.notifications(ledger.app, size=1, topics=[placed])] == [
        n.id for n in everything if n.topic == placed
    ]
    assert [type(e).__qualname__ for e in event_log.events(ledger.app, ids[-2])] == [
        type(ledger.app.mapper.to_domain_event(n)).__qualname__ for n in everything[-1:]
    ]


def test_reading_ahead_pages_the_same_log(ledger: Ledger) -> None:
    from concurrent.futures import ThreadPoolExecutor

    stocked_product(ledger, keys=4)
    buy(ledger, quantity=2)
    ids = [n.id for n in ledger.app.recorder.select_notifications(1, 1_000_000)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert [n.id for p in event_log.pages(ledger.app, size=2, read_ahead=pool) for n in p] == ids
