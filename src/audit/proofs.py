"""Inclusion and consistency proofs (RFC 9162 §2.1.3.1 and §2.1.4.1) from the stored tree."""

from __future__ import annotations

import base64
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from audit.merkle import consistency_spans, inclusion_spans, span_hashes
from audit.rows import EventReader, leaf_bytes
from audit.store import AuditStore

BUNDLE_FORMAT = "ledger-audit-proof-bundle/1"


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

    def to_json(self) -> dict[str, Any]:
        """As `GET /v1/audit/proofs/inclusion` answers it: hashes in lowercase hex."""
        return {"position": self.position, "leaf_index": self.leaf_index, "tree_size": self.tree_size,
                "leaf_hash": self.leaf_hash.hex(), "root_hash": self.root_hash.hex(),
                "proof": [h.hex() for h in self.path]}


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


def bundle(store: AuditStore, reader: EventReader, position: int, keys: Collection[bytes]) -> dict[str, Any]:
    """Everything an auditor needs to check offline that the event at `position` is in the
    history finance signed (docs/audit.md "Proof bundles"): the event as stored (its leaf bytes,
    base64), its inclusion proof against the newest signed checkpoint, and that checkpoint.
    ProofError (not found) when no checkpoint covers the event yet."""
    checkpoint = store.latest_checkpoint(keys)  # signed by a pinned key, not merely the newest row
    if checkpoint is None or position > checkpoint.last_position:
        raise ProofError("position", f"no signed checkpoint covers position {position} yet", not_found=True)
    row = reader.row(position)
    if row is None:
        raise ProofError("position", f"no event is stored at position {position}", not_found=True)
    proof = inclusion(store, position, checkpoint.tree_size)
    stored_at, originator_id, version, topic, _ = row
    return {
        "format": BUNDLE_FORMAT,
        "event": {"position": stored_at, "stream_id": str(UUID(bytes=bytes(originator_id))), "version": version,
                  "topic": bytes(topic).decode(), "leaf": base64.b64encode(leaf_bytes(row)).decode()},
        "inclusion": proof.to_json(),
        "checkpoint": checkpoint.to_json(),
    }
