"""Events as plain JSON, for everything that leaves the store decrypted (the audit feed, Kafka):
secrets dropped at any depth, and read back into event objects by each field's type hint."""

from __future__ import annotations

import enum
import functools
import json
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.service.queries import SECRET_FIELDS, event_data


def scrub(value: Any) -> Any:
    """JSON-ready, with every secret field dropped wherever it sits."""
    if isinstance(value, dict):
        return {str(k): scrub(v) for k, v in value.items() if k not in SECRET_FIELDS}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v) for v in value]
    if isinstance(value, enum.Enum):
        return scrub(value.value)
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def event_json(event: object) -> dict[str, Any]:
    """An event's own fields (no envelope, no secrets) as JSON-ready values."""
    data: dict[str, Any] = scrub(event_data(event))
    return data


def dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def decode_event(
    cls: type, data: dict[str, Any], originator_id: UUID, version: int, timestamp: datetime
) -> Any:
    """The event object `event_json` was made from, secrets aside (they are None): every field
    converted back to its declared type (UUID, Decimal, datetime, enums, lists of those)."""
    hints = _hints(cls)
    fields = {name: _convert(hints[name], value) if name in hints else value for name, value in data.items()}
    for secret in SECRET_FIELDS & hints.keys():
        fields.setdefault(secret, None)
    event: Any = object.__new__(cls)
    event.__dict__.update(fields, originator_id=originator_id, originator_version=version, timestamp=timestamp)
    return event


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _convert(next(a for a in args if a is not type(None)), value)
    if origin in (list, tuple, set, frozenset):
        inner = args[0] if args else Any
        converted = [_convert(inner, v) for v in value]
        return converted if origin is list else origin(converted)
    if origin is dict:
        inner = args[1] if len(args) == 2 else Any
        return {k: _convert(inner, v) for k, v in value.items()}
    if hint in (UUID, Decimal):
        return hint(value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint is date:
        return date.fromisoformat(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    return value
