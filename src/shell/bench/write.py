"""Write throughput: purchases per second through the ledger, against a plain-SQL baseline.

A purchase is `place_order` then `capture_payment`, each by a distinct customer so that no
purchase limit or unpaid-reservation cap gets in the way; client threads hand them to the
one writer, which group-commits what queues. The baseline inserts the same number of rows
per purchase as a plain-driver application would — one transaction for the placement,
one for the payment — with plain sqlite3 / psycopg and the same number of client
threads, into a table shaped like the library's stored-events table. Both run on a
throwaway store that is removed afterwards.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ledger.collector import tuned_for_serving
from ledger.commands import CapturePayment, PlaceOrder
from ledger.config import Settings
from ledger.results import Placed
from ledger.service.ledger import Ledger
from ledger.storage import event_log
from ledger.writer.outcomes import Done
from ledger.writer.writer import Writer
from shell.bench.stores import bench_ledger, throwaway_store

SKU_PREFIX = "BENCH"


@dataclass
class SaveStats:
    """Time the writer spent committing (encode, encrypt, insert, commit)."""

    calls: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class WriterAlone:
    """The writer's own capacity: purchases handed to it `chunk` at a time by one thread, so no
    client threads compete for its GIL; the process's CPU per purchase bounds its rate."""

    purchases: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.purchases / self.seconds

    @property
    def cpu_per_purchase_us(self) -> float:
        return 1e6 * self.cpu_seconds / self.purchases


@dataclass
class BenchResult:
    store: str
    workers: int
    purchases: int
    skus: int
    rows_per_purchase: int
    transactions_per_purchase: int
    ledger_seconds: float
    baseline_seconds: float
    in_flight: int  # purchases each client thread keeps going at once
    save: SaveStats
    failed: int
    avg_row_bytes: int
    batch_sizes: list[int] = field(default_factory=list)  # commands per transaction the writer formed
    alone: WriterAlone | None = None

    @property
    def ledger_rate(self) -> float:
        return (self.purchases - self.failed) / self.ledger_seconds

    @property
    def baseline_rate(self) -> float:
        return self.purchases / self.baseline_seconds

    @property
    def ratio(self) -> float:
        return self.ledger_rate / self.baseline_rate


# ---- the ledger side ----


def _instrument(ledger: Ledger) -> SaveStats:
    stats = SaveStats()
    save = ledger.app.commit

    def timed_save(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return save(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            with stats.lock:
                stats.calls += 1
                stats.seconds += elapsed

    ledger.app.commit = timed_save  # type: ignore[method-assign]
    return stats


def _setup(ledger: Ledger, skus: int, keys_per_sku: int, chunk: int = 2000) -> None:
    ctx = ledger.context("bench")
    for n in range(skus):
        sku = f"{SKU_PREFIX}-{n}"
        ledger.define_product(ctx, sku=sku, name=f"Bench key {n}", face_value="10.00", currency="USD", price="9.00")
        run = uuid.uuid4().hex[:8]
        for start in range(0, keys_per_sku, chunk):
            codes = [(i + 1, f"B{n}-{run}-{i:08d}") for i in range(start, min(keys_per_sku, start + chunk))]
            ledger.import_keys(ctx, sku=sku, supplier="bench", unit_cost="5.00", codes=codes)


def _purchase(ledger: Ledger, n: int, skus: int, tag: str) -> None:
    ctx = ledger.context(f"customer:{tag}-{n}")
    placed = ledger.place_order(ctx, customer_id=f"{tag}-{n}", sku=f"{SKU_PREFIX}-{n % skus}", quantity=1)
    ledger.capture_payment(
        ctx, placed.order_id, payment_reference=f"{tag}-pay-{n}", amount=str(placed.amount_due), provider="bench"
    )


def _pipelined_client(ledger: Ledger, writer: Writer, ns: list[int], skus: int, in_flight: int) -> int:
    """One client thread that keeps up to `in_flight` purchases going at once, as an async
    HTTP client or a pool of storefront requests would: each placement's answer releases its
    payment, each payment's answer the next placement. The number of purchases that failed."""
    pending: deque[tuple[int, bool, Future[Done[Any]]]] = deque()
    todo = iter(ns)
    failed = 0

    def place(n: int | None) -> None:
        if n is not None:
            command = PlaceOrder(ctx=ledger.context(f"customer:cust-{n}"), customer_id=f"cust-{n}",
                                 sku=f"{SKU_PREFIX}-{n % skus}", quantity=1)
            pending.append((n, True, writer.submit(command)))

    for _ in range(in_flight):
        place(next(todo, None))
    while pending:
        n, placing, future = pending.popleft()
        done = future.result()
        if done.error is not None:
            failed += 1
            place(next(todo, None))
        elif placing:
            placed = done.value
            assert isinstance(placed, Placed)
            pay = CapturePayment(ctx=ledger.context(f"customer:cust-{n}"), order_id=placed.order_id,
                                 payment_reference=f"cust-pay-{n}", amount=str(placed.amount_due), provider="bench")
            pending.append((n, False, writer.submit(pay)))
        else:
            place(next(todo, None))
    return failed


def _writer_alone(ledger: Ledger, writer: Writer, ns: range, skus: int, chunk: int = 200) -> WriterAlone:
    """Place `chunk` orders at once, then pay them at once, until `ns` are bought."""
    began, cpu = time.perf_counter(), time.process_time()
    for start in range(ns.start, ns.stop, chunk):
        batch = range(start, min(ns.stop, start + chunk))
        placed = writer.execute_all([
            PlaceOrder(ctx=ledger.context(f"customer:alone-{n}"), customer_id=f"alone-{n}",
                       sku=f"{SKU_PREFIX}-{n % skus}", quantity=1) for n in batch])
        paid = writer.execute_all([
            CapturePayment(ctx=ledger.context(f"customer:alone-{n}"), order_id=done.value.order_id,
                           payment_reference=f"alone-pay-{n}", amount=str(done.value.amount_due), provider="bench")
            for n, done in zip(batch, placed, strict=True) if isinstance(done.value, Placed)])
        answers: list[Done[Any]] = [*placed, *paid]
        failed = [d.error for d in answers if d.error is not None]
        if failed or len(paid) != len(batch):
            raise RuntimeError(f"the writer refused purchases while measured alone: {failed[:1]!r}")
    return WriterAlone(len(ns), time.perf_counter() - began, time.process_time() - cpu)


def _run_threads(workers: int, count: int, job: Callable[[int], None]) -> tuple[float, int]:
    """Wall time and number of failed jobs."""
    failed = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(job, n) for n in range(count)]:
            try:
                future.result()
            except Exception:
                failed += 1
    return time.perf_counter() - started, failed


# ---- the baseline side ----

_ROWS_SQL = "INSERT INTO stored_events (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)"


def _rows(split: list[int], row_bytes: int) -> list[list[tuple[Any, ...]]]:
    return [
        [(uuid.uuid4(), 1, "bench:Event", os.urandom(row_bytes)) for _ in range(rows)]
        for rows in split
    ]


def _baseline_sqlite(url: str, workers: int, purchases: int, split: list[int], row_bytes: int) -> float:
    path = str(Path(url[len("sqlite:///"):]).with_name("baseline.sqlite"))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
            "notification_id INTEGER PRIMARY KEY AUTOINCREMENT, UNIQUE (originator_id, originator_version))"
        )
    local = threading.local()

    def job(_: int) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        for rows in _rows(split, row_bytes):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_ROWS_SQL, [(str(r[0]), *r[1:]) for r in rows])
            conn.execute("COMMIT")

    seconds, failed = _run_threads(workers, purchases, job)
    if failed:
        raise RuntimeError(f"{failed} baseline purchases failed")
    return seconds


def _baseline_postgres(url: str, workers: int, purchases: int, split: list[int], row_bytes: int) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE baseline_events (originator_id uuid NOT NULL, originator_version bigint NOT NULL, "
            "topic text, state bytea, notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
        )
    local = threading.local()
    connections: list[psycopg.Connection[Any]] = []
    sql = _ROWS_SQL.replace("stored_events", "baseline_events").replace("?", "%s")

    def job(_: int) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(url)
            connections.append(conn)
        for rows in _rows(split, row_bytes):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(sql, rows)

    try:
        seconds, failed = _run_threads(workers, purchases, job)
    finally:
        for conn in connections:
            conn.close()
    if failed:
        raise RuntimeError(f"{failed} baseline purchases failed")
    return seconds


# ---- both ----


def bench_write(
    settings: Settings, workers: int = 8, purchases: int = 2000, skus: int = 8, in_flight: int = 1,
    alone: bool = False,
) -> BenchResult:
    with throwaway_store(settings) as (url, where), tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        ledger = bench_ledger(url, Path(tmp), pool=workers + 2)
        try:
            _setup(ledger, skus, (2 if alone else 1) * purchases // skus + 2)
            # One warm-up purchase per SKU: counts the rows a purchase writes, and opens the pool.
            head = event_log.head(ledger.app)
            for n in range(skus):
                _purchase(ledger, n, skus, "warm")
            after = event_log.head(ledger.app)
            rows_per_purchase = (after - head) // skus
            sample = event_log.page(ledger.app, head, rows_per_purchase)
            avg_row_bytes = sum(len(n.state) for n in sample) // max(1, len(sample))
            split = _split(sample, rows_per_purchase)
            stats = _instrument(ledger)
            writer = ledger.writer
            assert isinstance(writer, Writer)  # in this process
            formed = len(writer.batch_sizes)
            with tuned_for_serving():  # the collector as `ledger serve` runs the writer with
                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    shares = [list(range(w, purchases, workers)) for w in range(workers)]
                    failed = sum(pool.map(lambda ns: _pipelined_client(ledger, writer, ns, skus, in_flight),
                                          shares))
                ledger_seconds = time.perf_counter() - started
                batch_sizes = list(writer.batch_sizes)[formed:]
                by_itself = _writer_alone(ledger, writer, range(purchases), skus) if alone else None
        finally:
            ledger.close()
        baseline = _baseline_postgres if settings.is_postgres else _baseline_sqlite
        with tuned_for_serving():  # the same collector for both sides
            baseline_seconds = baseline(url, workers, purchases, split, avg_row_bytes)
    return BenchResult(
        store=where, workers=workers, purchases=purchases, skus=skus, rows_per_purchase=rows_per_purchase,
        transactions_per_purchase=len(split), ledger_seconds=ledger_seconds, baseline_seconds=baseline_seconds,
        in_flight=in_flight, save=stats, failed=failed, avg_row_bytes=avg_row_bytes,
        batch_sizes=batch_sizes, alone=by_itself,
    )


def _split(sample: Any, rows: int) -> list[int]:
    """Rows per transaction of one purchase: the placement's events, then the payment's.

    The warm-up purchase's events are contiguous in the log: placement first (ends with
    the Stock reservation), then the payment (starts with the order's PaymentCaptured).
    """
    for i, notification in enumerate(sample):
        if notification.topic.endswith("Order.PaymentCaptured"):
            return [i, rows - i]
    return [rows]


# ---- growth: does a purchase cost more when the stock and the log are large? ----


@dataclass
class GrowthResult:
    store: str
    rates: dict[int, float]  # keys in stock -> purchases/s
    events: dict[int, int]  # keys in stock -> events stored before the timed purchases
    batch_sizes: dict[int, list[int]]

    @property
    def ratio(self) -> float:
        small, large = min(self.rates), max(self.rates)
        return self.rates[large] / self.rates[small]


IMPORT_CHUNK = 5_000  # codes per supplier batch while seeding


def _buy_one(ledger: Ledger, n: int) -> None:
    _purchase(ledger, n, 1, "cust")


def bench_growth(
    settings: Settings, sizes: tuple[int, ...] = (1_000, 1_000_000), purchases: int = 1_000, workers: int = 8,
    say: Callable[[str], None] = print,
) -> GrowthResult:
    """Purchases/s from one SKU holding each of `sizes` keys (and as many more as the timed
    purchases take), each on a fresh store that holds one event per key already (the
    imports), with `workers` client threads."""
    result = GrowthResult("", {}, {}, {})
    for keys in sizes:
        with throwaway_store(settings) as (url, where), tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
            result.store = where.split(" ")[0]
            ledger = bench_ledger(url, Path(tmp), pool=workers + 2)
            try:
                began = time.perf_counter()
                _setup(ledger, 1, keys + purchases + 1, chunk=IMPORT_CHUNK)  # `keys` left after the sale
                result.events[keys] = event_log.head(ledger.app)
                say(f"{keys:,} keys imported in {time.perf_counter() - began:.1f} s "
                    f"({result.events[keys]:,} events stored)")
                _purchase(ledger, 0, 1, "warm")
                writer = ledger.writer
                assert isinstance(writer, Writer)
                formed = len(writer.batch_sizes)
                seconds, failed = _run_threads(workers, purchases, functools.partial(_buy_one, ledger))
                if failed:
                    raise RuntimeError(f"{failed} purchases failed")
                result.rates[keys] = purchases / seconds
                result.batch_sizes[keys] = list(writer.batch_sizes)[formed:]
            finally:
                ledger.close()
    return result
