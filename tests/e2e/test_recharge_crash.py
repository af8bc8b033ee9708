"""The chaos of tests/e2e/test_recharge_chaos.py with fewer orders, and the server SIGKILLed twice
while attempts are outstanding (recorded as sent, not yet answered), restarted each time; then a
supplier that answers "pending" and calls back later, and the server killed while its callbacks
stream in. The
store is the only memory: the restarted worker asks the suppliers about every outstanding
attempt before it tries anything else, so the same checks hold at the end. Every order ends
delivered or refunded, no account is recharged twice by the simulators' own records, every
float is exact, the books balance and the read models equal a rebuild."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from tests.recharge_chaos import (
    Storefront,
    SupplierSpec,
    World,
    outstanding_attempts,
    settle_and_check,
    wait_until_settled,
    world,
)

pytestmark = pytest.mark.postgres

ORDERS = 300
KILLS = 2


AT_KILL = 3  # requests awaiting their callback when the kill is decided: some still are when it lands


class Killer:
    """Kills the server each time the storefront has paid another share of the orders (and more
    are still to come) and an attempt is outstanding in the store; counts, after each kill, the
    attempts the dead server left outstanding (the store as it was at the kill), then restarts it."""

    def __init__(self, chaos: World, storefront: Storefront) -> None:
        self.chaos, self.storefront = chaos, storefront
        self.done = threading.Event()
        self.left_outstanding: list[int] = []
        self.started = time.monotonic()
        self.kill_times: list[float] = []  # seconds after the storefront started
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="killer")

    def __enter__(self) -> Killer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        ledger = self.chaos.ledger()
        try:
            for kill in range(KILLS):
                while not self.done.is_set():
                    due = self.storefront.paid >= (kill + 1) * ORDERS // (KILLS + 1)
                    if due and outstanding_attempts(ledger):
                        break
                    time.sleep(0.02)
                else:
                    return
                self.chaos.server.kill()
                self.kill_times.append(time.monotonic() - self.started)
                self.left_outstanding.append(outstanding_attempts(ledger))
                self.chaos.server.start()
        except BaseException as error:  # reported by __exit__, in the test's thread
            self.error = error
        finally:
            ledger.close()

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.left_outstanding) < KILLS and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.1)


@pytest.mark.timeout(600)
def test_recharges_with_the_server_sigkilled_twice_while_attempts_are_outstanding_end_delivered_once_or_refunded(
    pg_url: str, tmp_path: Path
) -> None:
    with world(pg_url, tmp_path, ORDERS) as chaos:
        storefront = Storefront(chaos.server, clients=8)
        with Killer(chaos, storefront) as killer:
            orders = storefront.buy_all(ORDERS)
            bought = time.monotonic() - killer.started
            killer.wait(timeout=120)
        assert len(killer.left_outstanding) == KILLS, f"killed {len(killer.left_outstanding)} times"
        assert sum(killer.left_outstanding) > 0, killer.left_outstanding  # on a busy machine one may find all answered
        settled = wait_until_settled(chaos, timeout=180)
        figures = settle_and_check(chaos, orders)
    assert figures.delivered + figures.refunded == ORDERS
    assert all(figures.requests[name] > 0 for name in ("flaky", "reversing", "slow")), figures
    print(f"\n{figures}\nkilled at {[round(t, 1) for t in killer.kill_times]} s with {killer.left_outstanding} "
          f"attempts outstanding; the last order paid at {bought:.1f} s, every one settled {settled:.1f} s later; "
          f"storefront answers {dict(storefront.statuses)}, {storefront.dropped} requests cut")


# Answers "pending", decides 300 ms later and calls back: the ledger learns outcomes by callback
# (it polls only every 5 s), so callbacks are arriving, and being applied, all the time.
CALLING_BACK = (SupplierSpec("calling-back", ("--callback-delay-ms", "300", "--fail-rate", "0.1", "--cost-rate",
                                              "0.95"), "9.50", Decimal(1), 16),)
CALLBACK_ORDERS = 200


def sim_log(chaos: World) -> list[str]:
    return chaos.sims["calling-back"].log.read_text(errors="replace").splitlines()


def callbacks_sent(chaos: World) -> list[str]:
    return [line for line in sim_log(chaos) if " callback " in line]


def awaiting_callback(chaos: World) -> int:
    """Requests the supplier answered "pending" and has not called back about yet."""
    lines = sim_log(chaos)
    return sum("-> 202 pending" in line for line in lines) - sum(" callback " in line for line in lines)


@pytest.mark.timeout(600)
def test_recharges_with_the_server_sigkilled_while_callbacks_are_applied_end_delivered_once_or_refunded(
    pg_url: str, tmp_path: Path
) -> None:
    with world(pg_url, tmp_path, CALLBACK_ORDERS, poll_s=5, specs=CALLING_BACK) as chaos, \
            ThreadPoolExecutor(1) as background:
        storefront = Storefront(chaos.server, clients=8)
        buying = background.submit(storefront.buy_all, CALLBACK_ORDERS)
        ledger = chaos.ledger()
        try:
            deadline = time.monotonic() + 120
            while sum("-> 204" in line for line in callbacks_sent(chaos)) < CALLBACK_ORDERS // 4 \
                    or awaiting_callback(chaos) < AT_KILL:
                assert time.monotonic() < deadline, "no callbacks arrived\n" + chaos.server.output()
                time.sleep(0.01)
            chaos.server.kill()  # with callbacks in flight: some cut mid-request, some mid-commit
            left = outstanding_attempts(ledger)
            time.sleep(1)  # down for longer than a callback's delay: the outstanding ones' callbacks find it gone
            chaos.server.start()
        finally:
            ledger.close()
        orders = buying.result(timeout=180)
        assert left > 0
        settled = wait_until_settled(chaos, timeout=180)
        figures = settle_and_check(chaos, orders)
    cut = [line for line in callbacks_sent(chaos) if "(attempt 1)" not in line]
    assert cut, "no callback was cut by the kill"  # the supplier had to try again, or gave up: it was in flight
    assert figures.delivered + figures.refunded == CALLBACK_ORDERS
    print(f"\n{figures}\nkilled with {left} attempts outstanding; {len(cut)} callbacks needed another try or "
          f"were given up; every order settled {settled:.1f} s after the storefront finished")
