"""An admin's refund (RefundOrder) beside an upstream fulfilment.

While a supplier may still recharge the account, the money cannot go back as well: a refund of a
fulfilling order is refused (the fulfilment refunds it itself if no supplier can), and writes
nothing. Once delivered, an order may be refunded; a reversal the supplier reports afterwards is
still recorded (its charge comes back to the float) and neither refunds twice nor fulfils again."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger import commands as c
from ledger.domain.errors import InvalidOrderState
from ledger.domain.fulfilment import Fulfilment
from ledger.domain.ids import fulfilment_id
from ledger.results import AttemptPlan, FulfilmentState
from ledger.service.ledger import Ledger
from tests.helpers import head
from tests.service.test_fulfilment import (
    answer,
    open_ids,
    order_status,
    paid_recharge,
    recharge_product,
    run,
    start,
    supplier,
)


def refund(ledger: Ledger, order_id: object, amount: str = "10.50") -> object:
    return run(ledger, c.RefundOrder, order_id=order_id, amount=amount, reason="asked by the customer")


def test_a_fulfilling_order_with_an_attempt_outstanding_is_not_refunded(ledger: Ledger) -> None:
    recharge_product(ledger)
    placed = paid_recharge(ledger)
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan)
    before = head(ledger)
    with pytest.raises(InvalidOrderState):
        refund(ledger, placed.order_id)
    assert head(ledger) == before
    # The supplier recharged the account: that is recorded, and the order is delivered, paid.
    assert answer(ledger, plan, "succeeded", charged="9.60").changed
    order = ledger.reads.order(placed.order_id)
    assert (str(order.status), order.amount_refunded, order.cost) == ("delivered", Decimal(0), Decimal("9.60"))
    assert supplier(ledger, "cheap").available == Decimal("990.40")


def test_a_fulfilling_order_between_attempts_is_not_refunded(ledger: Ledger) -> None:
    recharge_product(ledger)
    placed = paid_recharge(ledger)
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan)
    answer(ledger, plan, "failed", reason="supplier_error")  # the next route has not been tried yet
    before = head(ledger)
    with pytest.raises(InvalidOrderState):
        refund(ledger, placed.order_id)
    assert head(ledger) == before
    again = start(ledger, placed)
    assert isinstance(again, AttemptPlan) and again.supplier == "dear"
    answer(ledger, again, "succeeded", charged="9.80")
    assert order_status(ledger, placed) == "delivered"


@pytest.mark.parametrize("policy", ["refund", "refulfil"])
def test_a_reversal_after_an_admin_refunded_the_delivered_order_is_recorded_once(ledger: Ledger, policy: str) -> None:
    recharge_product(ledger, on_reversal=policy)
    placed = paid_recharge(ledger)
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan)
    answer(ledger, plan, "succeeded", charged="9.60")
    refund(ledger, placed.order_id)
    assert order_status(ledger, placed) == "refunded"
    state = answer(ledger, plan, "reversed", supplier="cheap", reason="operator_reversal")
    assert state.changed
    assert supplier(ledger, "cheap").available == Decimal("1000.00")  # the charge came back to the float
    order = ledger.reads.order(placed.order_id)
    assert (str(order.status), order.amount_refunded, order.cost) == ("refunded", Decimal("10.50"), Decimal(0))
    fulfilment = ledger.reads.find(Fulfilment, fulfilment_id(placed.order_id))
    assert fulfilment is not None and not fulfilment.status.open  # the customer has the money: no new recharge
    assert open_ids(ledger) == []
    ended = start(ledger, placed)
    assert isinstance(ended, FulfilmentState) and not ended.changed
    assert answer(ledger, plan, "reversed", supplier="cheap").changed is False  # a repeated callback
