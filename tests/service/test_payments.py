"""Payment callbacks: idempotent by reference, exact amounts, money never kept without goods."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from ledger.domain.errors import AmountMismatch, OutOfStock, PaymentReferenceConflict, UnknownOrder
from ledger.domain.ids import payment_id
from ledger.domain.orders import Order, Payment
from ledger.service.ledger import Ledger
from tests.conftest import FakeClock
from tests.helpers import buy, delivered_codes, head, import_codes, pay, place, stocked_product


def _events(ledger: Ledger, order_id: object) -> list[object]:
    return list(ledger.app.events.get(order_id))  # type: ignore[arg-type]


def test_capture_delivers_the_reserved_keys(ledger: Ledger) -> None:
    codes = stocked_product(ledger, keys=2)
    placed = place(ledger, quantity=2)
    result = pay(ledger, placed, "pay-1")
    assert result.outcome == "delivered" and not result.replayed
    assert result.key_ids == placed.key_ids
    assert result.amount == Decimal("20.00")
    order = ledger.reads.order(placed.order_id)
    assert order.status == "delivered"
    assert order.delivered == placed.key_ids and order.reserved == []
    assert order.amount_paid == Decimal("20.00")
    assert sorted(delivered_codes(ledger, placed.order_id)) == sorted(codes)
    stock = ledger.reads.stock("GAME-1")
    assert stock.delivered == 2 and stock.reservations == {}
    customer = ledger.reads.customer("alice")
    assert customer is not None and customer.unpaid == 0 and customer.units("GAME-1") == 2


def test_capture_is_idempotent_by_payment_reference(ledger: Ledger) -> None:
    stocked_product(ledger, keys=3)
    placed = place(ledger, quantity=2)
    first = pay(ledger, placed, "pay-1")
    before = head(ledger)
    events_before = len(_events(ledger, placed.order_id))
    again = pay(ledger, placed, "pay-1")
    assert again.replayed is True
    assert again.key_ids == first.key_ids
    assert again.outcome == "delivered" and again.amount == first.amount
    assert head(ledger) == before
    assert len(_events(ledger, placed.order_id)) == events_before
    order = ledger.reads.order(placed.order_id)
    assert order.amount_paid == Decimal("20.00")
    assert len(ledger.reads.stock("GAME-1").available) == 1


def test_amount_mismatch_delivers_nothing_and_repeats_the_same_error(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1, price="10.00")
    placed = place(ledger)
    with pytest.raises(AmountMismatch) as caught:
        pay(ledger, placed, "pay-1", amount="9.99")
    assert caught.value.details["amount_due"] == "10.00"
    order = ledger.reads.order(placed.order_id)
    assert order.status == "reserved"
    assert order.delivered == [] and order.amount_paid == 0
    assert order.rejected_payments == 1
    assert ledger.reads.stock("GAME-1").delivered == 0
    recorded = ledger.app.repository.get(payment_id("pay-1"))
    assert isinstance(recorded, Payment) and recorded.outcome == "rejected"

    before = head(ledger)
    with pytest.raises(AmountMismatch) as again:
        pay(ledger, placed, "pay-1", amount="9.99")
    assert again.value.message == caught.value.message
    assert head(ledger) == before
    # The order still waits for a correct payment under a new reference.
    assert pay(ledger, placed, "pay-2").outcome == "delivered"


def test_overpayment_is_also_a_mismatch(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1, price="10.00")
    placed = place(ledger)
    with pytest.raises(AmountMismatch):
        pay(ledger, placed, "pay-1", amount="10.01")
    assert ledger.reads.order(placed.order_id).amount_paid == 0


def test_amount_with_equal_value_but_other_spelling_is_accepted(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2, price="10.00")
    placed = place(ledger)
    assert pay(ledger, placed, "pay-1", amount="10").outcome == "delivered"
    placed = place(ledger, customer="bob")
    assert pay(ledger, placed, "pay-2", amount=10).outcome == "delivered"


def test_same_reference_for_another_order_conflicts(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2)
    first = place(ledger, customer="alice")
    second = place(ledger, customer="bob")
    pay(ledger, first, "pay-1")
    before = head(ledger)
    with pytest.raises(PaymentReferenceConflict) as caught:
        pay(ledger, second, "pay-1")
    assert caught.value.details["payment_reference"] == "pay-1"
    assert head(ledger) == before
    order = ledger.reads.order(second.order_id)
    assert order.status == "reserved" and order.amount_paid == 0


def test_payment_for_an_unknown_order_writes_nothing(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed = place(ledger)
    before = head(ledger)
    with pytest.raises(UnknownOrder):
        ledger.capture_payment(ledger.context("psp"), uuid4(), payment_reference="x", amount=placed.amount_due,
                               provider="psp")
    assert head(ledger) == before


def test_payment_after_expiry_gets_keys_when_stock_allows(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=2)
    placed = place(ledger)
    clock.advance(minutes=30)
    assert len(ledger.expire_due(ledger.context("sweeper"))) == 1
    assert ledger.reads.order(placed.order_id).status == "expired"

    result = pay(ledger, placed, "late-1")
    assert result.outcome == "delivered"
    assert len(result.key_ids) == 1
    order = ledger.reads.order(placed.order_id)
    assert order.status == "delivered" and order.delivered == result.key_ids
    assert order.amount_refunded == 0
    assert ledger.reads.stock("GAME-1").delivered == 1
    assert len(ledger.reads.stock("GAME-1").available) == 1
    customer = ledger.reads.customer("alice")
    assert customer is not None and customer.units("GAME-1") == 1 and customer.unpaid == 0


def test_payment_after_expiry_with_stock_gone_is_refunded_in_full(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=1)
    placed = place(ledger)
    clock.advance(minutes=30)
    ledger.expire_due(ledger.context("sweeper"))
    buy(ledger, customer="bob")  # takes the released key
    assert ledger.reads.stock("GAME-1").available == []

    result = pay(ledger, placed, "late-1")
    assert result.outcome == "refunded"
    assert result.reason == "expired_out_of_stock"
    assert result.key_ids == []
    order = ledger.reads.order(placed.order_id)
    assert order.status == "expired"
    assert order.delivered == []
    assert order.amount_paid == Decimal("10.00")
    assert order.amount_refunded == order.amount_paid
    refunds = [e for e in _events(ledger, placed.order_id) if isinstance(e, Order.Refunded)]
    assert len(refunds) == 1 and refunds[0].automatic is True and refunds[0].amount == Decimal("10.00")
    # Replaying the callback repeats the outcome without another refund.
    again = pay(ledger, placed, "late-1")
    assert again.replayed and again.outcome == "refunded"
    assert ledger.reads.order(placed.order_id).amount_refunded == Decimal("10.00")


def test_payment_after_expiry_respects_the_purchase_limit(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=3, per_customer_limit=1)
    late = place(ledger)
    clock.advance(minutes=30)
    ledger.expire_due(ledger.context("sweeper"))
    buy(ledger)  # the customer bought their one unit meanwhile
    result = pay(ledger, late, "late-1")
    assert result.outcome == "refunded"
    order = ledger.reads.order(late.order_id)
    assert order.delivered == [] and order.amount_refunded == order.amount_paid
    assert ledger.reads.customer("alice").units("GAME-1") == 1  # type: ignore[union-attr]


def test_payment_on_a_cancelled_order_is_refunded_automatically(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed = place(ledger)
    ledger.cancel_order(ledger.context("alice"), placed.order_id)
    result = pay(ledger, placed, "pay-1")
    assert result.outcome == "refunded" and result.reason == "order_cancelled"
    order = ledger.reads.order(placed.order_id)
    assert order.status == "cancelled"
    assert order.amount_paid == order.amount_refunded == Decimal("10.00")
    assert order.delivered == []
    assert len(ledger.reads.stock("GAME-1").available) == 1


def test_payment_on_a_rejected_order_is_refunded_automatically(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    with pytest.raises(OutOfStock) as caught:
        place(ledger, quantity=2)
    order_id = caught.value.order_id
    assert order_id is not None
    result = ledger.capture_payment(ledger.context("psp"), order_id, payment_reference="pay-1", amount="20.00",
                                    provider="psp")
    assert result.outcome == "refunded" and result.reason == "order_rejected"
    order = ledger.reads.order(order_id)
    assert order.status == "rejected" and order.delivered == []
    assert order.amount_paid == order.amount_refunded == Decimal("20.00")
    assert len(ledger.reads.stock("GAME-1").available) == 1


def test_any_amount_paid_on_a_cancelled_order_goes_back(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed = place(ledger)
    ledger.cancel_order(ledger.context("alice"), placed.order_id)
    result = pay(ledger, placed, "pay-odd", amount="3.33")
    assert result.outcome == "refunded"
    order = ledger.reads.order(placed.order_id)
    assert order.amount_paid == order.amount_refunded == Decimal("3.33")


def test_second_payment_on_a_delivered_order_is_refunded_as_duplicate(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2)
    placed = place(ledger)
    first = pay(ledger, placed, "pay-1")
    duplicate = pay(ledger, placed, "pay-2")
    assert duplicate.outcome == "refunded" and duplicate.reason == "duplicate_payment"
    assert duplicate.key_ids == [] and not duplicate.replayed
    order = ledger.reads.order(placed.order_id)
    assert order.status == "delivered"
    assert order.delivered == first.key_ids
    assert order.amount_paid == Decimal("20.00")
    assert order.amount_refunded == Decimal("10.00")
    assert order.revoked == []
    assert len(ledger.reads.stock("GAME-1").available) == 1
    assert ledger.reads.stock("GAME-1").delivered == 1


def test_delivered_keys_carry_their_batch_unit_cost(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2, unit_cost="6.00")
    import_codes(ledger, "GAME-1", 2, unit_cost="7.25")
    placed = place(ledger, quantity=3)
    pay(ledger, placed, "pay-1")
    delivered = [e for e in _events(ledger, placed.order_id) if isinstance(e, Order.KeysDelivered)]
    assert len(delivered) == 1
    keys = delivered[0].keys
    assert [k["unit_cost"] for k in keys] == [Decimal("6.00"), Decimal("6.00"), Decimal("7.25")]
    assert len({k["batch_id"] for k in keys}) == 2
    assert all(k["supplier"] == "acme" for k in keys)
    assert [k["key_id"] for k in keys] == placed.key_ids
    assert delivered[0].total_cost == Decimal("19.25")
    assert ledger.reads.order(placed.order_id).cost == Decimal("19.25")
    timeline = [e for e in ledger.reads.history(str(placed.order_id)) if e.event == "KeysDelivered"]
    assert timeline and timeline[0].data["total_cost"] == Decimal("19.25")


def test_cost_at_time_of_sale_is_not_changed_by_later_batches(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1, unit_cost="6.00")
    placed, _ = buy(ledger)
    import_codes(ledger, "GAME-1", 1, unit_cost="9.00")
    ledger.change_price(ledger.context("admin"), "GAME-1", "12.00")
    order = ledger.reads.order(placed.order_id)
    assert order.cost == Decimal("6.00")
    assert order.amount_paid == Decimal("10.00")


def test_a_late_payment_for_a_retired_product_is_refunded_not_delivered(ledger: Ledger, clock: FakeClock) -> None:
    admin = ledger.context("admin")
    ledger.define_product(admin, sku="OLD-1", name="old", face_value="1", currency="USD", price="1.00")
    ledger.import_keys(admin, sku="OLD-1", supplier="s", unit_cost="0.50", codes=[(1, "OLD-CODE-1")])
    placed = ledger.place_order(ledger.context(), customer_id="c", sku="OLD-1", quantity=1)
    clock.advance(hours=1)
    ledger.expire_due(ledger.context())
    ledger.retire_product(admin, "OLD-1", "discontinued")
    result = ledger.capture_payment(ledger.context(), placed.order_id, payment_reference="late", amount="1.00",
                                    provider="psp")
    assert result.outcome == "refunded" and result.key_ids == []
    assert ledger.reads.order(placed.order_id).amount_refunded == Decimal("1.00")


def test_a_stray_payment_on_a_free_order_is_given_back_and_the_order_stays_delivered(
    ledger: Ledger, clock: FakeClock
) -> None:
    """Found by the deep stateful run (see tests/unit/test_orders.py): a coupon worth the whole
    price, the order delivered for 0.00, then a second callback for 1.00."""
    stocked_product(ledger, "FREE-1", keys=1, price="10.00")
    ledger.create_coupon(ledger.context("admin"), code="ALL10", kind="amount", value="10.00", currency="USD",
                         starts_at=clock.now, ends_at=clock.now.replace(year=2030))
    placed = place(ledger, "alice", "FREE-1", coupon_code="ALL10")
    assert placed.amount_due == Decimal("0.00")
    assert pay(ledger, placed, "free-1").outcome == "delivered"
    stray = pay(ledger, placed, "free-2", amount="1.00")
    assert stray.outcome == "refunded" and stray.key_ids == []
    order = ledger.reads.order(placed.order_id)
    assert order.status == "delivered" and order.amount_paid == order.amount_refunded == Decimal("1.00")
    assert [k.status for k in ledger.reads.order_keys(placed.order_id)] == ["delivered"]
