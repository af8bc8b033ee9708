"""The live runner survives the database going away: every connection to it is killed,
writes go on, and the runner catches up by itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
import pytest

from ledger.service.ledger import Ledger
from projections.registry import build_projections
from projections.runner import Runner
from projections.store import ViewStore
from tests.conftest import FakeClock, LedgerFactory

T = TypeVar("T")


def buy(ledger: Ledger, n: int) -> None:
    placed = ledger.place_order(ledger.context(), customer_id=f"r{n}", sku="RECON-1", quantity=1)
    ledger.capture_payment(ledger.context(), placed.order_id, payment_reference=f"r{n}", amount="3.00",
                           provider="psp")


@pytest.mark.postgres
def test_runner_reconnects_after_connections_are_killed(
    make_ledger: LedgerFactory, pg_url: str, pg_server: str, clock: FakeClock
) -> None:
    ledger = make_ledger(pg_url)
    admin = ledger.context("admin")
    ledger.define_product(admin, sku="RECON-1", name="r", face_value="3", currency="USD", price="3.00")
    ledger.import_keys(admin, sku="RECON-1", supplier="s", unit_cost="1.00", codes=[(i, f"R-{i}") for i in range(40)])
    store = ViewStore(ledger.settings)
    runner = Runner(ledger.app, store, lambda: build_projections(store, ["inventory"]), poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        for n in range(5):
            buy(ledger, n)
        assert _until(lambda: runner.position == ledger.app.recorder.max_notification_id())

        database = pg_url.rsplit("/", 1)[1]
        with psycopg.connect(pg_server, autocommit=True) as admin_conn:
            killed = admin_conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (database,),
            ).fetchone()
        assert killed and killed[0] > 0  # the runner's listener and pooled connections among them

        for n in range(5, 12):
            # The ledger's own pool reconnects too: a killed connection fails once. Each step is
            # retried alone (a payment is idempotent by its reference), so a placement that
            # committed before its payment failed is not placed twice.
            placed = _retrying(lambda n=n: ledger.place_order(ledger.context(), customer_id=f"r{n}", sku="RECON-1",
                                                              quantity=1))
            _retrying(lambda n=n, order=placed.order_id: ledger.capture_payment(
                ledger.context(), order, payment_reference=f"r{n}", amount="3.00", provider="psp"))
        head = ledger.app.recorder.max_notification_id()
        assert _until(lambda: runner.position == head, timeout=30), (runner.position, head)
        skus = {r["sku"]: r for r in runner.projections[1].dump()["skus"]}
        assert skus["RECON-1"]["delivered"] == 12 and skus["RECON-1"]["available"] == 28
    finally:
        stop.set()
        thread.join(timeout=10)
        runner.close()
        store.close()


def _retrying(step: Callable[[], T]) -> T:
    for _ in range(19):
        try:
            return step()
        except (psycopg.Error, OSError, Exception) as error:
            if "OutOfStock" in type(error).__name__:
                raise
            time.sleep(0.1)
    return step()


def _until(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False
