"""Inventory per SKU and per batch, with one low-stock alert per downward crossing.

Only products taken from stock (card keys, gift cards) have an inventory: a recharge, a platform
grant or digital access has no keys, so it gets no row (no count of nothing that reads as sold
out, no low-stock alert). Their unpaid orders are held on the SKU's stock book with no keys
(`Stock.Reserved` and `Stock.Delivered` with empty key lists): nothing moves.

A delivered key that expires unredeemed (`Key.Expired`) leaves `delivered` for the `expired`
table, per SKU and batch: a table of its own, so that stores whose `skus` and `batches` tables
were made before it (CREATE TABLE IF NOT EXISTS never adds a column) need no rebuild."""

from __future__ import annotations

from typing import Any

from ledger.domain.catalog import Product, ProductKind
from ledger.domain.stock import Stock
from ledger.domain.supply import Batch, Key
from projections.engine.base import INT, MONEY, TEXT, Projection, Table, ident
from projections.engine.events import handles
from projections.models.facts import Facts

STATES = ("available", "reserved", "delivered", "redeemed", "revoked", "voided")
EXPIRED = "expired"  # a state kept in a table of its own (see above)
_COUNTS = tuple((s, INT) for s in STATES)


class Inventory(Projection):
    name = "inventory"
    tables = (
        Table("skus", ("sku",), (("sku", TEXT), *_COUNTS, ("low_stock", INT), ("threshold", INT))),
        Table(
            "batches",
            ("batch_id",),
            (("batch_id", TEXT), ("sku", TEXT), ("supplier", TEXT), ("unit_cost", MONEY), *_COUNTS),
        ),
        Table("expired", ("sku", "batch_id"), (("sku", TEXT), ("batch_id", TEXT), ("expired", INT))),
        Table(
            "alerts",
            (),
            (("sku", TEXT), ("available", INT), ("threshold", INT), ("position", INT), ("occurred_at", TEXT)),
        ),
    )

    def __init__(self, store: Any, facts: Facts, version: int | None = None) -> None:
        self.facts = facts
        super().__init__(store, version)

    def _move(self, key_id: Any, source: str, target: str, e: Any, position: int) -> None:
        key = self.facts.key(key_id)
        if key is None:
            return
        batch = self.row("batches", (key["batch_id"],))
        sku = self.row("skus", (key["sku"],))
        for row in (batch, sku):
            row[source] -= 1
            row[target] += 1
        if source == "available":
            self._check_low(sku, e, position)
        elif target == "available" and sku["available"] > sku["threshold"]:
            sku["low_stock"] = 0  # refilled above the threshold: the next crossing alerts again

    def _check_low(self, sku: dict[str, Any], e: Any, position: int) -> None:
        if not sku["low_stock"] and sku["available"] <= sku["threshold"]:
            sku["low_stock"] = 1
            self.append("alerts", {
                "sku": sku["sku"], "available": sku["available"], "threshold": sku["threshold"],
                "position": position, "occurred_at": e.timestamp.isoformat(),
            })

    @handles(Product.Defined)
    def on_Product_Defined(self, e: Product.Defined, position: int) -> None:
        if ProductKind(e.kind).fulfilled_from_stock:
            self.row("skus", (e.sku,))["threshold"] = e.low_stock_threshold

    @handles(Batch.Received)
    def on_Batch_Received(self, e: Batch.Received, position: int) -> None:
        """The batch's keys become available here, not at their `Key.Registered` events: those
        follow in the same transaction, one per key of `key_ids` (see `Facts.on_Batch_Received`)."""
        batch = self.row("batches", (ident(e.originator_id),),
                         {"sku": e.sku, "supplier": e.supplier, "unit_cost": e.unit_cost})
        sku = self.row("skus", (e.sku,))
        for row in (batch, sku):
            row["available"] += len(e.key_ids)
        if sku["available"] > sku["threshold"]:
            sku["low_stock"] = 0  # refilled above the threshold: the next crossing alerts again

    @handles(Stock.Reserved)
    def on_Stock_Reserved(self, e: Stock.Reserved, position: int) -> None:
        for key_id in e.key_ids:
            self._move(key_id, "available", "reserved", e, position)

    @handles(Stock.Released)
    def on_Stock_Released(self, e: Stock.Released, position: int) -> None:
        for key_id in e.key_ids:
            self._move(key_id, "reserved", "available", e, position)

    @handles(Stock.Delivered)
    def on_Stock_Delivered(self, e: Stock.Delivered, position: int) -> None:
        for key_id in e.key_ids:
            self._move(key_id, "reserved", "delivered", e, position)

    @handles(Stock.Voided)
    def on_Stock_Voided(self, e: Stock.Voided, position: int) -> None:
        self.facts.keys(e.key_ids)  # a recall names a whole batch: look them up together
        for key_id in e.key_ids:
            self._move(key_id, "available", "voided", e, position)

    @handles(Key.Redeemed)
    def on_Key_Redeemed(self, e: Key.Redeemed, position: int) -> None:
        self._move(e.originator_id, "delivered", "redeemed", e, position)

    @handles(Key.Revoked)
    def on_Key_Revoked(self, e: Key.Revoked, position: int) -> None:
        self._move(e.originator_id, "redeemed" if e.was_redeemed else "delivered", "revoked", e, position)

    @handles(Key.Expired)
    def on_Key_Expired(self, e: Key.Expired, position: int) -> None:
        key = self.facts.key(e.originator_id)
        if key is None:
            return
        for row in (self.row("batches", (key["batch_id"],)), self.row("skus", (key["sku"],))):
            row["delivered"] -= 1
        self.row("expired", (key["sku"], key["batch_id"]))["expired"] += 1
