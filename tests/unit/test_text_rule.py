"""The text rule's written-out character class is what Unicode says today: every control,
format, line- and paragraph-separator character (surrogates aside, which a pattern cannot name),
derived from `unicodedata`, so a newer Python's Unicode cannot widen the rule unnoticed."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest

from ledger.domain import text

REFUSED_BY_PATTERN = text.REFUSED_CATEGORIES - {"Cs"}


def derived_class() -> str:
    ranges: list[tuple[int, int]] = []
    for point in range(sys.maxunicode + 1):
        if unicodedata.category(chr(point)) in REFUSED_BY_PATTERN:
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1] = (ranges[-1][0], point)
            else:
                ranges.append((point, point))

    def escaped(point: int) -> str:
        return f"\\u{point:04x}" if point <= 0xFFFF else f"\\U{point:08x}"

    return "".join(escaped(a) if a == b else f"{escaped(a)}-{escaped(b)}" for a, b in ranges)


def test_the_written_out_class_is_derived_from_unicode() -> None:
    assert derived_class() == text.REFUSED_CLASS


@pytest.mark.parametrize("value", ["alice", "Zoë", "客户-7", "a b", "🙂 shop", "O'Brien"])
def test_printable_text_keeps_the_rule(value: str) -> None:
    assert text.problem(value) is None
    assert re.match(text.PATTERN, value)


@pytest.mark.parametrize("value", ["alice\u200b", "\u202eevil", "a\u2066b", "tab\there", "", " x", "x" * 201,
                                   "lone\ud800"])
def test_hidden_or_shapeless_text_is_refused(value: str) -> None:
    assert text.problem(value) is not None


def test_text_not_in_nfc_is_refused_and_normalising_makes_it_one_value() -> None:
    decomposed = "Zoe\u0308"
    assert text.problem(decomposed) == "must be in Unicode normal form NFC"
    assert text.normalised(decomposed) == "Zo\u00eb"
    assert text.problem(text.normalised(decomposed)) is None
