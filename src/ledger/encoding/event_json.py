"""Events as plain JSON, for everything that leaves the store decrypted (the audit feed, Kafka):
secrets dropped at any depth, and read back into event objects by each field's type hint."""

from __future__ import annotations

import enum
import functools
import json
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from ledger.domain.stock import Stock
from ledger.domain.supply import Batch, Key
from ledger.encoding.fields import ENVELOPE_FIELDS, SECRET_FIELDS


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


_SKIP = SECRET_FIELDS | ENVELOPE_FIELDS


class Counted(NamedTuple):
    """A list published on Kafka as its length: `listed` is sent as `counted_as`. Each id of the
    list is the message key of one `member` event of the same command, after it in the log and in
    list order. (A command's events are contiguous in the log, grouped by aggregate in the order
    the command first touched each: an import and a recall touch the batch and the stock before
    the keys; docs/kafka.md, "Message size".)"""

    listed: str
    counted_as: str
    member: type


# Lists as long as a supplier file (100,000 key ids are 3.9 MB of JSON, over Kafka's 1 MB default
# message size) whose every id the log also carries in a message of its own: an import's keys
# each have a `Key.Registered`, a recall's each a `Key.Voided`.
COUNTED_ON_KAFKA: dict[type, Counted] = {
    Batch.Received: Counted("key_ids", "key_count", Key.Registered),
    Stock.Replenished: Counted("key_ids", "key_count", Key.Registered),
    Batch.Recalled: Counted("voided_key_ids", "voided_key_count", Key.Voided),
    Stock.Voided: Counted("key_ids", "key_count", Key.Voided),
}


def kafka_json(event: Any) -> dict[str, Any]:
    """An event as published on Kafka: its own fields (no envelope, no secrets) as JSON-ready values,
    what `scrub(event_data(event))` gives but with the lists of `COUNTED_ON_KAFKA` as their length.
    Each field is encoded by a function chosen once per class from its type hint (the relay encodes
    every event; the generic walk was a fifth of its time)."""
    return _fields(event, COUNTED_ON_KAFKA.get(type(event)))


def _fields(event: Any, counted: Counted | None) -> dict[str, Any]:
    """The event's fields, each by its class's encoder; `counted`: that list as its length, under
    the other name (the list itself is never encoded)."""
    kind: Any = type(event)
    encoders = _encoders(kind)
    listed, count = counted[:2] if counted else ("", "")  # "": no field has that name
    return {
        count if name == listed else name: len(value) if name == listed else encoders.get(name, scrub)(value)
        for name, value in vars(event).items() if name not in _SKIP
    }


@functools.cache
def _encoders(cls: Any) -> dict[str, Convert]:
    return {name: _encoder(hint) for name, hint in typing.get_type_hints(cls).items() if name not in _SKIP}


def _encoder(hint: Any) -> Convert:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [_encoder(a) for a in args if a is not type(None)]
        if len(inner) == 1:
            only = inner[0]
            return lambda v: None if v is None else only(v)
    elif origin in (list, tuple, set, frozenset) and args:
        item = _encoder(args[0])
        return lambda v: [item(x) for x in v]
    elif hint in (UUID, Decimal):
        return str
    elif hint in (datetime, date):
        return lambda v: v.isoformat()
    elif hint in (str, int, bool):
        return _same
    return scrub  # Any, dicts (which may hold secrets at any depth), enums: the generic walk


def dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def decode_event(
    cls: type, data: dict[str, Any], originator_id: UUID, version: int, timestamp: datetime
) -> Any:
    """The event object `kafka_json` was made from (its counted lists filled back in), secrets aside
    (they are None): every field converted back to its declared type (UUID, Decimal, datetime,
    enums, lists of those)."""
    converters = _converters(cls)
    fields = {name: converters.get(name, _same)(value) for name, value in data.items()}
    for secret in SECRET_FIELDS & converters.keys():
        fields.setdefault(secret, None)
    event: Any = object.__new__(cls)
    event.__dict__.update(fields, originator_id=originator_id, originator_version=version, timestamp=timestamp)
    return event


Convert = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


@functools.cache
def _converters(cls: type) -> dict[str, Convert]:
    """One converter per field of an event class, built once from its type hints."""
    return {name: _converter(hint) for name, hint in typing.get_type_hints(cls).items()}


def _converter(hint: Any) -> Convert:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = _converter(next(a for a in args if a is not type(None)))
        return lambda v: None if v is None else inner(v)
    if origin in (list, tuple, set, frozenset):
        item = _converter(args[0]) if args else _same
        container: Callable[[list[Any]], Any] = list if origin is list else origin
        return lambda v: container([item(x) for x in v])
    if origin is dict:
        value = _converter(args[1]) if len(args) == 2 else _same
        return lambda v: {k: value(x) for k, x in v.items()}
    if hint in (UUID, Decimal):
        return typing.cast(Convert, hint)
    if hint is datetime:
        return datetime.fromisoformat
    if hint is date:
        return date.fromisoformat
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    return _same
