"""The runner survives the database going away: every connection to it is killed, writes go
on, and the runner catches up by itself, counting each event once however many of its
retries fail on the way."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from ledger.application import TRANSIENT_DATABASE_ERRORS
from ledger.service.ledger import Ledger
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from tests.conftest import FakeClock, LedgerFactory
from tests.e2e.test_runner_crash import dumps


def stocked(ledger: Ledger) -> Ledger:
    admin = ledger.context("admin")
    ledger.define_product(admin, sku="RECON-1", name="r", face_value="3", currency="USD", price="3.00")
    ledger.import_keys(admin, sku="RECON-1", supplier="s", unit_cost="1.00", codes=[(i, f"R-{i}") for i in range(40)])
    return ledger


def buy(ledger: Ledger, n: int) -> None:
    placed = ledger.place_order(ledger.context(), customer_id=f"r{n}", sku="RECON-1", quantity=1)
    ledger.capture_payment(ledger.context(), placed.order_id, payment_reference=f"r{n}", amount="3.00",
                           provider="psp")


def buy_despite_kills(ledger: Ledger, n: int) -> None:
    for _ in range(20):  # the ledger's own pool reconnects too; a killed connection fails once
        try:
            buy(ledger, n)
            return
        except (psycopg.Error, OSError, Exception) as error:
            if "OutOfStock" in type(error).__name__:
                raise
            time.sleep(0.1)
    raise AssertionError(f"purchase {n} never went through")


def kill_connections(pg_server: str, pg_url: str) -> int:
    """Terminate every connection to the test database (the ledger's, the runner's); return how many."""
    database = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_server, autocommit=True) as admin_conn:
        killed = admin_conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (database,),
        ).fetchone()
    return int(killed[0]) if killed else 0


def assert_counted_once(ledger: Ledger, runner: Runner, tmp_path: Path, delivered: int) -> None:
    """The runner's read models equal ones built once, from scratch, in another store."""
    skus = {r["sku"]: r for r in runner.projections[1].dump()["skus"]}
    assert skus["RECON-1"]["delivered"] == delivered and skus["RECON-1"]["available"] == 40 - delivered
    clean = dumps(ledger, f"sqlite:///{tmp_path / 'clean-views.sqlite'}")
    assert {p.name: p.dump() for p in runner.projections} == {p.name: clean[p.name] for p in runner.projections}


@pytest.mark.postgres
def test_runner_reconnects_after_connections_are_killed(
    make_ledger: LedgerFactory, pg_url: str, pg_server: str, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = stocked(make_ledger(pg_url))
    store = ViewStore(ledger.settings)
    runner = Runner(ledger.app, store, lambda: build_projections(store, ["inventory"]), poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        for n in range(5):
            buy(ledger, n)
        assert _until(lambda: runner.position == ledger.app.recorder.max_notification_id())

        assert kill_connections(pg_server, pg_url) > 0  # the runner's listener and pooled connections among them

        for n in range(5, 12):
            buy_despite_kills(ledger, n)
        head = ledger.app.recorder.max_notification_id()
        assert _until(lambda: runner.position == head, timeout=30), (runner.position, head)
        assert_counted_once(ledger, runner, tmp_path, delivered=12)
    finally:
        stop.set()
        thread.join(timeout=10)
        runner.close()
        store.close()


@pytest.mark.postgres
def test_a_batch_retried_after_its_connections_died_counts_once(
    make_ledger: LedgerFactory, pg_url: str, pg_server: str, clock: FakeClock, tmp_path: Path
) -> None:
    """Without a live thread, so the same every time. The pool hands its idle connections out
    oldest first, so after the kill they fail one after the other: the batch's commit fails,
    the reload after it fails on the next one, and so on. Played with an even and an odd
    number of dead connections (one burnt by hand): in one round the last dead one is met by
    a reload and the batch is then retried on a live connection. Each round reads the log
    from zero into tables of a fresh version, so the batch needs no read before it commits."""
    ledger = stocked(make_ledger(pg_url))
    for n in range(4):
        buy(ledger, n)
    for version, parity in ((2, 0), (3, 1)):
        store = ViewStore(ledger.settings)
        runner = Runner(ledger.app, store, build_projections(store, ["inventory"], {"facts": version,
                                                                                   "inventory": version}))
        try:
            head = ledger.app.recorder.max_notification_id() or 0
            pool = store._datastore.pool
            pool.wait()  # no connection is still being opened: the idle ones are all there is
            idle = pool.get_stats()["pool_available"]
            assert kill_connections(pg_server, pg_url) > 0
            for _ in range((idle + parity) % 2):
                with pytest.raises(TRANSIENT_DATABASE_ERRORS):
                    store.query("SELECT 1")
            failures = 0
            while runner.position < head and failures < 100:
                try:
                    runner.run_once()
                except TRANSIENT_DATABASE_ERRORS:
                    failures += 1
            assert failures > 0  # the batch met dead connections
            assert runner.position == head
            assert_counted_once(ledger, runner, tmp_path, delivered=4)
        finally:
            store.close()


def _until(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False
