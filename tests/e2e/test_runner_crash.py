"""A runner killed with SIGKILL mid-batch and restarted ends with exactly the read models of
an uninterrupted run: every batch's rows and positions commit together or not at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.config import Settings
from ledger.service.ledger import Ledger
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import StalePosition, ViewStore
from tests.conftest import TEST_CIPHER_KEY, FakeClock, LedgerFactory


def make_history(ledger: Ledger, clock: FakeClock, purchases: int = 120) -> None:
    admin = ledger.context("admin")
    for sku in ("VIDEO-1M", "COINS-500"):
        ledger.define_product(admin, sku=sku, name=sku, face_value="10", currency="USD", price="9.00",
                              low_stock_threshold=5)
        codes = [(i, f"{sku}-{i:04d}") for i in range(1, purchases + 10)]
        ledger.import_keys(admin, sku=sku, supplier="acme", unit_cost="6.50", codes=codes)
    for n in range(purchases):
        sku = ("VIDEO-1M", "COINS-500")[n % 2]
        placed = ledger.place_order(ledger.context("storefront"), customer_id=f"c{n}", sku=sku, quantity=1,
                                    client_ip=f"10.0.0.{n % 7}", device_id=f"d{n % 11}")
        if n % 5 == 0:
            continue  # left unpaid: expires below
        ledger.capture_payment(ledger.context("psp"), placed.order_id, payment_reference=f"p{n}",
                               amount=placed.amount_due, provider="psp")
        if n % 9 == 0:
            ledger.refund_order(ledger.context("admin"), placed.order_id, amount=placed.amount_due, reason="asked")
    clock.advance(hours=2)
    ledger.expire_due(ledger.context("sweeper"))


def _ledger_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=settings.effective_database_url, LEDGER_CIPHER_KEY=TEST_CIPHER_KEY,
               LEDGER_DATA_DIR=str(tmp_path))
    return env


def _ledger_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from shell.cli import main; main()", *args]


def _kill_once(command: list[str], env: dict[str, str], done: Callable[[], bool], seconds: float = 60) -> None:
    """Run `command` until `done()` (polled every 2 ms), then SIGKILL it."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not done():
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode() if process.stderr else "it exited")
            time.sleep(0.002)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def run_killed_and_restarted(settings: Settings, tmp_path: Path) -> None:
    env = _ledger_env(settings, tmp_path)
    command = _ledger_command("project", "run", "--batch-size", "7", "--poll", "0.05")
    store = ViewStore(settings)
    total = total_events(settings)
    reached = []
    for fraction in (0.2, 0.5, 0.8):
        _kill_once(command, env, lambda f=fraction: store.position("facts@v1") >= f * total)
        reached.append(store.position("facts@v1"))
    store.close()
    # Each kill landed part-way: the next run had work left to redo or resume.
    assert all(0 < r < total for r in reached), (reached, total)


def total_events(settings: Settings) -> int:
    from ledger.application import build_app

    app, _ = build_app(settings)
    try:
        return app.recorder.max_notification_id() or 0
    finally:
        app.close()


def dumps(ledger: Ledger, views_url: str | None = None) -> dict[str, object]:
    store = ViewStore(ledger.settings, views_url)
    runner = Runner(ledger.app, store, build_projections(store), batch_size=500)
    runner.catch_up()
    result = {p.name: p.dump() for p in runner.projections}
    store.close()
    return result


def check(ledger: Ledger, clock: FakeClock, tmp_path: Path) -> None:
    make_history(ledger, clock)
    run_killed_and_restarted(ledger.settings, tmp_path)
    resumed = dumps(ledger)  # restart: resumes from the killed run's committed positions
    uninterrupted = dumps(ledger, f"sqlite:///{tmp_path / 'reference-views.sqlite'}")
    assert resumed == uninterrupted
    inventory = resumed["inventory"]["skus"]  # type: ignore[index]
    assert sum(r["delivered"] + r["revoked"] for r in inventory) == 96  # 120 purchases, 24 left unpaid


def test_sigkill_mid_batch_then_restart_on_sqlite(ledger: Ledger, clock: FakeClock, tmp_path: Path) -> None:
    check(ledger, clock, tmp_path)


@pytest.mark.postgres
def test_sigkill_mid_batch_then_restart_on_postgres(
    make_ledger: LedgerFactory, pg_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    check(make_ledger(pg_url), clock, tmp_path)


def test_a_failing_handler_leaves_nothing_half_applied(ledger: Ledger, clock: FakeClock) -> None:
    """A handler that raises mid-batch must not leave that batch's rows in memory to be
    counted twice when the runner goes on."""
    make_history(ledger, clock, purchases=10)
    store = ViewStore(ledger.settings)
    runner = Runner(ledger.app, store, build_projections(store, ["inventory"]), batch_size=1000)
    inventory = runner.projections[1]
    original = inventory.on_Stock_Delivered  # type: ignore[attr-defined]
    calls = {"n": 0}

    def flaky(event: object, position: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        original(event, position)

    inventory.handlers = {t: (flaky if h == original else h) for t, h in inventory.handlers.items()}
    with pytest.raises(RuntimeError):
        runner.catch_up()
    runner.catch_up()  # start() dropped the half-applied rows and reloaded the committed ones
    clean = dumps(ledger, f"sqlite:///{ledger.settings.data_dir / 'clean.sqlite'}")
    assert {p.name: p.dump() for p in runner.projections} == {k: clean[k] for k in ("facts", "inventory")}


def test_a_batch_built_on_rows_the_store_has_moved_past_never_commits(
    ledger: Ledger, clock: FakeClock, tmp_path: Path
) -> None:
    """Two runners on one store, one left behind (as a commit whose answer was lost leaves a
    runner): its batch starts at a position the store has moved past, so its commit is refused
    and it reloads, instead of appending the journal entries of the events in between again."""
    make_history(ledger, clock, purchases=6)
    store = ViewStore(ledger.settings)
    ahead, behind = (Runner(ledger.app, store, build_projections(store, ["journal"])) for _ in range(2))
    ahead.catch_up(until=ahead.head() // 2)
    for runner in (behind, ahead):  # then the one ahead is behind in turn
        with pytest.raises(StalePosition):
            runner.catch_up()
        runner.catch_up()
        assert runner.position == runner.head()
    clean = dumps(ledger, f"sqlite:///{tmp_path / 'clean.sqlite'}")
    assert {p.name: p.dump() for p in behind.projections} == {k: clean[k] for k in ("facts", "journal")}


@pytest.mark.postgres
def test_a_rebuild_killed_mid_batch_then_run_again_builds_what_an_uninterrupted_one_does(
    make_ledger: LedgerFactory, pg_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    """A rebuild commits several pages of the log at a time (here batches of 5,500 events, read
    5,000 at a time, so every batch spans two pages). Killed with SIGKILL after its first batch
    committed and before the last, it leaves the live read models serving and the next rebuild
    starts over: the result equals the rows of an uninterrupted build."""
    ledger = make_ledger(pg_url)
    make_history(ledger, clock, purchases=40)
    codes = [(i, f"BULK-{i:06d}") for i in range(1, 15_001)]
    ledger.import_keys(ledger.context("admin"), sku="VIDEO-1M", supplier="acme", unit_cost="6.50", codes=codes)
    settings = ledger.settings
    dumps(ledger)  # the live read models (version 1), built by a runner
    env = _ledger_env(settings, tmp_path)
    command = _ledger_command("project", "rebuild", "--all", "--batch-size", "5500")
    store = ViewStore(settings)
    total = total_events(settings)
    _kill_once(command, env, lambda: store.position("facts@v2") > 0, seconds=120)
    killed_at = store.position("facts@v2")
    assert 0 < killed_at < total, (killed_at, total)  # one batch in, the rest not
    assert store.active_versions()["facts"] == 1  # the half-built version never served
    store.close()
    again = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()
    rebuilt = dumps(ledger)  # reads the active versions: the rebuild's
    assert rebuilt == dumps(ledger, f"sqlite:///{tmp_path / 'uninterrupted.sqlite'}")
