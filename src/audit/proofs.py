"""Inclusion and consistency proofs (RFC 9162 §2.1.3.1 and §2.1.4.1) from the stored tree."""

from __future__ import annotations

from dataclasses import dataclass

from audit.merkle import consistency_spans, inclusion_spans, span_hashes
from audit.store import AuditStore


class ProofError(ValueError):
    """A proof that cannot be given; `field` names the parameter at fault."""

    def __init__(self, field: str, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.field, self.message, self.not_found = field, message, not_found


@dataclass(frozen=True)
class InclusionProof:
    position: int
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    root_hash: bytes
    path: list[bytes]


@dataclass(frozen=True)
class ConsistencyProof:
    first: int
    second: int
    first_root: bytes
    second_root: bytes
    path: list[bytes]


def _size(store: AuditStore, field: str, size: int | None) -> int:
    current, _ = store.head()
    if size is None:
        return current
    if size > current:
        raise ProofError(field, f"the tree holds {current} leaves; {field} {size} is beyond it")
    return size


def inclusion(store: AuditStore, position: int, tree_size: int | None = None) -> InclusionProof:
    """The audit path of the event at `position` in the tree of `tree_size` leaves (default:
    the whole tree)."""
    size = _size(store, "tree_size", tree_size)
    index = store.leaf_index(position)
    if index is None:
        raise ProofError("position", f"no event at position {position} is in the tree", not_found=True)
    if index >= size:
        raise ProofError("tree_size", f"position {position} is leaf {index}: it needs a tree_size above {index}")
    spans = [(index, index + 1), (0, size), *inclusion_spans(index, size)]
    leaf, head, *path = span_hashes(spans, store.nodes)
    return InclusionProof(position, index, size, leaf, head, path)


def consistency(store: AuditStore, first: int, second: int | None = None) -> ConsistencyProof:
    """The proof that the tree of `first` leaves is a prefix of the tree of `second` leaves."""
    size2 = _size(store, "second", second)
    if not 0 < first <= size2:
        raise ProofError("first", f"first must be between 1 and second ({size2})")
    spans = [(0, first), (0, size2), *(consistency_spans(first, size2) if first < size2 else [])]
    root1, root2, *path = span_hashes(spans, store.nodes)
    return ConsistencyProof(first, size2, root1, root2, path)
