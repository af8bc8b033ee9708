"""Direct recharge under chaos, end to end, on PostgreSQL: a real `ledger serve` and three real
supplier simulators (one flaky, one slow, one reversing some of its successes later), paid
recharge orders placed over HTTP by a pool of storefront clients, and the checks that every
order ended delivered or refunded, no account was recharged twice by the simulators' own
records, the books balance and the read models equal a rebuild.

Used by tests/e2e/test_recharge_chaos.py (many orders, no kill) and
tests/e2e/test_recharge_crash.py (fewer orders, the server SIGKILLed while attempts are
outstanding). Suppliers and offers are set up through the store before the server starts (the
admin routes for them are another branch's)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from ledger import commands as c
from ledger.config import Settings
from ledger.domain.fulfilment import AttemptStatus, Fulfilment, OpenFulfilments
from ledger.domain.ids import OPEN_FULFILMENTS_ID, fulfilment_id, supplier_id
from ledger.domain.suppliers import Supplier
from ledger.service.ledger import Ledger, open_ledger
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from projections.models.journal import Journal, trial_balance
from tests.conftest import TEST_CIPHER_KEY
from tests.helpers import all_events
from tests.served import Served, auth, serve_env
from tests.simulator_process import SECRET, SRC, Simulator

SKU = "TOPUP-10"
PRICE = Decimal("10.50")
FACE = Decimal("10.00")
INVALID_EVERY = 100  # every 100th order is for an account the suppliers do not know: refunded at once


@dataclass(frozen=True)
class SupplierSpec:
    """A simulated supplier: its simulator options, its offer's cost, the share of the orders its
    float covers, and its concurrency. Routing takes the cheapest supplier whose float covers the
    cost, so a float that runs out sends the rest of the orders on to the next one."""

    name: str
    options: tuple[str, ...]
    cost: str
    share: Decimal
    concurrency: int

    def float_for(self, orders: int) -> Decimal:
        return (Decimal(self.cost) * self.share * orders).quantize(Decimal("0.01"))


# The cheapest first: the flaky one takes what its float covers (40 % of the orders) and fails or
# loses many; the reversing one the next 35 %; the slow one the rest (its float covers them all).
# Each charges its cost (its --cost-rate of the 10.00 face value): an order's cost is its price.
SUPPLIERS = (
    SupplierSpec("flaky", ("--fail-rate", "0.3", "--timeout-rate", "0.1", "--cost-rate", "0.95"), "9.50",
                 Decimal("0.40"), 8),
    SupplierSpec("reversing", ("--reverse-rate", "0.01", "--reverse-delay-ms", "500", "--cost-rate", "0.96"),
                 "9.60", Decimal("0.35"), 8),
    SupplierSpec("slow", ("--latency-ms", "200", "--cost-rate", "0.97"), "9.70", Decimal(1), 16),
)
TIMEOUT_MS = 500  # a lost answer is given up on after this, and asked about again


def account_of(n: int) -> str:
    """The n-th order's account; the simulators know no account that starts with 0000."""
    return f"0000{n:07d}" if n % INVALID_EVERY == INVALID_EVERY - 1 else f"139{n:08d}"


# ---- the world: simulators, the store, the server ----


@dataclass
class World:
    settings: Settings
    sims: dict[str, Simulator]
    server: Served
    tmp_path: Path
    orders: int  # what the suppliers' floats are sized for
    specs: tuple[SupplierSpec, ...] = SUPPLIERS

    def ledger(self) -> Ledger:
        """A ledger over the same store (closed by the caller): to read it, or, with the server
        stopped, to write what the callback route would."""
        return open_ledger(self.settings)


@contextmanager
def world(pg_url: str, tmp_path: Path, orders: int, *, poll_s: float = 0.05,
          specs: tuple[SupplierSpec, ...] = SUPPLIERS) -> Iterator[World]:
    sims: dict[str, Simulator] = {}
    server: Served | None = None
    try:
        for n, spec in enumerate(specs):
            sims[spec.name] = Simulator(tmp_path / f"sim-{spec.name}.log", "--seed", str(11 + n), *spec.options).start()
        settings = Settings(database_url=pg_url, cipher_key=TEST_CIPHER_KEY, data_dir=tmp_path)
        set_up_store(settings, sims, orders, specs)
        env = serve_env(pg_url, tmp_path, pool_size=8)
        env.update({
            # The code under test, whatever the environment installed.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), str(SRC.parent), env.get("PYTHONPATH")])),
            "LEDGER_FULFILMENT_POLL_S": str(poll_s),
            "LEDGER_FULFILMENT_BREAKER_OPEN_S": "1",
            # Every storefront client is 127.0.0.1: the unpaid-orders-per-IP guard would refuse them.
            "LEDGER_MAX_UNPAID_PER_IP": "100000",
        })
        server = Served(env, tmp_path / "serve.log", workers=1)
        # The suppliers call back: a reversal of a completed recharge reaches the ledger only so.
        env["LEDGER_PUBLIC_URL"] = server.base_url
        server.start()
        yield World(settings, sims, server, tmp_path, orders, specs)
    finally:
        if server is not None:
            server.stop()
        for sim in sims.values():
            sim.kill()


def set_up_store(settings: Settings, sims: dict[str, Simulator], orders: int,
                 specs: tuple[SupplierSpec, ...] = SUPPLIERS) -> None:
    ledger = open_ledger(settings)
    try:
        ctx = ledger.context("admin")
        ledger.execute(c.DefineProduct(ctx=ctx, sku=SKU, name="Top-up 10", kind="direct_recharge",
                                       face_value=str(FACE), currency="USD", price=str(PRICE),
                                       fulfilment_deadline_s=3600)).get()
        for spec in specs:
            ledger.execute(c.SetSupplier(ctx=ctx, name=spec.name, base_url=sims[spec.name].url, secret=SECRET,
                                         currency="USD", timeout_ms=TIMEOUT_MS,
                                         concurrency=spec.concurrency)).get()
            ledger.execute(c.FundSupplier(ctx=ctx, name=spec.name, amount=str(spec.float_for(orders)),
                                          reference=f"wire-{spec.name}")).get()
            ledger.execute(c.SetOffer(ctx=ctx, sku=SKU, supplier=spec.name, supplier_product=f"{spec.name}-10",
                                      cost=spec.cost)).get()
    finally:
        ledger.close()


# ---- the storefront ----


@dataclass
class Storefront:
    """Clients placing and paying orders as a storefront does: each request under its own
    Idempotency-Key, sent again (same key) when the connection drops or the answer is a 5xx."""

    server: Served
    clients: int = 16
    dropped: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(base_url=self.server.base_url, timeout=30,
                                                       headers=auth("storefront"))
        return client

    def send(self, path: str, body: dict[str, Any], deadline_s: float = 180,
             role: str = "storefront") -> dict[str, Any]:
        headers = {**auth(role), "Idempotency-Key": uuid.uuid4().hex}
        deadline = time.monotonic() + deadline_s
        while True:
            assert time.monotonic() < deadline, f"{path} never answered"
            try:
                response = self._client().post(path, json=body, headers=headers)
            except httpx.HTTPError:
                with self._lock:
                    self.dropped += 1
                time.sleep(0.1)
                continue
            with self._lock:
                self.statuses[response.status_code] += 1
            if response.status_code >= 500:
                time.sleep(0.1)
                continue
            answer: dict[str, Any] = response.json()
            assert response.status_code in (200, 201), (path, response.status_code, answer)
            return answer

    def buy(self, n: int) -> UUID:
        placed = self.send("/v1/orders", {"customer_id": f"chaos-{n}", "sku": SKU, "quantity": 1,
                                          "recipient_account": account_of(n)})
        assert placed["status"] == "reserved" and placed["amount_due"] == str(PRICE), placed
        paid = self.send(f"/v1/orders/{placed['order_id']}/payments", {
            "payment_reference": f"chaos-pay-{n}", "amount": placed["amount_due"], "provider": "psp"}, role="payments")
        assert paid["outcome"] == "accepted", paid
        return UUID(placed["order_id"])

    def buy_all(self, n: int) -> list[UUID]:
        with ThreadPoolExecutor(self.clients, thread_name_prefix="storefront") as pool:
            return list(pool.map(self.buy, range(n)))


# ---- waiting ----


def open_fulfilments(ledger: Ledger) -> list[UUID]:
    index = ledger.reads.find(OpenFulfilments, OPEN_FULFILMENTS_ID)
    return list(index.ids) if index else []


def outstanding_attempts(ledger: Ledger) -> int:
    """How many open fulfilments have an attempt outstanding (sent, or maybe sent, and unanswered)."""
    found = (ledger.reads.find(Fulfilment, f) for f in open_fulfilments(ledger))
    return sum(1 for f in found if f is not None and f.current is not None)


def wait_until_settled(world: World, timeout: float) -> float:
    """Until no fulfilment is open (every paid order delivered or refunded); the seconds it took."""
    started = time.monotonic()
    ledger = world.ledger()
    try:
        while open_fulfilments(ledger):
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{len(open_fulfilments(ledger))} fulfilments still open after {timeout} s "
                                     f"({outstanding_attempts(ledger)} with an attempt outstanding)\n"
                                     f"{world.server.output()}")
            time.sleep(0.2)
    finally:
        ledger.close()
    return time.monotonic() - started


# ---- the end: reversals, then every check ----


@dataclass
class Figures:
    orders: int = 0
    delivered: int = 0
    refunded: int = 0
    requests: Counter[str] = field(default_factory=Counter)  # per supplier: request ids it received
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (supplier, its final status)
    attempts: Counter[int] = field(default_factory=Counter)  # attempts per fulfilment -> orders
    lost_answers: int = 0  # attempts the ledger recorded an unknown outcome for
    reversals_seen: int = 0  # reversals the ledger recorded itself (the supplier's callback, or a status look-up)
    reversals_delivered: int = 0  # reversals the test had to tell the ledger (callbacks lost to a killed server)
    resent: int = 0  # attempts a supplier had never received when asked: sent again, same id

    def __str__(self) -> str:
        per_supplier = {name: dict(sorted((s, n) for (sup, s), n in self.outcomes.items() if sup == name))
                        for name in sorted(self.requests)}
        return (f"{self.orders} orders: {self.delivered} delivered, {self.refunded} refunded; "
                f"requests per supplier {dict(self.requests)}; outcomes {per_supplier}; "
                f"attempts per order {dict(sorted(self.attempts.items()))}; {self.lost_answers} answers lost; "
                f"reversals: {self.reversals_seen} recorded by the ledger, {self.reversals_delivered} told by the "
                f"test; {self.resent} attempts resent (never received)")


def charges(world: World) -> dict[str, tuple[str, dict[str, Any]]]:
    """request_id -> (supplier, the simulator's own record of it), from all three."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, sim in world.sims.items():
        for charge in sim.charges():
            assert charge["request_id"] not in found, f"{charge['request_id']} reached two suppliers"
            found[charge["request_id"]] = (name, charge)
    return found


def reversals_heard(world: World, ledger: Ledger) -> tuple[int, int]:
    """(reversals the simulators made, those the ledger recorded)."""
    made = heard = 0
    for request_id, (_, charge) in charges(world).items():
        if charge["status"] == "reversed":
            made += 1
            fulfilment = ledger.reads.find(Fulfilment, UUID(request_id.rsplit("-", 1)[0]))
            heard += fulfilment is not None and fulfilment.attempts[request_id]["status"] == AttemptStatus.REVERSED
    return made, heard


def wait_for_reversals(world: World, timeout: float = 30) -> None:
    """Until every reversal the simulators made reached the served ledger by its callback."""
    ledger = world.ledger()
    try:
        deadline = time.monotonic() + timeout
        while (found := reversals_heard(world, ledger))[1] < found[0] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        ledger.close()


def deliver_reversals(world: World, ledger: Ledger, figures: Figures) -> None:
    """Reversals the ledger has not heard of, told as a supplier's callback would be: none after a
    clean run (the callbacks came), some after a crash test's kills (a supplier gives up calling a
    server that is down, and the worker never asks about a completed attempt again; supplier
    reconciliation names what is left, as `reversed_there_succeeded_here`). The server is stopped;
    the simulators' reversals are all due by now."""
    for request_id, (name, charge) in sorted(charges(world).items()):
        if charge["status"] != "reversed":
            continue
        fulfilment = ledger.reads.find(Fulfilment, UUID(request_id.rsplit("-", 1)[0]))
        assert fulfilment is not None, request_id
        if fulfilment.attempts[request_id]["status"] == AttemptStatus.REVERSED.value:
            figures.reversals_seen += 1
            continue
        state = ledger.execute(c.RecordAttempt(
            ctx=ledger.context(f"callback:{name}"), fulfilment_id=fulfilment.id, attempt_id=request_id,
            outcome="reversed", supplier=name, supplier_ref=charge["supplier_ref"], reason="reversed")).get()
        assert state.changed, request_id
        figures.reversals_delivered += 1


def settle_and_check(world: World, orders: list[UUID]) -> Figures:
    """Stop the server, deliver the reversals, then check every order, every account, every
    supplier's float, the books and the read models; the figures of the run."""
    assert "Traceback" not in world.server.log.read_text(errors="replace"), world.server.output()
    time.sleep(1.0)  # past --reverse-delay-ms after the last success: every reversal has happened
    wait_for_reversals(world)
    world.server.stop()
    figures = Figures(orders=len(orders))
    ledger = world.ledger()
    try:
        deliver_reversals(world, ledger, figures)
        figures.resent = sum(isinstance(e, Fulfilment.AttemptResent) for e in all_events(ledger))
        check_orders(world, ledger, orders, figures)
        check_floats(world, ledger)
        check_books(world, ledger)
    finally:
        ledger.close()
    for sim in world.sims.values():
        sim.assert_no_errors()
    return figures


def check_orders(world: World, ledger: Ledger, orders: list[UUID], figures: Figures) -> None:
    records = charges(world)
    for name, charge in records.values():
        figures.requests[name] += 1
        figures.outcomes[(name, charge["status"])] += 1
    standing = {rid: (name, ch) for rid, (name, ch) in records.items() if ch["status"] == "succeeded"}
    per_account = Counter(ch["account"] for _, ch in standing.values())
    twice = {account: n for account, n in per_account.items() if n > 1}
    assert not twice, f"accounts recharged more than once: {twice}"
    by_fulfilment: dict[str, list[str]] = {}
    for request_id in standing:
        by_fulfilment.setdefault(request_id.rsplit("-", 1)[0], []).append(request_id)

    assert open_fulfilments(ledger) == []
    for order_id in orders:
        order = ledger.reads.order(order_id)
        fulfilment = ledger.reads.find(Fulfilment, fulfilment_id(order_id))
        assert fulfilment is not None and fulfilment.current is None, order_id
        figures.attempts[len(fulfilment.attempts)] += 1
        figures.lost_answers += sum(1 for a in fulfilment.attempts.values() if a["unknown"])
        assert set(fulfilment.attempts) <= set(records), f"{order_id}: an attempt no supplier received"
        successes = by_fulfilment.get(str(fulfilment.id), [])
        if str(order.status) == "delivered":
            figures.delivered += 1
            assert len(successes) == 1, (order_id, successes)
            (request_id,) = successes
            name, charge = standing[request_id]
            ours = fulfilment.succeeded
            assert ours is not None and ours[0] == request_id and ours[1]["supplier"] == name, (order_id, ours)
            assert Decimal(charge["charged"]) == order.cost == ours[1]["charged"], (order_id, charge, order.cost)
            assert charge["account"] == ledger.vault.accounts.unseal(fulfilment.account_sealed)
            assert (order.amount_paid, order.amount_refunded) == (PRICE, Decimal(0)), order_id
        else:
            assert str(order.status) == "refunded", (order_id, order.status)
            figures.refunded += 1
            assert successes == [], f"{order_id} was refunded, and its account recharged: {successes}"
            assert order.amount_paid == order.amount_refunded == PRICE, order_id
            assert order.cost == Decimal(0), order_id
    assert figures.delivered + figures.refunded == len(orders)
    assert sum(per_account.values()) == figures.delivered


def check_floats(world: World, ledger: Ledger) -> None:
    """Each supplier's float: funded, less what it charged for successes that stand, nothing held."""
    records = charges(world)
    for spec in world.specs:
        supplier = ledger.reads.find(Supplier, supplier_id(spec.name))
        assert supplier is not None
        charged = sum((Decimal(ch["charged"]) for name, ch in records.values()
                       if name == spec.name and ch["status"] == "succeeded"), Decimal(0))
        assert supplier.holds == {}, (spec.name, supplier.holds)
        assert supplier.charged == charged, (spec.name, supplier.charged, charged)
        assert supplier.available == spec.float_for(world.orders) - charged, spec.name


def check_books(world: World, ledger: Ledger) -> None:
    """The read models the server built (caught up with what was written since it stopped) equal a
    rebuild from zero, and the journal balances."""
    live_store = ViewStore(world.settings)  # beside the events, on PostgreSQL: where the server built them
    rebuilt_store = ViewStore(world.settings, f"sqlite:///{world.tmp_path / 'rebuilt-views.sqlite'}")
    try:
        live = Runner(ledger.app, live_store, build_projections(live_store), batch_size=500)
        live.catch_up()
        rebuilt = Runner(ledger.app, rebuilt_store, build_projections(rebuilt_store), batch_size=500)
        rebuilt.catch_up()
        for built, expected in zip(live.projections, rebuilt.projections, strict=True):
            assert built.dump() == expected.dump(), built.name
        journal = next(p for p in live.projections if isinstance(p, Journal))
        books = trial_balance(live_store, journal)
        assert books.balanced, books.rows
    finally:
        live_store.close()
        rebuilt_store.close()
