"""Recompute the tree from the stored events and say where the history stopped matching.

The events are read in log order and hashed (never decrypted). Leaves are compared with the
stored tree a chunk of 2**CHUNK_LEVEL leaves at a time (one stored node per chunk); only a
chunk that differs is compared leaf by leaf, which finds the first differing position. A
signed checkpoint is then checked: the log must still hold its tree as a prefix."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from audit.checkpoint import Checkpoint
from audit.merkle import CompactRange, fold, subtree_root
from audit.rows import EventReader, Row, leaf_hashes
from audit.store import AuditStore, VerificationRecord

CHUNK_LEVEL = 10
CHUNK = 1 << CHUNK_LEVEL
Progress = Callable[[int, int], None]  # (position reached, the log's head)


@dataclass(frozen=True)
class Finding:
    """The first place the history differs. kind: changed (the event at `position` is not the
    one the tree recorded), missing (the tree recorded an event at `position` that is gone),
    inserted (an event at `position` the tree never had), truncated (the log ends before
    `position`), forked (differs from a signed checkpoint at or after `position`), nodes (the
    stored tree's inner nodes disagree with its leaves)."""

    kind: str
    position: int | None
    leaf_index: int | None
    detail: str


# Checkpoint statuses, worst first.
STATUSES = ("unpinned-key", "bad-signature", "missing", "forked", "truncated", "consistent")


@dataclass(frozen=True)
class Held:
    """One checkpoint the log was held to. source: `audit_checkpoints` or the file it came
    from. status: consistent (the log still holds its tree as a prefix), truncated (the log
    is shorter), forked (its leaves no longer hash to the signed root), bad-signature (it names
    a pinned key but is not signed by it), unpinned-key (signed by a key not pinned: forged),
    missing (a file's checkpoint that the database no longer holds: deleted)."""

    checkpoint: Checkpoint
    source: str
    status: str
    against_log: str | None = None  # consistent, forked or truncated, for a checkpoint signed by a pinned key


@dataclass
class Verification:
    events: int = 0  # events read and hashed
    tree_size: int = 0  # leaves in the stored tree
    root: bytes = b""  # recomputed root of the stored tree's size
    not_in_tree: int = 0  # events after the tree's last leaf (the follower's lag)
    first: Finding | None = None
    held: list[Held] = field(default_factory=list)  # every checkpoint the log was held to
    pinned: int = 0  # public keys the checkpoints had to be signed by
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Everything agrees, and with something signed: with no pinned key or no checkpoint
        the stored tree alone proves nothing (a database writer rebuilds it at will)."""
        return self.first is None and bool(self.held) and self.pinned > 0 and all(
            h.status == "consistent" for h in self.held)

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The checkpoint that speaks for the outcome: the first that failed, else the newest."""
        failed = [h for h in self.held if h.status != "consistent"]
        chosen = failed[0] if failed else max(self.held, key=lambda h: h.checkpoint.tree_size, default=None)
        return None if chosen is None else chosen.checkpoint

    @property
    def checkpoint_status(self) -> str | None:
        """The worst status of any checkpoint held (None: there was none)."""
        statuses = {h.status for h in self.held}
        return next((s for s in STATUSES if s in statuses), None)

    @property
    def events_per_s(self) -> float:
        return self.events / max(self.seconds, 1e-9)

    def record(self, at: datetime | None = None) -> VerificationRecord:
        """This outcome as `AuditStore.add_verification` keeps it."""
        moment = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        first, cp = self.first, self.checkpoint
        return VerificationRecord(
            verified_at=moment, ok=self.ok, events=self.events, tree_size=self.tree_size, root_hash=self.root.hex(),
            not_in_tree=self.not_in_tree, finding_kind=None if first is None else first.kind,
            finding_position=None if first is None else first.position,
            finding_detail=None if first is None else first.detail,
            checkpoint_size=None if cp is None else cp.tree_size, checkpoint_status=self.checkpoint_status,
            seconds=self.seconds,
        )


class _Comparison:
    """Recomputed leaves against the stored tree, chunk by chunk; keeps the first difference."""

    def __init__(self, store: AuditStore, size: int) -> None:
        self.store, self.size = store, size
        self.stored: dict[int, bytes] = {}
        self.first: Finding | None = None

    def chunk(self, index: int, positions: list[int], hashes: list[bytes], node: bytes) -> None:
        """A complete chunk of recomputed leaves and its node."""
        start = index * CHUNK
        if self.first is not None or start >= self.size:
            return
        if start + CHUNK > self.size:  # the stored tree ends inside this chunk
            self.partial(start, positions, hashes)
            return
        if index not in self.stored:
            self.stored = self.store.level_nodes(CHUNK_LEVEL, index, index + 1023)
        if self.stored.get(index) != node:
            self._leaf_by_leaf(start, positions, hashes, node_differs=True)

    def partial(self, start: int, positions: list[int], hashes: list[bytes]) -> None:
        """Leaves from `start` on that no stored chunk node covers."""
        if self.first is None and start < self.size and hashes:
            keep = self.size - start
            self._leaf_by_leaf(start, positions[:keep], hashes[:keep], node_differs=False)

    def end(self, count: int) -> None:
        """The log ended after `count` events: did the tree record more?"""
        if self.first is None and count < self.size:
            stored = self.store.leaves(count, count)
            position = stored[0][1] if stored else None
            self.first = Finding("truncated", position, count, f"the log ends after {count} events; the tree holds "
                                 f"{self.size}: events from position {position} on are gone")

    def _leaf_by_leaf(self, start: int, positions: list[int], hashes: list[bytes], *, node_differs: bool) -> None:
        stored = self.store.leaves(start, start + len(hashes) - 1)
        for offset, (position, h) in enumerate(zip(positions, hashes, strict=True)):
            index = start + offset
            if offset >= len(stored):
                self.first = Finding("nodes", position, index, f"the stored tree lacks leaf {index}")
                return
            _, stored_position, stored_hash = stored[offset]
            if stored_position == position and stored_hash != h:
                self.first = Finding("changed", position, index, f"the event at position {position} differs from "
                                     "the one the tree recorded (content, or another event moved here)")
            elif position > stored_position:
                self.first = Finding("missing", stored_position, index,
                                     f"the event at position {stored_position} is gone")
            elif position < stored_position:
                self.first = Finding("inserted", position, index,
                                     f"an event at position {position} that the tree never recorded")
            if self.first is not None:
                return
        if node_differs:
            self.first = Finding("nodes", None, start, f"the stored node over leaves {start}.. disagrees with them")


def _prefetched(reader: EventReader, stop: int, batch_size: int) -> Iterator[list[Row]]:
    """Batches of the log in order, the next one read while the caller hashes this one."""
    with ThreadPoolExecutor(1, thread_name_prefix="audit-read") as pool:
        pending = pool.submit(reader.read, 0, batch_size, stop)
        while rows := pending.result():
            pending = pool.submit(reader.read, rows[-1][0], batch_size, stop)
            yield rows


def verify(
    store: AuditStore, reader: EventReader, files: Sequence[tuple[str, Checkpoint]] = (),
    keys: Collection[bytes] = (), progress: Progress | None = None, batch_size: int = 20_000,
) -> Verification:
    """Hold the log to every checkpoint in `files` ((source, checkpoint): given, or found in
    the checkpoint directory) and every one stored in `audit_checkpoints`, each to be signed
    by one of `keys` (the pinned public keys). A file's checkpoint that the database no longer
    holds is `missing`."""
    began = time.perf_counter()
    size, _ = store.head()
    head = reader.max_position()
    stored = store.checkpoints()
    result = Verification(tree_size=size, pinned=len(keys))
    everything = [("audit_checkpoints", c) for c in stored] + list(files)
    wanted = {0, size} | {c.tree_size for _, c in everything}
    roots: dict[int, bytes] = {}
    positions_at: dict[int, int] = {}  # leaf index -> position, at the sizes wanted
    compare = _Comparison(store, size)
    tree = CompactRange()
    positions: list[int] = []
    hashes: list[bytes] = []

    def grow(chunk_positions: list[int], chunk_hashes: list[bytes]) -> None:
        """Add leaves to the tree (a whole chunk at once when aligned), noting wanted roots."""
        base, count = tree.size, len(chunk_hashes)
        partway = CompactRange(base, tree.stack)  # one pass over the chunk, whatever is wanted in it
        for at in sorted(s for s in wanted if base <= s <= base + count):
            for h in chunk_hashes[partway.size - base:at - base]:
                partway.append(h)
            roots[at] = partway.root()
            if at < base + count:
                positions_at[at] = chunk_positions[at - base]
        if count == CHUNK:
            node = subtree_root(chunk_hashes)
            compare.chunk(base >> CHUNK_LEVEL, chunk_positions, chunk_hashes, node)
            tree.append(node, level=CHUNK_LEVEL)
        else:
            compare.partial(base, chunk_positions, chunk_hashes)
            for h in chunk_hashes:
                tree.append(h)

    for rows in _prefetched(reader, head, batch_size):
        positions += [row[0] for row in rows]
        hashes += leaf_hashes(rows)
        whole = len(hashes) - len(hashes) % CHUNK
        for at in range(0, whole, CHUNK):
            grow(positions[at:at + CHUNK], hashes[at:at + CHUNK])
        del positions[:whole], hashes[:whole]
        result.events += len(rows)
        if progress is not None:
            progress(rows[-1][0], head)
    grow(positions, hashes)
    compare.end(tree.size)
    result.not_in_tree = max(tree.size - size, 0)
    result.root = roots.get(size, b"")
    if compare.first is None and size in roots and roots[size] != fold_stored(store, size):
        compare.first = Finding("nodes", None, None, "the stored tree's root disagrees with its leaves")
    result.first = compare.first
    _hold(result, everything, {_identity(c) for c in stored}, keys, tree.size, roots, positions_at)
    result.seconds = time.perf_counter() - began
    return result


def fold_stored(store: AuditStore, size: int) -> bytes:
    return fold(store.frontier(size)) if size else CompactRange().root()


def _identity(cp: Checkpoint) -> tuple[int, bytes, bytes]:
    return cp.tree_size, cp.root_hash, cp.signature


def _hold(result: Verification, everything: list[tuple[str, Checkpoint]], in_database: set[tuple[int, bytes, bytes]],
          keys: Collection[bytes], count: int, roots: dict[int, bytes], positions: dict[int, int]) -> None:
    """Hold the log of `count` events to each checkpoint (once each, whatever its sources)."""
    unique = list({_identity(cp): (source, cp) for source, cp in reversed(everything)}.values())[::-1]
    signed = [cp for _, cp in unique if cp.key_status(keys) == "valid"]
    against = {_identity(cp): _against(result, cp, count, roots, signed) for cp in signed}
    for source, cp in unique:
        status = cp.key_status(keys)
        if status == "valid":
            status = "missing" if _identity(cp) not in in_database else against[_identity(cp)]
        result.held.append(Held(cp, source, status, against.get(_identity(cp))))
    failed = [cp for cp in signed if against[_identity(cp)] != "consistent"]
    if failed and result.first is None:
        _locate(result, min(failed, key=lambda c: c.tree_size), count, roots, positions, signed)


def _against(result: Verification, cp: Checkpoint, count: int, roots: dict[int, bytes],
             signed: list[Checkpoint]) -> str:
    """consistent, forked or truncated: the log of `count` events against the signed `cp`."""
    if cp.tree_size <= count:
        return "consistent" if roots[cp.tree_size] == cp.root_hash else "forked"
    changed_before = result.first is not None and result.first.kind != "truncated"
    disagreeing = any(roots.get(c.tree_size) != c.root_hash for c in signed if c.tree_size <= count)
    return "forked" if changed_before or disagreeing else "truncated"


def _locate(result: Verification, cp: Checkpoint, count: int, roots: dict[int, bytes], positions: dict[int, int],
            signed: list[Checkpoint]) -> None:
    """The events and the stored tree were rewritten consistently: only signed checkpoints
    bound where the history changed. The newest one that still agrees marks the earliest
    possible leaf."""
    agreeing = [c.tree_size for c in signed if c.tree_size <= count and roots.get(c.tree_size) == c.root_hash]
    start = max((s for s in agreeing if s < cp.tree_size), default=0)
    if cp.tree_size <= count or any(roots.get(c.tree_size) != c.root_hash for c in signed if c.tree_size <= count):
        position = positions.get(start)
        result.first = Finding("forked", position, start, f"the log differs from the checkpoint of {cp.tree_size} "
                               f"leaves; the first {start} leaves agree with a signed checkpoint, so the history "
                               f"changed at leaf {start} (position {position}) or later")
    else:
        result.first = Finding("truncated", None, count, f"the log ends after {count} events but the checkpoint holds "
                               f"{cp.tree_size} (last position {cp.last_position}); the first {start} leaves agree "
                               "with a signed checkpoint")
