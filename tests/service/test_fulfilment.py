"""Direct recharge through upstream suppliers, as the writer decides it: attempts recorded before
they are sent, never two outstanding, never a refund while an outcome may still come, routes by
cost, float and health, and every ending paid for (delivered) or given back (refunded).

No HTTP here: these tests say what a supplier answered as the fulfilment worker would."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledger import commands as c
from ledger.domain.errors import AttemptConflict, InvalidInput, NotSellable
from ledger.domain.fulfilment import Fulfilment
from ledger.domain.ids import OPEN_FULFILMENTS_ID, fulfilment_id, supplier_id
from ledger.domain.suppliers import Supplier
from ledger.results import AttemptPlan, FulfilmentState, Placed
from ledger.service.ledger import Ledger
from tests.conftest import FakeClock
from tests.helpers import pay, place

SECRET = "s3cret-s3cret-s3cret"


def run(ledger: Ledger, command_class: type[c.Command], **fields: Any) -> Any:
    return ledger.execute(command_class(ctx=ledger.context("admin"), **fields)).get()


def recharge_product(ledger: Ledger, sku: str = "TOPUP-10", *, suppliers: dict[str, str] | None = None,
                     float_amount: str = "1000.00", **product: Any) -> None:
    """A 10.00 USD top-up sold at 10.50, offered by each supplier at its cost."""
    run(ledger, c.DefineProduct, sku=sku, name="Top-up 10", kind="direct_recharge", face_value="10.00",
        currency="USD", price="10.50", **product)
    for n, (name, cost) in enumerate((suppliers or {"cheap": "9.60", "dear": "9.80"}).items()):
        run(ledger, c.SetSupplier, name=name, base_url=f"http://127.0.0.1:{9000 + n}", secret=SECRET,
            currency="USD")
        if float_amount:
            run(ledger, c.FundSupplier, name=name, amount=float_amount, reference=f"wire-{name}")
        run(ledger, c.SetOffer, sku=sku, supplier=name, supplier_product=f"{name}-TOPUP-10", cost=cost)


def paid_recharge(ledger: Ledger, account: str = "13812345678", sku: str = "TOPUP-10") -> Placed:
    placed = place(ledger, sku=sku, recipient_account=account)
    assert pay(ledger, placed, f"pay-{placed.order_id}").outcome == "accepted"
    return placed


def start(ledger: Ledger, placed: Placed, unhealthy: tuple[str, ...] = ()) -> AttemptPlan | FulfilmentState:
    result = run(ledger, c.StartAttempt, fulfilment_id=fulfilment_id(placed.order_id), unhealthy=unhealthy)
    assert isinstance(result, AttemptPlan | FulfilmentState)
    return result


def answer(ledger: Ledger, plan: AttemptPlan, outcome: str, **fields: Any) -> FulfilmentState:
    result = run(ledger, c.RecordAttempt, fulfilment_id=plan.fulfilment_id, attempt_id=plan.attempt_id,
                 outcome=outcome, **fields)
    assert isinstance(result, FulfilmentState)
    return result


def order_status(ledger: Ledger, placed: Placed) -> str:
    return str(ledger.reads.order(placed.order_id).status)


def supplier(ledger: Ledger, name: str) -> Supplier:
    found = ledger.reads.find(Supplier, supplier_id(name))
    assert found is not None
    return found


def open_ids(ledger: Ledger) -> list[UUID]:
    from ledger.domain.fulfilment import OpenFulfilments

    found = ledger.reads.find(OpenFulfilments, OPEN_FULFILMENTS_ID)
    return list(found.ids) if found else []


def test_a_paid_recharge_goes_to_the_cheapest_supplier_and_is_delivered_at_what_it_charged(ledger: Ledger) -> None:
    recharge_product(ledger)
    placed = paid_recharge(ledger)
    assert order_status(ledger, placed) == "fulfilling"
    assert open_ids(ledger) == [fulfilment_id(placed.order_id)]
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan) and not plan.resolve
    assert (plan.supplier, plan.supplier_product, plan.amount, plan.currency) == ("cheap", "cheap-TOPUP-10",
                                                                               Decimal("10.00"), "USD")
    assert ledger.vault.accounts.unseal(plan.account_sealed) == "13812345678"
    assert supplier(ledger, "cheap").available == Decimal("990.40")  # the cost is held while outstanding
    state = answer(ledger, plan, "succeeded", supplier_ref="R1", charged="9.55")
    assert (state.status, state.changed) == ("succeeded", True)
    order = ledger.reads.order(placed.order_id)
    assert (str(order.status), order.cost) == ("delivered", Decimal("9.55"))
    assert supplier(ledger, "cheap").available == Decimal("990.45")
    assert open_ids(ledger) == []
    assert answer(ledger, plan, "succeeded", supplier_ref="R1", charged="9.55").changed is False  # a repeat


def test_the_outstanding_attempt_is_resolved_first_and_never_sent_elsewhere(ledger: Ledger) -> None:
    recharge_product(ledger)
    placed = paid_recharge(ledger)
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan)
    assert answer(ledger, plan, "unknown", reason="timed out").changed
    assert answer(ledger, plan, "unknown", reason="timed out").changed is False  # recorded once
    again = start(ledger, placed)  # e.g. after a restart: the same attempt, to be asked about
    assert isinstance(again, AttemptPlan)
    assert (again.attempt_id, again.supplier, again.resolve) == (plan.attempt_id, "cheap", True)
    answer(ledger, plan, "resent")  # the supplier said 404: the same id is sent again
    assert order_status(ledger, placed) == "fulfilling"
    with pytest.raises(AttemptConflict):
        answer(ledger, plan, "reversed")  # only a success can be reversed


def test_a_failure_moves_to_the_next_route_and_the_last_failure_refunds(ledger: Ledger) -> None:
    recharge_product(ledger)
    placed = paid_recharge(ledger)
    first = start(ledger, placed)
    assert isinstance(first, AttemptPlan) and first.supplier == "cheap"
    answer(ledger, first, "failed", reason="supplier_error", retryable=True)
    assert supplier(ledger, "cheap").available == Decimal("1000.00")  # the hold is released
    second = start(ledger, placed)
    assert isinstance(second, AttemptPlan)
    assert (second.supplier, second.attempt_id != first.attempt_id) == ("dear", True)
    answer(ledger, second, "failed", reason="out_of_stock", retryable=True)
    ended = start(ledger, placed)
    assert isinstance(ended, FulfilmentState) and ended.status == "failed"
    order = ledger.reads.order(placed.order_id)
    assert (str(order.status), order.amount_refunded) == ("refunded", Decimal("10.50"))
    assert open_ids(ledger) == []
    with pytest.raises(AttemptConflict):
        answer(ledger, second, "succeeded", charged="9.80")  # a success over a stated failure is refused


def test_a_failure_no_supplier_can_get_past_refunds_at_once(ledger: Ledger) -> None:
    recharge_product(ledger)
    placed = paid_recharge(ledger)
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan)
    answer(ledger, plan, "failed", reason="account_invalid", retryable=False)
    ended = start(ledger, placed)
    assert isinstance(ended, FulfilmentState) and ended.status == "failed"
    assert order_status(ledger, placed) == "refunded"


def test_routing_skips_a_supplier_whose_breaker_is_open_or_whose_float_is_short(ledger: Ledger) -> None:
    recharge_product(ledger, float_amount="")
    run(ledger, c.FundSupplier, name="cheap", amount="5.00", reference="wire-1")  # less than one top-up
    run(ledger, c.FundSupplier, name="dear", amount="100.00", reference="wire-2")
    placed = paid_recharge(ledger)
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan) and plan.supplier == "dear"
    answer(ledger, plan, "failed", reason="supplier_error")
    waiting = start(ledger, placed)  # only "cheap" is left, and its float is short: wait, do not refund
    assert isinstance(waiting, FulfilmentState) and waiting.waiting == "float too low at cheap"
    run(ledger, c.FundSupplier, name="cheap", amount="50.00", reference="wire-3")
    held = start(ledger, placed, unhealthy=("cheap",))
    assert isinstance(held, FulfilmentState) and held.waiting == "breaker open at cheap"
    probe = start(ledger, placed)
    assert isinstance(probe, AttemptPlan) and probe.supplier == "cheap"


def test_past_the_deadline_with_nothing_outstanding_the_order_is_refunded(ledger: Ledger, clock: FakeClock) -> None:
    recharge_product(ledger, fulfilment_deadline_s=60)
    placed = paid_recharge(ledger)
    run(ledger, c.FundSupplier, name="cheap", amount="1.00", reference="x")  # nothing changes the route
    clock.advance(seconds=61)
    ended = start(ledger, placed)
    assert isinstance(ended, FulfilmentState) and ended.status == "failed"
    assert order_status(ledger, placed) == "refunded"


def test_an_unknown_outcome_past_the_deadline_is_escalated_never_refunded(ledger: Ledger, clock: FakeClock) -> None:
    recharge_product(ledger, fulfilment_deadline_s=60)
    placed = paid_recharge(ledger)
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan)
    clock.advance(seconds=120)
    answer(ledger, plan, "unknown", reason="timed out")
    fulfilment = ledger.reads.find(Fulfilment, plan.fulfilment_id)
    assert fulfilment is not None and fulfilment.escalated
    again = start(ledger, placed)
    assert isinstance(again, AttemptPlan) and again.resolve  # still asking, not refunding
    assert order_status(ledger, placed) == "fulfilling"
    answer(ledger, plan, "succeeded", charged="9.60")
    assert order_status(ledger, placed) == "delivered"


@pytest.mark.parametrize(("policy", "status_after"), [("refund", "refunded"), ("refulfil", "fulfilling")])
def test_a_reversed_recharge_is_refunded_or_fulfilled_again(ledger: Ledger, policy: str, status_after: str) -> None:
    recharge_product(ledger, on_reversal=policy)
    placed = paid_recharge(ledger)
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan)
    answer(ledger, plan, "succeeded", charged="9.60")
    assert answer(ledger, plan, "reversed", reason="operator_reversal").changed
    assert supplier(ledger, "cheap").available == Decimal("1000.00")  # the charge came back
    order = ledger.reads.order(placed.order_id)
    assert (str(order.status), order.cost) == (status_after, Decimal("0.00"))
    assert (open_ids(ledger) == [plan.fulfilment_id]) is (policy == "refulfil")


def test_a_callback_for_another_suppliers_attempt_is_refused(ledger: Ledger) -> None:
    recharge_product(ledger)
    plan = start(ledger, paid_recharge(ledger))
    assert isinstance(plan, AttemptPlan)
    with pytest.raises(AttemptConflict):
        answer(ledger, plan, "succeeded", supplier="dear", charged="9.80")
    with pytest.raises(AttemptConflict):
        run(ledger, c.RecordAttempt, fulfilment_id=plan.fulfilment_id, attempt_id="not-ours", outcome="failed")


def test_the_recipient_account_is_checked_sealed_and_shown_masked(ledger: Ledger) -> None:
    recharge_product(ledger)
    with pytest.raises(InvalidInput) as missing:
        place(ledger, sku="TOPUP-10")
    assert missing.value.field == "recipient_account"
    with pytest.raises(InvalidInput):
        place(ledger, sku="TOPUP-10", recipient_account="not a phone")
    placed = place(ledger, sku="TOPUP-10", recipient_account="13812345678")
    order = ledger.reads.order(placed.order_id)
    assert order.recipient is not None and order.recipient["masked"] == "138****5678"
    assert "13812345678" not in repr(ledger.reads.stream(placed.order_id))


def test_an_upstream_product_without_offers_is_sold_and_refunded_not_kept(ledger: Ledger) -> None:
    run(ledger, c.DefineProduct, sku="TOPUP-5", name="Top-up 5", kind="direct_recharge", face_value="5.00",
        currency="USD", price="5.00")
    placed = paid_recharge(ledger, sku="TOPUP-5")
    ended = start(ledger, placed)
    assert isinstance(ended, FulfilmentState) and ended.status == "failed"
    assert order_status(ledger, placed) == "refunded"


def test_digital_access_is_granted_at_payment_without_stock(ledger: Ledger) -> None:
    run(ledger, c.DefineProduct, sku="COURSE-1", name="Course", kind="digital_access", face_value="20.00",
        currency="USD", price="20.00", validity_days=30)
    placed = place(ledger, sku="COURSE-1")
    assert pay(ledger, placed).outcome == "delivered"
    assert order_status(ledger, placed) == "delivered"
    run(ledger, c.SetSupplier, name="x", base_url="http://127.0.0.1:9000", secret=SECRET, currency="USD")
    with pytest.raises(NotSellable):
        run(ledger, c.SetOffer, sku="COURSE-1", supplier="x", supplier_product="y", cost="1.00")


def test_an_unpaid_recharge_expires_and_a_second_payment_is_refunded(ledger: Ledger, clock: FakeClock) -> None:
    recharge_product(ledger)
    placed = place(ledger, sku="TOPUP-10", recipient_account="13812345678")
    clock.advance(hours=1)
    assert [o.order_id for o in ledger.expire_due(ledger.context("sweeper"))] == [placed.order_id]
    paid = paid_recharge(ledger)
    assert pay(ledger, paid, "second-payment").outcome == "refunded"  # a duplicate payment goes back


def test_a_platform_grant_renewed_early_extends_from_the_end_of_its_term(ledger: Ledger, clock: FakeClock) -> None:
    from ledger.domain.fulfilment import Grant
    from ledger.domain.ids import grant_id

    run(ledger, c.DefineProduct, sku="VIDEO-1M", name="Video, one month", kind="platform_grant",
        face_value="15.00", currency="USD", price="15.00", validity_days=30)
    run(ledger, c.SetSupplier, name="partner", base_url="http://127.0.0.1:9000", secret=SECRET, currency="USD")
    run(ledger, c.FundSupplier, name="partner", amount="100.00", reference="wire")
    run(ledger, c.SetOffer, sku="VIDEO-1M", supplier="partner", supplier_product="vid-30", cost="12.00")
    first_day = clock()
    for _ in range(2):  # a month, then a renewal ten days in
        placed = paid_recharge(ledger, account="ann@example.com", sku="VIDEO-1M")
        plan = start(ledger, placed)
        assert isinstance(plan, AttemptPlan)
        answer(ledger, plan, "succeeded", charged="12.00")
        clock.advance(days=10)
    grant = ledger.reads.find(Grant, grant_id("VIDEO-1M", ledger.vault.account_fingerprint("ann@example.com")))
    assert grant is not None and grant.until == first_day + timedelta(days=60)  # not day 10 + 30


def test_a_platform_grant_needs_its_term(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput) as refused:
        run(ledger, c.DefineProduct, sku="SEAT-1", name="Seat", kind="platform_grant", face_value="5.00",
            currency="USD", price="5.00")
    assert refused.value.field == "validity_days"


def test_a_settlement_is_recorded_once_by_its_reference(ledger: Ledger) -> None:
    from ledger.domain.errors import AlreadyExists

    fields = {"supplier": "acme", "amount": "1200.00", "currency": "USD", "reference": "wire-2026-11",
              "period": "2026-11"}
    first = run(ledger, c.SettleSupplier, **fields)
    assert run(ledger, c.SettleSupplier, **fields).id == first.id  # a retry: the same settlement
    with pytest.raises(AlreadyExists):
        run(ledger, c.SettleSupplier, **{**fields, "amount": "1300.00"})
    with pytest.raises(InvalidInput):
        run(ledger, c.SettleSupplier, **{**fields, "reference": "wire-x", "amount": "-1"})


def test_a_low_float_alert_fires_once_per_crossing_and_again_after_a_refill(ledger: Ledger) -> None:
    recharge_product(ledger, suppliers={"only": "9.60"}, float_amount="30.00")
    run(ledger, c.SetLowFloat, name="only", threshold="15.00")

    def alerts() -> int:
        return sum(e.event == "FloatLow" for e in ledger.reads.stream(supplier_id("only")))

    for n in range(3):  # 30.00 - 3 x 9.60: the float crosses 15.00 on the second top-up
        plan = start(ledger, paid_recharge(ledger, account=f"1381234000{n}"))
        assert isinstance(plan, AttemptPlan)
        answer(ledger, plan, "succeeded", charged="9.60")
    assert alerts() == 1 and supplier(ledger, "only").low_float
    run(ledger, c.FundSupplier, name="only", amount="100.00", reference="top-up")
    assert not supplier(ledger, "only").low_float
    run(ledger, c.SetLowFloat, name="only", threshold="100.00")  # now under it again: the next use alerts
    plan = start(ledger, paid_recharge(ledger, account="13812340009"))
    assert isinstance(plan, AttemptPlan)
    assert alerts() == 2


def test_an_order_being_fulfilled_cannot_be_refunded_by_hand_until_it_ends(ledger: Ledger) -> None:
    from ledger.domain.errors import InvalidOrderState

    recharge_product(ledger)
    placed = paid_recharge(ledger)
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan)
    with pytest.raises(InvalidOrderState):  # the supplier may still deliver it
        ledger.refund_order(ledger.context("admin"), placed.order_id, amount="10.50", reason="asked")
    answer(ledger, plan, "succeeded", charged="9.60")
    change = ledger.refund_order(ledger.context("admin"), placed.order_id, amount="10.50", reason="asked")
    assert change.status == "refunded"
