"""The Stock aggregate on its own (no store): it keeps a lot per batch, not a list of every key,
so its state — what a snapshot holds and what the writer copies — stays small however many
keys it sells from; and it hands keys out in the same order as when it listed them all."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from ledger.domain.context import Context
from ledger.domain.stock import Stock

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CTX = Context(now=NOW, actor="test")
UNTIL = NOW + timedelta(minutes=15)


def _batches(*sizes: int) -> dict[UUID, list[UUID]]:
    return {uuid4(): [uuid4() for _ in range(size)] for size in sizes}


def _stock(batches: dict[UUID, list[UUID]]) -> Stock:
    stock = Stock.open(CTX, "LOTS-1")
    for batch_id, keys in batches.items():
        stock.replenish(CTX, batch_id, keys)
    return stock


def _state_size(stock: Stock) -> int:
    state = {k: v for k, v in vars(stock).items() if k != "_pending_events"}
    return len(json.dumps(state, default=str))


def test_keys_go_out_in_import_order_across_batches_and_released_ones_first() -> None:
    batches = _batches(3, 4)
    first, second = batches.values()
    stock = _stock(batches)
    keys_of = batches.__getitem__
    a, b, c = uuid4(), uuid4(), uuid4()
    assert stock.reserve(CTX, a, 2, UNTIL, keys_of) == first[:2]
    assert stock.reserve(CTX, b, 3, UNTIL, keys_of) == [first[2], *second[:2]]
    assert stock.release(CTX, a, "expired") == first[:2]
    assert stock.available_keys(keys_of) == [*first[:2], *second[2:]]
    assert stock.reserve(CTX, c, 3, UNTIL, keys_of) == [*first[:2], second[2]]
    one, two = batches
    assert stock.reserved_batches(c) == [one, one, two]
    assert stock.deliver(CTX, b) == [first[2], *second[:2]] and stock.delivered == 3
    assert stock.available_count == 1 and stock.reserved_count == 3


def test_a_recall_voids_the_batch_keys_still_available_and_none_reserved() -> None:
    batches = _batches(3, 2)
    (recalled, keys), (_, other) = batches.items()
    stock = _stock(batches)
    order = uuid4()
    stock.reserve(CTX, order, 1, UNTIL, batches.__getitem__)
    stock.release(CTX, order, "cancelled")  # keys[0] back, first in line
    held = uuid4()
    stock.reserve(CTX, held, 2, UNTIL, batches.__getitem__)  # keys[0], keys[1]
    assert stock.void(CTX, recalled, keys, "recall") == [keys[2]]
    assert stock.available_keys(batches.__getitem__) == other and stock.voided == 1
    assert stock.reserved_keys(held) == keys[:2]


def test_state_stays_small_however_many_keys_a_batch_holds() -> None:
    small, large = _stock(_batches(1_000)), _stock(_batches(200_000))
    for stock in (small, large):
        keys_of = {lot[0]: [uuid4() for _ in range(lot[2])] for lot in stock.lots}.__getitem__
        for _ in range(50):
            stock.reserve(CTX, uuid4(), 1, UNTIL, keys_of)
    assert _state_size(large) < _state_size(small) + 100


def test_a_snapshot_from_when_stock_listed_every_key_still_loads_in_order() -> None:
    available, reserved = [uuid4() for _ in range(3)], [uuid4()]
    order = uuid4()
    state = {"sku": "OLD-1", "available": list(available), "delivered": 2, "voided": 0,
             "reservations": {str(order): {"keys": reserved, "until": UNTIL}}}
    Stock.upcast_v1_v2(state)
    stock = Stock.open(CTX, "OLD-1")
    stock.__dict__.update(state)
    assert stock.available_keys(lambda _: []) == available
    assert stock.reserved_batches(order) == [None]
    assert stock.reserve(CTX, uuid4(), 2, UNTIL, lambda _: []) == available[:2]
