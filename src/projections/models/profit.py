"""Profit per day, SKU, supplier and batch: revenue, discounts, refunds, cost of goods,
write-offs, profit and margin.

Rules (see docs/read-models.md):

* A delivered order (`Order.KeysDelivered`) is apportioned to its keys, in the event's key
  order: each key gets subtotal / quantity of revenue and discount / quantity of discount,
  cut down to the currency's minor units; the rounding remainder goes to the first key, so
  the keys of an order always add up to the order's figures exactly. Each key's
  `cost_of_goods` is the unit cost the event recorded (the cost at time of sale). Rows are
  keyed by the UTC day of the delivery and the key's batch (with its SKU and supplier).
* A sales refund (`Order.Refunded`, not automatic, of a delivered order) is apportioned the
  same way over *all* the order's delivered keys -- whichever keys it revoked -- on the
  refund's day. Automatic refunds (payments that never bought goods, duplicate payments
  included) and refunds of never-delivered orders are not in this model, as in `sales`.
* A key voided by a supplier recall (`Stock.Voided` names the batch's voided keys; each also
  gets a `Key.Voided`, which is not read, so each key is written off once) is a write-off of
  its unit cost (from facts) on the day of the recall.
* A revoked key (`Key.Revoked`) has its cost moved from `cost_of_goods` to `write_offs` on
  the day of the revocation (its cost at time of sale), so each key's cost counts once.
* profit = revenue - discounts - refunds - cost_of_goods - write_offs;
  margin = profit / (revenue - discounts - refunds), rounded half-up to 4 places, NULL
  when that denominator is 0 (a day with only write-offs, say). Both are recomputed from
  the row's totals, never accumulated.
* `keys_sold` counts delivered keys; `keys_written_off` counts voided and revoked keys.
* An order without keys has one row per day and supplier with `batch_id` "": a recharge or
  platform grant (`Order.Fulfilled`) under the supplier that completed it, digital access
  (`Order.Granted`) under supplier "". Its first delivery is its sale: `keys_sold` counts its
  units, revenue and discounts are the order's. Its `cost_of_goods` is what the supplier charged
  (`Order.Fulfilled.cost`), added on each delivery and taken back on the day the supplier
  reverses it (`Order.FulfilmentReversed`), so a recharge delivered again by another supplier
  costs once, at that supplier. A sales refund of it (a refund after its first delivery, see
  `sales`) goes to the row of the supplier of that first delivery, where its revenue is.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from ledger.domain.money import minor_units
from ledger.domain.orders import Order
from ledger.domain.stock import Stock
from ledger.domain.supply import Key
from projections.engine.base import INT, MONEY, TEXT, Projection, Row, Table, ident, money
from projections.engine.events import handles
from projections.engine.store import ViewStore
from projections.models.facts import Facts
from projections.models.sales import utc_day

ZERO = Decimal(0)
MARGIN_PLACES = Decimal("0.0001")
_MONEY_COLUMNS = ("revenue", "discounts", "refunds", "cost_of_goods", "write_offs", "profit")
_KEY_CACHE_LIMIT = 200_000


def apportion(total: Decimal, parts: int, currency: str) -> list[Decimal]:
    """Split `total` into `parts` shares in the currency's minor units; the first share takes
    the rounding remainder, so the shares always add up to `total` exactly."""
    if parts <= 0:
        return []
    quantum = Decimal(1).scaleb(-minor_units(currency))
    share = (total / parts).quantize(quantum, rounding=ROUND_DOWN)
    return [total - share * (parts - 1), *([share] * (parts - 1))]


def margin(profit: Decimal, net_revenue: Decimal) -> Decimal | None:
    """profit / net revenue, rounded half-up to 4 places; None when there is no net revenue.
    The one margin formula: the read model's rows and the reports' group sums both use it."""
    return None if net_revenue == 0 else (profit / net_revenue).quantize(MARGIN_PLACES, ROUND_HALF_UP)


class Profit(Projection):
    name = "profit"
    tables = (
        Table(
            "daily",
            ("day", "sku", "supplier", "batch_id"),
            (
                ("day", TEXT), ("sku", TEXT), ("supplier", TEXT), ("batch_id", TEXT), ("currency", TEXT),
                ("keys_sold", INT), ("keys_written_off", INT), ("revenue", MONEY), ("discounts", MONEY),
                ("refunds", MONEY), ("cost_of_goods", MONEY), ("write_offs", MONEY), ("profit", MONEY),
                ("margin", MONEY),
            ),
        ),
        # Working state: the keys each order was delivered, in delivery order, with the cost
        # at time of sale. Refunds and revocations are apportioned / reclassified from it.
        Table(
            "order_keys",
            ("order_id", "key_id"),
            (
                ("order_id", TEXT), ("key_id", TEXT), ("seq", INT), ("sku", TEXT), ("batch_id", TEXT),
                ("supplier", TEXT), ("unit_cost", MONEY),
            ),
        ),
    )

    def __init__(self, store: ViewStore, facts: Facts, version: int | None = None) -> None:
        self.facts = facts
        self._new_daily: dict[str, Row] = {}  # currency -> a new daily row's defaults
        super().__init__(store, version)

    # ---- lifecycle: order keys are fetched on demand, like facts' orders ----

    def reset(self) -> None:
        super().reset()
        self._order_keys: dict[str, list[Row]] = {}

    def load(self) -> None:
        self.check_complete()
        self.complete["daily"] = True
        spec = self._spec("daily")
        for values in self.store.query(f"SELECT {', '.join(spec.all_columns)} FROM {self.table('daily')}"):
            row = spec.decode(values)
            self.rows["daily"][tuple(row[k] for k in spec.key)] = row

    def trim(self) -> None:
        if self.wants_trim:
            self.evict("order_keys")
            self._order_keys = {}

    @property
    def wants_trim(self) -> bool:
        return len(self.rows["order_keys"]) > _KEY_CACHE_LIMIT

    def order_keys(self, order_id: str) -> list[Row]:
        """The keys delivered to an order, in delivery order ([] if none)."""
        found = self._order_keys.get(order_id)
        if found is not None:
            return found
        if self.complete["order_keys"]:
            return []  # every delivered key is in memory: this order has none
        rows = self.stored("order_keys", "order_id = ?", (order_id,))
        rows.sort(key=lambda r: int(r["seq"]))
        for row in rows:
            self.rows["order_keys"][(row["order_id"], row["key_id"])] = row
        self._order_keys[order_id] = rows
        return rows

    # ---- rows ----

    def _daily(self, day: str, sku: str, supplier: str, batch_id: str, currency: str) -> Row:
        defaults = self._new_daily.get(currency)
        if defaults is None:  # built once per currency, not once per key sold
            defaults = self._new_daily[currency] = {"currency": currency, "margin": None,
                                                    **{c: ZERO for c in _MONEY_COLUMNS}}
        return self.row("daily", (day, sku, supplier, batch_id), defaults)

    @staticmethod
    def _settle(row: Row) -> None:
        net_revenue = row["revenue"] - row["discounts"] - row["refunds"]
        row["profit"] = net_revenue - row["cost_of_goods"] - row["write_offs"]
        row["margin"] = margin(row["profit"], net_revenue)

    def _currency(self, sku: str, order: Row | None = None) -> str:
        if order is not None:
            return str(order["currency"])
        product = self.facts.product(sku)
        return str(product["currency"]) if product is not None else ""

    # ---- handlers ----

    @handles(Order.KeysDelivered)
    def on_Order_KeysDelivered(self, e: Order.KeysDelivered, position: int) -> None:
        order_id = ident(e.originator_id)
        order = self.facts.order(order_id)
        if order is None or not e.keys:
            return
        currency = str(order["currency"])
        revenue = apportion(money(order["subtotal"]), len(e.keys), currency)
        discounts = apportion(money(order["discount"]), len(e.keys), currency)
        delivered: list[Row] = []
        day, sku = utc_day(e), str(order["sku"])
        for seq, key in enumerate(e.keys):
            supplier, batch_id = str(key["supplier"]), ident(key["batch_id"])
            unit_cost = money(key["unit_cost"])
            row = self._daily(day, sku, supplier, batch_id, currency)
            row["keys_sold"] += 1
            row["revenue"] += revenue[seq]
            row["discounts"] += discounts[seq]
            row["cost_of_goods"] += unit_cost
            self._settle(row)
            delivered.append(self.row("order_keys", (order_id, ident(key["key_id"])), {
                "seq": seq, "sku": sku, "batch_id": batch_id, "supplier": supplier, "unit_cost": unit_cost,
            }))
        self._order_keys[order_id] = delivered

    # ---- orders without keys ----

    def _sale(self, e: Order.Fulfilled | Order.Granted, position: int, supplier: str, cost: Decimal) -> None:
        """An order without keys delivered: its cost at `supplier`; on its first delivery its sale."""
        order = self.facts.order(e.originator_id)
        if order is None:
            return
        currency = str(order["currency"])
        row = self._daily(utc_day(e), str(order["sku"]), supplier, "", currency)
        row["cost_of_goods"] += cost
        if self.facts.first_delivery(e.originator_id, position):
            row["keys_sold"] += int(order["quantity"])
            row["revenue"] += money(order["subtotal"])
            row["discounts"] += money(order["discount"])
        self._settle(row)

    @handles(Order.Fulfilled)
    def on_Order_Fulfilled(self, e: Order.Fulfilled, position: int) -> None:
        self._sale(e, position, e.supplier, money(e.cost))

    @handles(Order.Granted)
    def on_Order_Granted(self, e: Order.Granted, position: int) -> None:
        self._sale(e, position, "", ZERO)

    @handles(Order.FulfilmentReversed)
    def on_Order_FulfilmentReversed(self, e: Order.FulfilmentReversed, position: int) -> None:
        order = self.facts.order(e.originator_id)
        if order is None:
            return
        row = self._daily(utc_day(e), str(order["sku"]), e.supplier, "", str(order["currency"]))
        row["cost_of_goods"] -= money(e.cost)
        self._settle(row)

    @handles(Order.Refunded)
    def on_Order_Refunded(self, e: Order.Refunded, position: int) -> None:
        order = self.facts.order(e.originator_id)
        if e.automatic or order is None:
            return
        sold = self.facts.sold_before(order, position)
        if sold is not None:  # an order without keys
            fulfilment = self.facts.fulfilment(e.originator_id)
            if sold and fulfilment is not None:
                row = self._daily(utc_day(e), str(order["sku"]), str(fulfilment["sale_supplier"] or ""), "",
                                  str(order["currency"]))
                row["refunds"] += money(e.amount)
                self._settle(row)
            return
        if order["status"] != "delivered":
            return
        keys = self.order_keys(ident(e.originator_id))
        currency, day = str(order["currency"]), utc_day(e)
        for key, share in zip(keys, apportion(money(e.amount), len(keys), currency), strict=True):
            row = self._daily(day, str(key["sku"]), str(key["supplier"]), str(key["batch_id"]), currency)
            row["refunds"] += share
            self._settle(row)

    @handles(Key.Revoked)
    def on_Key_Revoked(self, e: Key.Revoked, position: int) -> None:
        key_id = ident(e.originator_id)
        sold = next((k for k in self.order_keys(ident(e.order_id)) if k["key_id"] == key_id), None)
        if sold is None:
            # Not found in this order's deliveries (should not happen): fall back to the key's facts.
            sold = self.facts.key(key_id)
            if sold is None:
                return
        sku = str(sold["sku"])
        row = self._daily(utc_day(e), sku, str(sold["supplier"]), str(sold["batch_id"]), self._currency(sku))
        cost = money(sold["unit_cost"])
        row["keys_written_off"] += 1
        row["cost_of_goods"] -= cost
        row["write_offs"] += cost
        self._settle(row)

    @handles(Stock.Voided)
    def on_Stock_Voided(self, e: Stock.Voided, position: int) -> None:
        day = utc_day(e)
        touched: dict[int, Row] = {}
        for key in self.facts.keys(e.key_ids):
            if key is None:
                continue
            sku = str(key["sku"])
            row = self._daily(day, sku, str(key["supplier"]), str(key["batch_id"]), self._currency(sku))
            row["keys_written_off"] += 1
            row["write_offs"] += money(key["unit_cost"])
            touched[id(row)] = row
        for row in touched.values():
            self._settle(row)
