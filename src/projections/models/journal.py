"""A double-entry journal of every financial event, with running balances per account and
currency. The chart of accounts and the posting rules are documented in docs/journal.md."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledger.domain.orders import Order
from ledger.domain.stock import Stock
from ledger.domain.suppliers import Settlement, Supplier
from ledger.domain.supply import Batch, Key
from projections.engine.base import INT, MONEY, TEXT, Projection, Row, Table, ident, money
from projections.engine.events import handles
from projections.engine.store import ViewStore
from projections.models.facts import Facts

ZERO = Decimal(0)

# The chart of accounts: name -> (type, what it holds). Debit-normal: asset, expense,
# contra-revenue; credit-normal: liability, revenue.
ASSET, LIABILITY, REVENUE, CONTRA_REVENUE, EXPENSE = "asset", "liability", "revenue", "contra-revenue", "expense"
PAYMENT_CLEARING = "payment_clearing"
INVENTORY = "inventory"
SUPPLIER_PAYABLE = "supplier_payable"
CUSTOMER_DEPOSITS = "customer_deposits"
REVENUE_ACCOUNT = "revenue"
DISCOUNTS = "discounts"
REFUNDS = "refunds"
COST_OF_GOODS_SOLD = "cost_of_goods_sold"
WRITE_OFFS = "write_offs"
CASH = "cash"
SUPPLIER_FLOAT = "supplier_float"  # a parent: each supplier's float is `supplier_float:<name>`
ACCOUNTS: dict[str, tuple[str, str]] = {
    PAYMENT_CLEARING: (ASSET, "money held by the payment provider for us"),
    CASH: (ASSET, "our own money paid out to fund supplier floats (no deposit is booked: it runs negative)"),
    SUPPLIER_FLOAT: (ASSET, "money prepaid to upstream suppliers, not yet charged: one account per supplier, "
                            "supplier_float:<name>"),
    INVENTORY: (ASSET, "cost of keys in stock (available or reserved)"),
    SUPPLIER_PAYABLE: (LIABILITY, "what we owe suppliers for keys received"),
    CUSTOMER_DEPOSITS: (LIABILITY, "money captured for goods not yet delivered (a recharge being fulfilled) "
                                   "or to be returned"),
    REVENUE_ACCOUNT: (REVENUE, "list value (subtotal) of delivered orders"),
    DISCOUNTS: (CONTRA_REVENUE, "coupon discounts given on delivered orders"),
    REFUNDS: (CONTRA_REVENUE, "money returned on delivered orders"),
    COST_OF_GOODS_SOLD: (EXPENSE, "unit cost of delivered keys, at the cost of the time of sale, and what "
                                  "suppliers charged for delivered recharges"),
    WRITE_OFFS: (EXPENSE, "cost of revoked keys and of keys voided by a supplier recall"),
}

Line = tuple[str, Decimal, Decimal]  # (account, debit, credit)


def supplier_float(supplier: str) -> str:
    """The account of one supplier's float."""
    return f"{SUPPLIER_FLOAT}:{supplier}"


def account_info(account: str) -> tuple[str, str] | None:
    """An account's (type, what it holds): one of the chart, or a supplier's float (whose type is
    its parent's); None for a name the chart does not know."""
    found = ACCOUNTS.get(account)
    if found is not None:
        return found
    parent, _, supplier = account.partition(":")
    if parent == SUPPLIER_FLOAT and supplier:
        return ASSET, f"money prepaid to {supplier}, not yet charged"
    return None


class UnbalancedEntry(Exception):
    """A posting whose debits and credits differ: a bug in a posting rule, never data."""


_NEW_BALANCE = {"debit": ZERO, "credit": ZERO}  # a balance row's defaults (row() copies them)


class Journal(Projection):
    name = "journal"
    tables = (
        Table(
            "entries",
            (),
            (
                ("position", INT), ("entry_no", INT), ("event_type", TEXT), ("occurred_at", TEXT),
                ("account", TEXT), ("currency", TEXT), ("debit", MONEY), ("credit", MONEY),
                ("order_id", TEXT), ("batch_id", TEXT), ("key_id", TEXT),
            ),
            (("account", "position", "entry_no"),),  # an account's page: an index range, whatever the journal's size
        ),
        Table(
            "balances",
            ("account", "currency"),
            (("account", TEXT), ("currency", TEXT), ("debit", MONEY), ("credit", MONEY)),
        ),
    )

    def __init__(self, store: ViewStore, facts: Facts, version: int | None = None) -> None:
        self.facts = facts
        super().__init__(store, version)

    # ---- posting ----

    def _post(
        self,
        e: Any,
        position: int,
        event_type: str,
        currency: str,
        lines: Sequence[Line],
        *,
        order_id: Any = None,
        batch_id: Any = None,
        key_id: Any = None,
        first_no: int = 1,
    ) -> int:
        """Post one balanced set of lines (zero lines are skipped); return the next entry number."""
        kept = []
        debits = credits = ZERO
        for line in lines:  # a loop, not sums of generators: this runs for nearly every sale
            if line[1] or line[2]:
                kept.append(line)
                debits += line[1]
                credits += line[2]
        if debits != credits:
            raise UnbalancedEntry(f"{event_type} at {position}: debits {debits} != credits {credits}")
        number = first_no
        common = {  # the same on every line of the posting: converted once
            "position": position, "event_type": event_type, "occurred_at": e.timestamp.isoformat(),
            "currency": currency, "order_id": None if order_id is None else ident(order_id),
            "batch_id": None if batch_id is None else ident(batch_id),
            "key_id": None if key_id is None else ident(key_id),
        }
        append = self.appended["entries"].append
        for account, debit, credit in kept:
            append({**common, "entry_no": number, "account": account, "debit": debit, "credit": credit})
            balance = self.row("balances", (account, currency), _NEW_BALANCE)
            balance["debit"] += debit
            balance["credit"] += credit
            number += 1
        return number

    def _currency_of_order(self, order_id: Any) -> tuple[Row, str] | None:
        order = self.facts.order(order_id)
        if order is None:
            return None
        return order, str(order["currency"])

    def _currency_of_sku(self, sku: str) -> str | None:
        product = self.facts.product(sku)
        return None if product is None else str(product["currency"])

    # ---- supply ----

    @handles(Batch.Received)
    def on_Batch_Received(self, e: Batch.Received, position: int) -> None:
        cost = money(e.unit_cost) * len(e.key_ids)
        self._post(
            e, position, "Batch.Received", e.currency,
            [(INVENTORY, cost, ZERO), (SUPPLIER_PAYABLE, ZERO, cost)],
            batch_id=e.originator_id,
        )

    @handles(Stock.Voided)
    def on_Stock_Voided(self, e: Stock.Voided, position: int) -> None:
        """A recall: the voided keys' cost leaves inventory as a write-off, per currency."""
        costs: dict[str, Decimal] = {}
        for key in self.facts.keys(e.key_ids):
            if key is None:
                continue
            currency = self._currency_of_sku(str(key["sku"]))
            if currency is None:
                continue
            costs[currency] = costs.get(currency, ZERO) + money(key["unit_cost"])
        number = 1
        for currency, cost in sorted(costs.items()):
            number = self._post(
                e, position, "Stock.Voided", currency, [(WRITE_OFFS, cost, ZERO), (INVENTORY, ZERO, cost)],
                batch_id=e.batch_id, first_no=number,
            )

    @handles(Key.Revoked)
    def on_Key_Revoked(self, e: Key.Revoked, position: int) -> None:
        """A refund revoked a sold key: its cost moves from cost of goods sold to write-offs."""
        key = self.facts.key(e.originator_id)
        if key is None:
            return
        currency = self._currency_of_sku(str(key["sku"]))
        if currency is None:
            return
        cost = money(key["unit_cost"])
        self._post(
            e, position, "Key.Revoked", currency, [(WRITE_OFFS, cost, ZERO), (COST_OF_GOODS_SOLD, ZERO, cost)],
            order_id=e.order_id, batch_id=key["batch_id"], key_id=e.originator_id,
        )

    # ---- orders ----

    @handles(Order.PaymentCaptured)
    def on_Order_PaymentCaptured(self, e: Order.PaymentCaptured, position: int) -> None:
        found = self._currency_of_order(e.originator_id)
        if found is None:
            return
        amount = money(e.amount)
        self._post(
            e, position, "Order.PaymentCaptured", found[1],
            [(PAYMENT_CLEARING, amount, ZERO), (CUSTOMER_DEPOSITS, ZERO, amount)],
            order_id=e.originator_id,
        )

    @handles(Order.KeysDelivered)
    def on_Order_KeysDelivered(self, e: Order.KeysDelivered, position: int) -> None:
        found = self._currency_of_order(e.originator_id)
        if found is None:
            return
        order, currency = found
        subtotal, discount = money(order["subtotal"]), money(order["discount"])
        number = self._post(
            e, position, "Order.KeysDelivered", currency,
            [(CUSTOMER_DEPOSITS, subtotal - discount, ZERO), (DISCOUNTS, discount, ZERO),
             (REVENUE_ACCOUNT, ZERO, subtotal)],
            order_id=e.originator_id,
        )
        cost = sum((money(k["unit_cost"]) for k in e.keys), ZERO)
        self._post(
            e, position, "Order.KeysDelivered", currency,
            [(COST_OF_GOODS_SOLD, cost, ZERO), (INVENTORY, ZERO, cost)],
            order_id=e.originator_id, first_no=number,
        )

    # ---- orders without keys: recharges, platform grants, digital access ----

    def _sale(self, e: Any, position: int, order: Row, currency: str) -> int:
        """The amount due leaves deposits as revenue less discount (an order's first delivery only)."""
        subtotal, discount = money(order["subtotal"]), money(order["discount"])
        return self._post(
            e, position, type(e).__qualname__, currency,
            [(CUSTOMER_DEPOSITS, subtotal - discount, ZERO), (DISCOUNTS, discount, ZERO),
             (REVENUE_ACCOUNT, ZERO, subtotal)],
            order_id=e.originator_id,
        )

    @handles(Order.Fulfilled)
    def on_Order_Fulfilled(self, e: Order.Fulfilled, position: int) -> None:
        """A supplier completed the order: on its first delivery the sale; on every delivery what
        the supplier charged, out of its float into cost of goods sold. (`Supplier.Charged`
        carries the same amount and posts nothing, so it is counted once.)"""
        found = self._currency_of_order(e.originator_id)
        if found is None:
            return
        order, currency = found
        number = self._sale(e, position, order, currency) if self.facts.first_delivery(e.originator_id,
                                                                                        position) else 1
        cost = money(e.cost)
        self._post(
            e, position, "Order.Fulfilled", currency,
            [(COST_OF_GOODS_SOLD, cost, ZERO), (supplier_float(e.supplier), ZERO, cost)],
            order_id=e.originator_id, first_no=number,
        )

    @handles(Order.FulfilmentReversed)
    def on_Order_FulfilmentReversed(self, e: Order.FulfilmentReversed, position: int) -> None:
        """The supplier took a completed recharge back: its charge returns to the float. The sale
        stands; its refund, if the product's policy refunds, is a sales refund."""
        found = self._currency_of_order(e.originator_id)
        if found is None:
            return
        cost = money(e.cost)
        self._post(
            e, position, "Order.FulfilmentReversed", found[1],
            [(supplier_float(e.supplier), cost, ZERO), (COST_OF_GOODS_SOLD, ZERO, cost)],
            order_id=e.originator_id,
        )

    @handles(Order.Granted)
    def on_Order_Granted(self, e: Order.Granted, position: int) -> None:
        found = self._currency_of_order(e.originator_id)
        if found is not None and self.facts.first_delivery(e.originator_id, position):
            self._sale(e, position, *found)

    # ---- supplier floats ----

    @handles(Supplier.FloatFunded)
    def on_Supplier_FloatFunded(self, e: Supplier.FloatFunded, position: int) -> None:
        """Money prepaid to a supplier: an asset (the float) bought with our own money."""
        supplier = self.facts.supplier(e.originator_id)
        if supplier is None:
            return
        amount = money(e.amount)
        self._post(
            e, position, "Supplier.FloatFunded", str(supplier["currency"]),
            [(supplier_float(str(supplier["name"])), amount, ZERO), (CASH, ZERO, amount)],
        )

    @handles(Settlement.Recorded)
    def on_Settlement_Recorded(self, e: Settlement.Recorded, position: int) -> None:
        """A payment to a supplier against what we owe it for keys received: the payable goes down."""
        amount = money(e.amount)
        self._post(e, position, "Settlement.Recorded", e.currency,
                   [(SUPPLIER_PAYABLE, amount, ZERO), (CASH, ZERO, amount)])

    # ---- refunds ----

    @handles(Order.Refunded)
    def on_Order_Refunded(self, e: Order.Refunded, position: int) -> None:
        """Automatic refunds return a payment that never bought goods (no-goods orders and
        duplicate payments of delivered ones): they come out of the deposit, never revenue.
        So does any refund of an order without keys that was not delivered before it (a
        recharge no supplier could fulfil): its money was still a deposit. Other manual refunds
        are of delivered orders (a recharge delivered, even if reversed since): contra-revenue."""
        found = self._currency_of_order(e.originator_id)
        if found is None:
            return
        amount = money(e.amount)
        sales_refund = not e.automatic and self.facts.sold_before(found[0], position) is not False
        source = REFUNDS if sales_refund else CUSTOMER_DEPOSITS
        self._post(
            e, position, "Order.Refunded", found[1], [(source, amount, ZERO), (PAYMENT_CLEARING, ZERO, amount)],
            order_id=e.originator_id,
        )


# ---- queries ----


@dataclass(frozen=True)
class TrialBalance:
    """Rows of {account, currency, debit, credit, balance} (balance = debit - credit), and
    whether debits equal credits in every currency."""

    rows: list[dict[str, Any]]
    balanced: bool
    totals: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)

    def balance(self, account: str, currency: str) -> Decimal:
        for row in self.rows:
            if row["account"] == account and row["currency"] == currency:
                return Decimal(row["balance"])
        return ZERO

    def by_account(self) -> dict[tuple[str, str], Decimal]:
        return {(r["account"], r["currency"]): r["balance"] for r in self.rows}


def _trial(sums: Iterable[tuple[str, str, Decimal, Decimal]]) -> TrialBalance:
    merged: dict[tuple[str, str], list[Decimal]] = {}
    for account, currency, debit, credit in sums:
        pair = merged.setdefault((account, currency), [ZERO, ZERO])
        pair[0] += debit
        pair[1] += credit
    rows: list[dict[str, Any]] = []
    totals: dict[str, tuple[Decimal, Decimal]] = {}
    for (account, currency), (debit, credit) in sorted(merged.items()):
        rows.append({
            "account": account, "currency": currency, "debit": debit, "credit": credit, "balance": debit - credit,
        })
        d, c = totals.get(currency, (ZERO, ZERO))
        totals[currency] = (d + debit, c + credit)
    return TrialBalance(rows, all(d == c for d, c in totals.values()), totals)


def trial_balance(store: ViewStore, projection: Journal) -> TrialBalance:
    """The committed balances of every account in every currency (summed in Python: exact)."""
    spec = projection._spec("balances")
    values = store.query(f"SELECT {', '.join(spec.all_columns)} FROM {projection.table('balances')}")
    rows = (spec.decode(v) for v in values)
    return _trial((r["account"], r["currency"], money(r["debit"]), money(r["credit"])) for r in rows)


def balances_as_of(store: ViewStore, projection: Journal, position: int) -> TrialBalance:
    """Account balances as they stood once every event up to `position` was posted."""
    spec = projection._spec("entries")
    columns = ("account", "currency", "debit", "credit")
    values = store.query(
        f"SELECT {', '.join(columns)} FROM {projection.table('entries')} WHERE position <= ?", (position,)
    )
    decoded = (Table(spec.name, (), tuple(c for c in spec.columns if c[0] in columns)).decode(v) for v in values)
    return _trial((r["account"], r["currency"], money(r["debit"]), money(r["credit"])) for r in decoded)
