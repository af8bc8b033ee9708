"""Per-SKU key allocator: the single place that decides which key goes to which order.

It is also the SKU's book of unpaid orders and their deadlines, which the sweeper reads: an
order of goods not taken from stock (a recharge, a grant) holds a reservation of no keys.

All reservations of one SKU go through one aggregate version, so two orders can
never take the same key: a concurrent writer that loaded the same version loses
the commit and re-decides against fresh stock.

The pool does not list every key it holds. A batch's keys are listed once, in the
batch (`Batch.key_ids`); the stock keeps a *lot* per batch — the batch and how far
into its list the SKU has sold — so a SKU with a million keys costs the same per
purchase, per snapshot and per copy as one with a thousand. Keys given back by an
unpaid order are listed one by one (they are few) and go first in line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypedDict
from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.errors import InvalidOrderState, OutOfStock
from ledger.domain.ids import stock_id

# The keys of a batch, in the order they were imported (`Batch.key_ids`).
KeysOf = Callable[[UUID], Sequence[UUID]]


class Reservation(TypedDict):
    keys: list[UUID]
    batches: list[UUID | None]  # each key's batch; None only for keys reserved before lots existed
    until: datetime


class Stock(LedgerAggregate):
    """The key pool of one SKU: which keys are available and which orders hold which."""

    class_version = 2

    class Opened(LedgerAggregate.Created):
        """The SKU's key pool was opened (with the product)."""

        sku: str

    class Replenished(LedgerAggregate.Event):
        """Keys of a batch became available."""

        batch_id: UUID
        key_ids: list[UUID]

        def apply(self, stock: Stock) -> None:
            stock.lots.append([self.batch_id, 0, len(self.key_ids)])

    class Reserved(LedgerAggregate.Event):
        """Keys were reserved for an order until a deadline."""

        order_id: UUID
        key_ids: list[UUID]
        until: datetime

        def apply(self, stock: Stock) -> None:
            stock.reservations[str(self.order_id)] = {
                "keys": list(self.key_ids), "batches": stock._take(len(self.key_ids)), "until": self.until,
            }

    class Released(LedgerAggregate.Event):
        """An unpaid order's reserved keys went back to stock (expired, cancelled, recalled)."""

        order_id: UUID
        key_ids: list[UUID]
        reason: str

        def apply(self, stock: Stock) -> None:
            reservation = stock.reservations.pop(str(self.order_id))
            # Released keys were never shown to anyone: they go back first in line.
            stock.released[:0] = [[k, b] for k, b in zip(reservation["keys"], reservation["batches"], strict=True)]

    class Delivered(LedgerAggregate.Event):
        """An order's reserved keys left stock for good."""

        order_id: UUID
        key_ids: list[UUID]

        def apply(self, stock: Stock) -> None:
            del stock.reservations[str(self.order_id)]
            stock.delivered += len(self.key_ids)

    class Voided(LedgerAggregate.Event):
        """Available keys were voided by a supplier recall."""

        batch_id: UUID
        key_ids: list[UUID]
        reason: str

        def apply(self, stock: Stock) -> None:
            gone = set(self.key_ids)
            stock.released = [entry for entry in stock.released if entry[0] not in gone]
            stock.lots = [lot for lot in stock.lots if lot[0] != self.batch_id]
            stock.voided += len(self.key_ids)

    def __init__(self, sku: str) -> None:
        self.sku = sku
        self.released: list[list[Any]] = []  # [key id, batch id | None], first in line
        self.lots: list[list[Any]] = []  # [batch id, next index, end index], in import order
        self.reservations: dict[str, Reservation] = {}
        self.delivered = 0
        self.voided = 0

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Snapshots from before lots listed every available key: keep them, in order."""
        state["released"] = [[k, None] for k in state.pop("available")]
        state["lots"] = []
        for reservation in state["reservations"].values():
            reservation["batches"] = [None] * len(reservation["keys"])

    @classmethod
    def open(cls, ctx: Context, sku: str) -> Stock:
        return cls._start(cls.Opened, stock_id(sku), ctx, sku=sku)

    # ---- what it holds ----

    @property
    def available_count(self) -> int:
        return len(self.released) + sum(int(end) - int(start) for _, start, end in self.lots)

    def available_keys(self, keys_of: KeysOf) -> list[UUID]:
        """Every available key in the order they would be reserved (for reports and tests)."""
        keys = [k for k, _ in self.released]
        for batch_id, start, end in self.lots:
            keys.extend(keys_of(batch_id)[start:end])
        return keys

    @property
    def reserved_count(self) -> int:
        return sum(len(r["keys"]) for r in self.reservations.values())

    def reserved_keys(self, order_id: UUID) -> list[UUID]:
        reservation = self.reservations.get(str(order_id))
        return list(reservation["keys"]) if reservation else []

    def reserved_batches(self, order_id: UUID) -> list[UUID | None]:
        reservation = self.reservations.get(str(order_id))
        return list(reservation["batches"]) if reservation else []

    def expired_reservations(self, now: datetime) -> list[UUID]:
        return [UUID(order) for order, r in self.reservations.items() if r["until"] <= now]

    def orders_holding(self, key_ids: list[UUID]) -> list[UUID]:
        wanted = set(key_ids)
        return [UUID(o) for o, r in self.reservations.items() if wanted.intersection(r["keys"])]

    # ---- commands ----

    def replenish(self, ctx: Context, batch_id: UUID, key_ids: list[UUID]) -> None:
        self._emit(self.Replenished, ctx, batch_id=batch_id, key_ids=key_ids)

    def reserve(self, ctx: Context, order_id: UUID, quantity: int, until: datetime, keys_of: KeysOf) -> list[UUID]:
        if str(order_id) in self.reservations:
            raise InvalidOrderState(f"order {order_id} already holds a reservation")
        available = self.available_count
        if quantity > available:
            raise OutOfStock(f"only {available} left of {self.sku}", sku=self.sku, available=available)
        keys = [k for k, _ in self.released[:quantity]]
        for batch_id, start, end in self.lots:
            if len(keys) == quantity:
                break
            keys.extend(keys_of(batch_id)[start:min(end, start + quantity - len(keys))])
        self._emit(self.Reserved, ctx, order_id=order_id, key_ids=keys, until=until)
        return keys

    def release(self, ctx: Context, order_id: UUID, reason: str) -> list[UUID]:
        """Give an unpaid order's keys back (none, for goods not taken from stock: the hold ends)."""
        keys = self.reserved_keys(order_id)
        if str(order_id) in self.reservations:
            self._emit(self.Released, ctx, order_id=order_id, key_ids=keys, reason=reason)
        return keys

    def deliver(self, ctx: Context, order_id: UUID) -> list[UUID]:
        """The paid order's keys leave stock for good (none, for goods not taken from stock)."""
        if str(order_id) not in self.reservations:
            raise InvalidOrderState(f"order {order_id} holds no reservation of {self.sku}")
        keys = self.reserved_keys(order_id)
        self._emit(self.Delivered, ctx, order_id=order_id, key_ids=keys)
        return keys

    def void(self, ctx: Context, batch_id: UUID, key_ids: list[UUID], reason: str) -> list[UUID]:
        """Void the batch's keys that are available (`key_ids`: the batch's keys, in import
        order); reserved ones must be released first."""
        wanted = set(key_ids)
        voided = [k for k, _ in self.released if k in wanted]
        for lot_batch, start, end in self.lots:
            if lot_batch == batch_id:
                voided.extend(key_ids[start:end])
        if voided:
            self._emit(self.Voided, ctx, batch_id=batch_id, key_ids=voided, reason=reason)
        return voided

    def _take(self, n: int) -> list[UUID | None]:
        """Take `n` keys off the front of the line; return each one's batch."""
        batches: list[UUID | None] = [b for _, b in self.released[:n]]
        del self.released[:n]
        while len(batches) < n:
            lot = self.lots[0]
            taken = min(n - len(batches), lot[2] - lot[1])
            batches.extend([lot[0]] * taken)
            lot[1] += taken
            if lot[1] == lot[2]:
                self.lots.pop(0)
        return batches
