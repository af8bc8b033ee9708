"""Who holds reservations and how many units they bought: a customer, an IP or a device.

Per-customer purchase limits and caps on unpaid reservations are checked against the
holder's own version, so a scalper racing many requests cannot slip past them.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.ids import holder_id


class HolderKind(StrEnum):
    CUSTOMER = "customer"
    IP = "ip"
    DEVICE = "device"


class Holder(LedgerAggregate):
    """A customer, IP or device: its unpaid reservations and the units it bought per SKU."""

    class Opened(LedgerAggregate.Created):
        """A customer, IP or device was first seen."""

        kind: str
        value: str

    class ReservationHeld(LedgerAggregate.Event):
        """It holds an unpaid reservation (counts against its caps)."""

        order_id: UUID
        sku: str
        units: int

        def apply(self, holder: Holder) -> None:
            holder.open_orders[str(self.order_id)] = self.sku
            holder._count(self.sku, self.units)

    class ReservationClosed(LedgerAggregate.Event):
        """That reservation was paid, expired or cancelled."""

        order_id: UUID
        sku: str
        units: int
        outcome: str  # paid, expired, cancelled

        def apply(self, holder: Holder) -> None:
            del holder.open_orders[str(self.order_id)]
            if self.outcome != "paid":
                holder._count(self.sku, -self.units)

    class LatePurchase(LedgerAggregate.Event):
        """Units delivered to an order whose reservation had already lapsed."""

        order_id: UUID
        sku: str
        units: int

        def apply(self, holder: Holder) -> None:
            holder._count(self.sku, self.units)

    def __init__(self, kind: str, value: str) -> None:
        # A plain str, not HolderKind: snapshots bring state back through JSON.
        self.kind: str = HolderKind(kind).value
        self.value = value
        self.open_orders: dict[str, str] = {}
        self.units_by_sku: dict[str, int] = {}

    @classmethod
    def open(cls, ctx: Context, kind: HolderKind, value: str) -> Holder:
        return cls._start(cls.Opened, holder_id(kind, value), ctx, kind=kind.value, value=value)

    @property
    def unpaid(self) -> int:
        return len(self.open_orders)

    def units(self, sku: str) -> int:
        return self.units_by_sku.get(sku, 0)

    def _count(self, sku: str, units: int) -> None:
        self.units_by_sku[sku] = self.units_by_sku.get(sku, 0) + units

    def hold(self, ctx: Context, order_id: UUID, sku: str, units: int) -> None:
        self._emit(self.ReservationHeld, ctx, order_id=order_id, sku=sku, units=units)

    def close(self, ctx: Context, order_id: UUID, units: int, outcome: str) -> None:
        sku = self.open_orders.get(str(order_id))
        if sku is not None:
            self._emit(self.ReservationClosed, ctx, order_id=order_id, sku=sku, units=units, outcome=outcome)

    def late_purchase(self, ctx: Context, order_id: UUID, sku: str, units: int) -> None:
        self._emit(self.LatePurchase, ctx, order_id=order_id, sku=sku, units=units)
