"""Per-SKU key allocator: the single place that decides which key goes to which order.

All reservations of one SKU go through one aggregate version, so two orders can
never take the same key: a concurrent writer that loaded the same version loses
the commit and retries against fresh stock.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict
from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.errors import InvalidOrderState, OutOfStock
from ledger.domain.ids import stock_id


class Reservation(TypedDict):
    keys: list[UUID]
    until: datetime


class Stock(LedgerAggregate):
    """The key pool of one SKU: which keys are available and which orders hold which."""

    class Opened(LedgerAggregate.Created):
        """The SKU's key pool was opened (with the product)."""

        sku: str

    class Replenished(LedgerAggregate.Event):
        """Keys of a batch became available."""

        batch_id: UUID
        key_ids: list[UUID]

        def apply(self, stock: Stock) -> None:
            stock.available.extend(self.key_ids)

    class Reserved(LedgerAggregate.Event):
        """Keys were reserved for an order until a deadline."""

        order_id: UUID
        key_ids: list[UUID]
        until: datetime

        def apply(self, stock: Stock) -> None:
            n = len(self.key_ids)
            if stock.available[:n] == self.key_ids:  # the usual case: first in line
                del stock.available[:n]
            else:
                taken = set(self.key_ids)
                stock.available = [k for k in stock.available if k not in taken]
            stock.reservations[str(self.order_id)] = {"keys": list(self.key_ids), "until": self.until}

    class Released(LedgerAggregate.Event):
        """An unpaid order's reserved keys went back to stock (expired, cancelled, recalled)."""

        order_id: UUID
        key_ids: list[UUID]
        reason: str

        def apply(self, stock: Stock) -> None:
            del stock.reservations[str(self.order_id)]
            # Released keys were never shown to anyone: they go back first in line.
            stock.available[:0] = self.key_ids

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
            stock.available = [k for k in stock.available if k not in gone]
            stock.voided += len(self.key_ids)

    def __init__(self, sku: str) -> None:
        self.sku = sku
        self.available: list[UUID] = []
        self.reservations: dict[str, Reservation] = {}
        self.delivered = 0
        self.voided = 0

    @classmethod
    def open(cls, ctx: Context, sku: str) -> Stock:
        return cls._start(cls.Opened, stock_id(sku), ctx, sku=sku)

    @property
    def reserved_count(self) -> int:
        return sum(len(self.reserved_keys(UUID(o))) for o in self.reservations)

    def reserved_keys(self, order_id: UUID) -> list[UUID]:
        reservation = self.reservations.get(str(order_id))
        return list(reservation["keys"]) if reservation else []

    def reservation_deadline(self, order_id: UUID) -> datetime | None:
        reservation = self.reservations.get(str(order_id))
        return reservation["until"] if reservation else None

    def expired_reservations(self, now: datetime) -> list[UUID]:
        return [UUID(order) for order, r in self.reservations.items() if r["until"] <= now]

    def replenish(self, ctx: Context, batch_id: UUID, key_ids: list[UUID]) -> None:
        self._emit(self.Replenished, ctx, batch_id=batch_id, key_ids=key_ids)

    def reserve(self, ctx: Context, order_id: UUID, quantity: int, until: datetime) -> list[UUID]:
        if str(order_id) in self.reservations:
            raise InvalidOrderState(f"order {order_id} already holds a reservation")
        if quantity > len(self.available):
            raise OutOfStock(
                f"only {len(self.available)} left of {self.sku}", sku=self.sku, available=len(self.available)
            )
        keys = self.available[:quantity]
        self._emit(self.Reserved, ctx, order_id=order_id, key_ids=keys, until=until)
        return keys

    def release(self, ctx: Context, order_id: UUID, reason: str) -> list[UUID]:
        keys = self.reserved_keys(order_id)
        if keys:
            self._emit(self.Released, ctx, order_id=order_id, key_ids=keys, reason=reason)
        return keys

    def deliver(self, ctx: Context, order_id: UUID) -> list[UUID]:
        keys = self.reserved_keys(order_id)
        if not keys:
            raise InvalidOrderState(f"order {order_id} holds no reservation of {self.sku}")
        self._emit(self.Delivered, ctx, order_id=order_id, key_ids=keys)
        return keys

    def orders_holding(self, key_ids: list[UUID]) -> list[UUID]:
        wanted = set(key_ids)
        return [UUID(o) for o, r in self.reservations.items() if wanted.intersection(r["keys"])]

    def void(self, ctx: Context, batch_id: UUID, key_ids: list[UUID], reason: str) -> list[UUID]:
        """Void those of `key_ids` that are available; reserved ones must be released first."""
        present = set(self.available)
        voided = [k for k in key_ids if k in present]
        if voided:
            self._emit(self.Voided, ctx, batch_id=batch_id, key_ids=voided, reason=reason)
        return voided
