"""`ledger bench replay`: rebuild every read model from N stored events, against a raw
read of the same notification log in the same run (timed before and after the rebuild; the
faster counts)."""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger.collector import tuned_for_bulk
from ledger.config import Settings
from ledger.domain.errors import DomainError
from ledger.service.ledger import Ledger, utc_now
from ledger.storage import event_log
from projections.engine.base import Projection
from projections.engine.rebuild import rebuild
from projections.engine.registry import PROJECTION_NAMES, build_projections
from projections.engine.runner import Runner
from projections.engine.sizes import PAGE_SIZE, REBUILD_BATCH_SIZE
from projections.engine.store import ViewStore
from shell.bench.stores import bench_ledger, throwaway_store


@dataclass(frozen=True)
class LagSample:
    """Projection lag while writers keep writing: seconds the oldest unprocessed event waited."""

    seconds: float
    purchases: int
    p50: float
    p99: float
    worst: float


@dataclass(frozen=True)
class ReplayBench:
    store: str
    events: int
    seed_seconds: float
    raw_seconds: float
    rebuild_seconds: float
    decode_seconds: float  # reading and decoding what the read models handle, applying nothing
    read_models: tuple[str, ...]
    lag: LagSample | None = None

    @property
    def raw_rate(self) -> float:
        return self.events / self.raw_seconds

    @property
    def decode_rate(self) -> float:
        return self.events / self.decode_seconds

    @property
    def rebuild_rate(self) -> float:
        return self.events / self.rebuild_seconds

    @property
    def ratio(self) -> float:
        return self.rebuild_rate / self.raw_rate


def seed(ledger: Ledger, events: int, rng: random.Random) -> None:
    """A realistic mix (imports, orders, payments, expiries, refunds, redemptions) in
    batches of purchases, until the log holds at least `events` events."""
    now = [datetime(2026, 1, 5, tzinfo=UTC)]
    ledger.clock = lambda: now[0]
    admin = ledger.context("bench")
    skus = [f"SKU-{n}" for n in range(6)]
    for n, sku in enumerate(skus):
        ledger.define_product(admin, sku=sku, name=sku, face_value="10", currency="USD", price=f"{5 + n}.00",
                              low_stock_threshold=20)
    ledger.create_coupon(admin, code="BENCH10", kind="percent", value="10", currency="USD", starts_at=now[0],
                         ends_at=now[0] + timedelta(days=3650))
    imported = 0
    customer = 0
    while event_log.head(ledger.app) < events:
        for sku in skus:  # keep stock ahead of sales
            codes = [(i + 1, f"{sku}-{imported + i:09d}") for i in range(400)]
            ledger.import_keys(admin, sku=sku, supplier=rng.choice(("acme", "globex", "initech")),
                               unit_cost=f"{rng.randint(200, 450) / 100:.2f}", codes=codes)
        imported += 400
        with ledger.batch():
            for _ in range(300):
                customer += 1
                now[0] += timedelta(seconds=rng.randint(1, 90))
                ctx = ledger.context("storefront")
                placed = ledger.place_order(ctx, customer_id=f"c{customer % 5000}-{customer}", sku=rng.choice(skus),
                                            quantity=rng.randint(1, 3),
                                            coupon_code="BENCH10" if rng.random() < 0.2 else None)
                if rng.random() < 0.85:
                    ledger.capture_payment(ctx, placed.order_id, payment_reference=f"pay-{customer}",
                                           amount=placed.amount_due, provider="bench")
        now[0] += timedelta(hours=1)
        ledger.expire_due(ledger.context("sweeper"))


def measure_lag(ledger: Ledger, store: ViewStore, seconds: float, writers: int = 2) -> LagSample:
    """Writers place and pay orders on the real clock for `seconds` while a live runner follows;
    every 50 ms, sample how long the oldest event not yet projected has been waiting."""
    ledger.clock = utc_now
    stop, done = threading.Event(), threading.Event()
    runner = Runner(ledger.app, store, lambda: build_projections(store), poll_interval=0.05)
    runner.catch_up()
    follower = threading.Thread(target=runner.run_forever, args=(done,), daemon=True)
    follower.start()
    count = [0]
    lock = threading.Lock()

    def write(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            ctx = ledger.context("storefront")
            try:
                placed = ledger.place_order(ctx, customer_id=f"lag-{worker}-{n}", sku=f"SKU-{n % 6}", quantity=1)
                ledger.capture_payment(ctx, placed.order_id, payment_reference=f"lag-{worker}-{n}",
                                       amount=placed.amount_due, provider="bench")
            except DomainError:
                continue
            with lock:
                count[0] += 1

    threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(writers)]
    for thread in threads:
        thread.start()
    samples: list[float] = []
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        time.sleep(0.05)
        samples.append(event_log.age_of_next(ledger.app, runner.position, utc_now()))
    stop.set()
    for thread in threads:
        thread.join()
    done.set()
    follower.join(timeout=10)
    runner.close()
    samples.sort()
    return LagSample(seconds, count[0], samples[len(samples) // 2], samples[int(len(samples) * 0.99)], samples[-1])


@contextmanager
def seeded_store(settings: Settings, events: int) -> Iterator[tuple[Ledger, str, float]]:
    """A throwaway store seeded with at least `events` events: (ledger, where, seconds it took)."""
    with throwaway_store(settings) as (url, where), tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        ledger = bench_ledger(url, Path(tmp))
        try:
            began = time.perf_counter()
            try:
                seed(ledger, events, random.Random(1))
            except DomainError as error:
                raise RuntimeError(f"seeding failed: {error.message}") from error
            yield ledger, where, time.perf_counter() - began
        finally:
            ledger.close()


def _raw_read(ledger: Ledger, total: int) -> float:
    """Seconds to read the log up to `total` without decoding it, in the runner's pages, with the
    collector tuned as the rebuild tunes it (untuned, the read took 1.6 times as long)."""
    return _read(ledger, total, set())


def _read(ledger: Ledger, total: int, topics: set[str]) -> float:
    """Seconds to read the log up to `total` as the runner does, decoding the events of `topics`
    (those the read models handle) and handing them to nobody: with topics, the floor under any
    rebuild; without, the raw read."""
    decode = event_log.decoder(ledger.app)
    with tuned_for_bulk():
        began = time.perf_counter()
        for page in event_log.pages(ledger.app, stop=total, size=PAGE_SIZE):
            if topics:
                for notification in page:
                    if notification.topic in topics:
                        decode(notification)
        return time.perf_counter() - began


def _chosen(store: ViewStore, names: list[str], versions: dict[str, int] | None = None) -> list[Projection]:
    """The facts, and the read models of `names` besides (looking things up in those facts)."""
    return [p for p in build_projections(store, versions=versions) if p.name == "facts" or p.name in names]


def _rebuild_some(ledger: Ledger, store: ViewStore, names: list[str], batch_size: int) -> None:
    """Build `names` and the facts they look things up in from zero, into tables of their own
    (a throwaway store's read models are at version 1; these are version 2, never made active)."""
    runner = Runner(ledger.app, store, _chosen(store, names, {name: 2 for name in PROJECTION_NAMES}),
                    batch_size=batch_size)
    try:
        with tuned_for_bulk():
            runner.catch_up(until=event_log.head(ledger.app))
    finally:
        runner.close()


def bench_replay(
    settings: Settings, events: int = 200_000, batch_size: int = REBUILD_BATCH_SIZE, lag_seconds: float = 10.0,
    read_models: list[str] | None = None,
) -> ReplayBench:
    """`read_models`: rebuild only those (and the facts); all of them when None."""
    names = list(read_models or PROJECTION_NAMES)
    with seeded_store(settings, events) as (ledger, where, seeded):
        total = event_log.head(ledger.app)
        raw = _raw_read(ledger, total)
        store = ViewStore(ledger.settings)
        topics = {topic for p in _chosen(store, names) for topic in p.handlers}
        began = time.perf_counter()
        if read_models is None:
            rebuild(ledger.app, store, None, batch_size=batch_size)
        else:
            _rebuild_some(ledger, store, names, batch_size)
        rebuilt = time.perf_counter() - began
        # A process's first read of the log ran at half the speed of the next ones (20k against
        # 38-45k events/s for 200k events on PostgreSQL: cold caches on both sides), which
        # flattered the ratio. The faster of the two raw reads counts.
        raw = min(raw, _raw_read(ledger, total))
        decoded = _read(ledger, total, topics)
        lag = measure_lag(ledger, store, lag_seconds) if lag_seconds > 0 and read_models is None else None
        store.close()
    return ReplayBench(where, total, seeded, raw, rebuilt, decoded, tuple(names), lag)
