"""The Order aggregate on its own: which state changes it allows, and exact money."""

from __future__ import annotations

from uuid import uuid4

import pytest

from ledger.domain.errors import InvalidInput, InvalidOrderState, RefundExceedsPaid
from ledger.domain.ids import payment_id
from ledger.domain.orders import Order, OrderStatus, Payment, PaymentOutcome
from tests.unit.domain import CTX, NOW, D, delivered_order, later, order, pending, reserved_order


def test_a_placed_order_carries_its_prices_and_the_command_context() -> None:
    placed = order(quantity=3, unit_price="4.99", discount="1.50")
    assert placed.status == OrderStatus.PLACED
    assert (placed.subtotal, placed.discount, placed.amount_due) == (D("14.97"), D("1.50"), D("13.47"))
    [event] = placed.collect_events()
    assert isinstance(event, Order.Placed) and event.timestamp == NOW
    assert event.meta == {"actor": "test", "correlation_id": CTX.correlation_id, "causation_id": CTX.correlation_id}


def test_keys_are_delivered_only_to_a_paid_reservation_and_only_the_keys_it_holds() -> None:
    placed, keys = reserved_order(2)
    lines = [{"key_id": k, "batch_id": uuid4(), "unit_cost": "6.25"} for k in keys]
    with pytest.raises(InvalidOrderState, match="not paid"):
        placed.deliver(CTX, lines)
    placed.capture(CTX, "pay-1", D("19.99"), "psp")  # short by a cent
    with pytest.raises(InvalidOrderState, match="not paid"):
        placed.deliver(CTX, lines)
    placed.capture(CTX, "pay-2", D("0.01"), "psp")
    with pytest.raises(InvalidOrderState, match="exactly the keys it reserved"):
        placed.deliver(CTX, list(reversed(lines)))
    placed.deliver(CTX, lines)
    assert placed.status == OrderStatus.DELIVERED and placed.delivered == keys and placed.reserved == []
    assert placed.cost == D("12.50")  # the cost at time of sale: each key's batch cost
    with pytest.raises(InvalidOrderState):  # a second delivery of the same order
        placed.deliver(CTX, lines)


def test_one_payment_reference_is_captured_once() -> None:
    placed, _ = reserved_order()
    placed.capture(CTX, "pay-1", D("10.00"), "psp")
    with pytest.raises(InvalidOrderState, match="already captured"):
        placed.capture(CTX, "pay-1", D("10.00"), "psp")
    assert placed.amount_paid == D("10.00") and placed.payments == {"pay-1": D("10.00")}


@pytest.mark.parametrize("end", ["expire", "cancel"])
def test_only_a_reservation_expires_or_is_cancelled_and_its_keys_are_named(end: str) -> None:
    placed, keys = reserved_order(2)
    if end == "expire":
        placed.expire(later(minutes=16))
    else:
        placed.cancel(CTX, "changed my mind")
    released = placed.collect_events()[-1]
    assert isinstance(released, Order.Expired | Order.Cancelled)
    assert released.released_key_ids == keys and placed.reserved == []
    assert placed.status == (OrderStatus.EXPIRED if end == "expire" else OrderStatus.CANCELLED)
    for again in (placed.expire, lambda ctx: placed.cancel(ctx, "again")):
        with pytest.raises(InvalidOrderState):
            again(CTX)
    delivered, _ = delivered_order()
    with pytest.raises(InvalidOrderState):
        delivered.cancel(CTX, "too late")
    with pytest.raises(InvalidOrderState):
        delivered.expire(CTX)


def test_an_expired_order_paid_late_can_reserve_again_but_a_cancelled_one_cannot() -> None:
    expired, _ = reserved_order()
    expired.expire(later(minutes=16))
    expired.reserve(later(minutes=17), [uuid4()], NOW)
    assert expired.status == OrderStatus.RESERVED
    cancelled, _ = reserved_order()
    cancelled.cancel(CTX, "no")
    with pytest.raises(InvalidOrderState):
        cancelled.reserve(CTX, [uuid4()], NOW)
    wrong_count = order(quantity=2)
    with pytest.raises(InvalidOrderState, match="needs 2 keys"):
        wrong_count.reserve(CTX, [uuid4()], NOW)


def test_only_a_placed_order_is_rejected() -> None:
    rejected = order()
    rejected.reject(CTX, "out-of-stock", "only 0 left", {"available": 0})
    assert rejected.status == OrderStatus.REJECTED
    reserved, _ = reserved_order()
    with pytest.raises(InvalidOrderState):
        reserved.reject(CTX, "risk-rejected", "no")


def test_refunds_never_exceed_what_was_paid_and_exact_cents_add_up() -> None:
    placed, keys = delivered_order(2)  # paid 20.00
    with pytest.raises(InvalidInput):
        placed.refund(CTX, D("0"), "r", [], override_redeemed=False, automatic=False)
    placed.refund(CTX, D("3.33"), "r", [], override_redeemed=False, automatic=False)
    placed.refund(CTX, D("3.33"), "r", [], override_redeemed=False, automatic=False)
    assert placed.refundable == D("13.34") and placed.status.value == "delivered"
    with pytest.raises(RefundExceedsPaid) as too_much:
        placed.refund(CTX, D("13.35"), "r", [], override_redeemed=False, automatic=False)
    assert too_much.value.details == {"refundable": "13.34"}
    assert placed.amount_refunded == D("6.66")  # the refusal changed nothing
    placed.refund(CTX, D("13.34"), "r", keys, override_redeemed=False, automatic=False)
    assert placed.status == OrderStatus.REFUNDED and placed.refundable == 0 and placed.revoked == keys


def test_a_refund_revokes_only_keys_the_order_delivered_and_each_once() -> None:
    placed, keys = delivered_order(2)
    with pytest.raises(InvalidInput, match="not delivered by this order"):
        placed.refund(CTX, D("1.00"), "r", [uuid4()], override_redeemed=False, automatic=False)
    placed.refund(CTX, D("1.00"), "r", keys[:1], override_redeemed=False, automatic=False)
    with pytest.raises(InvalidInput, match="already revoked"):
        placed.refund(CTX, D("1.00"), "r", keys[:1], override_redeemed=False, automatic=False)
    assert placed.revoked == keys[:1] and placed.amount_refunded == D("1.00")


def test_an_unpaid_order_has_nothing_to_refund() -> None:
    placed, _ = reserved_order()
    with pytest.raises(RefundExceedsPaid):
        placed.refund(CTX, D("0.01"), "r", [], override_redeemed=False, automatic=False)
    assert pending(placed) == ["Placed", "KeysReserved"]


def test_a_payment_record_keeps_its_outcome_under_the_reference_id() -> None:
    order_id = uuid4()
    record = Payment.record(CTX, payment_id("ref-1"), "ref-1", order_id, D("10.00"), "USD", "psp",
                            PaymentOutcome.REFUNDED, [], "order expired")
    assert record.id == payment_id("ref-1") != payment_id("ref-2")
    assert (record.outcome, record.order_id, record.key_ids, record.reason) == (
        PaymentOutcome.REFUNDED, order_id, [], "order expired")


def test_a_stray_payment_given_back_leaves_a_free_delivered_order_delivered() -> None:
    """Found by the deep stateful run: an order fully discounted to 0.00 was delivered; a second
    payment, refunded at once for want of goods, made refunded == paid (1.00 == 1.00) and turned
    the order into 'refunded' although its keys stayed with the buyer and nothing it paid for went
    back. An automatic refund gives back only the stray payment: it never changes the status."""
    free, keys = delivered_order(discount="10.00")
    assert free.amount_due == 0 and free.status == OrderStatus.DELIVERED
    free.capture(CTX, "stray", D("1.00"), "psp")
    free.refund(CTX, D("1.00"), "duplicate_payment", [], override_redeemed=False, automatic=True)
    assert free.status == OrderStatus.DELIVERED and free.delivered == keys and free.refundable == 0
    paid, _ = delivered_order()  # the same for an order that was paid for
    paid.capture(CTX, "stray", D("10.00"), "psp")
    paid.refund(CTX, D("10.00"), "duplicate_payment", [], override_redeemed=False, automatic=True)
    assert paid.status == OrderStatus.DELIVERED and paid.refundable == D("10.00")
