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

# The refused characters as a regular-expression class body (`[...]` without brackets), the way
# Python's `re` and pydantic's Rust engine both read it: the API's schema states the rule with it.
# Surrogates are left out (a JSON schema's pattern cannot name them); `problem` refuses them too.
# Written out, not computed at import; tests/unit/test_text_rule.py derives it from unicodedata.
REFUSED_CLASS = (
    "\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e"
    "\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd"
    "\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f"
)
PATTERN = rf"^[^{REFUSED_CLASS}\s]([^{REFUSED_CLASS}]*[^{REFUSED_CLASS}\s])?$"


def refused_character(value: str) -> str | None:
    """The first character of `value` the rule refuses, as `U+XXXX`, or None."""
    for character in value:
        if unicodedata.category(character) in REFUSED_CATEGORIES:
            return f"U+{ord(character):04X}"
    return None


def problem(value: str) -> str | None:
    """Why `value` breaks the rule (it must already be NFC), or None when it keeps it."""
    bad = refused_character(value)
    if bad is not None:
        return f"{bad} is a control, zero-width or bidi character; {RULE}"
    if not 1 <= len(value) <= MAX_TEXT or value != value.strip():
        return RULE
    if not unicodedata.is_normalized("NFC", value):
        return "must be in Unicode normal form NFC"
    return None


def normalised(value: str) -> str:
    """`value` in NFC (what the API does to text before the rule)."""
    return unicodedata.normalize("NFC", value)
