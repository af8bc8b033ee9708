"""Direct recharges for the read-model tests: suppliers with a float, upstream products, and paid
orders driven to each ending the way the fulfilment worker drives them (no HTTP: what a supplier
answered is recorded as the worker would record it)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger import commands as c
from ledger.domain.ids import fulfilment_id
from ledger.results import AttemptPlan, FulfilmentState, Placed
from ledger.service.ledger import Ledger
from tests.conftest import FakeClock

SECRET = "s3cret-s3cret-s3cret"
D = Decimal


def run(ledger: Ledger, command_class: type[c.Command], **fields: Any) -> Any:
    return ledger.execute(command_class(ctx=ledger.context("admin"), **fields)).get()


def suppliers(ledger: Ledger, names: tuple[str, ...] = ("cheap", "dear"), *, currency: str = "USD",
              funded: str = "1000.00") -> None:
    for n, name in enumerate(names):
        run(ledger, c.SetSupplier, name=name, base_url=f"http://127.0.0.1:{9000 + n}", secret=SECRET,
            currency=currency)
        if funded:
            run(ledger, c.FundSupplier, name=name, amount=funded, reference=f"wire-{name}")


def upstream_product(ledger: Ledger, sku: str, offers: dict[str, str], *, face_value: str = "10.00",
                     price: str = "10.50", currency: str = "USD", kind: str = "direct_recharge",
                     **product: Any) -> None:
    """An upstream product offered by each supplier of `offers` at its cost."""
    run(ledger, c.DefineProduct, sku=sku, name=sku, kind=kind, face_value=face_value, currency=currency,
        price=price, **product)
    for name, cost in offers.items():
        run(ledger, c.SetOffer, sku=sku, supplier=name, supplier_product=f"{name}-{sku}", cost=cost)


def paid(ledger: Ledger, customer: str = "alice", sku: str = "TOPUP-10", account: str = "13812345678",
         **kwargs: Any) -> Placed:
    """A recharge ordered and paid: it goes to its fulfilment."""
    placed = ledger.place_order(ledger.context("storefront"), customer_id=customer, sku=sku, quantity=1,
                                recipient_account=account, **kwargs)
    result = ledger.capture_payment(ledger.context("psp"), placed.order_id, payment_reference=f"pay-{placed.order_id}",
                                    amount=placed.amount_due, provider="psp")
    assert result.outcome == "accepted", result
    return placed


def start(ledger: Ledger, order_id: UUID, unhealthy: tuple[str, ...] = ()) -> AttemptPlan | FulfilmentState:
    result = run(ledger, c.StartAttempt, fulfilment_id=fulfilment_id(order_id), unhealthy=unhealthy)
    assert isinstance(result, AttemptPlan | FulfilmentState)
    return result


def attempt(ledger: Ledger, order_id: UUID, unhealthy: tuple[str, ...] = ()) -> AttemptPlan:
    plan = start(ledger, order_id, unhealthy)
    assert isinstance(plan, AttemptPlan), plan
    return plan


def answer(ledger: Ledger, plan: AttemptPlan, outcome: str, **fields: Any) -> FulfilmentState:
    result = run(ledger, c.RecordAttempt, fulfilment_id=plan.fulfilment_id, attempt_id=plan.attempt_id,
                 outcome=outcome, **fields)
    assert isinstance(result, FulfilmentState)
    return result


def deliver(ledger: Ledger, order_id: UUID, charged: str | None = None,
            unhealthy: tuple[str, ...] = ()) -> AttemptPlan:
    """The next attempt succeeds, charged `charged` (default: the offer's cost)."""
    plan = attempt(ledger, order_id, unhealthy)
    answer(ledger, plan, "succeeded", supplier_ref=f"ref-{plan.attempt_id}", charged=charged)
    return plan


def give_up(ledger: Ledger, order_id: UUID) -> None:
    """Every route fails: the fulfilment gives up and the order is refunded."""
    while isinstance(plan := start(ledger, order_id), AttemptPlan):
        answer(ledger, plan, "failed", reason="out_of_stock", retryable=True)
    assert plan.status == "failed"


def recharge_history(ledger: Ledger, clock: FakeClock) -> dict[str, UUID]:
    """Every ending a recharge can have, over two days (the figures each read model makes of it
    are worked out in the tests that use it):

    day 1 -- two suppliers funded 1000.00 each; TOPUP-10 (10.50; cheap 9.60, dear 9.80, refund on
             reversal) and TOPUP-20 (21.00; cheap 19.20, dear 19.60, fulfilled again on reversal, within
             three days);
             COURSE (digital access, 20.00). Orders: `delivered` (cheap, charged 9.55); `gave_up`
             (both routes fail: refunded, never a sale); `reversed` (delivered by cheap at 9.60);
             `pending` (an attempt at cheap whose answer was lost); `refulfilled` (TOPUP-20,
             delivered by cheap at 19.20); `granted` (COURSE).
    day 2 -- `reversed` is taken back by cheap and refunded; `refulfilled` is taken back by cheap
             and delivered again by dear at 19.60.
    """
    suppliers(ledger)
    upstream_product(ledger, "TOPUP-10", {"cheap": "9.60", "dear": "9.80"})
    upstream_product(ledger, "TOPUP-20", {"cheap": "19.20", "dear": "19.60"}, face_value="20.00", price="21.00",
                     on_reversal="refulfil", fulfilment_deadline_s=3 * 86_400)  # still inside it on day 2
    run(ledger, c.DefineProduct, sku="COURSE", name="Course", kind="digital_access", face_value="20.00",
        currency="USD", price="20.00", validity_days=30)
    orders: dict[str, UUID] = {}
    orders["delivered"] = paid(ledger, "alice").order_id
    deliver(ledger, orders["delivered"], charged="9.55")
    orders["gave_up"] = paid(ledger, "bob", account="13900000002").order_id
    give_up(ledger, orders["gave_up"])
    orders["reversed"] = paid(ledger, "carol", account="13900000003").order_id
    reversed_plan = deliver(ledger, orders["reversed"])
    orders["pending"] = paid(ledger, "dave", account="13900000004").order_id
    answer(ledger, attempt(ledger, orders["pending"]), "unknown", reason="timed out")
    orders["refulfilled"] = paid(ledger, "erin", sku="TOPUP-20", account="13900000005").order_id
    refulfil_plan = deliver(ledger, orders["refulfilled"])
    granted = ledger.place_order(ledger.context("storefront"), customer_id="frank", sku="COURSE", quantity=1)
    assert ledger.capture_payment(ledger.context("psp"), granted.order_id, payment_reference="pay-course",
                                  amount=granted.amount_due, provider="psp").outcome == "delivered"
    orders["granted"] = granted.order_id
    clock.advance(days=1)
    answer(ledger, reversed_plan, "reversed", reason="operator_reversal")
    answer(ledger, refulfil_plan, "reversed", reason="operator_reversal")
    assert deliver(ledger, orders["refulfilled"], unhealthy=("cheap",)).supplier == "dear"
    return orders
