"""Read models store ids as text: the fast conversion gives exactly `str(uuid)`, so tables built
before and after it hold the same keys."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.engine import base
from projections.engine.base import ident


@given(st.uuids(allow_nil=True))
def test_a_uuid_is_stored_as_its_canonical_text(value: uuid.UUID) -> None:
    assert ident(value) == str(value)


def test_other_ids_are_stored_as_their_text() -> None:
    assert ident("c1-42") == "c1-42"
    assert ident('odd "id" \\ é') == 'odd "id" \\ é'
    assert ident(uuid.UUID(int=2**128 - 1)) == "ffffffff-ffff-ffff-ffff-ffffffffffff"


def test_kept_texts_stay_right_past_the_cache_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Converted ids are kept for their next use, at most `MAX_IDENTS` of them: past the bound the
    cache starts again, and every answer, kept or fresh, is still the UUID's own text."""
    monkeypatch.setattr(base, "MAX_IDENTS", 8)
    monkeypatch.setattr(base, "_IDENTS", {})
    ids = [uuid.uuid4() for _ in range(20)]
    for _ in range(3):
        for value in ids:
            assert ident(value) == str(value)
            assert ident(uuid.UUID(str(value))) == str(value)  # an equal UUID, another object
    assert 0 < len(base._IDENTS) <= 8
