"""Facts other read models look up: what each order and each key is, and each product's
settings. Kept as a projection of its own (first in line), so lookups survive restarts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.domain.catalog import Product
from ledger.domain.orders import Order
from ledger.domain.stock import Stock
from ledger.domain.supply import Batch, Key
from projections.engine.base import INT, MONEY, TEXT, Projection, Row, Table, ident
from projections.engine.events import handles

_CACHE_LIMITS = {"orders": 200_000, "keys": 500_000}  # rows kept in memory after a flush


class Facts(Projection):
    name = "facts"
    tables = (
        Table(
            "orders",
            ("order_id",),
            (
                ("order_id", TEXT), ("customer_id", TEXT), ("sku", TEXT), ("quantity", INT), ("channel", TEXT),
                ("currency", TEXT), ("subtotal", MONEY), ("discount", MONEY), ("coupon_code", TEXT),
                ("flash_sale_id", TEXT), ("client_ip", TEXT), ("device_id", TEXT), ("placed_at", TEXT),
                ("status", TEXT),
            ),
            indexes=(("customer_id",),),  # a customer's orders: their timeline (projections.models.timeline)
        ),
        Table(
            "keys",
            ("key_id",),
            (
                ("key_id", TEXT), ("sku", TEXT), ("batch_id", TEXT), ("supplier", TEXT), ("unit_cost", MONEY),
                ("state", TEXT), ("order_id", TEXT),
            ),
        ),
        Table(
            "products",
            ("sku",),
            (("sku", TEXT), ("name", TEXT), ("kind", TEXT), ("currency", TEXT), ("low_stock_threshold", INT)),
        ),
    )

    def load(self) -> None:
        # Orders and keys grow without bound: they are fetched on demand, not all at start.
        self.check_complete()
        spec = self._spec("products")
        self.complete["products"] = True
        self.rows["products"] = {}
        for values in self.store.query(f"SELECT {', '.join(spec.all_columns)} FROM {self.table('products')}"):
            row = spec.decode(values)
            self.rows["products"][(row["sku"],)] = row

    def order(self, order_id: Any) -> Row | None:
        key = (ident(order_id),)
        return self.rows["orders"].get(key) or self.fetch("orders", key)  # memory first: most events

    def key(self, key_id: Any) -> Row | None:
        key = (ident(key_id),)
        return self.rows["keys"].get(key) or self.fetch("keys", key)

    def keys(self, key_ids: Sequence[Any]) -> list[Row | None]:
        """The facts of many keys (None for an unknown one), looked up in a few queries."""
        wanted = [(ident(k),) for k in key_ids]
        self.prefetch("keys", wanted)
        return [self.fetch("keys", k) for k in wanted]

    def product(self, sku: str) -> Row | None:
        # In memory once loaded; a rebuild of one read model over the live facts never loads them
        # (they are not among the projections it runs), and then each product is read once.
        return self.peek("products", (sku,)) or self.fetch("products", (sku,))

    def trim(self) -> None:
        # Finished orders are rarely looked up again; keep memory bounded.
        for table in self._oversized():
            self.evict(table)

    @property
    def wants_trim(self) -> bool:
        return bool(self._oversized())

    def _oversized(self) -> list[str]:
        return [table for table, limit in _CACHE_LIMITS.items() if len(self.rows[table]) > limit]

    # ---- handlers ----

    @handles(Product.Defined)
    def on_Product_Defined(self, e: Product.Defined, position: int) -> None:
        self.row("products", (e.sku,), {"name": e.name, "kind": e.kind, "currency": e.currency,
                                         "low_stock_threshold": e.low_stock_threshold})

    @handles(Order.Placed)
    def on_Order_Placed(self, e: Order.Placed, position: int) -> None:
        self.row("orders", (ident(e.originator_id),), {
            "customer_id": e.customer_id, "sku": e.sku, "quantity": e.quantity, "channel": e.channel,
            "currency": e.currency, "subtotal": e.subtotal, "discount": e.discount, "coupon_code": e.coupon_code,
            "flash_sale_id": e.flash_sale_id, "client_ip": e.client_ip, "device_id": e.device_id,
            "placed_at": e.timestamp.isoformat(), "status": "placed",
        })

    def _status(self, e: Any, status: str) -> None:
        order = self.order(e.originator_id)
        if order is not None:
            order["status"] = status
            self.dirty["orders"].add((order["order_id"],))

    @handles(Order.Rejected)
    def on_Order_Rejected(self, e: Order.Rejected, position: int) -> None:
        self._status(e, "rejected")

    @handles(Order.KeysReserved)
    def on_Order_KeysReserved(self, e: Order.KeysReserved, position: int) -> None:
        self._status(e, "reserved")

    @handles(Order.KeysDelivered)
    def on_Order_KeysDelivered(self, e: Order.KeysDelivered, position: int) -> None:
        self._status(e, "delivered")

    @handles(Order.Expired)
    def on_Order_Expired(self, e: Order.Expired, position: int) -> None:
        self._status(e, "expired")

    @handles(Order.Cancelled)
    def on_Order_Cancelled(self, e: Order.Cancelled, position: int) -> None:
        self._status(e, "cancelled")

    @handles(Batch.Received)
    def on_Batch_Received(self, e: Batch.Received, position: int) -> None:
        """Every key of the batch, from the batch's own list: an import writes the batch and
        one `Key.Registered` per key (same batch, SKU, supplier and cost) in one transaction,
        so the keys are known at the batch. Nothing here reads `Key.Registered`, so a rebuild
        never decrypts nor decodes those events (40 % of a store's, the largest ones). The keys
        are new (an import refuses known codes): no look-up per key, even in a live runner."""
        self.insert_new("keys", [(ident(key_id),) for key_id in e.key_ids], {
            "sku": e.sku, "batch_id": ident(e.originator_id), "supplier": e.supplier, "unit_cost": e.unit_cost,
            "state": "available", "order_id": None,
        })

    def _key_state(self, key_id: Any, state: str, order_id: Any = None) -> None:
        key = self.key(key_id)
        if key is not None:
            key["state"] = state
            if order_id is not None:
                key["order_id"] = ident(order_id)
            self.dirty["keys"].add((key["key_id"],))

    @handles(Stock.Reserved)
    def on_Stock_Reserved(self, e: Stock.Reserved, position: int) -> None:
        for key_id in e.key_ids:
            self._key_state(key_id, "reserved", e.order_id)

    @handles(Stock.Released)
    def on_Stock_Released(self, e: Stock.Released, position: int) -> None:
        for key_id in e.key_ids:
            self._key_state(key_id, "available")

    @handles(Stock.Delivered)
    def on_Stock_Delivered(self, e: Stock.Delivered, position: int) -> None:
        """The stock's one event lists the keys that each get a `Key.Delivered` in the same
        command: read it rather than one event per key (which then need no decoding)."""
        for key_id in e.key_ids:
            self._key_state(key_id, "delivered", e.order_id)

    @handles(Key.Redeemed)
    def on_Key_Redeemed(self, e: Key.Redeemed, position: int) -> None:
        self._key_state(e.originator_id, "redeemed")

    @handles(Key.Revoked)
    def on_Key_Revoked(self, e: Key.Revoked, position: int) -> None:
        self._key_state(e.originator_id, "revoked")

    @handles(Stock.Voided)
    def on_Stock_Voided(self, e: Stock.Voided, position: int) -> None:
        """A recall: the stock's one event lists the keys that each get a `Key.Voided` in the
        same command (a supplier batch: up to 100,000 of them, looked up in a few queries)."""
        self.keys(e.key_ids)
        for key_id in e.key_ids:
            self._key_state(key_id, "voided")
