"""Batches: many commands, one transaction, all or nothing."""

import contextlib

import pytest

from ledger import commands as c
from ledger.domain.errors import OutOfStock
from ledger.service.ledger import Ledger
from ledger.writer.outcomes import Idempotency


def setup(ledger: Ledger, keys: int) -> None:
    admin = ledger.context("admin")
    ledger.define_product(admin, sku="EBOOK", name="E-book", face_value="3", currency="USD", price="2.50")
    ledger.import_keys(admin, sku="EBOOK", supplier="s", unit_cost="1.00", codes=[(i, f"E-{i}") for i in range(keys)])


def test_a_batch_commits_every_command_together(ledger: Ledger) -> None:
    setup(ledger, 10)
    before = ledger.app.recorder.max_notification_id()
    with ledger.batch():
        for n in range(5):
            placed = ledger.place_order(ledger.context(), customer_id=f"c{n}", sku="EBOOK", quantity=1)
            assert placed.position == 0  # not written yet
            ledger.capture_payment(ledger.context(), placed.order_id, payment_reference=f"p{n}", amount="2.50",
                                   provider="psp")
            assert ledger.app.recorder.max_notification_id() == before
    assert ledger.reads.stock("EBOOK").delivered == 5
    assert len({k for o in ledger.reads.history("EBOOK") if o.event == "Delivered" for k in o.data["key_ids"]}) == 5


def test_a_failed_command_discards_the_whole_batch(ledger: Ledger) -> None:
    setup(ledger, 2)
    before = ledger.app.recorder.max_notification_id()
    with pytest.raises(RuntimeError, match="batch discarded"), ledger.batch():
        ledger.place_order(ledger.context(), customer_id="a", sku="EBOOK", quantity=2)
        with contextlib.suppress(OutOfStock):  # caught by the caller: the batch is still void
            ledger.place_order(ledger.context(), customer_id="b", sku="EBOOK", quantity=1)
    # only b's refusal record (written on its own) reached the store; a's reservation did not
    assert ledger.app.recorder.max_notification_id() == before + 2
    assert len(ledger.reads.stock("EBOOK").available) == 2


def test_an_idempotency_key_is_refused_inside_a_batch(ledger: Ledger) -> None:
    """Only the writer keeps answers under keys: a batch would drop the key, so it says so."""
    setup(ledger, 1)
    order = c.PlaceOrder(ctx=ledger.context(), customer_id="k", sku="EBOOK", quantity=1)
    with pytest.raises(RuntimeError, match="idempotency key"), ledger.batch():
        ledger.execute(order, Idempotency("storefront:t", "k-1", "order"))
    assert len(ledger.reads.stock("EBOOK").available) == 1
