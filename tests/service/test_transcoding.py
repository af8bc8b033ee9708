"""The event encoding (ledger.encoding.transcoding): every state an event or a snapshot can hold comes
back with the same values AND the same types, and stores written with the library's JSON
stay readable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex
from eventsourcing.utils import Environment
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.application import LedgerApp
from ledger.domain.catalog import ProductKind
from ledger.domain.holders import HolderKind
from ledger.domain.ids import stock_id
from ledger.domain.orders import OrderStatus
from ledger.domain.supply import KeyStatus
from ledger.encoding.cipher import KeptKeyAESCipher
from ledger.encoding.transcoding import LedgerTranscoder, TranscodingError
from tests.conftest import FakeClock, LedgerFactory


def _with_library_types(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


def exact(value: Any) -> Any:
    """`value` as nested (type, ...) tuples: equal only if every value AND type is equal
    (and every datetime has the same UTC offset)."""
    kind = type(value)
    if kind is dict:
        return (dict, sorted((exact(k), exact(v)) for k, v in value.items()))
    if kind in (list, tuple):
        return (kind, [exact(v) for v in value])
    if kind is datetime:
        return (datetime, value.isoformat(), value.tzinfo is UTC)
    if kind is Decimal:
        return (Decimal, str(value))  # "1.10" and "1.1" are different amounts of digits
    return (kind, repr(value))


ENUMS = [*OrderStatus, *HolderKind, *KeyStatus, *ProductKind]
zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(),  # beyond 64 bits too
    st.floats(allow_nan=False),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20),  # surrogates: no UTF-8
    st.decimals(allow_nan=False),
    st.uuids(),
    st.datetimes(timezones=zones),
    st.datetimes(),  # naive
    st.sampled_from(ENUMS),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=8), inner, max_size=5),
    ),
    max_leaves=20,
)
# Event states as the library hands them over: str keys; the typed fast paths first.
typed_lists = st.one_of(st.lists(st.uuids(), max_size=6), st.lists(st.decimals(allow_nan=False), max_size=4),
                        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=4))
states = st.dictionaries(st.text(min_size=1, max_size=12), st.one_of(values, typed_lists), max_size=10)


@settings(max_examples=120, deadline=None)
@given(states)
def test_any_state_round_trips_exactly(state: dict[str, Any]) -> None:
    transcoder = _with_library_types(LedgerTranscoder())
    assert exact(transcoder.decode(transcoder.encode(state))) == exact(state)


@settings(max_examples=60, deadline=None)
@given(values)
def test_values_that_are_not_event_states_round_trip_too(value: Any) -> None:
    transcoder = LedgerTranscoder()
    assert exact(transcoder.decode(transcoder.encode(value))) == exact(value)


legacy_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10), st.decimals(allow_nan=False),
              st.uuids(), st.datetimes(timezones=zones)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=15,
)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.text(max_size=10), legacy_values, max_size=8))
def test_payloads_of_the_library_json_still_decode(state: dict[str, Any]) -> None:
    legacy = _with_library_types(JSONTranscoder())
    stored = legacy.encode(state)
    assert exact(_with_library_types(LedgerTranscoder()).decode(stored)) == exact(legacy.decode(stored))


def test_typed_header_carries_the_types_of_the_values() -> None:
    """The header says what each value was, so decoding needs no class and survives class changes."""
    key_ids = [UUID(int=1), UUID(int=2)]
    stored = LedgerTranscoder().encode({
        "order_id": UUID(int=3), "key_ids": key_ids, "amount": Decimal("10.50"), "note": None,
        "at": datetime(2026, 1, 1, tzinfo=UTC), "status": OrderStatus.RESERVED, "meta": {"actor": "x"},
        "keys": [{"key_id": UUID(int=1)}],
    })
    header = stored[3 : 3 + int.from_bytes(stored[1:3], "big")].decode()
    assert header == (
        "order_id:u,key_ids:lu,amount:d,note:n,at:t,"
        "status:e(ledger.domain.orders:OrderStatus),meta:ms,keys:g"
    )
    decoded = LedgerTranscoder().decode(stored)
    assert decoded["key_ids"] == key_ids and type(decoded["key_ids"][0]) is UUID
    assert decoded["status"] is OrderStatus.RESERVED
    assert decoded["keys"] == [{"key_id": UUID(int=1)}]


class Colour(Enum):
    RED = (1, 2)  # a value MessagePack cannot key an enum by


def test_unsupported_values_are_refused_with_their_type() -> None:
    transcoder = LedgerTranscoder()
    with pytest.raises(TranscodingError, match=r"builtins\.set"):
        transcoder.encode({"tags": {"a", "b"}})
    with pytest.raises(TranscodingError, match="unknown event encoding"):
        transcoder.decode(b"\x7fgarbage")
    assert transcoder.decode(transcoder.encode({"colour": Colour.RED}))["colour"] is Colour.RED


def test_a_store_written_with_the_library_json_is_read_and_extended(
    make_ledger: LedgerFactory, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events and snapshots written before the switch decode exactly as the library's own
    transcoder decodes them, and the ledger goes on from there, mixing both encodings."""
    with monkeypatch.context() as patch:
        patch.setattr(LedgerApp, "env", {})  # the library's default transcoder, as before
        before = make_ledger(max_unpaid_per_customer=1000, max_unpaid_per_ip=1000)
        assert type(before.app.mapper.transcoder) is JSONTranscoder
        admin = before.context("admin")
        before.define_product(admin, sku="GIFT-25", name="Gift", face_value="25", currency="EUR", price="24.50")
        before.import_keys(admin, sku="GIFT-25", supplier="s", unit_cost="20.10",
                           codes=[(i, f"G-{i:04d}") for i in range(1, 300)])
        with before.batch():
            for n in range(255):  # 510 events on the stock: past its snapshot interval
                placed = before.place_order(before.context(), customer_id=f"c{n}", sku="GIFT-25", quantity=1)
                before.capture_payment(before.context(), placed.order_id, payment_reference=f"p{n}",
                                       amount=placed.amount_due, provider="psp")
        old_events = before.app.recorder.select_notifications(1, 100_000)
        assert all(n.state for n in old_events)
        before.close()

    after = make_ledger(max_unpaid_per_customer=1000, max_unpaid_per_ip=1000, aggregate_cache_size=0)
    assert type(after.app.mapper.transcoder) is LedgerTranscoder
    legacy = _with_library_types(JSONTranscoder())
    cipher = after.app.mapper.cipher
    assert cipher is not None
    for notification in old_events:
        plain = cipher.decrypt(notification.state)
        assert plain.startswith(b"{")
        assert exact(after.app.mapper.transcoder.decode(plain)) == exact(legacy.decode(plain))
    snapshots = list(after.app.snapshots.get(stock_id("GIFT-25"))) if after.app.snapshots else []
    assert snapshots and cipher.decrypt(after.app.recorder.select_notifications(1, 1)[0].state).startswith(b"{")

    stock = after.reads.stock("GIFT-25")  # from the old snapshot plus old events
    assert len(stock.available) == 299 - 255
    placed = after.place_order(after.context(), customer_id="new", sku="GIFT-25", quantity=2)
    after.capture_payment(after.context(), placed.order_id, payment_reference="p-new", amount=placed.amount_due,
                          provider="psp")
    assert len(after.reads.stock("GIFT-25").available) == 299 - 257
    newest = after.app.recorder.select_notifications(len(old_events) + 1, 100)
    assert newest and all(cipher.decrypt(n.state)[0] == 1 for n in newest)  # written typed
    order = after.reads.order(placed.order_id)
    assert order.status == OrderStatus.DELIVERED and order.amount_paid == Decimal("49.00")


def test_the_kept_key_cipher_reads_and_writes_the_library_form() -> None:
    env = Environment("T", {"CIPHER_KEY": AESCipher.create_key(32)})
    library, kept = AESCipher(env), KeptKeyAESCipher(env)
    for plaintext in (b"", b"{}", bytes(range(256)) * 3):
        assert kept.decrypt(library.encrypt(plaintext)) == plaintext
        assert library.decrypt(kept.encrypt(plaintext)) == plaintext
    sealed = bytearray(kept.encrypt(b"card key"))
    sealed[-1] ^= 1
    with pytest.raises(ValueError, match="Invalid cipher tag"):
        kept.decrypt(bytes(sealed))
    with pytest.raises(ValueError, match="Damaged"):
        kept.decrypt(b"short")
