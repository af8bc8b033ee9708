"""A lane of the read models built from Kafka (`projections.kafka.source.LaneWorker`), fed messages
by hand, without a broker: it applies an import or a recall only once all of its keys' messages are
in, and fills in the key lists that Kafka carries as counts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest


class _Record:
    def __init__(self, key: str, value: dict[str, Any]) -> None:
        self.key, self.value = key.encode(), json.dumps(value).encode()


def _lane_fed(batch_size: int, items: dict[int, tuple[str, _Record]]) -> tuple[Any, Callable[..., None]]:
    """A lane worker at position 0 with nothing pending, and a function that delivers `items` by position."""
    from projections.kafka.source import LaneWorker, _Pending

    worker: Any = object.__new__(LaneWorker)
    worker.position, worker.batch_size, worker.pending = 0, batch_size, {}

    def arrive(*positions: int) -> None:
        for n in positions:
            ce_type, record = items[n]
            worker.pending[n - 1] = _Pending(n, 0, n, record, ce_type.encode())

    return worker, arrive


def test_a_lane_never_applies_a_batch_before_all_of_its_keys_are_in() -> None:
    batch = "0d9f6a4c-3b4e-4f4e-9d6c-2f0e8a3b1c55"
    worker, arrive = _lane_fed(2, {
        1: ("ledger.Stock.Replenished", _Record("s", {"batch_id": batch, "key_count": 3})),
        2: ("ledger.Batch.Received", _Record(batch, {"key_count": 3})),
        3: ("ledger.Key.Registered", _Record("k1", {"batch_id": batch})),
        4: ("ledger.Key.Registered", _Record("k2", {"batch_id": batch})),
        5: ("ledger.Key.Registered", _Record("k3", {"batch_id": batch})),
        6: ("ledger.Order.Placed", _Record("o", {})),
    })
    arrive(1, 2, 3, 4)
    assert worker._next_chain() == []  # the import (its stock's and batch's lists) waits for its third key
    arrive(5, 6)
    chain = worker._next_chain()
    assert [i.position for i in chain] == [1, 2, 3, 4, 5]  # past batch_size, to its last key
    assert worker._fill_lists(chain) == {1: ["k1", "k2", "k3"], 2: ["k1", "k2", "k3"]}


def test_a_lane_fills_a_recall_s_lists_from_the_key_voided_messages_of_that_recall_only() -> None:
    """A recall writes `Batch.Recalled`, the stock's events, the cancelled orders' and then one
    `Key.Voided` per key, in the order its lists name them. An earlier recall's `Key.Voided` is
    not one of this one's; a `Key.Voided` of another command where one is expected is an error."""
    this, other = {"correlation_id": "recall-2"}, {"correlation_id": "recall-1"}
    items = {
        1: ("ledger.Key.Voided", _Record("k0", {"meta": other})),
        2: ("ledger.Batch.Recalled", _Record("b", {"voided_key_count": 2, "meta": this})),
        3: ("ledger.Stock.Released", _Record("s", {"meta": this})),
        4: ("ledger.Stock.Voided", _Record("s", {"batch_id": "b", "key_count": 2, "meta": this})),
        5: ("ledger.Order.Cancelled", _Record("o", {"meta": this})),
        6: ("ledger.Key.Voided", _Record("k1", {"meta": this})),
        7: ("ledger.Key.Voided", _Record("k2", {"meta": this})),
        8: ("ledger.Batch.Recalled", _Record("c", {"voided_key_count": 0, "meta": other})),
    }
    worker, arrive = _lane_fed(1, items)
    arrive(1, 2, 3, 4, 5, 6)
    assert [i.position for i in worker._next_chain()] == [1]  # the recall waits for its second key
    arrive(7, 8)
    worker.position = 1  # as after applying position 1
    chain = worker._next_chain()
    assert [i.position for i in chain] == [2, 3, 4, 5, 6, 7]
    assert worker._fill_lists(chain) == {2: ["k1", "k2"], 4: ["k1", "k2"]}

    items[7] = ("ledger.Key.Voided", _Record("k2", {"meta": other}))
    worker, arrive = _lane_fed(1, items)
    arrive(*items)
    worker.position = 1
    with pytest.raises(ValueError, match=r"position 7: a ledger\.Key\.Voided of another command"):
        worker._fill_lists(worker._next_chain())


def test_a_lane_takes_a_recall_published_before_recalls_were_counted_as_it_is() -> None:
    """A topic written by an older relay lists a recall's keys in `Stock.Voided`: nothing to wait
    for, nothing to fill in."""
    listed = {"batch_id": "b", "key_ids": ["k1", "k2"], "meta": {"correlation_id": "r"}}
    worker, arrive = _lane_fed(1, {
        1: ("ledger.Stock.Voided", _Record("s", listed)),
        2: ("ledger.Key.Voided", _Record("k1", {"meta": {"correlation_id": "r"}})),
    })
    arrive(1, 2)
    chain = worker._next_chain()
    assert [i.position for i in chain] == [1]
    assert worker._fill_lists(chain) == {}
