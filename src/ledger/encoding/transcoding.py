"""The event encoding: typed MessagePack through msgspec, self-describing, exact.

The library's `JSONTranscoder` wraps every UUID, Decimal and datetime in a
`{"_type_": ..., "_data_": ...}` object and rebuilds it in a Python hook on the way back,
so decoding an event cost tens of microseconds. Here an event's state is written as

    b"\\x01" | header length (2 bytes, big-endian) | header | MessagePack array of the values

where the header names each field and the type its value had, e.g.
`timestamp:t,meta:ms,order_id:u,key_ids:lu,amount:d`. The header is derived from the values
themselves when encoding (not from annotations), so it is exact for this event whatever its class
says, and decoding needs nothing but the bytes: a stored event stays readable after its class
changes (upcasters see the old fields), in any process. Decoding compiles one msgspec decoder per
distinct header, which then builds UUIDs, Decimals, datetimes and enums in C.

Codes: `s` str, `i` int (64-bit), `b` bool, `f` float, `n` None, `d` Decimal, `u` UUID,
`t` datetime in UTC (`tzinfo is timezone.utc`), `e(module:Enum)` an enum member by value,
`lCODE` a list and `m<code>` a dict with str keys whose items all have that scalar code, and `g`
for anything else (nested or mixed containers, other time zones, naive datetimes, big ints,
tuples), which is written in a tagged form (MessagePack extension types) and rebuilt exactly.

Payloads written before (the library's JSON, starting with `{`) are still decoded, by the
library's own code: stores need no migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID, SafeUUID

import msgspec
from eventsourcing.persistence import JSONTranscoder
from eventsourcing.utils import get_topic, resolve_topic

TYPED = 0x01  # header + typed values
GENERIC = 0x02  # one value in the tagged form (a state that is not a dict of str keys)
LEGACY = ord("{")  # the library's JSONTranscoder

# Extension type codes of the tagged form.
EXT_UUID, EXT_DECIMAL, EXT_DATETIME, EXT_ENUM, EXT_BIGINT, EXT_TUPLE = 1, 2, 3, 4, 5, 6

INT_MIN, INT_MAX = -(2**63), 2**64 - 1
MAX_DECODERS = 4096  # distinct headers kept compiled; beyond that the cache starts again

_SCALAR_CODES: dict[type, str] = {
    str: "s", int: "i", bool: "b", float: "f", type(None): "n", Decimal: "d", UUID: "u", datetime: "t",
}
# Types whose code needs no look at the value (int: its range; datetime: its zone).
_FIXED_CODES = {kind: code for kind, code in _SCALAR_CODES.items() if kind not in (int, datetime)}
_SCALAR_TYPES: dict[str, Any] = {
    "s": str, "i": int, "b": bool, "f": float, "n": None, "d": Decimal, "u": UUID, "t": datetime,
    "g": msgspec.Raw,
}


class TranscodingError(TypeError):
    """A value of a type the encoding cannot write (and the library's JSON could not either)."""


def _scalar_code(value: Any) -> str | None:
    """The code of a scalar value, or None when it needs the tagged form."""
    kind = type(value)
    code = _SCALAR_CODES.get(kind)
    if code is not None:
        if code == "i" and not INT_MIN <= value <= INT_MAX:
            return None
        if code == "t" and value.tzinfo is not UTC:
            return None
        return code
    if isinstance(value, Enum) and type(value.value) in (str, int):
        return f"e({get_topic(kind)})"
    return None


def _same_code(values: Any, code: str) -> bool:
    """Do all `values` have `code`? (The first one's was computed already.)"""
    if code in ("i", "t") or code.startswith("e"):
        return all(_scalar_code(v) == code for v in values)
    kind = _SCALAR_TYPES[code] if code != "n" else type(None)
    return all(type(v) is kind for v in values)


def value_code(value: Any) -> str:
    """The header code of one field's value."""
    code = _scalar_code(value)
    if code is not None:
        return code
    kind = type(value)
    if kind is list:
        if not value:
            return "ln"
        first = _scalar_code(value[0])
        if first is not None and _same_code(value, first):
            return "l" + first
    elif kind is dict:
        if not value:
            return "mn"
        items = iter(value.values())
        first = _scalar_code(next(items))
        if first is not None and all(type(k) is str for k in value) and _same_code(items, first):
            return "m" + first
    return "g"


# ---- the tagged form ----

def _tag(value: Any) -> Any:
    """`value` with every type MessagePack cannot carry exactly replaced by an extension."""
    kind = type(value)
    if kind is str or kind is bool or kind is float or value is None or kind is bytes:
        return value
    if kind is int:
        return value if INT_MIN <= value <= INT_MAX else msgspec.msgpack.Ext(EXT_BIGINT, str(value).encode())
    if kind is UUID:
        return msgspec.msgpack.Ext(EXT_UUID, value.bytes)
    if kind is Decimal:
        return msgspec.msgpack.Ext(EXT_DECIMAL, str(value).encode())
    if kind is datetime:
        return value if value.tzinfo is UTC else msgspec.msgpack.Ext(EXT_DATETIME, value.isoformat().encode())
    if kind is dict:
        return {_tag(k): _tag(v) for k, v in value.items()}
    if kind is list:
        return [_tag(v) for v in value]
    if kind is tuple:
        return msgspec.msgpack.Ext(EXT_TUPLE, _ENCODER.encode([_tag(v) for v in value]))
    if isinstance(value, Enum):
        return msgspec.msgpack.Ext(EXT_ENUM, _ENCODER.encode([get_topic(kind), _tag(value.value)]))
    raise TranscodingError(f"cannot encode a value of type {kind.__module__}.{kind.__qualname__}")


_new, _set, _UNKNOWN = object.__new__, object.__setattr__, SafeUUID.unknown


def _uuid(data: memoryview) -> UUID:
    """A UUID from 16 bytes, without `UUID.__init__`'s argument checks (5x faster)."""
    uuid = _new(UUID)
    _set(uuid, "int", int.from_bytes(data))
    _set(uuid, "is_safe", _UNKNOWN)
    return uuid


def _untag(code: int, data: memoryview) -> Any:
    if code == EXT_UUID:
        return _uuid(data)
    if code == EXT_DECIMAL:
        return Decimal(str(data, "ascii"))
    if code == EXT_DATETIME:
        return datetime.fromisoformat(str(data, "ascii"))
    if code == EXT_TUPLE:
        return tuple(_TAGGED.decode(data))
    if code == EXT_ENUM:
        topic, value = _TAGGED.decode(data)
        return resolve_topic(topic)(value)
    if code == EXT_BIGINT:
        return int(str(data, "ascii"))
    raise TranscodingError(f"unknown extension type {code} in a stored event")


_ENCODER = msgspec.msgpack.Encoder(uuid_format="bytes")
_TAGGED = msgspec.msgpack.Decoder(ext_hook=_untag)


# ---- headers ----

def _parse_code(code: str, at: int = 0) -> tuple[Any, int]:
    """The msgspec type of the code starting at `at`, and where it ends."""
    head = code[at]
    if head in "lm":
        inner, end = _parse_code(code, at + 1)
        return (list[inner] if head == "l" else dict[str, inner]), end  # type: ignore[valid-type]
    if head == "e":
        end = code.index(")", at)
        return resolve_topic(code[at + 2 : end]), end + 1
    return _SCALAR_TYPES[head], at + 1


class _Layout:
    """What one header compiles to: field names, a typed decoder, which fields are tagged."""

    __slots__ = ("decoder", "names", "tagged")

    def __init__(self, header: str) -> None:
        fields = [field.split(":", 1) for field in header.split(",")] if header else []
        self.names = tuple(name for name, _ in fields)
        types = []
        for _, code in fields:
            kind, end = _parse_code(code)
            if end != len(code):
                raise TranscodingError(f"bad type code {code!r} in a stored event")
            types.append(kind)
        self.decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(tuple.__class_getitem__(tuple(types)))
        self.tagged = tuple(i for i, (_, code) in enumerate(fields) if code == "g")


class LedgerTranscoder(JSONTranscoder):
    """Typed MessagePack for new events; the library's JSON still read (it is the base class,
    so the application registers its UUID, Decimal and datetime transcodings on it)."""

    def __init__(self) -> None:
        super().__init__()
        self._layouts: dict[bytes, _Layout] = {}
        self._checked_keys: set[tuple[str, ...]] = set()

    def encode(self, obj: Any) -> bytes:
        if type(obj) is not dict or not self._plain_keys(obj):
            return bytes((GENERIC,)) + _ENCODER.encode(_tag(obj))
        fields = []
        values: list[Any] = []
        for name, value in obj.items():
            code = _FIXED_CODES.get(type(value)) or value_code(value)
            fields.append(f"{name}:{code}")
            values.append(msgspec.Raw(_ENCODER.encode(_tag(value))) if code == "g" else value)
        header = ",".join(fields).encode()
        if len(header) > 0xFFFF:
            return bytes((GENERIC,)) + _ENCODER.encode(_tag(obj))
        return bytes((TYPED,)) + len(header).to_bytes(2, "big") + header + _ENCODER.encode(values)

    def _plain_keys(self, obj: dict[Any, Any]) -> bool:
        """Are all keys strings that can stand in a header? (Remembered per key set.)"""
        keys = tuple(obj)
        if keys not in self._checked_keys:
            if not all(type(k) is str and "," not in k and ":" not in k for k in keys):
                return False
            if len(self._checked_keys) >= MAX_DECODERS:
                self._checked_keys.clear()
            self._checked_keys.add(keys)
        return True

    def decode(self, data: bytes) -> Any:
        kind = data[0]
        if kind == TYPED:
            end = 3 + ((data[1] << 8) | data[2])
            layout = self._layouts.get(data[3:end]) or self._compile(data[3:end])
            values = layout.decoder.decode(data[end:])
            if layout.tagged:
                values = list(values)
                for i in layout.tagged:
                    values[i] = _TAGGED.decode(values[i])
            return dict(zip(layout.names, values))  # noqa: B905 (the decoder checked the length)
        if kind == GENERIC:
            return _TAGGED.decode(memoryview(data)[1:])
        if kind == LEGACY:
            return super().decode(data)
        raise TranscodingError(f"unknown event encoding (first byte {kind:#x})")

    def _compile(self, header: bytes) -> _Layout:
        if len(self._layouts) >= MAX_DECODERS:
            self._layouts.clear()
        layout = self._layouts[header] = _Layout(header.decode())
        return layout

