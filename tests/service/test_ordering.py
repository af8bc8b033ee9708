"""Placing orders: no overselling, one order per key, purchase limits, unpaid caps, expiry, cancellation."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from ledger.domain.errors import (
    InvalidInput,
    InvalidOrderState,
    OrderRejected,
    OutOfStock,
    ProductRetired,
    PurchaseLimitReached,
    TooManyUnpaidReservations,
    UnknownOrder,
)
from ledger.domain.orders import Order
from ledger.service.ledger import Ledger
from tests.conftest import FakeClock, LedgerFactory
from tests.helpers import buy, head, pay, place, stocked_product

# ---- stock ----


def test_ordering_more_than_available_is_rejected_and_stock_is_unchanged(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2)
    available = ledger.reads.stock("GAME-1").available
    with pytest.raises(OutOfStock) as caught:
        place(ledger, quantity=3)
    rejection = caught.value
    assert rejection.code == "out-of-stock"
    assert rejection.order_id is not None
    order = ledger.reads.order(rejection.order_id)
    assert order.status == "rejected"
    assert order.reserved == [] and order.amount_due == 0
    stock = ledger.reads.stock("GAME-1")
    assert stock.available == available
    assert stock.reservations == {}
    # The customer holds nothing for a rejected order.
    customer = ledger.reads.customer("alice")
    assert customer is None or (customer.unpaid == 0 and customer.units("GAME-1") == 0)


def test_rejected_order_is_recorded_with_reason_and_evidence(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    with pytest.raises(OutOfStock) as caught:
        place(ledger, quantity=2)
    assert head(ledger) > before
    assert caught.value.details["position"] == head(ledger)
    events = list(ledger.app.events.get(caught.value.order_id))
    assert [type(e).__name__ for e in events] == ["Placed", "Rejected"]
    rejected = events[-1]
    assert isinstance(rejected, Order.Rejected)
    assert rejected.reason == "out-of-stock"
    assert rejected.evidence["available"] == 1
    assert rejected.message


def test_the_last_keys_can_be_ordered_and_then_stock_is_out(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2)
    placed = place(ledger, quantity=2)
    assert len(placed.key_ids) == 2
    assert ledger.reads.stock("GAME-1").available == []
    with pytest.raises(OutOfStock):
        place(ledger, customer="bob")
    assert ledger.reads.order(placed.order_id).status == "reserved"


def test_a_key_is_reserved_for_at_most_one_order(ledger: Ledger) -> None:
    stocked_product(ledger, keys=4)
    first = place(ledger, customer="alice", quantity=2)
    second = place(ledger, customer="bob", quantity=2)
    assert set(first.key_ids).isdisjoint(second.key_ids)
    stock = ledger.reads.stock("GAME-1")
    assert stock.available == []
    assert stock.reserved_keys(first.order_id) == first.key_ids
    assert stock.reserved_keys(second.order_id) == second.key_ids
    with pytest.raises(OutOfStock):
        place(ledger, customer="carol")
    first_paid = pay(ledger, first, "p-1")
    second_paid = pay(ledger, second, "p-2")
    assert set(first_paid.key_ids).isdisjoint(second_paid.key_ids)
    assert len(set(first_paid.key_ids) | set(second_paid.key_ids)) == 4


# ---- purchase limit ----


def test_purchase_limit_per_product_per_customer(ledger: Ledger) -> None:
    stocked_product(ledger, keys=5, per_customer_limit=2)
    buy(ledger, customer="alice", quantity=2)
    before = len(ledger.reads.stock("GAME-1").available)
    with pytest.raises(PurchaseLimitReached) as caught:
        place(ledger, customer="alice")
    assert caught.value.details["limit"] == 2
    assert ledger.reads.order(caught.value.order_id).status == "rejected"
    assert len(ledger.reads.stock("GAME-1").available) == before
    # Others are not affected.
    place(ledger, customer="bob", quantity=2)


def test_purchase_limit_counts_unpaid_reservations_and_a_single_big_order(ledger: Ledger) -> None:
    stocked_product(ledger, keys=5, per_customer_limit=2)
    with pytest.raises(PurchaseLimitReached):
        place(ledger, quantity=3)
    place(ledger, quantity=1)
    with pytest.raises(PurchaseLimitReached):
        place(ledger, quantity=2)
    place(ledger, quantity=1)
    assert ledger.reads.customer("alice").units("GAME-1") == 2  # type: ignore[union-attr]


def test_purchase_limit_is_per_product(ledger: Ledger) -> None:
    stocked_product(ledger, sku="GAME-1", keys=2, per_customer_limit=1)
    stocked_product(ledger, sku="GAME-2", keys=2, per_customer_limit=1)
    buy(ledger, sku="GAME-1")
    buy(ledger, sku="GAME-2")
    with pytest.raises(PurchaseLimitReached):
        place(ledger, sku="GAME-1")


def test_expired_reservation_no_longer_counts_against_the_purchase_limit(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=3, per_customer_limit=1)
    place(ledger)
    with pytest.raises(PurchaseLimitReached):
        place(ledger)
    clock.advance(minutes=16)
    assert len(ledger.expire_due(ledger.context("sweeper"))) == 1
    assert ledger.reads.customer("alice").units("GAME-1") == 0  # type: ignore[union-attr]
    place(ledger)


# ---- unpaid reservation caps ----


def test_unpaid_reservations_are_capped_per_customer(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(max_unpaid_per_customer=2)
    stocked_product(ledger, keys=5)
    first = place(ledger)
    place(ledger)
    available = len(ledger.reads.stock("GAME-1").available)
    with pytest.raises(TooManyUnpaidReservations) as caught:
        place(ledger)
    assert caught.value.details["subject"] == "customer" and caught.value.details["limit"] == 2
    assert caught.value.details["position"] == head(ledger)
    assert ledger.reads.order(caught.value.order_id).status == "rejected"
    assert len(ledger.reads.stock("GAME-1").available) == available
    assert ledger.reads.customer("alice").unpaid == 2  # type: ignore[union-attr]
    # Another customer is not affected, and paying one frees a slot.
    place(ledger, customer="bob")
    pay(ledger, first)
    place(ledger)


def test_unpaid_reservations_are_capped_per_ip(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(max_unpaid_per_ip=2)
    stocked_product(ledger, keys=5)
    place(ledger, customer="a", client_ip="203.0.113.7")
    place(ledger, customer="b", client_ip="203.0.113.7")
    with pytest.raises(TooManyUnpaidReservations) as caught:
        place(ledger, customer="c", client_ip="203.0.113.7")
    assert caught.value.details["subject"] == "ip"
    assert len(ledger.reads.stock("GAME-1").available) == 3
    place(ledger, customer="c", client_ip="203.0.113.8")


def test_client_ip_from_the_context_counts_too(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(max_unpaid_per_ip=1)
    stocked_product(ledger, keys=5)
    ledger.place_order(ledger.context("web", client_ip="198.51.100.1"), customer_id="a", sku="GAME-1", quantity=1)
    with pytest.raises(TooManyUnpaidReservations):
        ledger.place_order(ledger.context("web", client_ip="198.51.100.1"), customer_id="b", sku="GAME-1",
                           quantity=1)


def test_unpaid_reservations_are_capped_per_device(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(max_unpaid_per_device=1)
    stocked_product(ledger, keys=5)
    place(ledger, customer="a", device_id="dev-42", client_ip="10.0.0.1")
    with pytest.raises(TooManyUnpaidReservations) as caught:
        place(ledger, customer="b", device_id="dev-42", client_ip="10.0.0.2")
    assert caught.value.details["subject"] == "device"
    assert len(ledger.reads.stock("GAME-1").available) == 4


# ---- expiry ----


def test_reservation_expires_after_the_deadline_and_releases_everything(
    make_ledger: LedgerFactory, clock: FakeClock
) -> None:
    ledger = make_ledger(max_unpaid_per_customer=1, max_unpaid_per_ip=1, max_unpaid_per_device=1)
    stocked_product(ledger, keys=2)
    ledger.create_coupon(
        ledger.context("admin"), code="ONCE", kind="amount", value="1.00", currency="USD",
        starts_at=clock.now, ends_at=clock.now + timedelta(days=1), total_cap=1,
    )
    placed = place(ledger, client_ip="10.0.0.1", device_id="dev-1", coupon_code="ONCE")
    assert placed.reserved_until == clock.now + timedelta(seconds=900)
    assert ledger.reads.coupon("ONCE").uses_left == 0
    with pytest.raises(TooManyUnpaidReservations):
        place(ledger, customer="bob", client_ip="10.0.0.1")

    clock.advance(minutes=15)
    changes = ledger.expire_due(ledger.context("sweeper"))
    assert [c.order_id for c in changes] == [placed.order_id]
    assert changes[0].status == "expired"
    assert sorted(changes[0].released_key_ids) == sorted(placed.key_ids)

    order = ledger.reads.order(placed.order_id)
    assert order.status == "expired" and order.reserved == []
    stock = ledger.reads.stock("GAME-1")
    assert set(placed.key_ids) <= set(stock.available) and len(stock.available) == 2
    assert stock.reservations == {}
    assert ledger.reads.coupon("ONCE").uses_left == 1
    assert ledger.reads.customer("alice").unpaid == 0  # type: ignore[union-attr]
    # IP and device caps were released too: another customer on the same IP and device can order.
    again = place(ledger, customer="bob", client_ip="10.0.0.1", device_id="dev-1", coupon_code="ONCE")
    assert again.amount_due == placed.amount_due
    # A second sweep finds nothing more to do.
    assert ledger.expire_due(ledger.context("sweeper")) == []


def test_expire_before_the_deadline_does_nothing(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=1, reservation_timeout_s=600)
    placed = place(ledger)
    assert placed.reserved_until == clock.now + timedelta(seconds=600)
    clock.advance(minutes=9, seconds=59)
    before = head(ledger)
    assert ledger.expire_due(ledger.context("sweeper")) == []
    assert ledger.expire_order(ledger.context("sweeper"), placed.order_id) is None
    assert head(ledger) == before
    assert ledger.reads.order(placed.order_id).status == "reserved"
    assert ledger.reads.stock("GAME-1").available == []
    clock.advance(seconds=1)
    change = ledger.expire_order(ledger.context("sweeper"), placed.order_id)
    assert change is not None and change.status == "expired"


def test_expire_order_ignores_orders_that_are_not_reserved(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=1)
    placed, _ = buy(ledger)
    clock.advance(hours=2)
    before = head(ledger)
    assert ledger.expire_order(ledger.context("sweeper"), placed.order_id) is None
    assert ledger.expire_due(ledger.context("sweeper")) == []
    assert head(ledger) == before
    assert ledger.reads.order(placed.order_id).status == "delivered"


# ---- cancellation ----


def test_cancel_releases_keys_and_holder_slots(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(max_unpaid_per_customer=1)
    stocked_product(ledger, keys=2)
    placed = place(ledger, quantity=2)
    change = ledger.cancel_order(ledger.context("alice"), placed.order_id)
    assert change.status == "cancelled"
    assert sorted(change.released_key_ids) == sorted(placed.key_ids)
    assert ledger.reads.order(placed.order_id).status == "cancelled"
    assert sorted(ledger.reads.stock("GAME-1").available) == sorted(placed.key_ids)
    assert ledger.reads.customer("alice").unpaid == 0  # type: ignore[union-attr]
    assert ledger.reads.customer("alice").units("GAME-1") == 0  # type: ignore[union-attr]
    again = place(ledger, quantity=2)
    assert sorted(again.key_ids) == sorted(placed.key_ids)


def test_cancelling_a_paid_order_is_refused(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed, _ = buy(ledger)
    before = head(ledger)
    with pytest.raises(InvalidOrderState) as caught:
        ledger.cancel_order(ledger.context("alice"), placed.order_id)
    assert caught.value.details["status"] == "delivered"
    assert head(ledger) == before
    assert ledger.reads.order(placed.order_id).status == "delivered"


@pytest.mark.parametrize("first", ["cancel", "expire"])
def test_a_closed_order_cannot_be_cancelled_again(ledger: Ledger, clock: FakeClock, first: str) -> None:
    stocked_product(ledger, keys=1)
    placed = place(ledger)
    if first == "cancel":
        ledger.cancel_order(ledger.context("alice"), placed.order_id)
    else:
        clock.advance(minutes=20)
        ledger.expire_due(ledger.context("sweeper"))
    before = head(ledger)
    with pytest.raises(InvalidOrderState):
        ledger.cancel_order(ledger.context("alice"), placed.order_id)
    assert head(ledger) == before
    assert len(ledger.reads.stock("GAME-1").available) == 1


def test_cancelling_a_rejected_or_unknown_order_is_refused(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    with pytest.raises(OrderRejected) as rejected:
        place(ledger, quantity=2)
    before = head(ledger)
    with pytest.raises(InvalidOrderState):
        ledger.cancel_order(ledger.context("alice"), rejected.value.order_id)  # type: ignore[arg-type]
    with pytest.raises(UnknownOrder):
        ledger.cancel_order(ledger.context("alice"), uuid4())
    assert head(ledger) == before


# ---- retired products ----


def test_retired_product_cannot_be_ordered(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2)
    ledger.retire_product(ledger.context("admin"), "GAME-1", reason="delisted")
    assert ledger.reads.product("GAME-1").retired
    before = head(ledger)
    with pytest.raises(ProductRetired) as caught:
        place(ledger)
    assert caught.value.code == "product-retired"
    assert head(ledger) == before
    assert len(ledger.reads.stock("GAME-1").available) == 2


def test_retiring_keeps_open_reservations_payable(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed = place(ledger)
    ledger.retire_product(ledger.context("admin"), "GAME-1")
    assert pay(ledger, placed).outcome == "delivered"


def test_an_upstream_product_ordered_without_its_recipient_account_is_refused_and_writes_nothing(
    ledger: Ledger,
) -> None:
    ledger.define_product(ledger.context("admin"), sku="TOPUP-1", name="Top-up", kind="direct_recharge",
                          face_value="5.00", currency="USD", price="5.00")
    before = head(ledger)
    with pytest.raises(InvalidInput) as refused:
        place(ledger, sku="TOPUP-1")
    assert refused.value.field == "recipient_account"
    assert head(ledger) == before
