"""Reconciliation: does the history add up, and do the read models say what the events say?

Five checks, at the position the read models reached (docs/reconciliation.md says why each
one matters and how to read an exception):

* payments -- every captured payment ended in goods or went back: per order, from the events.
              A paid recharge or grant whose fulfilment is still open is not an exception: it
              is listed apart, as in progress (with its deadline, and whether it is past it).
* keys     -- every key is in exactly one of the six states, reached only by legal moves; the
              facts and inventory read models agree with the events key by key and SKU by SKU.
* money    -- money in = revenue + refunds payable, per currency, from the journal's accounts.
* floats   -- each supplier's float in the journal equals what its own events say: funded,
              less charged, plus charges reversed.
* journal  -- the journal equals the sum of the events: its cash and revenue postings equal
              the amounts the events carry, position by position, and every entry and balance
              equals the journal folded again from the events (`projections.engine.as_of.fold`).

Each exception names the log positions that prove it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ledger.domain.fulfilment import Fulfilment
from ledger.domain.money import format_amount
from ledger.domain.orders import Order
from ledger.domain.stock import Stock
from ledger.domain.suppliers import Supplier
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
    SUPPLIER_FLOAT,
    Journal,
    supplier_float,
    trial_balance,
)

ZERO = Decimal(0)
PAYMENTS, KEYS, MONEY, FLOATS, JOURNAL = "payments", "keys", "money", "floats", "journal"
CHECKS = (PAYMENTS, KEYS, MONEY, FLOATS, JOURNAL)
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
    "Key.Expired": (("delivered",), "expired"),
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
class InProgress:
    """A paid order whose upstream fulfilment is still open: not an exception. Its money is a
    customer deposit until a supplier delivers it or it is refunded; the fulfilment worker
    refunds it at the deadline when no attempt is outstanding, and escalates an attempt whose
    outcome is still unknown then (it never refunds while a supplier may still deliver).
    `overdue`: past the deadline at the time of the check -- escalated, or waiting for a worker
    that should have ended it."""

    order_id: str
    status: str  # requested: the next attempt may start; submitted: an attempt is outstanding
    supplier: str | None  # the outstanding attempt's supplier
    kept: Decimal  # captured less returned
    currency: str
    deadline: datetime
    overdue: bool
    escalated: bool
    positions: tuple[int, ...]  # the order's and its fulfilment's events


@dataclass(frozen=True)
class Reconciliation:
    position: int
    examined: dict[str, str]  # check -> what it looked at
    totals: list[MoneyTotals]
    findings: list[Finding]
    in_progress: list[InProgress] = field(default_factory=list)

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
    delivered: int | None = None  # the first delivery: keys, a supplier's, access granted
    goods: bool = False  # holds its goods now (a supplier's reversal takes them back)
    moves: list[int] = field(default_factory=list)  # deliveries, fulfilment started, reversals
    fulfilment: str | None = None  # the id of its upstream fulfilment

    @property
    def positions(self) -> tuple[int, ...]:
        found = [self.placed, *(p for p, _ in self.captured), *(p for p, _, _ in self.refunded)]
        return tuple(sorted([*found, *self.moves]))


@dataclass
class _Fulfilment:
    order_id: str
    deadline: datetime
    positions: list[int]
    status: str = "requested"  # requested, submitted (open); succeeded, failed, reversed (ended)
    supplier: str | None = None  # the outstanding attempt's
    escalated: bool = False

    @property
    def open(self) -> bool:
        return self.status in ("requested", "submitted")


@dataclass
class _Supplier:
    name: str
    currency: str
    funded: Decimal = ZERO
    charged: Decimal = ZERO
    reversed: Decimal = ZERO
    positions: list[int] = field(default_factory=list)

    @property
    def float(self) -> Decimal:
        return self.funded - self.charged + self.reversed


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
        self.fulfilments: dict[str, _Fulfilment] = {}
        self.suppliers: dict[str, _Supplier] = {}
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

    def _delivered(self, e: Any, position: int) -> None:
        """Goods handed over; the first delivery is the sale (revenue less discount)."""
        order = self._order(e, position)
        if order is None:
            return
        order.goods = True
        order.moves.append(position)
        if order.delivered is None:
            order.delivered = position
            self._post(position, REVENUE_ACCOUNT, order.currency, ZERO, order.subtotal)
            self._post(position, DISCOUNTS, order.currency, order.discount, ZERO)

    @handles(Order.KeysDelivered)
    def on_Order_KeysDelivered(self, e: Order.KeysDelivered, position: int) -> None:
        self._delivered(e, position)

    @handles(Order.Fulfilled)
    def on_Order_Fulfilled(self, e: Order.Fulfilled, position: int) -> None:
        self._delivered(e, position)

    @handles(Order.Granted)
    def on_Order_Granted(self, e: Order.Granted, position: int) -> None:
        self._delivered(e, position)

    @handles(Order.FulfilmentStarted)
    def on_Order_FulfilmentStarted(self, e: Order.FulfilmentStarted, position: int) -> None:
        order = self._order(e, position)
        if order is not None:
            order.fulfilment = str(e.fulfilment_id)
            order.moves.append(position)

    @handles(Order.FulfilmentReversed)
    def on_Order_FulfilmentReversed(self, e: Order.FulfilmentReversed, position: int) -> None:
        order = self._order(e, position)
        if order is not None:
            order.goods = False
            order.moves.append(position)

    @handles(Order.Refunded)
    def on_Order_Refunded(self, e: Order.Refunded, position: int) -> None:
        """Only a refund after the order's first delivery gives back revenue (`refunds`); any
        other returns a deposit (an automatic refund, or a recharge no supplier delivered)."""
        order = self._order(e, position)
        if order is not None:
            order.refunded.append((position, e.amount, e.automatic))
            self._post(position, PAYMENT_CLEARING, order.currency, ZERO, e.amount)
            if not e.automatic and order.delivered is not None:
                self._post(position, REFUNDS, order.currency, e.amount, ZERO)

    # ---- fulfilments ----

    @handles(Fulfilment.Requested)
    def on_Fulfilment_Requested(self, e: Fulfilment.Requested, position: int) -> None:
        self.fulfilments[str(e.originator_id)] = _Fulfilment(str(e.order_id), e.deadline, [position])

    def _fulfilment(self, e: Any, position: int) -> _Fulfilment | None:
        found = self.fulfilments.get(str(e.originator_id))
        if found is None:
            self.findings.append(Finding(PAYMENTS, f"fulfilment {e.originator_id}",
                                         f"{type(e).__qualname__} of a fulfilment never requested", (position,)))
        else:
            found.positions.append(position)
        return found

    @handles(Fulfilment.AttemptStarted)
    def on_Fulfilment_AttemptStarted(self, e: Fulfilment.AttemptStarted, position: int) -> None:
        found = self._fulfilment(e, position)
        if found is not None:
            found.status, found.supplier = "submitted", e.supplier

    @handles(Fulfilment.AttemptUnknown)
    def on_Fulfilment_AttemptUnknown(self, e: Fulfilment.AttemptUnknown, position: int) -> None:
        self._fulfilment(e, position)

    @handles(Fulfilment.AttemptResent)
    def on_Fulfilment_AttemptResent(self, e: Fulfilment.AttemptResent, position: int) -> None:
        self._fulfilment(e, position)

    @handles(Fulfilment.AttemptSucceeded)
    def on_Fulfilment_AttemptSucceeded(self, e: Fulfilment.AttemptSucceeded, position: int) -> None:
        found = self._fulfilment(e, position)
        if found is not None:
            found.status, found.supplier = "succeeded", None

    @handles(Fulfilment.AttemptFailed)
    def on_Fulfilment_AttemptFailed(self, e: Fulfilment.AttemptFailed, position: int) -> None:
        found = self._fulfilment(e, position)
        if found is not None:
            found.status, found.supplier = "requested", None

    @handles(Fulfilment.AttemptReversed)
    def on_Fulfilment_AttemptReversed(self, e: Fulfilment.AttemptReversed, position: int) -> None:
        found = self._fulfilment(e, position)
        if found is not None:
            found.status = "requested" if e.refulfil else "reversed"

    @handles(Fulfilment.Escalated)
    def on_Fulfilment_Escalated(self, e: Fulfilment.Escalated, position: int) -> None:
        found = self._fulfilment(e, position)
        if found is not None:
            found.escalated = True

    @handles(Fulfilment.GaveUp)
    def on_Fulfilment_GaveUp(self, e: Fulfilment.GaveUp, position: int) -> None:
        found = self._fulfilment(e, position)
        if found is not None:
            found.status = "failed"

    # ---- supplier floats ----

    @handles(Supplier.Registered)
    def on_Supplier_Registered(self, e: Supplier.Registered, position: int) -> None:
        self.suppliers[str(e.originator_id)] = _Supplier(e.name, e.currency)

    def _float(self, e: Any, position: int) -> _Supplier | None:
        found = self.suppliers.get(str(e.originator_id))
        if found is None:
            self.findings.append(Finding(FLOATS, f"supplier {e.originator_id}",
                                         f"{type(e).__qualname__} of a supplier never registered", (position,)))
        else:
            found.positions.append(position)
        return found

    @handles(Supplier.FloatFunded)
    def on_Supplier_FloatFunded(self, e: Supplier.FloatFunded, position: int) -> None:
        found = self._float(e, position)
        if found is not None:
            found.funded += e.amount

    @handles(Supplier.Charged)
    def on_Supplier_Charged(self, e: Supplier.Charged, position: int) -> None:
        found = self._float(e, position)
        if found is not None:
            found.charged += e.amount

    @handles(Supplier.ChargeReversed)
    def on_Supplier_ChargeReversed(self, e: Supplier.ChargeReversed, position: int) -> None:
        found = self._float(e, position)
        if found is not None:
            found.reversed += e.amount

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

    @handles(Key.Expired)
    def on_Key_Expired(self, e: Key.Expired, position: int) -> None:
        self._move(e.originator_id, "Key.Expired", position)


# What a `History` must keep decoded for `reconcile`: the read models' events and the fold's own
# (`Key.Registered`, which no read model handles: they take a batch's keys from `Batch.Received`).
FOLDS = (*FOLDABLE, EventFold)


# ---- the checks ----


def _payments(events: EventFold, now: datetime) -> tuple[list[Finding], list[InProgress]]:
    findings: list[Finding] = []
    in_progress: list[InProgress] = []
    for order_id, o in events.orders.items():
        captured = sum((a for _, a in o.captured), ZERO)
        refunded = sum((a for _, a, _ in o.refunded), ZERO)
        returned = sum((a for _, a, automatic in o.refunded if automatic), ZERO)
        kept = captured - refunded
        subject = f"order {order_id}"
        fulfilment = events.fulfilments.get(o.fulfilment) if o.fulfilment else None
        positions = o.positions if fulfilment is None else tuple(sorted({*o.positions, *fulfilment.positions}))
        if fulfilment is not None and o.goods != (fulfilment.status == "succeeded"):
            findings.append(Finding(PAYMENTS, subject, f"its fulfilment is {fulfilment.status}, yet the order "
                                    f"{'holds' if o.goods else 'waits for'} its goods", positions))
        elif kept < 0:
            findings.append(Finding(PAYMENTS, subject, f"refunded {refunded}, more than the {captured} captured",
                                    positions))
        elif fulfilment is not None and fulfilment.open:
            in_progress.append(InProgress(
                order_id, fulfilment.status, fulfilment.supplier, kept, o.currency, fulfilment.deadline,
                overdue=now >= fulfilment.deadline, escalated=fulfilment.escalated, positions=positions,
            ))
        elif not o.goods and kept:
            ended = f" (its fulfilment {fulfilment.status})" if fulfilment is not None else ""
            findings.append(Finding(PAYMENTS, subject, f"captured {captured}, refunded {refunded}, no goods{ended}: "
                                    f"{kept} kept without goods", positions))
        elif o.goods and kept > o.due:
            findings.append(Finding(PAYMENTS, subject, f"kept {kept} for goods of {o.due}: a payment neither "
                                    "delivered nor refunded", positions))
        elif o.goods and captured - returned < o.due:
            findings.append(Finding(PAYMENTS, subject, f"goods delivered for {captured - returned} of {o.due} due",
                                    positions))
    return findings, in_progress


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


def _floats(events: EventFold, source: ReadSource, position: int) -> Iterable[Finding]:
    """Each supplier's float account against its own events: funded - charged + reversed."""
    journal = source.view("journal")
    assert isinstance(journal, Journal)
    held = trial_balance(source.store, journal).by_account()
    known = set()
    for s in sorted(events.suppliers.values(), key=lambda s: s.name):
        account = supplier_float(s.name)
        known.add(account)
        for currency in sorted({s.currency} | {c for a, c in held if a == account}):
            wanted = s.float if currency == s.currency else ZERO
            shown = held.get((account, currency), ZERO)
            if shown != wanted:
                funded, charged, reversed_ = (format_amount(v, s.currency) for v in (s.funded, s.charged, s.reversed))
                yield Finding(FLOATS, f"supplier {s.name}", f"its events leave its float at "
                              f"{format_amount(wanted, currency)} {currency} (funded {funded}, charged {charged}, "
                              f"reversed {reversed_}); the journal's {account} holds {format_amount(shown, currency)}",
                              tuple(s.positions) or (position,))
    for account, currency in sorted(held):
        if account.startswith(f"{SUPPLIER_FLOAT}:") and account not in known and held[(account, currency)]:
            yield Finding(FLOATS, account, f"the journal holds {format_amount(held[(account, currency)], currency)} "
                          f"{currency} for a supplier the events never registered", (position,))


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


def reconcile(history: History, source: ReadSource, now: datetime | None = None) -> Reconciliation:
    """Reconcile at the position the facts, inventory and journal read models reached; a
    fulfilment in progress is overdue when its deadline is before `now` (default: the clock)."""
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
    paid, in_progress = _payments(events, now or datetime.now(UTC))
    findings += paid
    findings += _keys(events, source, position)
    totals, money = _money(source, position)
    findings += money
    findings += _floats(events, source, position)
    findings += _journal(events, source, history, position)
    payments = f"{len(events.orders):,} orders, {events.payments:,} payments"
    if in_progress:
        overdue = sum(1 for p in in_progress if p.overdue)
        payments += (f"; {len(in_progress):,} fulfilment{'s' if len(in_progress) != 1 else ''} in progress "
                     f"({overdue:,} past the deadline)")
    examined = {
        PAYMENTS: payments,
        KEYS: f"{len(events.keys):,} keys",
        MONEY: ", ".join(t.currency for t in totals) or "no money yet",
        FLOATS: f"{len(events.suppliers):,} suppliers",
        JOURNAL: f"{len(events.cash):,} cash postings, the journal up to {position}",
    }
    order = {check: n for n, check in enumerate(CHECKS)}
    findings.sort(key=lambda f: (order[f.check], f.positions, f.subject))
    in_progress.sort(key=lambda p: (p.deadline, p.order_id))
    return Reconciliation(position, examined, totals, findings, in_progress)
