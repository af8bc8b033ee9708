"""`ledger bench audit`: verification against a raw read of the same rows, same run."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audit.log import AuditLog
from audit.rows import EventReader
from audit.store import AuditStore
from audit.verification import verify
from ledger.application import LedgerApp
from ledger.config import Settings
from ledger.domain.errors import DomainError
from shell.bench.replay import seed
from shell.bench.stores import bench_ledger, throwaway_store


@dataclass(frozen=True)
class AuditBench:
    store: str
    events: int
    mean_bytes: float
    build_rate: float
    raw_rate: float
    verify_rate: float


def bench_audit(settings: Settings, *, events: int, realistic: int, say: Callable[[str], None]) -> AuditBench:
    with throwaway_store(settings) as (url, where), tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        ledger = bench_ledger(url, Path(tmp))
        try:
            say(f"seeding {realistic} events through the ledger ...")
            seed(ledger, realistic, random.Random(1))
        except DomainError as error:
            raise RuntimeError(f"seeding failed: {error.message}") from error
        finally:
            ledger.close()
        bench_settings = Settings(database_url=url, data_dir=Path(tmp))
        store, reader = AuditStore(bench_settings), EventReader(bench_settings)
        try:
            say(f"copying rows up to {events} events ...")
            _copy_rows(store, events)
            log = AuditLog(store, reader)
            began = time.perf_counter()
            log.catch_up()
            build = log.size / (time.perf_counter() - began)
            raw_rates, verify_rates = [], []
            for _ in range(2):  # alternate, keep the better of each: the machine is shared
                raw_rates.append(_raw_read(reader))
                result = verify(store, reader)
                if result.first is not None or result.events != log.size:  # no checkpoint here: the tree only
                    raise RuntimeError(f"verification failed on the bench store: {result.first}")
                verify_rates.append(result.events_per_s)
            mean = store.db.query("SELECT avg(length(state)) FROM " + _table(store))[0][0]
            return AuditBench(where, log.size, float(mean), build, max(raw_rates), max(verify_rates))
        finally:
            reader.close()
            store.close()


def _table(store: AuditStore) -> str:
    return f'"{LedgerApp.name.lower()}_events"' if store.db.is_postgres else "stored_events"


def _copy_rows(store: AuditStore, events: int) -> None:
    """Grow the log to `events` rows by copying the realistic ones under new aggregate ids:
    verification hashes bytes, so copies cost what originals cost."""
    table = _table(store)
    new_id = "gen_random_uuid()" if store.db.is_postgres else "lower(hex(randomblob(16)))"
    order = "notification_id" if store.db.is_postgres else "rowid"
    while True:
        have = int(store.db.query(f"SELECT count(*) FROM {table}")[0][0])
        if have >= events:
            with store.db.transaction() as cursor:  # as autovacuum would soon: plans see the new rows
                store.db.execute(cursor, f"ANALYZE {table}")
            return
        with store.db.transaction() as cursor:
            store.db.execute(cursor, f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
                             f"SELECT {new_id}, originator_version, topic, state FROM {table} ORDER BY {order} "
                             "LIMIT ?", (min(have, events - have),))


def _raw_read(reader: EventReader, batch_size: int = 20_000) -> float:
    """Events/s of reading every row the way verification does, without hashing."""
    began, after, count = time.perf_counter(), 0, 0
    while rows := reader.read(after, batch_size):
        after = rows[-1][0]
        count += len(rows)
    return count / (time.perf_counter() - began)
