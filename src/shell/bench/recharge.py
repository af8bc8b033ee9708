"""`ledger bench recharge`: direct-recharge fulfilments through the ledger against a raw client
calling the same simulated supplier the same way, same run.

- **Throughput**: N recharges, `concurrency` requests in flight. The raw client signs and POSTs
  N requests from `concurrency` threads; the ledger's fulfilment worker drains N paid orders,
  recording every attempt before its call and every answer after it (two commits per
  fulfilment, group-committed by the writer). Orders are placed and paid before the clock runs.
- **Latency**: `concurrency` clients each pay an order and wait until it is delivered, again and
  again: the time from the payment's answer to delivery, against the raw request's own time.

The two sides run in turn, `repeat` times (raw, ledger, raw, ledger, ...); each ratio is given
as the median of its pairs with their range.
"""

from __future__ import annotations

import json
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from ledger import commands as c
from ledger.config import Settings
from ledger.domain.ids import fulfilment_id
from ledger.fulfilment.connector import signature
from ledger.fulfilment.worker import FulfilmentWorker
from ledger.service.ledger import Ledger
from shell.bench.stores import bench_ledger, throwaway_store
from shell.simulated import simulated_supplier

SKU = "BENCH-TOPUP"


@dataclass
class Side:
    rate: float  # fulfilments (or raw requests) per second
    p99_ms: float
    p50_ms: float


@dataclass
class RechargeBench:
    store: str
    fulfilments: int
    concurrency: int
    latency_ms: int
    pairs: list[tuple[Side, Side]] = field(default_factory=list)  # (raw, ledger) per repeat

    @staticmethod
    def _median(values: list[float]) -> tuple[float, float, float]:
        return statistics.median(values), min(values), max(values)

    @property
    def rate_ratio(self) -> tuple[float, float, float]:
        return self._median([ledger.rate / raw.rate for raw, ledger in self.pairs])

    @property
    def p99_ratio(self) -> tuple[float, float, float]:
        return self._median([ledger.p99_ms / raw.p99_ms for raw, ledger in self.pairs])


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# ---- the raw client ----


def _raw(url: str, secret: str, n: int, concurrency: int) -> Side:
    """N signed POSTs from `concurrency` threads, each timed; the supplier's own pace."""
    latencies: list[float] = []
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:

        def one(i: int) -> None:
            body = json.dumps({"request_id": f"raw-{secrets.token_hex(8)}-{i}", "product": "bench",
                               "account": f"1390000{i % 10_000:04d}", "amount": "10.00", "currency": "USD",
                               "callback_url": None}, separators=(",", ":")).encode()
            began = time.perf_counter()
            answer = client.post(f"{url}/v1/recharges", content=body,
                                 headers={"Content-Type": "application/json", "X-Signature": signature(secret, body)})
            answer.raise_for_status()
            assert answer.json()["status"] == "succeeded"
            latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))
        elapsed = time.perf_counter() - began
    return Side(n / elapsed, _p(latencies, 0.99), _p(latencies, 0.5))


# ---- through the ledger ----


def _setup(ledger: Ledger, url: str, secret: str, concurrency: int) -> None:
    ctx = ledger.context("admin")
    for command in (
        c.DefineProduct(ctx=ctx, sku=SKU, name="Bench top-up", kind="direct_recharge", face_value="10.00",
                        currency="USD", price="10.50", fulfilment_deadline_s=3600),
        c.SetSupplier(ctx=ctx, name="sim", base_url=url, secret=secret, currency="USD", timeout_ms=10_000,
                      concurrency=concurrency),
        c.FundSupplier(ctx=ctx, name="sim", amount="100000000.00", reference="bench"),
        c.SetOffer(ctx=ctx, sku=SKU, supplier="sim", supplier_product="bench", cost="9.50"),
    ):
        ledger.execute(command).get()


def _pay(ledger: Ledger, customer: str, account: str) -> UUID:
    placed = ledger.execute(c.PlaceOrder(ctx=ledger.context("bench"), customer_id=customer, sku=SKU, quantity=1,
                                         recipient_account=account)).get()
    ledger.execute(c.CapturePayment(ctx=ledger.context("bench"), order_id=placed.order_id,  # type: ignore[union-attr]
                                    payment_reference=f"pay-{placed.order_id}", amount="10.50",  # type: ignore[union-attr]
                                    provider="bench")).get()
    return fulfilment_id(placed.order_id)  # type: ignore[union-attr]


class _Settled:
    """Which fulfilments the worker ended, and when."""

    def __init__(self) -> None:
        self.at: dict[UUID, float] = {}
        self.events: dict[UUID, threading.Event] = {}
        self.lock = threading.Lock()
        self.all_done = threading.Event()
        self.expected = 0

    def __call__(self, fid: UUID) -> None:
        with self.lock:
            self.at[fid] = time.perf_counter()
            event = self.events.get(fid)
            if len(self.at) >= self.expected:
                self.all_done.set()
        if event is not None:
            event.set()


def _ledger_side(ledger: Ledger, settings: Settings, tag: str, n: int, latency_orders: int,
                 concurrency: int) -> Side:
    settled = _Settled()
    worker = FulfilmentWorker(ledger, settings, threads=concurrency * 4, on_settled=settled)
    # Throughput: a backlog of paid orders, drained.
    with ThreadPoolExecutor(8) as pool:
        backlog = list(pool.map(lambda i: _pay(ledger, f"{tag}-c{i}", f"1380{i % 10_000_000:07d}"), range(n)))
    settled.expected = len(backlog)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), name="bench-fulfilment")
    began = time.perf_counter()
    thread.start()
    try:
        if not settled.all_done.wait(600):
            raise RuntimeError(f"only {len(settled.at)} of {n} fulfilments ended in 600 s")
        elapsed = time.perf_counter() - began
        # Latency: each client pays, then waits for its delivery, again and again.
        worker.follow(ledger.writer)  # taken up as payments commit, as in `ledger serve`
        latencies: list[float] = []
        settled.expected = n + latency_orders

        def client(k: int) -> None:
            for j in range(k, latency_orders, concurrency):
                event = threading.Event()
                placed_fid = _pay_and_watch(ledger, settled, event, f"{tag}-l{j}", f"1370{j:07d}")
                paid = time.perf_counter()
                if not event.wait(60):
                    raise RuntimeError(f"fulfilment {placed_fid} did not end in 60 s")
                latencies.append(settled.at[placed_fid] - paid)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(client, range(concurrency)))
    finally:
        stop.set()
        worker.wake()
        thread.join()
        worker.close()
    return Side(n / elapsed, _p(latencies, 0.99), _p(latencies, 0.5))


def _pay_and_watch(ledger: Ledger, settled: _Settled, event: threading.Event, customer: str, account: str) -> UUID:
    placed = ledger.execute(c.PlaceOrder(ctx=ledger.context("bench"), customer_id=customer, sku=SKU, quantity=1,
                                         recipient_account=account)).get()
    order_id: Any = getattr(placed, "order_id")  # noqa: B009
    fid = fulfilment_id(order_id)
    with settled.lock:
        settled.events[fid] = event
    ledger.execute(c.CapturePayment(ctx=ledger.context("bench"), order_id=order_id,
                                    payment_reference=f"pay-{order_id}", amount="10.50", provider="bench")).get()
    return fid


def bench_recharge(settings: Settings, *, fulfilments: int = 2000, concurrency: int = 16, latency_ms: int = 20,
                   latency_orders: int = 400, repeat: int = 3, say: Callable[[str], None] = print) -> RechargeBench:
    secret = secrets.token_urlsafe(24)
    with throwaway_store(settings) as (url, where), tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp, \
            simulated_supplier(secret, "--latency-ms", str(latency_ms), "--seed", "1") as sim_url:
        result = RechargeBench(where, fulfilments, concurrency, latency_ms)
        ledger = bench_ledger(url, Path(tmp), pool=concurrency + 4)
        run_settings = ledger.settings.model_copy(update={"fulfilment_poll_s": 0.5})
        try:
            _setup(ledger, sim_url, secret, concurrency)
            _raw(sim_url, secret, min(200, fulfilments), concurrency)  # warm both sides' connections
            for round_ in range(1, repeat + 1):
                raw = _raw(sim_url, secret, fulfilments, concurrency)
                say(f"round {round_}: raw client  {raw.rate:8,.0f} requests/s     p50 {raw.p50_ms:6.1f} ms  "
                    f"p99 {raw.p99_ms:6.1f} ms")
                through = _ledger_side(ledger, run_settings, f"r{round_}", fulfilments, latency_orders, concurrency)
                say(f"round {round_}: the ledger  {through.rate:8,.0f} fulfilments/s  p50 {through.p50_ms:6.1f} ms  "
                    f"p99 {through.p99_ms:6.1f} ms (payment to delivered)")
                result.pairs.append((raw, through))
        finally:
            ledger.close()
    return result
