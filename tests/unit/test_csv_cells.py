"""CSV cells: what a spreadsheet would run as a formula is quoted; numbers stay numbers."""

from __future__ import annotations

import pytest

from ledger.csv_cells import cell


@pytest.mark.parametrize(("value", "shown"), [
    ('=HYPERLINK("https://evil.example","x")', '\'=HYPERLINK("https://evil.example","x")'),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("-3.50", "-3.50"),
    ("+7", "+7"),
    ("1e5", "1e5"),
    ("web", "web"),
    (None, ""),
    (12, "12"),
])
def test_formula_cells_are_quoted_and_numbers_kept(value: object, shown: str) -> None:
    assert cell(value) == shown
