"""Reads the global notification log in order and feeds every projection, committing each
batch's rows and each projection's new position in one transaction: a crash anywhere
neither loses nor double-counts an event.

The rows held in memory are only trusted while they match the store: any failure drops
them at once (no I/O needed), and the next batch reloads them first. The position each
batch was built on is checked when it commits, so a batch built on other rows never does."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.persistence import Notification

from ledger.application import TRANSIENT_DATABASE_ERRORS, LedgerApp
from ledger.storage import event_log
from ledger.storage.database import Changes
from projections.engine.base import Projection
from projections.engine.read_side import Versions
from projections.engine.sizes import PAGE_SIZE
from projections.engine.store import StalePosition, ViewStore

log = logging.getLogger(__name__)


Progress = Callable[[int, int], None]  # (position reached, head)


@dataclass(frozen=True)
class _Batch:
    """A batch applied to memory: what its commit writes, and the positions it was built on."""

    last: int
    count: int
    rate: float
    expected: dict[str, int]  # tracking name -> stored position, for each read model it moves
    changes: list[tuple[Projection, list[Changes]]]
    reached: dict[str, int]  # every read model's position once this batch is in


class Runner:
    def __init__(
        self,
        app: LedgerApp,
        store: ViewStore,
        projections: Sequence[Projection] | Callable[[], Sequence[Projection]],
        *,
        batch_size: int = PAGE_SIZE,
        poll_interval: float = 0.25,
    ) -> None:
        """`projections` may be a factory: then the runner follows version swaps made by a
        rebuild in another process, re-creating its projections at the new versions.

        `batch_size` is events per commit. The log is read `PAGE_SIZE` at a time (less if the
        batch is smaller), the next page read ahead while one is applied, so a large batch
        costs no longer wait for its reads."""
        self.app = app
        self.store = store
        self._factory = projections if callable(projections) else None
        self.projections = list(projections() if callable(projections) else projections)
        self.batch_size = batch_size
        self.page_size = min(batch_size, PAGE_SIZE)
        self.poll_interval = poll_interval
        self.positions: dict[str, int] = {}
        self._versions = Versions(store, refresh_s=1.0)  # a rebuild's swap is looked for once a second
        self._listener: Any = None
        self._loaded = False  # True while the rows in memory are those of the store at `positions`
        self._reader: ThreadPoolExecutor | None = None
        self._pages: Iterator[Sequence[Notification]] | None = None  # the log, page by page
        self._pages_next: tuple[int, int | None] = (0, None)  # where its next page starts, and its stop
        self._decode = event_log.decoder(app)
        self.start()

    # ---- state ----

    def start(self) -> None:
        """Create tables, read positions, load in-memory rows: also how we recover. If any
        of it fails, memory stays dropped and the next batch starts over."""
        self._drop_memory()
        with self.store.transaction() as cursor:
            for projection in self.projections:
                projection.create_tables(cursor)
        positions = {}
        for projection in self.projections:
            # Position first: rows committed after it make the batch's commit fail, not count twice.
            positions[projection.tracking_name] = self.store.position(projection.tracking_name)
            projection.load()
        self.positions = positions
        self._loaded = True

    def _drop_memory(self) -> None:
        self._loaded = False
        for projection in self.projections:
            projection.reset()

    @property
    def position(self) -> int:
        """Every projection has processed every event up to here."""
        return min(self.positions.values(), default=0)

    def head(self) -> int:
        return event_log.head(self.app)

    # ---- processing ----

    def follow_swaps(self) -> bool:
        """Switch to versions a rebuild made active; True if anything changed."""
        if self._factory is None or not self._versions.swapped(self.projections):
            return False
        self.projections = list(self._factory())
        self.start()
        return True

    def run_once(self, stop: int | None = None) -> int:
        """Process one batch (never past `stop`); return how many notifications it read."""
        batch = self._take(self.positions, stop)
        if batch is None:
            return 0
        self._commit(batch)
        return batch.count

    def _take(self, after: Mapping[str, int], stop: int | None) -> _Batch | None:
        """Read the batch after positions `after`, apply it to memory and take its changed rows
        out of it (None: nothing to read). After a failure, memory is dropped."""
        if not self._loaded:
            self.start()
            after = self.positions
        start = min(after.values(), default=0) + 1
        if stop is not None and start > stop:
            return None
        notifications = self._read(start, stop)
        if not notifications:
            return None
        began = time.perf_counter()
        count = 0
        try:
            while True:  # pages until the batch is full or the log (or `stop`) ends
                self._apply(notifications, after)
                count += len(notifications)
                last = notifications[-1].id
                if count >= self.batch_size or len(notifications) < self.page_size or last == stop:
                    break
                notifications = self._read(last + 1, stop)
                if not notifications:
                    break
            rate = count / max(time.perf_counter() - began, 1e-9)
            behind = [p for p in self.projections if last > after[p.tracking_name]]
            return _Batch(last, count, rate, {p.tracking_name: after[p.tracking_name] for p in behind},
                          [(p, p.changes()) for p in behind], {n: max(at, last) for n, at in after.items()})
        except BaseException:
            # Memory may hold rows of a batch that never committed (or did, unacknowledged):
            # drop them now, whatever else is failing; the next batch reloads from the store.
            self._drop_memory()
            raise

    def _write(self, batch: _Batch) -> None:
        """Commit a batch's rows and positions in one transaction (touches no memory: safe in a
        thread while the next batch is applied)."""
        with self.store.transaction() as cursor:
            self.store.expect_positions(cursor, batch.expected)
            self.store.write_changes(cursor, [change for _, changes in batch.changes for change in changes])
            with self.store.pipeline(cursor):
                for projection, _ in batch.changes:
                    self.store.record_position(cursor, projection.tracking_name, batch.last)
                    self.store.record_status(cursor, projection.tracking_name, batch.last, batch.rate)

    def _commit(self, batch: _Batch, written: Future[None] | None = None) -> None:
        """Write the batch (or wait for its write in a thread), then account for it."""
        try:
            if written is None:
                self._write(batch)
            else:
                written.result()
        except BaseException:
            self._drop_memory()
            raise
        for name in batch.expected:
            self.positions[name] = max(self.positions[name], batch.last)
        if written is None:
            for projection in self.projections:
                projection.trim()

    def _read(self, start: int, stop: int | None) -> Sequence[Notification]:
        """The page from `start`, from one `event_log.pages` generator kept while each batch starts
        where the last one ended. While catching up (the page was full) it reads the next page
        ahead in a thread, so the database works on it while this one is decoded and flushed.
        Reading only: what commits is decided by run_once as before."""
        if self._pages is None or self._pages_next != (start, stop):
            if self._reader is None:
                self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runner-read-ahead")
            self._pages = event_log.pages(self.app, start - 1, stop=stop, size=self.page_size,
                                          read_ahead=self._reader)
        notifications = next(self._pages, None)
        if not notifications:
            self._pages = None
            return ()
        self._pages_next = (notifications[-1].id + 1, stop)
        return notifications

    def _apply(self, notifications: Sequence[Notification], after: Mapping[str, int]) -> None:
        """Feed each event to every projection that handles it and has not seen it; decode an
        event only if someone handles it (about a fifth of a store's events nobody does). Who
        handles a topic is worked out once per topic and batch, not once per event."""
        followers = [(p.handlers, after[p.tracking_name]) for p in self.projections]
        chains: dict[str, list[tuple[Callable[..., None], int]]] = {}
        decode = self._decode
        for notification in notifications:
            topic = notification.topic
            chain = chains.get(topic)
            if chain is None:
                chain = chains[topic] = [(handlers[topic], done) for handlers, done in followers if topic in handlers]
            if not chain:
                continue
            event = None
            position = notification.id
            for handler, done in chain:
                if position <= done:
                    continue
                if event is None:
                    event = decode(notification)
                handler(event, position)

    def catch_up(self, until: int | None = None, progress: Progress | None = None) -> int:
        """Process until the head (or `until`) is reached; return events read.

        On PostgreSQL each batch commits in a thread while the next one is applied, so the
        server's work on one overlaps the decoding of the other (one commit in flight at most;
        the next is only sent once it succeeded). Memory is trimmed only with nothing in flight.
        Progress is reported once a batch committed, and the last commit is waited for before
        returning: a failed one is the catch-up's error, like any other."""
        total = 0
        target = until if until is not None else self.head()
        background = ThreadPoolExecutor(1, "runner-commit") if self.store.is_postgres else None
        pending: tuple[_Batch, Future[None]] | None = None
        applied: Mapping[str, int] = self.positions

        def commit(batch: _Batch, written: Future[None] | None = None) -> None:
            self._commit(batch, written)
            if progress is not None:
                progress(self.position, target)

        try:
            while min(applied.values(), default=0) < target:
                batch = self._take(applied, target)
                if pending is not None:
                    in_flight, pending = pending, None
                    commit(*in_flight)
                if batch is None:
                    break
                total += batch.count
                applied = batch.reached
                if background is None or any(p.wants_trim for p in self.projections):
                    commit(batch)
                else:
                    pending = batch, background.submit(self._write, batch)
            if pending is not None:  # the last batch: done only once it committed
                in_flight, pending = pending, None
                commit(*in_flight)
        finally:
            if pending is not None:
                # Already failing: wait for the write in flight and account for it (memory is
                # dropped if it failed), but let the error that stopped the loop propagate.
                with contextlib.suppress(BaseException):
                    self._commit(*pending)
            if background is not None:
                background.shutdown(wait=True)
        return total

    # ---- live ----

    def run_forever(self, stop: threading.Event) -> None:
        """Catch up, then follow the log; on a lost database, back off, reload and resume."""
        backoff = 0.5
        while not stop.is_set():
            try:
                self.follow_swaps()
                if self.run_once() == 0:
                    self._wait_for_writes(stop)
                backoff = 0.5
            except (*TRANSIENT_DATABASE_ERRORS, StalePosition) as error:
                # No reload here: run_once reloads first whenever memory was dropped.
                log.warning("projection runner: %s; retrying in %.1fs", error, backoff)
                self._close_listener()
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                with contextlib.suppress(*TRANSIENT_DATABASE_ERRORS):
                    self.store.drop_dead_connections()

    def _wait_for_writes(self, stop: threading.Event) -> None:
        """PostgreSQL: wake on NOTIFY, with the poll as a safety net. SQLite: poll."""
        if not self.store.is_postgres or not hasattr(self.app.recorder, "channel_name"):
            stop.wait(self.poll_interval)
            return
        if self._listener is None:
            self._listener = self._listen()
        for _ in self._listener.notifies(timeout=self.poll_interval, stop_after=1):
            break

    def _listen(self) -> psycopg.Connection[Any]:
        env = self.app.env
        connection = psycopg.connect(
            dbname=env.get("POSTGRES_DBNAME"), host=env.get("POSTGRES_HOST"), port=env.get("POSTGRES_PORT"),
            user=env.get("POSTGRES_USER"), password=env.get("POSTGRES_PASSWORD") or None, autocommit=True,
            connect_timeout=5,
        )
        channel = self.app.recorder.channel_name  # type: ignore[attr-defined]
        connection.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
        return connection

    def _close_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None

    def close(self) -> None:
        self._close_listener()
        self._pages = None
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
            self._reader = None
