"""Reading card-key files: CSV with a `code` column, or one code per line."""

from __future__ import annotations

import csv
import io
import re

from ledger.domain.errors import LineError

MAX_CODE_LENGTH = 256
_CODE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


def check_code(code: str) -> str | None:
    """Why a code is malformed, or None."""
    if not code:
        return "empty line"
    if len(code) > MAX_CODE_LENGTH:
        return f"code longer than {MAX_CODE_LENGTH} characters"
    if not _CODE.match(code):
        return "code must be printable ASCII without spaces"
    return None


def parse_codes(text: str) -> tuple[list[tuple[int, str]], list[LineError]]:
    """(line number, code) pairs and the lines that are not codes. Line numbers are 1-based."""
    lines = text.splitlines()
    first = lines[0].strip().lower() if lines else ""
    if "," in first or first == "code":
        return _parse_csv(text)
    codes: list[tuple[int, str]] = []
    errors: list[LineError] = []
    for number, line in enumerate(lines, start=1):
        code = line.strip()
        problem = check_code(code)
        if problem:
            errors.append(LineError(number, problem))
        else:
            codes.append((number, code))
    if not lines:
        errors.append(LineError(1, "the file holds no codes"))
    return codes, errors


def _parse_csv(text: str) -> tuple[list[tuple[int, str]], list[LineError]]:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader)]
    if "code" not in header:
        return [], [LineError(1, "a CSV file needs a 'code' column in its header")]
    column = header.index("code")
    codes: list[tuple[int, str]] = []
    errors: list[LineError] = []
    for row in reader:
        number = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            errors.append(LineError(number, "empty line"))
            continue
        if len(row) != len(header):
            errors.append(LineError(number, f"expected {len(header)} columns, found {len(row)}"))
            continue
        code = row[column].strip()
        problem = check_code(code)
        if problem:
            errors.append(LineError(number, problem))
        else:
            codes.append((number, code))
    if not codes and not errors:
        errors.append(LineError(1, "the file holds no codes"))
    return codes, errors
