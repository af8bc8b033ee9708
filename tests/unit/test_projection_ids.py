"""Read models store ids as text: the fast conversion gives exactly `str(uuid)`, so tables built
before and after it hold the same keys."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from projections.base import ident


@given(st.uuids(allow_nil=True))
def test_a_uuid_is_stored_as_its_canonical_text(value: uuid.UUID) -> None:
    assert ident(value) == str(value)


def test_other_ids_are_stored_as_their_text() -> None:
    assert ident("c1-42") == "c1-42"
    assert ident('odd "id" \\ é') == 'odd "id" \\ é'
    assert ident(uuid.UUID(int=2**128 - 1)) == "ffffffff-ffff-ffff-ffff-ffffffffffff"
