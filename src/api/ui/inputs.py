"""Query input of the UI's pages, read the way the API reads it, and the refusal that names the
bad field. Pages take their query values as text and parse them here, so that bad input gives a
page (4xx, the field and why) rather than the API's JSON problem or a 500."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from api.dates import IsoDateTime
from api.deps import MAX_POSITION

MAX_TEXT = 200
_MOMENT = TypeAdapter(IsoDateTime)


class BadInput(Exception):
    """A query value a page cannot use: shown on the page with `status` (422, or 404 for a name
    that does not exist)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


def named(error: RequestValidationError) -> BadInput:
    """The API's own refusal (`api.problems.invalid`, e.g. from `api.point_in_time.reading`) as a
    `BadInput` naming the same field."""
    first = error.errors()[0] if error.errors() else {"loc": ("query", "input"), "msg": "invalid input"}
    field = ".".join(str(part) for part in first["loc"] if part not in ("query", "path", "body")) or "input"
    return BadInput(field, str(first["msg"]))


def text(field: str, value: str, longest: int = MAX_TEXT) -> str | None:
    """A trimmed value (None when empty); at most `longest` characters."""
    value = value.strip()
    if len(value) > longest:
        raise BadInput(field, f"at most {longest} characters")
    return value or None


def number(field: str, value: str, low: int, high: int = MAX_POSITION) -> int | None:
    """A whole number from `low` to `high` (None when empty)."""
    found = text(field, value)
    if found is None:
        return None
    try:
        number = int(found)
    except ValueError:
        raise BadInput(field, f"{found[:50]!r} is not a whole number") from None
    if number < low or number > high:
        raise BadInput(field, f"must be {low} or more and at most {high}")
    return number


def aggregate_id(field: str, value: str) -> UUID | None:
    """An aggregate's id, a UUID (None when empty)."""
    found = text(field, value)
    if found is None:
        return None
    try:
        return UUID(found)
    except ValueError:
        raise BadInput(field, f"{found[:50]!r} is not an aggregate id (a UUID)") from None


def position(field: str, value: str) -> int | None:
    """A log position: a whole number >= 0 (None when empty)."""
    found = text(field, value)
    if found is None:
        return None
    if not found.isdigit() or not found.isascii() or int(found) > MAX_POSITION:
        raise BadInput(field, f"{found[:50]!r} is not a log position (a whole number from 0 to {MAX_POSITION})")
    return int(found)


def moment(field: str, value: str) -> datetime | None:
    """An ISO 8601 time, as the API's `as_of_time` accepts it (None when empty)."""
    found = text(field, value)
    if found is None:
        return None
    try:
        return _MOMENT.validate_python(found)
    except ValidationError:
        raise BadInput(field, f"{found!r} is not a time: use ISO 8601 such as 2026-01-31T18:00:00Z") from None


def as_of(as_of_text: str, as_of_time_text: str) -> tuple[int | None, datetime | None]:
    """`as_of` and `as_of_time` as `api.point_in_time.reading` takes them (which then checks
    that at most one is given and that the position is not beyond the log's head)."""
    return position("as_of", as_of_text), moment("as_of_time", as_of_time_text)
