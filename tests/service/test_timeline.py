"""Timelines support reads: a recharge's order and its customer show every attempt of its
fulfilment (supplier, answer, reason), and never the recipient account in clear nor its hash."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest

from ledger.service.ledger import Ledger
from projections.engine.read_side import ReadSide
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from projections.models import timeline
from tests.conftest import FakeClock
from tests.helpers import buy, stocked_product
from tests.recharge import recharge_history


@pytest.fixture
def history(ledger: Ledger, clock: FakeClock) -> Iterator[tuple[ReadSide, dict[str, UUID]]]:
    orders = recharge_history(ledger, clock)
    store = ViewStore(ledger.settings)
    Runner(ledger.app, store, build_projections(store, ["sales"])).catch_up()  # the facts: a customer's orders
    yield ReadSide(ledger.app, store), orders
    store.close()


def test_an_orders_timeline_shows_its_fulfilment_attempt_by_attempt(
        ledger: Ledger, history: tuple[ReadSide, dict[str, UUID]]) -> None:
    reads, orders = history
    found = timeline.order(reads, orders["refulfilled"])
    assert found is not None
    trace = [(e.name, e.data.get("supplier"), e.data.get("reason")) for e in found.events
             if e.aggregate == "Fulfilment" or e.name.startswith("Order.Fulfil")]
    assert trace == [
        ("Order.FulfilmentStarted", None, None),
        ("Fulfilment.Requested", None, None),
        ("Fulfilment.AttemptStarted", "cheap", None),
        ("Fulfilment.AttemptSucceeded", None, None),
        ("Order.Fulfilled", "cheap", None),
        ("Fulfilment.AttemptReversed", None, "operator_reversal"),
        ("Order.FulfilmentReversed", "cheap", None),
        ("Fulfilment.AttemptStarted", "dear", None),
        ("Fulfilment.AttemptSucceeded", None, None),
        ("Order.Fulfilled", "dear", None),
    ]
    positions = [e.position for e in found.events]
    assert positions == sorted(positions)
    gave_up = timeline.order(reads, orders["gave_up"])
    assert gave_up is not None
    assert [(e.name, e.data.get("reason")) for e in gave_up.events if e.name in (
        "Fulfilment.AttemptFailed", "Fulfilment.GaveUp")] == [
        ("Fulfilment.AttemptFailed", "out_of_stock"), ("Fulfilment.AttemptFailed", "out_of_stock"),
        ("Fulfilment.GaveUp", "every_route_failed"),
    ]


def test_the_recipient_account_is_shown_masked_only(ledger: Ledger, history: tuple[ReadSide, dict[str, UUID]]) -> None:
    reads, orders = history
    found = timeline.order(reads, orders["refulfilled"])
    assert found is not None
    assert found.summary["account"] == "139****0005"
    requested = next(e for e in found.events if e.name == "Fulfilment.Requested")
    assert requested.data["account_masked"] == "139****0005"
    shown = repr(found)
    assert "13900000005" not in shown and ledger.vault.account_fingerprint("13900000005") not in shown
    assert "account_sealed" not in shown and "account_hmac" not in shown


def test_a_customers_timeline_includes_their_fulfilments(history: tuple[ReadSide, dict[str, UUID]]) -> None:
    reads, orders = history
    found = timeline.customer(reads, "carol")
    assert found is not None
    names = [e.name for e in found.events]
    assert {"Fulfilment.Requested", "Fulfilment.AttemptSucceeded", "Fulfilment.AttemptReversed"} <= set(names)
    assert {e.stream_id for e in found.events} >= {orders["reversed"]}


def test_an_order_of_keys_has_no_fulfilment(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2)
    placed, _ = buy(ledger)
    store = ViewStore(ledger.settings)
    found = timeline.order(ReadSide(ledger.app, store), placed.order_id)
    assert found is not None and "account" not in found.summary
    assert {e.aggregate for e in found.events} == {"Order", "Payment", "Key"}
    store.close()
