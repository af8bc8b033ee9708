"""The fraud read model keeps its counters' lists as JSON text in its tables. It now writes and
reads that text with msgspec: the text must stay what the json module wrote, byte for byte, so
rows written before and after compare equal and the alert API returns the same positions."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from projections.models.fraud import _json, _loads

positions = st.lists(st.integers(min_value=0, max_value=2**63 - 1), max_size=50)
windows = st.lists(st.tuples(st.integers(min_value=0, max_value=2**62), st.integers(min_value=0, max_value=2**40))
                   .map(list), max_size=20)
scores = st.dictionaries(st.from_regex(r"[a-z][a-z-]{0,30}", fullmatch=True), st.integers(0, 10**9), max_size=8)


@given(st.one_of(positions, windows, scores))
def test_the_text_is_the_json_modules(value: object) -> None:
    text = _json(value)
    assert text == json.dumps(value, separators=(",", ":"))
    assert _loads(text) == value == json.loads(text)
