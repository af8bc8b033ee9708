"""Supplier cost versus sell-through.

Per supplier: keys received, their total cost, keys sold (delivered), the cost of those
sold, keys voided by recalls, and the sell-through rate (sold / received). Run it with:

    ledger replay docs/reports/supplier_sell_through.py:SupplierSellThrough --out suppliers.csv
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ledger.domain.orders import Order
from ledger.domain.supply import Batch
from projections.engine.events import handles
from projections.engine.replay import Report


class SupplierSellThrough(Report):
    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}
        self.supplier_of_batch: dict[Any, str] = {}

    def _supplier(self, name: str) -> dict[str, Any]:
        return self.figures.setdefault(
            name, {"received": 0, "received_cost": Decimal(0), "sold": 0, "sold_cost": Decimal(0), "voided": 0}
        )

    @handles(Batch.Received)
    def on_Batch_Received(self, event: Batch.Received) -> None:
        self.supplier_of_batch[event.originator_id] = event.supplier
        figures = self._supplier(event.supplier)
        figures["received"] += len(event.key_ids)
        figures["received_cost"] += event.unit_cost * len(event.key_ids)

    @handles(Order.KeysDelivered)
    def on_Order_KeysDelivered(self, event: Order.KeysDelivered) -> None:
        for key in event.keys:
            figures = self._supplier(key["supplier"])
            figures["sold"] += 1
            figures["sold_cost"] += Decimal(key["unit_cost"])

    @handles(Batch.Recalled)
    def on_Batch_Recalled(self, event: Batch.Recalled) -> None:
        self._supplier(self.supplier_of_batch[event.originator_id])["voided"] += len(event.voided_key_ids)

    def rows(self) -> Iterable[dict[str, Any]]:
        for supplier in sorted(self.figures):
            f = self.figures[supplier]
            rate = (Decimal(f["sold"]) / f["received"]).quantize(Decimal("0.0001")) if f["received"] else None
            yield {"supplier": supplier, **f, "sell_through": rate}
