"""Reconciliation: does the history add up, and do the read models say what the events say?

Four checks, at the position the read models reached (docs/reconciliation.md says why each
one matters and how to read an exception):

* payments -- every captured payment ended in goods or went back: per order, from the events.
* keys     -- every key is in exactly one of the six states, reached only by legal moves; the
              facts and inventory read models agree with the events key by key and SKU by SKU.
* money    -- money in = revenue + refunds payable, per currency, from the journal's accounts.
* journal  -- the journal equals the sum of the events: its cash and revenue postings equal
              the amounts the events carry, position by position, and every entry and balance
              equals the journal folded again from the events (`projections.engine.as_of.fold`).

Each exception names the log positions that prove it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledger.domain.orders import Order
from ledger.domain.stock import Stock
from ledger.domain.supply import Key
from projections.engine.as_of import FOLDABLE, History, ReadSource, fold
from projections.engine.events import Handlers, handles
from projections.models.inventory import STATES
from projections.models.journal import (
    CUSTOMER_DEPOSITS,
    DISCOUNTS,
    PAYMENT_CLEARING,
    REFUNDS,
    REVENUE_ACCOUNT,
    Journal,
    trial_balance,
)

ZERO = Decimal(0)
PAYMENTS, KEYS, MONEY, JOURNAL = "payments", "keys", "money", "journal"
CHECKS = (PAYMENTS, KEYS, MONEY, JOURNAL)
READ_MODELS = ("facts", "inventory", "journal")
# The accounts money in, revenue and refunds payable are made of (docs/reconciliation.md).
CASH_ACCOUNTS = (PAYMENT_CLEARING, CUSTOMER_DEPOSITS, REVENUE_ACCOUNT, DISCOUNTS, REFUNDS)
# A key's legal moves: event topic name -> (states it may leave, state it enters).
MOVES: dict[str, tuple[tuple[str, ...], str]] = {
    "Stock.Reserved": (("available",), "reserved"),
    "Stock.Released": (("reserved",), "available"),
    "Key.Delivered": (("reserved",), "delivered"),
    "Key.Redeemed": (("delivered",), "redeemed"),
    "Key.Revoked": (("delivered", "redeemed"), "revoked"),
    "Key.Voided": (("available",), "voided"),
}


class NotAligned(Exception):
    """The read models stand at different positions (a rebuild of one of them is being swapped in)."""


@dataclass(frozen=True)
class Finding:
    check: str
    subject: str
    detail: str
    positions: tuple[int, ...]


@dataclass(frozen=True)
class MoneyTotals:
    """Per currency, from the journal: money in = revenue + refunds payable."""

    currency: str
    money_in: Decimal
    revenue: Decimal
    refunds_payable: Decimal

    @property
    def balanced(self) -> bool:
        return self.money_in == self.revenue + self.refunds_payable


@dataclass(frozen=True)
class Reconciliation:
    position: int
    examined: dict[str, str]  # check -> what it looked at
    totals: list[MoneyTotals]
    findings: list[Finding]

    @property
    def clean(self) -> bool:
        return not self.findings

    def count(self, check: str) -> int:
        return sum(1 for f in self.findings if f.check == check)


# ---- what the events alone say ----


@dataclass
class _Order:
    placed: int
    currency: str
    due: Decimal
    subtotal: Decimal
    discount: Decimal
    captured: list[tuple[int, Decimal]] = field(default_factory=list)
    refunded: list[tuple[int, Decimal, bool]] = field(default_factory=list)  # (position, amount, automatic)
    delivered: int | None = None

    @property
    def positions(self) -> tuple[int, ...]:
        found = [self.placed, *(p for p, _ in self.captured), *(p for p, _, _ in self.refunded)]
        return tuple(sorted([*found, *([self.delivered] if self.delivered else [])]))


@dataclass
class _Key:
    sku: str
    state: str
    positions: list[int]


class EventFold(Handlers):
    """Each order's money and goods, each key's state, and the cash postings the events imply,
    folded from the events only (no read model involved)."""

    def __init__(self) -> None:
        self.orders: dict[str, _Order] = {}
        self.keys: dict[str, _Key] = {}
        self.findings: list[Finding] = []
        self.payments = 0
        # (position, account, currency) -> [debit, credit]
        self.cash: dict[tuple[int, str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
        self.handlers = self.bound_handlers()

    def handle(self, topic: str, event: Any, position: int) -> None:
        handler = self.handlers.get(topic)
        if handler is not None:
            handler(event, position)

    def _post(self, position: int, account: str, currency: str, debit: Decimal, credit: Decimal) -> None:
        line = self.cash[(position, account, currency)]
        line[0] += debit
        line[1] += credit

    def _order(self, e: Any, position: int) -> _Order | None:
        order = self.orders.get(str(e.originator_id))
        if order is None:
            self.findings.append(Finding(PAYMENTS, f"order {e.originator_id}",
                                         f"{type(e).__qualname__} for an order never placed", (position,)))
        return order

    # ---- orders ----

    @handles(Order.Placed)
    def on_Order_Placed(self, e: Order.Placed, position: int) -> None:
        self.orders[str(e.originator_id)] = _Order(position, e.currency, e.amount_due, e.subtotal, e.discount)

    @handles(Order.PaymentCaptured)
    def on_Order_PaymentCaptured(self, e: Order.PaymentCaptured, position: int) -> None:
        self.payments += 1
        order = self._order(e, position)
        if order is not None:
            order.captured.append((position, e.amount))
            self._post(position, PAYMENT_CLEARING, order.currency, e.amount, ZERO)

    @handles(Order.KeysDelivered)
    def on_Order_KeysDelivered(self, e: Order.KeysDelivered, position: int) -> None:
        order = self._order(e, position)
        if order is not None:
            order.delivered = position
            self._post(position, REVENUE_ACCOUNT, order.currency, ZERO, order.subtotal)
            self._post(position, DISCOUNTS, order.currency, order.discount, ZERO)

    @handles(Order.Refunded)
    def on_Order_Refunded(self, e: Order.Refunded, position: int) -> None:
        order = self._order(e, position)
        if order is not None:
            order.refunded.append((position, e.amount, e.automatic))
            self._post(position, PAYMENT_CLEARING, order.currency, ZERO, e.amount)
            if not e.automatic:
                self._post(position, REFUNDS, order.currency, e.amount, ZERO)

    # ---- keys ----

    @handles(Key.Registered)
    def on_Key_Registered(self, e: Key.Registered, position: int) -> None:
        key_id = str(e.originator_id)
        if key_id in self.keys:
            self.findings.append(Finding(KEYS, f"key {key_id}", "registered twice",
                                         (*self.keys[key_id].positions, position)))
            return
        self.keys[key_id] = _Key(e.sku, "available", [position])

    def _move(self, key_id: Any, topic: str, position: int) -> None:
        sources, target = MOVES[topic]
        key = self.keys.get(str(key_id))
        if key is None:
            self.findings.append(Finding(KEYS, f"key {key_id}", f"{topic} of a key never registered", (position,)))
            return
        if key.state not in sources:
            self.findings.append(Finding(
                KEYS, f"key {key_id}", f"{topic} moves it from {key.state}, allowed only from {' or '.join(sources)}",
                (*key.positions, position),
            ))
        key.state = target
        key.positions.append(position)

    @handles(Stock.Reserved)
    def on_Stock_Reserved(self, e: Stock.Reserved, position: int) -> None:
        for key_id in e.key_ids:
            self._move(key_id, "Stock.Reserved", position)

    @handles(Stock.Released)
    def on_Stock_Released(self, e: Stock.Released, position: int) -> None:
        for key_id in e.key_ids:
            self._move(key_id, "Stock.Released", position)

    @handles(Key.Delivered)
    def on_Key_Delivered(self, e: Key.Delivered, position: int) -> None:
        self._move(e.originator_id, "Key.Delivered", position)

    @handles(Key.Redeemed)
    def on_Key_Redeemed(self, e: Key.Redeemed, position: int) -> None:
        self._move(e.originator_id, "Key.Redeemed", position)

    @handles(Key.Revoked)
    def on_Key_Revoked(self, e: Key.Revoked, position: int) -> None:
        self._move(e.originator_id, "Key.Revoked", position)

    @handles(Key.Voided)
    def on_Key_Voided(self, e: Key.Voided, position: int) -> None:
        self._move(e.originator_id, "Key.Voided", position)


# What a `History` must keep decoded for `reconcile`: the read models' events and the fold's own
# (`Key.Registered`, which no read model handles: they take a batch's keys from `Batch.Received`).
FOLDS = (*FOLDABLE, EventFold)


# ---- the checks ----


def _payments(events: EventFold) -> Iterable[Finding]:
    for order_id, o in events.orders.items():
        captured = sum((a for _, a in o.captured), ZERO)
        refunded = sum((a for _, a, _ in o.refunded), ZERO)
        returned = sum((a for _, a, automatic in o.refunded if automatic), ZERO)
        kept = captured - refunded
        subject = f"order {order_id}"
        if kept < 0:
            yield Finding(PAYMENTS, subject, f"refunded {refunded}, more than the {captured} captured", o.positions)
        elif o.delivered is None and kept:
            yield Finding(PAYMENTS, subject, f"captured {captured}, refunded {refunded}, no goods: {kept} kept "
                          "without goods", o.positions)
        elif o.delivered is not None and kept > o.due:
            yield Finding(PAYMENTS, subject, f"kept {kept} for goods of {o.due}: a payment neither delivered nor "
                          "refunded", o.positions)
        elif o.delivered is not None and captured - returned < o.due:
            yield Finding(PAYMENTS, subject, f"goods delivered for {captured - returned} of {o.due} due",
                          o.positions)


def _keys(events: EventFold, source: ReadSource, position: int) -> Iterable[Finding]:
    facts = {r["key_id"]: r for r in source.view("facts").select("keys")}
    for key_id, key in events.keys.items():
        found = facts.get(key_id)
        state = None if found is None else found["state"]
        if state != key.state:
            yield Finding(KEYS, f"key {key_id}", f"the events leave it {key.state}; the facts read model says "
                          f"{state or 'nothing'}", tuple(key.positions))
    for key_id in sorted(set(facts) - set(events.keys)):
        yield Finding(KEYS, f"key {key_id}", "in the facts read model but never registered", (position,))
    counted: dict[str, Counter[str]] = defaultdict(Counter)
    last: dict[tuple[str, str], list[int]] = defaultdict(list)
    for key in events.keys.values():
        counted[key.sku][key.state] += 1
        last[(key.sku, key.state)].append(key.positions[-1])
    rows = {r["sku"]: r for r in source.view("inventory").select("skus")}
    for sku in sorted(set(counted) | {s for s, r in rows.items() if any(r[state] for state in STATES)}):
        row = rows.get(sku)
        for state in STATES:
            shown = 0 if row is None else int(row[state] or 0)
            if shown != counted[sku][state]:
                yield Finding(KEYS, f"SKU {sku}", f"{counted[sku][state]} keys {state} by the events, the inventory "
                              f"read model shows {shown}", tuple(sorted(last[(sku, state)])) or (position,))


def _money(source: ReadSource, position: int) -> tuple[list[MoneyTotals], list[Finding]]:
    journal = source.view("journal")
    assert isinstance(journal, Journal)
    tb = trial_balance(source.store, journal)
    totals = []
    for currency in sorted(tb.totals):
        b = {account: tb.balance(account, currency) for account in CASH_ACCOUNTS}  # debit - credit
        totals.append(MoneyTotals(
            currency, money_in=b[PAYMENT_CLEARING], revenue=-(b[REVENUE_ACCOUNT] + b[DISCOUNTS] + b[REFUNDS]),
            refunds_payable=-b[CUSTOMER_DEPOSITS],
        ))
    findings = []
    off = [t for t in totals if not t.balanced]
    if off:
        # Every posting rule nets to zero over these accounts: the positions that do not are the proof.
        net: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
        accounts = ", ".join("?" for _ in CASH_ACCOUNTS)
        for r in journal.select("entries", f"account IN ({accounts}) AND position <= ?", (*CASH_ACCOUNTS, position)):
            net[(r["position"], r["currency"])] += r["debit"] - r["credit"]
        for t in off:
            proof = tuple(sorted(p for (p, c), amount in net.items() if c == t.currency and amount))
            findings.append(Finding(MONEY, t.currency, f"money in {t.money_in} != revenue {t.revenue} + refunds "
                                    f"payable {t.refunds_payable}", proof or (position,)))
    return totals, findings


def _journal(events: EventFold, source: ReadSource, history: History, position: int) -> Iterable[Finding]:
    live = source.view("journal")
    entries = live.select("entries", "position <= ?", (position,))
    # 1. Cash and revenue postings against the amounts the events carry (independent of the journal's code).
    accounts = {PAYMENT_CLEARING, REVENUE_ACCOUNT, DISCOUNTS, REFUNDS}  # the ones EventFold posts
    posted: dict[tuple[int, str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for r in entries:
        if r["account"] in accounts:
            line = posted[(r["position"], r["account"], r["currency"])]
            line[0] += r["debit"]
            line[1] += r["credit"]
    for key in sorted(set(events.cash) | set(posted)):
        want, got = events.cash.get(key, [ZERO, ZERO]), posted.get(key, [ZERO, ZERO])
        if want != got:
            at, account, currency = key
            yield Finding(JOURNAL, f"{account} {currency}", f"the event carries debit {want[0]} credit {want[1]}; "
                          f"the journal posted debit {got[0]} credit {got[1]}", (at,))
    # 2. Every entry and balance against the journal folded again from the events.
    point = fold(history, ["journal"], position)
    try:
        again = point.view("journal")
        by_position: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        for r in entries:
            by_position[r["position"]].append(_entry(r))
        refolded: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        for r in again.select("entries"):
            refolded[r["position"]].append(_entry(r))
        for at in sorted(set(by_position) | set(refolded)):
            if sorted(by_position.get(at, [])) != sorted(refolded.get(at, [])):
                yield Finding(JOURNAL, f"entries at {at}", "the journal's entries differ from those the event "
                              "posts when folded again", (at,))
        stored = {(r["account"], r["currency"]): (r["debit"], r["credit"]) for r in live.select("balances")}
        wanted = {(r["account"], r["currency"]): (r["debit"], r["credit"]) for r in again.select("balances")}
        for account, currency in sorted(set(stored) | set(wanted)):
            kept, summed = stored.get((account, currency)), wanted.get((account, currency))
            if kept != summed:
                yield Finding(JOURNAL, f"balance {account} {currency}", f"stored (debit, credit) {kept}, the events "
                              f"sum to {summed}", (position,))
    finally:
        point.close()


def _entry(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["entry_no"], row["event_type"], row["account"], row["currency"], row["debit"], row["credit"],
            row["order_id"], row["batch_id"], row["key_id"])


def reconcile(history: History, source: ReadSource) -> Reconciliation:
    """Reconcile at the position the facts, inventory and journal read models reached."""
    reached = {name: source.store.position(source.view(name).tracking_name) for name in READ_MODELS}
    if len(set(reached.values())) > 1:
        raise NotAligned(f"read models at different positions: {reached}")
    position = reached["journal"]
    missing = set(EventFold.handled_topics()) - set(history.topics)
    if missing:
        raise ValueError(f"the history keeps no {', '.join(sorted(missing))}: build it with folds=reconcile.FOLDS")
    events = EventFold()
    for logged in history.events(position):
        events.handle(logged.topic, logged.event, logged.position)
    findings = list(events.findings)
    findings += _payments(events)
    findings += _keys(events, source, position)
    totals, money = _money(source, position)
    findings += money
    findings += _journal(events, source, history, position)
    examined = {
        PAYMENTS: f"{len(events.orders):,} orders, {events.payments:,} payments",
        KEYS: f"{len(events.keys):,} keys",
        MONEY: ", ".join(t.currency for t in totals) or "no money yet",
        JOURNAL: f"{len(events.cash):,} cash postings, the journal up to {position}",
    }
    order = {check: n for n, check in enumerate(CHECKS)}
    findings.sort(key=lambda f: (order[f.check], f.positions, f.subject))
    return Reconciliation(position, examined, totals, findings)
