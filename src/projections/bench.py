"""`ledger bench replay`: rebuild every read model from N stored events, against a raw
read of the same notification log in the same run."""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger.bench import _ledger, throwaway_store
from ledger.config import Settings
from ledger.domain.errors import DomainError
from ledger.service.ledger import Ledger
from projections.rebuild import rebuild
from projections.store import ViewStore


@dataclass(frozen=True)
class ReplayBench:
    store: str
    events: int
    seed_seconds: float
    raw_seconds: float
    rebuild_seconds: float

    @property
    def raw_rate(self) -> float:
        return self.events / self.raw_seconds

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
    while (ledger.app.recorder.max_notification_id() or 0) < events:
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


def bench_replay(settings: Settings, events: int = 200_000, batch_size: int = 5000) -> ReplayBench:
    with throwaway_store(settings) as (url, where), tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        ledger = _ledger(url, 2, Path(tmp))
        try:
            began = time.perf_counter()
            try:
                seed(ledger, events, random.Random(1))
            except DomainError as error:
                raise RuntimeError(f"seeding failed: {error.message}") from error
            seeded = time.perf_counter() - began
            total = ledger.app.recorder.max_notification_id() or 0

            began = time.perf_counter()
            start = 1
            while start <= total:
                page = ledger.app.recorder.select_notifications(start, batch_size)
                if not page:
                    break
                start = page[-1].id + 1
            raw = time.perf_counter() - began

            store = ViewStore(ledger.settings)
            began = time.perf_counter()
            rebuild(ledger.app, store, None, batch_size=batch_size)
            rebuilt = time.perf_counter() - began
            store.close()
        finally:
            ledger.close()
    return ReplayBench(where, total, seeded, raw, rebuilt)
