"""2,000 paid recharges through a real `ledger serve` on PostgreSQL and three real supplier
simulators: one failing 30 % of its requests and losing 10 % of its answers, one slow (200 ms),
one reversing 1 % of its successes half a second later. Every order ends delivered or refunded;
by the simulators' own records no account is recharged twice, each delivered order has exactly
one success standing, at the cost the order records, and each refunded one has none; every
supplier's float is what it was funded less what stands charged; the books balance and the read
models the server built equal a rebuild (tests/recharge_chaos.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.recharge_chaos import Storefront, settle_and_check, wait_until_settled, world

pytestmark = pytest.mark.postgres

ORDERS = int(os.environ.get("CHAOS_ORDERS", "2000"))  # more, for a longer run by hand


@pytest.mark.timeout(600)
def test_two_thousand_recharges_through_flaky_slow_and_reversing_suppliers_end_delivered_once_or_refunded(
    pg_url: str, tmp_path: Path
) -> None:
    with world(pg_url, tmp_path, ORDERS) as chaos:
        started = time.monotonic()
        storefront = Storefront(chaos.server)
        orders = storefront.buy_all(ORDERS)
        bought = time.monotonic() - started
        settled = wait_until_settled(chaos, timeout=240)
        figures = settle_and_check(chaos, orders)
    assert figures.delivered + figures.refunded == ORDERS
    assert figures.refunded >= ORDERS // 100  # at least the orders for accounts no supplier knows
    assert all(figures.requests[name] > 0 for name in ("flaky", "reversing", "slow")), figures
    # Every reversal reached the ledger by the supplier's own callback, none had to be told.
    assert figures.reversals_seen > 0 and figures.reversals_delivered == 0, figures
    print(f"\n{figures}\nplaced and paid in {bought:.1f} s; settled {settled:.1f} s later; "
          f"storefront answers {dict(storefront.statuses)}, {storefront.dropped} dropped")
