"""The follower that grows the Merkle tree: it tails the notification log and commits each
batch's leaves and completed nodes in one transaction, so a crash loses or repeats nothing.
Two followers at once (the server's and a CLI's) are safe: the loser of a batch reloads."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Collection

import psycopg
from eventsourcing import persistence as es_persistence

from audit.archive import CheckpointArchive
from audit.checkpoint import Checkpoint, Signer
from audit.merkle import CompactRange
from audit.offline_verifier import verify_consistency
from audit.proofs import ProofError, consistency
from audit.rows import EventReader, leaf_hashes
from audit.store import AuditStore
from ledger.application import TRANSIENT_DATABASE_ERRORS

log = logging.getLogger(__name__)
CONFLICT = (es_persistence.IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)


class CheckpointRefused(Exception):
    """The tree is not one this deployment may sign; the message says why."""


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

    def checkpoint(self, signer: Signer, archive: CheckpointArchive | None = None,
                   trusted: Collection[bytes] = ()) -> Checkpoint:
        """Catch up, prove the tree extends the last checkpoint this deployment signed (RFC 9162
        consistency proof), then sign its head, store it and keep it in `archive`. A tree that
        has not grown keeps its checkpoint. CheckpointRefused, saying why, when the tree does
        not extend the last checkpoint: then nothing is signed.

        The last checkpoint is the newest of those in `archive` and those in the database signed
        by this key or one of `trusted` (deleting them from the database does not hide them)."""
        self.catch_up()
        keys = {signer.public_key, *trusted}
        with self.lock:
            size, root = self.size, self.root()
            last = self._last_signed(archive, keys)
            if last is not None:
                self._prove_extends(last, size, root)
            existing = self.store.checkpoints(size)
            if not existing:
                self.store.add_checkpoint(signer.sign(size, root, self.position))
                existing = self.store.checkpoints(size)
            signed = existing[0]
            if not signed.signed_by(keys):
                raise CheckpointRefused(f"audit_checkpoints holds a checkpoint of {size} leaves signed by key "
                                        f"{signed.key_id}, not this deployment's: inserted into the database")
            if signed.root_hash != root:
                raise CheckpointRefused(f"audit_checkpoints holds a signed checkpoint of {size} leaves whose root "
                                        f"{signed.root_hash.hex()[:16]} is not the tree's {root.hex()[:16]}")
            if archive is not None:
                archive.keep(signed)
            return signed

    def _last_signed(self, archive: CheckpointArchive | None, keys: Collection[bytes]) -> Checkpoint | None:
        found = [c for c in self.store.checkpoints() if c.signed_by(keys)]
        try:
            kept_ones = archive.checkpoints() if archive is not None else []
        except ValueError as error:  # a file there that is not a checkpoint: somebody wrote it
            raise CheckpointRefused(str(error)) from None
        for path, kept in kept_ones:
            if not kept.signed_by(keys):
                raise CheckpointRefused(f"{path} is not signed by this deployment's key (key {kept.key_id})")
            found.append(kept)
        return max(found, key=lambda c: c.tree_size, default=None)

    def _prove_extends(self, last: Checkpoint, size: int, root: bytes) -> None:
        since = f"the last checkpoint signed ({last.tree_size} leaves, root {last.root_hash.hex()[:16]}, " \
                f"{last.timestamp})"
        if last.tree_size > size:
            raise CheckpointRefused(f"the tree holds {size} leaves, fewer than {since}: events were removed")
        if last.tree_size == 0:
            return
        try:
            proof = consistency(self.store, last.tree_size, size)
        except (ProofError, LookupError) as error:
            raise CheckpointRefused(f"no consistency proof from {since} to {size} leaves: {error}") from None
        if proof.second_root != root:
            raise CheckpointRefused("the stored tree's root is not the follower's: the audit tables changed under it")
        if not verify_consistency(last.tree_size, size, last.root_hash, root, proof.path):
            raise CheckpointRefused(f"the tree of {size} leaves is not consistent with {since}: the history it "
                                    "signed was rewritten (RFC 9162 consistency proof fails)")

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
