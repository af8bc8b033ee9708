"""Sales per day, SKU, channel and promotion: orders, units, gross, discounts, refunds, net.

Rules (see docs/read-models.md):

* A sale counts on the UTC day its goods are delivered: its keys (`Order.KeysDelivered`), a
  recharge or platform grant completed by its supplier (`Order.Fulfilled`), or access granted
  (`Order.Granted`): one order, `quantity` units, gross = the order's subtotal, discounts = its
  discount. A recharge delivered again after its supplier reversed it (the product's policy
  `refulfil`) is the same sale: only its first delivery counts.
* A refund (`Order.Refunded`) counts on the refund's UTC day under the order's SKU, channel
  and promotion, and lowers net. `net = gross - discounts - refunds`.
* Money returned for payments that never bought goods is not a sales refund: it never was
  revenue. It goes to `returned_payments` (same day/SKU/channel/promotion) and leaves
  `refunds` and `net` alone. That is every `automatic` refund -- the ledger refunds
  automatically only when a captured payment cannot be given goods: the order was cancelled,
  rejected, expired out of stock, *or it was a duplicate payment of an already delivered
  order* (the order's one sale stands; the second payment simply goes back) -- and any refund
  of an order not delivered before it: a recharge that was refunded because no supplier could
  fulfil it (`Fulfilment.GaveUp`; its refund is not automatic) never was a sale. A recharge
  delivered and then reversed by its supplier was a sale: its refund is a sales refund.
* Promotion: the coupon code; else `flash:<sale_id>`; else "". An order that used both a
  coupon and a flash-sale price gets `<code>+flash:<sale_id>` so neither is lost.
* `orders` and `units` count deliveries only; a refund never lowers them (refunds are money).
* Currency is a column, not part of the key: a SKU has one currency.
* Breakage (`breakage`, per UTC day and SKU): card keys that expired unredeemed
  (`Key.Expired`), counted on the day they expired, at what the buyer paid for each (the
  order's unit price). The sale stands: revenue was recognised at delivery and a refund is
  not owed, so breakage never lowers `net`; finance reads it to see what was sold and never
  used. Access and platform terms that end (`Order.AccessEnded`, `Grant.Ended`) were used
  up, not left unused: they are not breakage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ledger.domain.orders import Order
from ledger.domain.supply import Key
from projections.engine.base import INT, MONEY, TEXT, Projection, Row, Table, money
from projections.engine.events import handles
from projections.engine.store import ViewStore
from projections.models.facts import Facts

ZERO = Decimal(0)
_MONEY_COLUMNS = ("gross", "discounts", "refunds", "net", "returned_payments")


def utc_day(e: Any) -> str:
    """The UTC calendar day of an event, ISO text."""
    moment: datetime = e.timestamp
    if moment.tzinfo is not UTC:  # events are written in UTC: converting is for anything else
        moment = moment.astimezone(UTC)
    return moment.date().isoformat()


def promotion_of(order: Row) -> str:
    coupon = order.get("coupon_code") or ""
    sale = order.get("flash_sale_id") or ""
    flash = f"flash:{sale}" if sale else ""
    return "+".join(p for p in (coupon, flash) if p)


class Sales(Projection):
    name = "sales"
    tables = (
        Table(
            "daily",
            ("day", "sku", "channel", "promotion"),
            (
                ("day", TEXT), ("sku", TEXT), ("channel", TEXT), ("promotion", TEXT), ("currency", TEXT),
                ("orders", INT), ("units", INT), ("gross", MONEY), ("discounts", MONEY), ("refunds", MONEY),
                ("net", MONEY), ("returned_payments", MONEY),
            ),
        ),
        Table("breakage", ("day", "sku"), (("day", TEXT), ("sku", TEXT), ("currency", TEXT), ("keys", INT),
                                           ("value", MONEY))),
    )

    def __init__(self, store: ViewStore, facts: Facts, version: int | None = None) -> None:
        self.facts = facts
        super().__init__(store, version)

    def _daily(self, e: Any, order: Row) -> Row:
        key = (utc_day(e), str(order["sku"]), str(order["channel"]), promotion_of(order))
        return self.row("daily", key, {"currency": order["currency"], **{c: ZERO for c in _MONEY_COLUMNS}})

    def _sale(self, e: Any, order: Row, units: int) -> None:
        row = self._daily(e, order)
        row["orders"] += 1
        row["units"] += units
        row["gross"] += money(order["subtotal"])
        row["discounts"] += money(order["discount"])
        row["net"] = row["gross"] - row["discounts"] - row["refunds"]

    @handles(Order.KeysDelivered)
    def on_Order_KeysDelivered(self, e: Order.KeysDelivered, position: int) -> None:
        order = self.facts.order(e.originator_id)
        if order is not None:
            self._sale(e, order, len(e.keys))

    @handles(Order.Fulfilled)
    def on_Order_Fulfilled(self, e: Order.Fulfilled, position: int) -> None:
        order = self.facts.order(e.originator_id)
        if order is not None and self.facts.first_delivery(e.originator_id, position):
            self._sale(e, order, int(order["quantity"]))

    @handles(Order.Granted)
    def on_Order_Granted(self, e: Order.Granted, position: int) -> None:
        order = self.facts.order(e.originator_id)
        if order is not None and self.facts.first_delivery(e.originator_id, position):
            self._sale(e, order, int(order["quantity"]))

    @handles(Key.Expired)
    def on_Key_Expired(self, e: Key.Expired, position: int) -> None:
        key = self.facts.key(e.originator_id)
        if key is None:
            return
        row = self.row("breakage", (utc_day(e), str(key["sku"])), {"currency": e.currency, "value": ZERO})
        row["keys"] += 1
        row["value"] += money(e.value)

    @handles(Order.Refunded)
    def on_Order_Refunded(self, e: Order.Refunded, position: int) -> None:
        order = self.facts.order(e.originator_id)
        if order is None:
            return
        row = self._daily(e, order)
        sold = self.facts.sold_before(order, position)
        if sold is None:  # an order of keys
            sold = order["status"] == "delivered"
        if e.automatic or not sold:
            row["returned_payments"] += money(e.amount)
        else:
            row["refunds"] += money(e.amount)
            row["net"] = row["gross"] - row["discounts"] - row["refunds"]
