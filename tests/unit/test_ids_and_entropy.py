"""The fast id and randomness helpers give exactly what the standard library gives."""

from __future__ import annotations

import os
import uuid

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import ids
from ledger.entropy import random_bytes, random_uuid


@given(st.text())
def test_uuid5_is_the_standard_librarys(name: str) -> None:
    made = ids.uuid5(name)
    expected = uuid.uuid5(ids.NAMESPACE, name)
    assert made == expected
    assert (made.version, made.variant, str(made), hash(made)) == (
        expected.version, expected.variant, str(expected), hash(expected))


def test_stored_ids_did_not_change() -> None:
    # Ids already in stores: a SKU's product and stock, a key by its code's keyed hash.
    assert ids.product_id("SKU-1") == uuid.uuid5(ids.NAMESPACE, "product:SKU-1")
    assert ids.key_id("ab" * 32) == uuid.uuid5(ids.NAMESPACE, "key:" + "ab" * 32)
    assert uuid.uuid5(ids.NAMESPACE, "catalog") == ids.CATALOG_ID


def test_random_uuids_are_version_4_and_distinct() -> None:
    made = [random_uuid() for _ in range(20_000)]  # several blocks of the pool
    assert len(set(made)) == len(made)
    assert {(u.version, u.variant) for u in made} == {(4, uuid.RFC_4122)}


def test_random_bytes_are_never_handed_out_twice() -> None:
    chunks = [random_bytes(12) for _ in range(20_000)]
    assert all(len(c) == 12 for c in chunks)
    assert len(set(chunks)) == len(chunks)


def test_a_forked_child_does_not_reuse_the_parents_bytes() -> None:
    random_bytes(12)  # the parent holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send what it would use next, and leave at once
        os.write(write, random_bytes(64))
        os._exit(0)
    os.close(write)
    child = os.read(read, 64)
    os.waitpid(pid, 0)
    assert child != random_bytes(64)
