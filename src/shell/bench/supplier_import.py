"""Import throughput: card keys per second from a supplier file, against a plain bulk insert.

The ledger side is what `ledger import-keys` does: read and parse a file of N fresh
codes, check them (keyed hash, duplicates, already stored), then write the batch, the
stock's replenishment and N encrypted `Key.Registered` events in one transaction. The
baseline, in the same run and on the same throwaway store, writes N rows of the same
average size into a table shaped like the library's stored-events table, in one
transaction, the fastest plain way: binary COPY on PostgreSQL, `executemany` on SQLite.
"""

from __future__ import annotations

import base64
import os
import resource
import secrets
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ledger.config import Settings
from ledger.service.ledger import open_ledger
from ledger.storage import event_log
from ledger.supplier_import.files import read_codes, read_lines
from shell.bench.stores import throwaway_store

SKU = "BENCH-IMPORT"
# Shaped like the library's events tables: SQLite numbers the log by rowid.
_TABLE = (
    "CREATE TABLE baseline_events (originator_id {uuid} NOT NULL, originator_version {int} NOT NULL, topic text, "
    "state {bytes}{serial}, PRIMARY KEY (originator_id, originator_version))"
)


@dataclass(frozen=True)
class ImportBenchResult:
    store: str
    codes: int
    avg_row_bytes: int
    ledger_seconds: float
    ledger_cpu_seconds: float  # this process only: Python's share, without the database server's
    baseline_seconds: float
    peak_rss_mib: float

    @property
    def ledger_rate(self) -> float:
        return self.codes / self.ledger_seconds

    @property
    def baseline_rate(self) -> float:
        return self.codes / self.baseline_seconds

    @property
    def ratio(self) -> float:
        return self.ledger_rate / self.baseline_rate


def bench_import(settings: Settings, codes: int = 100_000) -> ImportBenchResult:
    with throwaway_store(settings) as (url, where), tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        ledger = open_ledger(Settings(
            database_url=url, data_dir=Path(tmp), cipher_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        ))
        try:
            ctx = ledger.context("bench")
            ledger.define_product(ctx, sku=SKU, name="Bench import", face_value="10.00", currency="USD", price="9.00")
            keyfile = Path(tmp) / "codes.txt"
            keyfile.write_text("".join(f"{secrets.token_hex(10).upper()}\n" for _ in range(codes)))
            started, cpu = time.perf_counter(), time.process_time()
            parsed, line_errors = read_codes(read_lines(keyfile))
            imported = ledger.import_keys(
                ctx, sku=SKU, supplier="bench", unit_cost="1.00", codes=parsed, line_errors=line_errors
            )
            ledger_seconds, ledger_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
            peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            sample = event_log.page(ledger.app, imported.position - 100, 100)
            avg_row_bytes = sum(len(n.state) for n in sample) // len(sample)
        finally:
            ledger.close()
        baseline = _baseline_postgres if settings.is_postgres else _baseline_sqlite
        baseline_seconds = baseline(url, codes, avg_row_bytes)
    return ImportBenchResult(
        where, codes, avg_row_bytes, ledger_seconds, ledger_cpu_seconds, baseline_seconds, peak_rss_mib
    )


def _rows(count: int, row_bytes: int) -> list[tuple[uuid.UUID, int, str, bytes]]:
    return [(uuid.uuid4(), 1, "bench:Key.Registered", os.urandom(row_bytes)) for _ in range(count)]


def _baseline_postgres(url: str, count: int, row_bytes: int) -> float:
    rows = _rows(count, row_bytes)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_TABLE.format(uuid="uuid", int="bigint", bytes="bytea", serial=", notification_id bigserial"))
        conn.execute("CREATE UNIQUE INDEX ON baseline_events (notification_id)")
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("LOCK TABLE baseline_events IN EXCLUSIVE MODE")
            copy = "COPY baseline_events (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
            with cur.copy(copy) as out:
                out.set_types(["uuid", "int8", "text", "bytea"])
                for row in rows:
                    out.write_row(row)
        return time.perf_counter() - started


def _baseline_sqlite(url: str, count: int, row_bytes: int) -> float:
    rows = [(r[0].hex, *r[1:]) for r in _rows(count, row_bytes)]
    path = str(Path(url[len("sqlite:///"):]).with_name("baseline.sqlite"))
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_TABLE.format(uuid="TEXT", int="INTEGER", bytes="BLOB", serial=""))
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO baseline_events VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        return time.perf_counter() - started
