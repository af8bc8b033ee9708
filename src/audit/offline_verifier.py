"""Offline verifier for the ledger's audit log: RFC 9162 (Certificate Transparency v2) §2.1
Merkle tree hashing, inclusion and consistency proof verification, and the exact bytes a
checkpoint signs.

This module is meant to be copied and run anywhere: it imports only the Python standard
library and does no I/O. Check a checkpoint's Ed25519 signature over `checkpoint_message(...)`
with any Ed25519 implementation (for example the `cryptography` package), then use
`verify_inclusion` / `verify_consistency` against its root hash.

    leaf hash  = SHA-256(0x00 || leaf bytes)
    node hash  = SHA-256(0x01 || left hash || right hash)
    empty tree = SHA-256("")

Every function returns True or False; none raises on malformed proofs.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
CHECKPOINT_ORIGIN = "ledger/audit/v1"


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def empty_root() -> bytes:
    return hashlib.sha256(b"").digest()


def verify_inclusion(leaf_index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does the leaf hash `leaf` sit at `leaf_index` in the tree of
    `tree_size` leaves whose root is `root`?"""
    if not 0 <= leaf_index < tree_size or len(leaf) != HASH_SIZE:
        return False
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            return False  # more proof than tree
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of `size2` leaves (root `root2`) an append-only
    extension of the tree of `size1` leaves (root `root1`)? Equal sizes need an empty proof
    and equal roots; an empty first tree proves nothing and is refused."""
    if not 0 < size1 <= size2:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    path = list(proof)
    if not path:
        return False
    if size1 & (size1 - 1) == 0:  # a power of two: the first tree is a complete subtree
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == root1 and sr == root2


def checkpoint_message(tree_size: int, root: bytes, timestamp: str, last_position: int) -> bytes:
    """The exact bytes a checkpoint's Ed25519 signature covers (in the style of a C2SP
    checkpoint note body): origin, tree size, base64 root hash, then two extension lines."""
    root_b64 = base64.b64encode(root).decode()
    return f"{CHECKPOINT_ORIGIN}\n{tree_size}\n{root_b64}\ntime {timestamp}\nposition {last_position}\n".encode()
