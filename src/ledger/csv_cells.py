"""CSV cells a spreadsheet cannot run: a cell that starts the way a formula does (`=`, `+`, `-`,
`@`, a tab or a carriage return) gets a leading `'`, so Excel, LibreOffice and Sheets show it as
text (OWASP's "CSV injection"). A plain number, negative ones included, is left as it is: it
cannot be a formula, and money columns must stay numbers. Every CSV the ledger writes for people
(the reports' `text/csv`, `ledger project replay --out`) goes through `cell`."""

from __future__ import annotations

import re

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$")


def cell(value: object) -> str:
    """`value` as a CSV cell's text: None is empty, a formula-like text is quoted with `'`."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text
