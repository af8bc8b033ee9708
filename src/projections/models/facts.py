"""Facts other read models look up: what each order and each key is, each product's settings,
each supplier's currency, and how each order of goods not taken from stock (a recharge, a
platform grant, digital access) was fulfilled. Kept as a projection of its own (first in line),
so lookups survive restarts.

An order's `status` follows the order's own: placed, rejected, reserved (keys or, without
stock, the order itself held until payment), fulfilling (paid, with an upstream supplier),
delivered, expired, cancelled; an order without keys also becomes `refunded` when it is
refunded in full, as the domain says (`Order.Refunded`). An order of keys stays `delivered`
after a refund, as it always did: `sales` and `profit` tell its sales refunds by that.

The `fulfilments` table holds one row per order without keys: money paid and refunded (for the
status), the position of its first delivery (`Order.Fulfilled` or `Order.Granted`; 0 while
none), the supplier of that first delivery (`sale_supplier`: the sale's), and the supplier and
cost of its current delivery (`Order.FulfilmentReversed` takes the cost back). Read models that
must tell "was this order delivered before this event" ask `sold_before`, by position, so the
answer is the same when this read model has already run ahead of them (a rebuild of one of
them alone)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ledger.domain.catalog import Product, ProductKind
from ledger.domain.orders import Order
from ledger.domain.stock import Stock
from ledger.domain.suppliers import Supplier
from ledger.domain.supply import Batch, Key
from projections.engine.base import INT, MONEY, TEXT, Projection, Row, Table, ident, money
from projections.engine.events import handles

_CACHE_LIMITS = {"orders": 200_000, "keys": 500_000, "fulfilments": 200_000}  # rows kept in memory after a flush
_STOCKED = frozenset(k.value for k in ProductKind if k.fulfilled_from_stock)
_NEW_FULFILMENT: Row = {"paid": Decimal(0), "refunded": Decimal(0), "cost": Decimal(0), "first_delivery": 0}


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
        # Orders of goods not taken from stock (new tables of an existing version are made at the
        # runner's start, and no such order predates them: no rebuild is needed for them).
        Table(
            "fulfilments",
            ("order_id",),
            (
                ("order_id", TEXT), ("paid", MONEY), ("refunded", MONEY), ("first_delivery", INT),
                ("sale_supplier", TEXT), ("supplier", TEXT), ("cost", MONEY),
            ),
        ),
        Table("suppliers", ("supplier_id",), (("supplier_id", TEXT), ("name", TEXT), ("currency", TEXT))),
    )

    def load(self) -> None:
        # Orders, keys and fulfilments grow without bound: they are fetched on demand, not all at
        # start. Products and suppliers are few: all of them are kept.
        self.check_complete()
        for table in ("products", "suppliers"):
            spec = self._spec(table)
            self.complete[table] = True
            self.rows[table] = {}
            for values in self.store.query(f"SELECT {', '.join(spec.all_columns)} FROM {self.table(table)}"):
                row = spec.decode(values)
                self.rows[table][tuple(row[k] for k in spec.key)] = row

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

    def supplier(self, supplier_id: Any) -> Row | None:
        """A supplier's name and float currency, by its aggregate id."""
        key = (ident(supplier_id),)
        return self.peek("suppliers", key) or self.fetch("suppliers", key)

    def stocked(self, order: Row) -> bool:
        """Is the order's product taken from stock (keys)? Unknown products count as stocked."""
        product = self.product(str(order["sku"]))
        return product is None or product["kind"] in _STOCKED

    def fulfilment(self, order_id: Any) -> Row | None:
        """How an order without keys was fulfilled (None for an order of keys)."""
        key = (ident(order_id),)
        return self.rows["fulfilments"].get(key) or self.fetch("fulfilments", key)

    def first_delivery(self, order_id: Any, position: int) -> bool:
        """Is the event at `position` the first delivery of this order without keys (not a
        delivery again after a reversal)? Only a first delivery is a sale."""
        found = self.fulfilment(order_id)
        return found is not None and found["first_delivery"] == position

    def sold_before(self, order: Row, position: int) -> bool | None:
        """Had this order without keys been delivered before `position`? A refund after that is
        a sales refund, even when the delivery was reversed since; one before it returns money
        that never bought anything. None for an order of keys: its read models judge it as they
        always did (by its status, or by the refund being automatic)."""
        if self.stocked(order):
            return None
        found = self.fulfilment(order["order_id"])
        return found is not None and 0 < int(found["first_delivery"]) < position

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

    @handles(Supplier.Registered)
    def on_Supplier_Registered(self, e: Supplier.Registered, position: int) -> None:
        self.row("suppliers", (ident(e.originator_id),), {"name": e.name, "currency": e.currency})

    @handles(Order.Rejected)
    def on_Order_Rejected(self, e: Order.Rejected, position: int) -> None:
        self._status(e, "rejected")

    @handles(Order.KeysReserved)
    def on_Order_KeysReserved(self, e: Order.KeysReserved, position: int) -> None:
        self._status(e, "reserved")

    @handles(Order.KeysDelivered)
    def on_Order_KeysDelivered(self, e: Order.KeysDelivered, position: int) -> None:
        self._status(e, "delivered")

    # ---- orders without keys ----

    def _fulfilment_row(self, order_id: Any) -> Row:
        return self.row("fulfilments", (ident(order_id),), _NEW_FULFILMENT)

    @handles(Order.Held)
    def on_Order_Held(self, e: Order.Held, position: int) -> None:
        """Goods not taken from stock await payment: the order's fulfilment row starts here, so
        that the payment that follows is counted on it."""
        self._status(e, "reserved")
        self._fulfilment_row(e.originator_id)

    @handles(Order.PaymentCaptured)
    def on_Order_PaymentCaptured(self, e: Order.PaymentCaptured, position: int) -> None:
        order = self.order(e.originator_id)
        if order is not None and not self.stocked(order):
            self._fulfilment_row(e.originator_id)["paid"] += money(e.amount)

    @handles(Order.FulfilmentStarted)
    def on_Order_FulfilmentStarted(self, e: Order.FulfilmentStarted, position: int) -> None:
        self._status(e, "fulfilling")

    @handles(Order.Fulfilled)
    def on_Order_Fulfilled(self, e: Order.Fulfilled, position: int) -> None:
        self._status(e, "delivered")
        row = self._fulfilment_row(e.originator_id)
        if not row["first_delivery"]:
            row["first_delivery"], row["sale_supplier"] = position, e.supplier
        row["supplier"] = e.supplier
        row["cost"] += money(e.cost)

    @handles(Order.FulfilmentReversed)
    def on_Order_FulfilmentReversed(self, e: Order.FulfilmentReversed, position: int) -> None:
        self._status(e, "fulfilling")
        self._fulfilment_row(e.originator_id)["cost"] -= money(e.cost)

    @handles(Order.Granted)
    def on_Order_Granted(self, e: Order.Granted, position: int) -> None:
        self._status(e, "delivered")
        row = self._fulfilment_row(e.originator_id)
        if not row["first_delivery"]:
            row["first_delivery"] = position

    @handles(Order.Refunded)
    def on_Order_Refunded(self, e: Order.Refunded, position: int) -> None:
        """An order without keys is `refunded` once every unit paid went back by refunds that were
        not automatic (an automatic one returns a payment that bought nothing), as the domain says."""
        order = self.order(e.originator_id)
        if order is None or self.stocked(order):
            return
        row = self._fulfilment_row(e.originator_id)
        row["refunded"] += money(e.amount)
        if not e.automatic and row["refunded"] == row["paid"] and order["status"] in ("delivered", "fulfilling"):
            self._status(e, "refunded")

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

    @handles(Key.Expired)
    def on_Key_Expired(self, e: Key.Expired, position: int) -> None:
        self._key_state(e.originator_id, "expired")

    @handles(Stock.Voided)
    def on_Stock_Voided(self, e: Stock.Voided, position: int) -> None:
        """A recall: the stock's one event lists the keys that each get a `Key.Voided` in the
        same command (a supplier batch: up to 100,000 of them, looked up in a few queries)."""
        self.keys(e.key_ids)
        for key_id in e.key_ids:
            self._key_state(key_id, "voided")
