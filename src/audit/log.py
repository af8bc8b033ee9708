"""The follower that grows the Merkle tree: it tails the notification log and commits each
batch's leaves and completed nodes in one transaction, so a crash loses or repeats nothing.
Two followers at once (the server's and a CLI's) are safe: the loser of a batch reloads."""

from __future__ import annotations

import logging
import sqlite3
import threading

import psycopg
from eventsourcing import persistence as es_persistence

from audit.checkpoint import Checkpoint, Signer
from audit.merkle import CompactRange
from audit.rows import EventReader, leaf_hashes
from audit.store import AuditStore
from ledger.application import TRANSIENT_DATABASE_ERRORS

log = logging.getLogger(__name__)
CONFLICT = (es_persistence.IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)


class AuditLog:
    def __init__(self, store: AuditStore, reader: EventReader, *, batch_size: int = 10_000) -> None:
        self.store = store
        self.reader = reader
        self.batch_size = batch_size
        self.lock = threading.Lock()  # the writer, the server thread and a checkpoint may call in
        self.start()

    def start(self) -> None:
        """Read the tree's size and right edge back from the database: also how we recover."""
        size, self.position = self.store.head()
        self.tree = CompactRange(size, self.store.frontier(size))

    @property
    def size(self) -> int:
        return self.tree.size

    def root(self) -> bytes:
        return self.tree.root()

    def run_once(self, stop: int | None = None) -> int:
        """Add one batch of events to the tree; how many were read."""
        rows = self.reader.read(self.position, self.batch_size, stop)
        if not rows:
            return 0
        first = self.tree.size
        hashes = leaf_hashes(rows)
        made: list[tuple[int, int, bytes]] = []
        for h in hashes:
            self.tree.append(h, made)
        leaves = [(first + i, row[0], h) for i, (row, h) in enumerate(zip(rows, hashes, strict=True))]
        try:
            self.store.append(leaves, made)
        except CONFLICT:
            log.info("another follower added these leaves first; reloading")
            self.start()
            return len(rows)
        except BaseException:
            self.start()
            raise
        self.position = rows[-1][0]
        return len(rows)

    def catch_up(self, until: int | None = None) -> int:
        """Bring the tree up to the log's head (or `until`); how many events were read."""
        with self.lock:
            total = 0
            target = until if until is not None else self.reader.max_position()
            while self.position < target:
                read = self.run_once(stop=target)
                if read == 0:
                    break
                total += read
            return total

    def checkpoint(self, signer: Signer) -> Checkpoint:
        """Catch up, then sign the tree head and keep it. A tree that has not grown since its
        last checkpoint keeps that one."""
        self.catch_up()
        with self.lock:
            existing = self.store.checkpoints(self.size)
            if existing:
                return existing[0]
            signed = signer.sign(self.size, self.root(), self.position)
            self.store.add_checkpoint(signed)
            return self.store.checkpoints(self.size)[0]

    def run_forever(self, stop: threading.Event, poll_interval: float = 0.5) -> None:
        """Follow the log until `stop`; on a lost database, back off and resume."""
        backoff = 0.5
        while not stop.is_set():
            try:
                if self.catch_up() == 0:
                    stop.wait(poll_interval)
                backoff = 0.5
            except TRANSIENT_DATABASE_ERRORS as error:
                log.warning("audit log lost the database (%s); retrying in %.1fs", error, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                try:
                    with self.lock:
                        self.reader.reconnect()
                        self.start()
                except TRANSIENT_DATABASE_ERRORS:
                    continue
