"""The one rule for free text that names something (a customer, a channel, a reference, a name):
printable, without characters a reader cannot see or that reorder what they see, and in one
Unicode form, so that two values a person reads as the same are the same value.

Refused: control characters (Cc: C0, DEL, C1), format characters (Cf: zero-width spaces and
joiners, bidi embeddings, overrides and isolates, the byte-order mark, soft hyphens), line and
paragraph separators (Zl, Zp) and lone surrogates (Cs). Accepted text is NFC-normalised: `é`
typed as one code point or as `e` and a combining accent is one value.

`ledger.handlers.inputs.text` refuses text that breaks the rule (naming the field); the API
(`api.models.Text`) first normalises what a client sends, then applies the same rule.
"""

from __future__ import annotations

import unicodedata

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
MAX_TEXT = 200
RULE = f"1-{MAX_TEXT} printable characters without surrounding spaces (no control, zero-width or bidi characters)"

# The refused code points (surrogates aside: a schema's pattern cannot name them; `problem`
# refuses them too), written out rather than computed at import; tests/unit/test_text_rule.py
# derives them from unicodedata.
REFUSED_RANGES = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD),
    (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200F), (0x2028, 0x202E),
    (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x13438), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)


def _in_class(point: int) -> str:
    # `\uXXXX` reads alike in every engine that sees the pattern (pydantic's Rust regex, JSON Schema
    # validators such as jsonschema-rs, Python's `re`, JavaScript); beyond the BMP they spell an
    # escape differently or not at all, so those stand in the class as themselves.
    return f"\\u{point:04x}" if point <= 0xFFFF else chr(point)


# The refused characters as a regular-expression class body (`[...]` without brackets): the API's
# schema states the rule with it.
REFUSED_CLASS = "".join(_in_class(a) if a == b else f"{_in_class(a)}-{_in_class(b)}" for a, b in REFUSED_RANGES)
PATTERN = rf"^[^{REFUSED_CLASS}\s]([^{REFUSED_CLASS}]*[^{REFUSED_CLASS}\s])?$"


def refused_character(value: str) -> str | None:
    """The first character of `value` the rule refuses, as `U+XXXX`, or None."""
    for character in value:
        if unicodedata.category(character) in REFUSED_CATEGORIES:
            return f"U+{ord(character):04X}"
    return None


def problem(value: str, *, normal_form: bool = True) -> str | None:
    """Why `value` breaks the rule (it must already be NFC, unless not `normal_form`: a secret is
    compared byte for byte, never as a name), or None when it keeps it."""
    bad = refused_character(value)
    if bad is not None:
        return f"{bad} is a control, zero-width or bidi character; {RULE}"
    if not 1 <= len(value) <= MAX_TEXT or value != value.strip():
        return RULE
    if normal_form and not unicodedata.is_normalized("NFC", value):
        return "must be in Unicode normal form NFC"
    return None


def normalised(value: str) -> str:
    """`value` in NFC (what the API does to text before the rule)."""
    return unicodedata.normalize("NFC", value)
