"""The event catalogue (not the product `Catalog` of `ledger.domain.catalog`): every aggregate and
the events it declares, with their fields as stored and as published on Kafka. docs/events.md is
generated from it, from the aggregates themselves, so the document cannot drift."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from types import ModuleType
from typing import Any
from uuid import UUID

from ledger.domain import (
    answers,
    catalog,
    fulfilment,
    holders,
    orders,
    payment_providers,
    promotions,
    recipients,
    stock,
    suppliers,
    supply,
    validity,
)
from ledger.domain.base import LedgerAggregate

MODULES: tuple[ModuleType, ...] = (
    catalog, supply, stock, orders, fulfilment, validity, suppliers, recipients, holders, promotions, answers,
    payment_providers,
)
_BASE_FIELDS = {"originator_id", "originator_version", "timestamp", "originator_topic", "meta"}

HEADER = """# Event catalogue

Generated from the code by `python scripts/gen_events_doc.py`; a test fails when this
file and the code disagree. Every event also carries `originator_id` (the aggregate id),
`originator_version`, `timestamp` (occurred-at, from the command's clock) and `meta`
(`actor`, `correlation_id`, `causation_id`, and `client_ip` / `device_id` when the command
had them). Event payloads are encrypted at rest (AES-GCM); card-key codes are sealed a
second time inside `Key.Registered.sealed_code`, so a decrypted event stream still holds
no code in clear.
"""


def aggregates() -> list[type[LedgerAggregate]]:
    found: list[type[LedgerAggregate]] = []
    for module in MODULES:
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, LedgerAggregate)
                and obj.__module__ == module.__name__
                and not obj.__name__.startswith("_")
            ):
                found.append(obj)
    return found


def declared_events(aggregate: type[LedgerAggregate]) -> list[type[LedgerAggregate.Event]]:
    """The events an aggregate declares. The library gives every aggregate class empty
    `Event` and `Created` bases of its own; those (no fields, no docstring) are left out.
    An event written without a docstring is still listed, and the catalogue test fails."""
    events = []
    for name, obj in vars(aggregate).items():
        if not (inspect.isclass(obj) and issubclass(obj, LedgerAggregate.Event)) or name.startswith("_"):
            continue
        library_base = name in ("Event", "Created") and not _fields(obj) and not _doc(obj)
        if not library_base:
            events.append(obj)
    return events


def _doc(obj: type) -> str:
    """The first line of the docstring written in the source.

    The library re-creates event classes as dataclasses, whose generated __doc__ is
    the signature; the written one sits on the class it was made from.
    """
    for klass in obj.__mro__:
        if klass.__name__ != obj.__name__:
            break
        doc = klass.__dict__.get("__doc__") or ""
        if doc.strip() and not doc.startswith(obj.__name__ + "("):
            return inspect.cleandoc(doc).splitlines()[0]
    return ""


def _fields(event: type[LedgerAggregate.Event]) -> list[tuple[str, str]]:
    hints = typing.get_type_hints(event)
    return [
        (f.name, _type_name(hints[f.name]))
        for f in dataclasses.fields(event)  # type: ignore[arg-type]
        if f.name not in _BASE_FIELDS
    ]


def _type_name(hint: object) -> str:
    text = getattr(hint, "__name__", None) if not typing.get_args(hint) else None
    return text or str(hint).replace("typing.", "").replace("decimal.", "").replace("uuid.", "").replace(
        "datetime.", ""
    )


def render() -> str:
    lines = [HEADER]
    for aggregate in aggregates():
        lines.append(f"## {aggregate.__name__}\n")
        doc = _doc(aggregate)
        if doc:
            lines.append(doc + "\n")
        lines.append(f"Module `{aggregate.__module__}`.\n")
        lines.append("| event | fields | meaning |")
        lines.append("| --- | --- | --- |")
        for event in declared_events(aggregate):
            # A "|" inside a type would end the table cell.
            fields = ", ".join(f"`{n}`: {t.replace('|', 'or')}" for n, t in _fields(event)) or "—"
            meaning = _doc(event)
            lines.append(f"| `{aggregate.__name__}.{event.__name__}` | {fields} | {meaning} |")
        lines.append("")
    lines.append(render_kafka())
    return "\n".join(lines).rstrip() + "\n"


KAFKA_HEADER = """## On Kafka

`ledger relay` publishes every event to the topic `<prefix>events` (docs/kafka.md), one message
per event, key = the aggregate id, in the CloudEvents Kafka binding's binary mode:

| header | value |
| --- | --- |
| `ce_specversion` | `1.0` |
| `ce_id` | `<aggregate id>/<version>`: unique, and the same on a re-delivery |
| `ce_source` | `LEDGER_KAFKA_SOURCE` (default `urn:ledger`) |
| `ce_type` | `ledger.<Aggregate>.<Event>`, e.g. `ledger.Order.Placed` |
| `ce_time` | the event's `timestamp`, ISO 8601 with offset |
| `ce_subject` | the aggregate id (also the message key) |
| `content-type` | `application/json` |
| `ledger_position` | the event's position in the global log (deduplicate and order by it) |
| `ledger_prev_position` | the position of the event before it in the log (0 for the first) |
| `ledger_version` | the aggregate version (`originator_version`) |

The value is a JSON object of the event's own fields below plus `meta` (object of strings).
Identifiers are strings in UUID form, money is a decimal string (`"9.50"`, never a float), times
are ISO 8601 strings. `sealed_code` and `code_hmac` are never sent: no card-key code, sealed code
or code hash leaves the ledger this way. Lists of key ids as long as a supplier file are sent as
their length (a file of 100,000 keys would be a 3.9 MB message): `Batch.Received` and
`Stock.Replenished` carry `key_count` instead of the batch's `key_ids`, and a recall's
`Batch.Recalled` and `Stock.Voided` carry `voided_key_count` and `key_count`. Each of those ids is
the key of its own message, `Key.Registered` (whose `batch_id` names the batch) or `Key.Voided`,
after them in the log, of the same command (the same `meta.correlation_id`) and in list order by
`ledger_position` (docs/kafka.md, "Message size").
"""

_JSON_NAMES = {
    str: "string", int: "integer", bool: "boolean", float: "number", UUID: "uuid string",
    Decimal: "decimal string", datetime: "ISO 8601 string", date: "ISO date string",
}


def _json_type(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _json_type(a) for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"array of {_json_type(args[0]) if args else 'any'}"
    if origin is dict:
        return f"object of {_json_type(args[1])}" if len(args) == 2 else "object"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "string (" + " / ".join(str(m.value) for m in hint) + ")"
    return _JSON_NAMES.get(hint, "any JSON")


def kafka_fields(event: type[LedgerAggregate.Event]) -> list[tuple[str, str]]:
    """The fields of an event's Kafka value and their JSON types (secrets left out)."""
    from ledger.encoding.event_json import COUNTED_ON_KAFKA
    from ledger.encoding.fields import SECRET_FIELDS

    hints = typing.get_type_hints(event)
    counted = COUNTED_ON_KAFKA.get(event)
    return [
        (counted.counted_as, f"integer (how many; the ids are in `{counted.member.__qualname__}`)")
        if counted and f.name == counted.listed
        else (f.name, _json_type(hints[f.name]))
        for f in dataclasses.fields(event)  # type: ignore[arg-type]
        if f.name not in _BASE_FIELDS and f.name not in SECRET_FIELDS
    ]


def render_kafka() -> str:
    lines = [KAFKA_HEADER, "| `ce_type` | value fields (besides `meta`) |", "| --- | --- |"]
    for aggregate in aggregates():
        for event in declared_events(aggregate):
            fields = ", ".join(f"`{n}`: {t}" for n, t in kafka_fields(event)) or "—"
            lines.append(f"| `ledger.{aggregate.__name__}.{event.__name__}` | {fields} |")
    return "\n".join(lines)
