"""`ledger demo` in a fresh directory: the store it leaves behind adds up, and a seed repeats."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

from ledger.config import Settings
from ledger.domain.fulfilment import Fulfilment
from ledger.domain.orders import Order
from ledger.domain.supply import Batch, Key
from ledger.service.ledger import Ledger, open_ledger
from shell.demo import FLAKY, STEADY, iter_events, summarize
from tests.conftest import FakeClock
from tests.helpers import buy, place, stocked_product

ARGS = ["demo", "--seed", "3", "--orders", "300"]


def _run_demo(cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["COLUMNS"] = "160"
    result = subprocess.run(
        [sys.executable, "-m", "shell.cli", *ARGS], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _number(output: str, label: str) -> int:
    match = re.search(rf"│ {re.escape(label)}\s+│\s+([\d,]+) │", output)
    assert match, f"{label!r} not in output:\n{output}"
    return int(match.group(1).replace(",", ""))


def _check_store(data_dir: Path) -> dict[str, object]:
    """Reopen the produced SQLite file with the generated key; verify from the events."""
    assert (data_dir / "ledger.sqlite").exists()
    key_file = data_dir / "cipher.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    ledger = open_ledger(Settings(data_dir=data_dir, database_url=""))
    try:
        summary = summarize(ledger)
        orders_of_key: dict[UUID, set[UUID]] = defaultdict(set)
        order_keys: dict[UUID, list[UUID]] = {}
        quantity: dict[UUID, int] = {}
        voided = revoked = 0
        gave_up: list[str] = []
        for event in iter_events(ledger):
            if isinstance(event, Key.Delivered):
                orders_of_key[event.originator_id].add(event.order_id)
            elif isinstance(event, Order.Placed):
                quantity[event.originator_id] = event.quantity
            elif isinstance(event, Order.KeysDelivered):
                assert event.originator_id not in order_keys, "an order was delivered twice"
                order_keys[event.originator_id] = [k["key_id"] for k in event.keys]
            elif isinstance(event, Batch.Recalled):
                voided += len(event.voided_key_ids)
            elif isinstance(event, Order.Refunded):
                revoked += len(event.revoked_key_ids)
            elif isinstance(event, Fulfilment.GaveUp):
                gave_up.append(event.reason)
        # No key in two orders, and each order got exactly as many keys as it bought.
        assert all(len(orders) == 1 for orders in orders_of_key.values())
        for order_id, keys in order_keys.items():
            assert len(keys) == quantity[order_id]
            assert all(orders_of_key[k] == {order_id} for k in keys)
        units = sum(quantity[o] for o in order_keys)
        assert summary.units_sold == units == summary.keys_delivered == summary.distinct_keys_delivered
        assert summary.units_sold == len(orders_of_key) > 0
        assert summary.keys_in_two_orders == 0
        # Every order ended somewhere: nothing is left reserved after the final sweep.
        assert "reserved" not in summary.orders_by_status and "placed" not in summary.orders_by_status
        assert sum(summary.orders_by_status.values()) == summary.orders
        # The scalper met the limits.
        assert summary.scalper_rejections.get("too-many-unpaid-reservations", 0) > 0
        assert summary.scalper_rejections.get("purchase-limit-reached", 0) > 0
        # Risk was armed after his first burst: the fraud read model caught him (and, fairly,
        # the odd customer who keeps asking for refunds after redeeming), mostly him.
        caught = summary.scalper_rejections.get("risk-rejected", 0)
        assert caught > 0 and caught > summary.rejections["risk-rejected"] - caught
        assert summary.keys_voided > 0 and summary.keys_redeemed > 0 and summary.keys_revoked > 0
        assert summary.gross_profit == summary.revenue - summary.refunds - summary.cost_of_goods_sold
        # The same figures exactly, from other sources than the ones summarize() reads: each
        # order's own state (what it kept, what its keys cost), the recalls and refunds that
        # name keys, and the keys' own aggregates.
        orders = [ledger.reads.order(order_id) for order_id in quantity]
        assert summary.revenue == sum((o.amount_paid for o in orders), Decimal(0))
        assert summary.refunds == sum((o.amount_refunded for o in orders), Decimal(0))
        assert summary.cost_of_goods_sold == sum((o.cost for o in orders), Decimal(0))
        assert summary.gross_profit == sum((o.amount_paid - o.amount_refunded - o.cost for o in orders), Decimal(0))
        assert summary.discounts == sum((o.discount for o in orders if o.delivered), Decimal(0))
        assert summary.keys_voided == voided
        assert summary.keys_revoked == revoked == sum(len(o.revoked) for o in orders)
        redeemed = [key for key in map(ledger.app.repository.get, orders_of_key) if key.redeemed_by is not None]
        assert summary.keys_redeemed == len(redeemed)
        # Every recharge sold ended delivered or refunded (an account no supplier knows): at least
        # one attempt each, at the suppliers the demo set up (which ones, the simulators' draws say).
        assert "fulfilling" not in summary.orders_by_status
        assert summary.recharges_delivered + summary.recharges_refunded == summary.recharges_sold
        assert summary.recharges_delivered > 0 and summary.recharges_refunded > 0 and summary.access_granted > 0
        assert sum(summary.attempts_by_supplier.values()) >= summary.recharges_sold
        assert set(summary.attempts_by_supplier) <= {FLAKY, STEADY} and FLAKY in summary.attempts_by_supplier
        recharges = [o for o in orders if o.recipient is not None]
        assert len(recharges) == summary.recharges_sold
        assert sum(o.status.value == "delivered" for o in recharges) == summary.recharges_delivered
        assert all(o.refundable == 0 for o in recharges if o.status.value == "refunded")
        # Refunded only because no supplier can top up the account: never for want of time or a route.
        assert gave_up == ["account_invalid"] * summary.recharges_refunded
        return summary.numbers()
    finally:
        ledger.close()


def test_demo_adds_up_and_repeats_for_a_seed(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    out1 = _run_demo(first)
    out2 = _run_demo(second)
    for out, cwd in ((out1, first), (out2, second)):
        assert _number(out, "units sold") == _number(out, "keys delivered") == _number(out, "distinct keys delivered")
        assert _number(out, "keys in two orders") == 0
        assert str(cwd / "data" / "ledger.sqlite") in out
        assert "cipher key: generated on this run" in out and str(cwd / "data" / "cipher.key") in out
    summary1 = _check_store(first / "data")
    summary2 = _check_store(second / "data")
    assert summary1 == summary2

    varies = ("events written", "attempts at ", "answers lost")  # Summary.VARIES_BY_RUN: the simulators' draws

    def table(out: str) -> list[str]:
        return [line for line in out.splitlines()
                if line.startswith("│") and "demo summary" not in line and not any(v in line for v in varies)]

    assert table(out1) == table(out2)
    assert _number(out1, "units sold") == summary1["units_sold"]
    assert _number(out1, "recharges delivered") == summary1["recharges_delivered"] > 0
    assert _number(out1, "recharges refunded") == summary1["recharges_refunded"] > 0
    for out in (out1, out2):  # every supplier's own statement agrees with the attempts recorded with it
        assert f"supplier statements reconciled: {FLAKY} 0 differences, {STEADY} 0 differences" in out, out[-2000:]


def test_demo_refuses_a_store_that_is_not_empty(tmp_path: Path) -> None:
    _run_demo(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    result = subprocess.run(
        [sys.executable, "-m", "shell.cli", *ARGS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 1
    assert "error: the store at" in result.stderr and "--reset" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_summary_of_a_small_history_has_the_numbers_worked_out_by_hand(ledger: Ledger, clock: FakeClock) -> None:
    """Five orders whose money is known: the summary's figures are these, not a formula of its own."""
    admin = ledger.context("admin")
    stocked_product(ledger, "GAME-1", keys=4, price="10.00", unit_cost="6.00")
    stocked_product(ledger, "GAME-2", keys=2, price="4.99", unit_cost="2.50")
    ledger.create_coupon(admin, code="TAKE1", kind="amount", value="1.00", currency="USD",
                         starts_at=clock.now - timedelta(days=1), ends_at=clock.now + timedelta(days=1))
    buy(ledger, "alice", "GAME-1", quantity=2)  # paid 20.00 for keys that cost 12.00
    bob, _ = buy(ledger, "bob", "GAME-1", coupon_code="TAKE1")  # paid 9.00 (1.00 off), cost 6.00
    ledger.refund_order(admin, bob.order_id, amount="4.50", reason="goodwill")  # keeps the key
    carol, paid = buy(ledger, "carol", "GAME-2")  # paid 4.99, cost 2.50
    ledger.refund_order(admin, carol.order_id, amount="4.99", reason="wrong game", key_ids=paid.key_ids)
    place(ledger, "dave", "GAME-2")  # never paid: expires
    erin = place(ledger, "erin", "GAME-1")
    ledger.cancel_order(ledger.context("erin"), erin.order_id)
    clock.advance(minutes=16)
    ledger.expire_due(ledger.context("sweeper"))

    s = summarize(ledger)
    assert s.orders == 5 and s.orders_by_status == {"cancelled": 1, "delivered": 2, "expired": 1, "refunded": 1}
    assert s.units_sold == s.keys_delivered == s.distinct_keys_delivered == 4 and s.keys_revoked == 1
    assert s.payments_captured == 3
    assert s.revenue == Decimal("33.99")  # 20.00 + 9.00 + 4.99
    assert s.refunds == Decimal("9.49")  # 4.50 + 4.99
    assert s.discounts == Decimal("1.00")
    assert s.cost_of_goods_sold == Decimal("20.50")  # 12.00 + 6.00 + 2.50: a revoked key's cost is not recovered
    assert s.gross_profit == Decimal("4.00")  # 33.99 - 9.49 - 20.50
