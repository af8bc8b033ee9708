"""Reading card-key files: CSV with a `code` column, or one code per line."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path

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
    return read_codes(text.splitlines())


def read_lines(path: Path, progress: Callable[[int], None] | None = None) -> Iterator[str]:
    """A file's lines without their line ends, read as they are asked for; `progress`
    gets the bytes read. Bytes that are not UTF-8 become U+FFFD, which no code may hold,
    so such a line is reported by its number instead of failing the whole file."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if progress is not None:
                progress(len(raw))
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8", errors="replace").rstrip("\r\n")


def read_codes(lines: Iterable[str]) -> tuple[list[tuple[int, str]], list[LineError]]:
    """As `parse_codes`, over lines (without line ends) read one at a time."""
    it = iter(lines)
    first = next(it, None)
    if first is None:
        return [], [LineError(1, "the file holds no codes")]
    header = first.strip().lower()
    if "," in header or header == "code":
        return _parse_csv(chain([first], it))
    codes: list[tuple[int, str]] = []
    errors: list[LineError] = []
    for number, line in enumerate(chain([first], it), start=1):
        code = line.strip()
        problem = check_code(code)
        if problem:
            errors.append(LineError(number, problem))
        else:
            codes.append((number, code))
    return codes, errors


def _parse_csv(lines: Iterable[str]) -> tuple[list[tuple[int, str]], list[LineError]]:
    reader = csv.reader(lines)
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
