"""Building the RFC 9162 tree as leaves arrive, and the proofs it answers.

Nodes are addressed as (level, index): the complete subtree of 2**level leaves starting at
leaf index * 2**level (level 0 is a leaf). A tree of any size is the fold of the complete
subtrees its size's set bits name, so storing every complete node answers every root and
every proof with O(log n) lookups."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping

from audit.offline_verifier import empty_root, node_hash

Node = tuple[int, int]  # (level, index)
Span = tuple[int, int]  # leaves [start, end)


class CompactRange:
    """The right edge of a growing tree: one complete subtree hash per set bit of its size."""

    def __init__(self, size: int = 0, frontier: Iterable[bytes] = ()) -> None:
        self.size = size
        self.stack = list(frontier)  # highest level first
        if len(self.stack) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} frontier nodes, got {len(self.stack)}")

    def append(self, leaf: bytes, made: list[tuple[int, int, bytes]] | None = None, level: int = 0) -> None:
        """Add a leaf hash (or, with `level`, the hash of a complete subtree of 2**level
        leaves, at a size that is a multiple of it); every node this completes goes to `made`."""
        index, stack, h, width = self.size, self.stack, leaf, 1 << level
        if index % width:
            raise ValueError(f"a subtree of {width} leaves cannot start at leaf {index}")
        sha = hashlib.sha256
        n = index >> level
        while n & 1:
            h = sha(b"\x01" + stack.pop() + h).digest()
            n >>= 1
            level += 1
            if made is not None:
                made.append((level, index >> level, h))
        stack.append(h)
        self.size = index + width

    def root(self) -> bytes:
        if not self.stack:
            return empty_root()
        r = self.stack[-1]
        for h in reversed(self.stack[:-1]):
            r = node_hash(h, r)
        return r


def frontier_nodes(size: int) -> list[Node]:
    """The complete subtrees a tree of `size` leaves is made of, left to right."""
    nodes, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


def span_nodes(start: int, end: int) -> list[Node]:
    """The complete subtrees, left to right, of a span that RFC 9162 hashes as one subtree
    (its start is a multiple of the largest power of two not above its length)."""
    nodes, at = [], start
    while at < end:
        level = 0
        while at % (2 << level) == 0 and at + (2 << level) <= end:
            level += 1
        nodes.append((level, at >> level))
        at += 1 << level
    return nodes


def subtree_root(hashes: list[bytes]) -> bytes:
    """The root of a complete subtree (a power-of-two number of leaf hashes), level by level."""
    sha = hashlib.sha256
    while len(hashes) > 1:
        hashes = [sha(b"\x01" + left + right).digest() for left, right in zip(hashes[::2], hashes[1::2], strict=True)]
    return hashes[0]


def fold(hashes: list[bytes]) -> bytes:
    """The hash of consecutive complete subtrees of decreasing size (right to left)."""
    r = hashes[-1]
    for h in reversed(hashes[:-1]):
        r = node_hash(h, r)
    return r


def largest_power_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_spans(index: int, size: int) -> list[Span]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]) as the spans whose hashes form the proof."""
    spans: list[Span] = []
    start, end = 0, size
    while end - start > 1:
        k = largest_power_below(end - start)
        if index - start < k:
            spans.append((start + k, end))
            end = start + k
        else:
            spans.append((start, start + k))
            start += k
    spans.reverse()
    return spans


def consistency_spans(size1: int, size2: int) -> list[Span]:
    """RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2]) for 0 < size1 < size2, as spans."""
    spans: list[Span] = []
    start, end, m, complete = 0, size2, size1, True
    while True:
        if m == end - start:
            if not complete:
                spans.append((start, end))
            break
        k = largest_power_below(end - start)
        if m <= k:
            spans.append((start + k, end))
            end = start + k
        else:
            spans.append((start, start + k))
            start, m, complete = start + k, m - k, False
    spans.reverse()
    return spans


def span_hashes(spans: list[Span], lookup: Callable[[list[Node]], Mapping[Node, bytes]]) -> list[bytes]:
    """The hash of every span, with all the complete nodes they need fetched in one lookup."""
    needed = {(start, end): span_nodes(start, end) for start, end in spans}
    found = lookup(sorted({node for nodes in needed.values() for node in nodes}))
    return [fold([found[node] for node in needed[span]]) for span in spans]
