"""The eventsourcing application: one store, one global notification log."""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import psycopg
from eventsourcing import persistence as es_persistence
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import EventStore, PersistenceError, Recording
from eventsourcing.utils import Environment, EnvType

from ledger.config import Settings
from ledger.domain.catalog import Catalog
from ledger.domain.fulfilment import OpenFulfilments
from ledger.domain.holders import Holder
from ledger.domain.promotions import Coupon, FlashSale
from ledger.domain.recipients import Recipient
from ledger.domain.stock import Stock
from ledger.domain.suppliers import Supplier
from ledger.domain.supply import Redeemer
from ledger.domain.validity import ValidityDay
from ledger.encoding.cipher import KeptKeyAESCipher
from ledger.encoding.snapshots import SealedSnapshotMapper, SealedSnapshotStore
from ledger.vault import derive_key_b64


class LedgerApp(Application[UUID]):
    name = "Ledger"
    # Typed MessagePack (ledger.encoding.transcoding): events written by the library's JSON stay readable.
    env: ClassVar[dict[str, str]] = {"TRANSCODER_TOPIC": "ledger.encoding.transcoding:LedgerTranscoder"}
    # Aggregates that every order touches grow long; snapshots keep cold loads short.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {
        Stock: 500,
        Holder: 200,
        Coupon: 500,
        FlashSale: 500,
        Catalog: 200,
        Supplier: 500,  # two events per attempt; its state holds only open attempts
        OpenFulfilments: 500,  # two events per fulfilment; its state lists only open ones
        Redeemer: 200,  # a code guesser's account grows by one event per refusal
        Recipient: 200,  # one event per order for the account
        ValidityDay: 500,  # one event per key, access or term ending that day, one per sweep
    }

    def commit(self, events: list[Any], aggregates: list[Any]) -> list[Recording[UUID]]:
        """Write `events` in this order in one transaction; then snapshot `aggregates` where due.

        `aggregates` are those the events belong to, as just committed (nothing pending).
        Unlike `save()`, a failure after the commit (a snapshot write losing its connection)
        does not look like a failed write: the events are stored, and snapshots are only a
        shortcut for cold loads, taken again at the next interval."""
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        # Filled directly: collect_events() checks each event against a runtime Protocol,
        # which cost ~7 % of the writer's time.
        processing.events = list(events)
        processing.aggregates = {a.id: a for a in aggregates}
        recordings = self._record(processing)
        try:
            self._snapshot_held(events, aggregates)
        except Exception as error:
            log.warning("snapshot skipped after a commit: %s", type(error).__name__)
        return recordings

    def _snapshot_held(self, events: list[Any], aggregates: list[Any]) -> None:
        """Snapshot each aggregate whose version crossed its interval in this commit, from the
        state in hand (just committed), instead of reading it back from the store as the
        library's own snapshotting does."""
        if self.snapshots is None:
            return
        written = Counter(e.originator_id for e in events)
        for aggregate in aggregates:
            interval = self.snapshotting_intervals.get(type(aggregate))
            new = written.get(aggregate.id, 0)
            if interval and new and aggregate.version // interval > (aggregate.version - new) // interval:
                snapshot_class: Any = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
                self.snapshots.put([snapshot_class.take(aggregate)])

    def construct_snapshot_store(self) -> EventStore[UUID]:
        """Snapshots sealed to their aggregate id and version (ledger.encoding.snapshots); without
        a cipher (no store of ours has none), the library's own."""
        if not isinstance(self.mapper.cipher, KeptKeyAESCipher):
            return super().construct_snapshot_store()
        recorder = self.factory.aggregate_recorder(purpose="snapshots")
        return SealedSnapshotStore(SealedSnapshotMapper(self.mapper, self.mapper.cipher), recorder)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only what `Settings` built: the library would otherwise read os.environ, where a
        key prefixed with this application's name ("LEDGER_") wins, so LEDGER_CIPHER_KEY,
        our master key, would silently replace the derived event key."""
        built = dict(type(self).env)
        if type(self).is_snapshotting_enabled or type(self).snapshotting_intervals:
            built["IS_SNAPSHOTTING_ENABLED"] = "y"  # as the library's own construct_env does
        built.update(env or {})
        return Environment(name, built)


def build_app(settings: Settings, master_key: str | None = None) -> tuple[LedgerApp, str]:
    """The application and the store key it was built with: `master_key` as unlocked by the
    caller (`shell.composition` unlocks it once per process), else unlocked here
    (`ledger.storage.store_key`: StoreKeyError when the cipher key does not open the store)."""
    if master_key is None:
        from ledger.storage.store_key import unlock_store

        master_key = unlock_store(settings).store_key
    env = settings.eventsourcing_env()
    env.update(
        {
            "CIPHER_TOPIC": "ledger.encoding.cipher:KeptKeyAESCipher",  # the library's AES-GCM, key set up once
            "CIPHER_KEY": derive_key_b64(master_key, "event-payload"),
            "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size),
        }
    )
    if settings.aggregate_cache_size == 0:
        del env["AGGREGATE_CACHE_MAXSIZE"]
    return with_startup_retries(lambda: LedgerApp(env=env)), master_key


# Errors after which the database may come back: reconnect and resume. The library re-raises
# driver errors as its own OperationalError / InterfaceError.
TRANSIENT_DATABASE_ERRORS = (
    psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError, ConnectionError,
    es_persistence.OperationalError, es_persistence.InterfaceError,
)

T = TypeVar("T")
log = logging.getLogger(__name__)


def with_startup_retries(build: Callable[[], T], attempts: int = 8) -> T:
    """Several processes starting at once race on CREATE TABLE IF NOT EXISTS in PostgreSQL
    ("tuple concurrently updated"); whoever loses just tries again."""
    for attempt in range(attempts):
        try:
            return build()
        except PersistenceError:
            if attempt + 1 == attempts:
                raise
            time.sleep(0.05 * (attempt + 1) + random.uniform(0, 0.05))
    raise AssertionError("unreachable")
