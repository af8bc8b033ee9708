"""The journal of upstream fulfilment: what a delivered, and a refunded, direct recharge posts.

A delivered recharge turns the customer's deposit into revenue; one no supplier could deliver
gives the deposit back, and is no refund of revenue (docs/journal.md)."""

from __future__ import annotations

from decimal import Decimal

from ledger.results import AttemptPlan, FulfilmentState
from ledger.service.ledger import Ledger
from projections.models.journal import trial_balance
from tests.service.test_fulfilment import answer, paid_recharge, recharge_product, start
from tests.service.test_projection_journal import journal_runner

USD = "USD"


def balances(ledger: Ledger) -> dict[str, Decimal]:
    runner, store, journal = journal_runner(ledger)
    runner.catch_up()
    books = trial_balance(store, journal)
    store.close()
    assert books.balanced
    return {account: balance for (account, currency), balance in books.by_account().items() if currency == USD}


def test_a_delivered_recharge_is_revenue_not_a_deposit_kept(ledger: Ledger) -> None:
    recharge_product(ledger)
    plan = start(ledger, paid_recharge(ledger))
    assert isinstance(plan, AttemptPlan)
    answer(ledger, plan, "succeeded", charged="9.60")
    books = balances(ledger)
    assert books.get("customer_deposits", Decimal(0)) == 0, books  # the goods were given
    assert books.get("revenue") == Decimal("-10.50"), books


def test_a_recharge_no_supplier_could_deliver_gives_the_deposit_back(ledger: Ledger) -> None:
    recharge_product(ledger)
    placed = paid_recharge(ledger)
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan)
    answer(ledger, plan, "failed", reason="account_invalid", retryable=False)
    ended = start(ledger, placed)  # a failure no supplier can get past: given up, refunded
    assert isinstance(ended, FulfilmentState) and ended.status == "failed"
    assert str(ledger.reads.order(placed.order_id).status) == "refunded"
    books = balances(ledger)
    assert books.get("refunds", Decimal(0)) == 0, books  # nothing was sold, so nothing of revenue came back
