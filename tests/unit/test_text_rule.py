"""The text rule's written-out character class is what Unicode says today: every control,
format, line- and paragraph-separator character (surrogates aside, which a pattern cannot name),
derived from `unicodedata`, so a newer Python's Unicode cannot widen the rule unnoticed."""

from __future__ import annotations

import sys
import unicodedata
from typing import Annotated

import pytest
from pydantic import Field, TypeAdapter, ValidationError

from ledger.domain import text

REFUSED_BY_PATTERN = text.REFUSED_CATEGORIES - {"Cs"}
MATCHES = TypeAdapter(Annotated[str, Field(pattern=text.PATTERN)])  # as pydantic's Rust engine reads it


def derived_ranges() -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for point in range(sys.maxunicode + 1):
        if unicodedata.category(chr(point)) in REFUSED_BY_PATTERN:
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1] = (ranges[-1][0], point)
            else:
                ranges.append((point, point))
    return ranges


def test_the_written_out_ranges_are_derived_from_unicode() -> None:
    assert derived_ranges() == list(text.REFUSED_RANGES)


def test_every_engine_reading_the_schema_enforces_the_pattern() -> None:
    """Schemathesis drops a pattern its validator (jsonschema-rs) cannot compile, and then takes
    any string for schema-valid: the pattern must compile there and in Python's `re`."""
    from schemathesis.core.jsonschema.patterns import compile_ecma_pattern, enforced_pattern

    assert enforced_pattern(text.PATTERN) == text.PATTERN
    compiled = compile_ecma_pattern(text.PATTERN)
    assert compiled is not None and compiled.match("alice") and not compiled.match("alice\U000e0041")


@pytest.mark.parametrize("value", ["alice", "Zoë", "客户-7", "a b", "🙂 shop", "O'Brien"])
def test_printable_text_keeps_the_rule(value: str) -> None:
    assert text.problem(value) is None
    assert MATCHES.validate_python(value) == value


@pytest.mark.parametrize("value", ["alice\u200b", "\u202eevil", "a\u2066b", "tab\there", "", " x", "x" * 201,
                                   "lone\ud800"])
def test_hidden_or_shapeless_text_is_refused(value: str) -> None:
    assert text.problem(value) is not None
    if value and "\ud800" not in value and len(value) <= 200:
        with pytest.raises(ValidationError):
            MATCHES.validate_python(value)


def test_text_not_in_nfc_is_refused_and_normalising_makes_it_one_value() -> None:
    decomposed = "Zoe\u0308"
    assert text.problem(decomposed) == "must be in Unicode normal form NFC"
    assert text.normalised(decomposed) == "Zo\u00eb"
    assert text.problem(text.normalised(decomposed)) is None
