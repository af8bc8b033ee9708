"""Dates and times in requests, read as the schema says (`format: date`, `format: date-time`)
and nothing else: pydantic alone would also take a number (`?to=0.5`) as seconds since 1970, and
a body's date-time as a JSON number. An ISO date is `YYYY-MM-DD`; a date-time is an ISO 8601 /
RFC 3339 date and time of day, its zone optional in a query (UTC when none is given)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}(:?\d{2})?)?$")


def _shaped(pattern: re.Pattern[str], what: str) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, date):  # already one (a Python caller, not a request)
            return value
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(f"must be {what}")
        return value

    return BeforeValidator(check)


IsoDate = Annotated[date, _shaped(_DATE, "an ISO date such as 2026-03-31")]
_EXAMPLE = "an ISO 8601 date-time such as 2026-03-31T23:59:59Z"
IsoDateTime = Annotated[datetime, _shaped(_DATE_TIME, _EXAMPLE)]
IsoAwareDateTime = Annotated[AwareDatetime, _shaped(_DATE_TIME, _EXAMPLE + ", with its zone")]
