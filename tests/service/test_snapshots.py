"""Long-lived aggregates (stock, customers, coupons) are snapshotted; a cold reopen must
read the snapshots back and go on enforcing every rule."""

import logging
from datetime import timedelta

import psycopg
import pytest

from ledger.domain.errors import TooManyUnpaidReservations
from ledger.domain.ids import holder_id, stock_id
from ledger.service.ledger import Ledger
from tests.conftest import FakeClock, LedgerFactory


def test_rules_hold_after_reopening_from_snapshots(make_ledger: LedgerFactory, clock: FakeClock) -> None:
    first = make_ledger(max_unpaid_per_customer=1000, max_unpaid_per_ip=1000)
    ctx = first.context("admin")
    first.define_product(ctx, sku="COINS-100", name="100 coins", face_value="1", currency="USD", price="1.00")
    codes = [(i, f"CODE-{i:05d}") for i in range(1, 700)]
    first.import_keys(ctx, sku="COINS-100", supplier="s", unit_cost="0.50", codes=codes)
    first.create_coupon(
        ctx, code="TENTH", kind="percent", value="10", currency="USD", starts_at=clock.now,
        ends_at=clock.now + timedelta(days=1), per_customer_cap=1000,
    )
    for n in range(260):  # > the Stock (500 events) and Holder (200) snapshot intervals
        placed = first.place_order(
            first.context("storefront"), customer_id="regular", sku="COINS-100", quantity=1,
            coupon_code="TENTH", client_ip="10.0.0.1",
        )
        first.capture_payment(
            first.context("psp"), placed.order_id, payment_reference=f"pay-{n}", amount=placed.amount_due,
            provider="psp",
        )
    assert first.app.snapshots is not None
    assert list(first.app.snapshots.get(stock_id("COINS-100")))
    assert list(first.app.snapshots.get(holder_id("customer", "regular")))

    reopened: Ledger = make_ledger(max_unpaid_per_customer=1, aggregate_cache_size=0)
    assert len(reopened.reads.stock("COINS-100").available) == 699 - 260
    customer = reopened.reads.customer("regular")
    assert customer is not None and customer.units("COINS-100") == 260
    held = reopened.place_order(reopened.context(), customer_id="regular", sku="COINS-100", quantity=1)
    with pytest.raises(TooManyUnpaidReservations):  # the cap holds after a cold reopen
        reopened.place_order(reopened.context(), customer_id="regular", sku="COINS-100", quantity=1)
    clock.advance(hours=1)
    assert [c.order_id for c in reopened.expire_due(reopened.context())] == [held.order_id]


def test_an_old_stock_snapshot_copied_over_the_newest_is_detected_not_served(
    make_ledger: LedgerFactory, pg_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """The attacker with SQL on the database copies the Stock's snapshot of version 500 (more
    keys available) over its snapshot of version 1000: the ciphertext no longer opens under its
    row's version, so the snapshot is skipped and the stock rebuilt from its events."""
    first = make_ledger(pg_url, max_unpaid_per_customer=10_000, max_unpaid_per_ip=10_000)
    ctx = first.context("admin")
    first.define_product(ctx, sku="COINS-100", name="100 coins", face_value="1", currency="USD", price="1.00")
    first.import_keys(ctx, sku="COINS-100", supplier="s", unit_cost="0.50",
                      codes=[(i, f"CODE-{i:05d}") for i in range(1, 700)])
    sold = 0
    while first.app.repository.get(stock_id("COINS-100")).version < 1000:
        placed = first.place_order(first.context("storefront"), customer_id=f"c{sold % 50}", sku="COINS-100",
                                   quantity=1, client_ip="10.0.0.1")
        first.capture_payment(first.context("psp"), placed.order_id, payment_reference=f"pay-{sold}",
                              amount=placed.amount_due, provider="psp")
        sold += 1
    first.close()

    stock = stock_id("COINS-100")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        versions = [v for (v,) in conn.execute("SELECT originator_version FROM ledger_snapshots WHERE originator_id = "
                                               "%s ORDER BY originator_version", (stock,))]
        assert versions == [500, 1000]
        conn.execute("UPDATE ledger_snapshots SET state = (SELECT state FROM ledger_snapshots WHERE originator_id = %s"
                     " AND originator_version = 500) WHERE originator_id = %s AND originator_version = 1000",
                     (stock, stock))

    caplog.set_level(logging.WARNING, logger="ledger.encoding.snapshots")
    reopened = make_ledger(pg_url, aggregate_cache_size=0)
    assert len(reopened.reads.stock("COINS-100").available) == 699 - sold  # no sold key is back
    assert f"the snapshot of {stock} at version 1000 does not open under its own id and version" in caplog.text
