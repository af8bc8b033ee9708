"""Timelines: every event about one order, key, customer, SKU or batch, in log order, with its
position, time and metadata; read through the read side's seam (`ReadSide.stream_page`, the
facts read model), never by SQL of its own.

Which aggregates make up each timeline:

* an **order**: its Order events, its Payment(s) (by the references its payment events name),
  the events of the keys it delivered, and the events of its upstream Fulfilment (every attempt:
  its supplier, what the supplier answered, why it failed, escalations, giving up; found by the
  id `Order.FulfilmentStarted` names), and for a platform grant the term it extended
  (`Grant.Extended` naming the order) and that term's end (`Grant.Ended` at that `until`);
* a **key**: its Key events, and the Stock events of its SKU that name it (reserved, released,
  delivered, voided), searched backwards from its last event through at most `STOCK_SCAN`
  stock events;
* a **customer**: their holder's events and the events of their orders (the newest `ORDERS`)
  with their fulfilments';
* a **SKU**: its Product and Stock events, newest `limit` first with a pager by position;
* a **batch**: its Batch events, its keys' registrations counted, not listed.

Payloads are scrubbed (`ledger.encoding.event_json.scrub`): sealed codes and code hashes never leave,
nor do a recipient account's sealed form and keyed hash (its masked form is shown, and is the
order's `summary["account"]`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.domain.holders import HolderKind
from ledger.domain.ids import grant_id, holder_id, payment_id, product_id, stock_id
from ledger.encoding.event_json import scrub
from ledger.encoding.fields import event_data
from projections.engine.read_side import ReadSide

KINDS = ("order", "key", "customer", "sku", "batch")
STREAM_LIMIT = 10_000  # events of one order, key, payment or batch: a handful in practice
STOCK_SCAN = 5_000  # stock events searched for those naming one key
ORDERS = 200  # a customer's newest orders shown
KEYS = 500  # keys of one order whose events are shown
LIST_SHOWN = 10  # items of a long list (a batch's key ids) shown in a payload


@dataclass(frozen=True)
class TimelineEvent:
    position: int
    name: str  # Aggregate.Event
    stream_id: UUID
    version: int
    timestamp: datetime
    actor: str
    correlation_id: str
    causation_id: str
    data: dict[str, Any]  # scrubbed and JSON-ready; long lists cut short

    @property
    def aggregate(self) -> str:
        return self.name.partition(".")[0]


@dataclass(frozen=True)
class LifeStep:
    """One state of a card key's life, when it was entered, and the event that did it."""

    state: str
    timestamp: datetime
    position: int


@dataclass
class Timeline:
    kind: str
    ident: str
    events: list[TimelineEvent] = field(default_factory=list)  # ascending position
    notes: list[str] = field(default_factory=list)
    older: int | None = None  # more events before this position (the pager's `before`)
    life: list[LifeStep] = field(default_factory=list)  # a key's states, in order
    summary: dict[str, Any] = field(default_factory=dict)


def timeline_event(position: int, event: Any) -> TimelineEvent:
    meta = getattr(event, "meta", None) or {}
    data = {k: v for k, v in event_data(event).items() if k != "meta"}
    return TimelineEvent(
        position=position, name=type(event).__qualname__, stream_id=event.originator_id,
        version=event.originator_version, timestamp=event.timestamp, actor=str(meta.get("actor", "")),
        correlation_id=str(meta.get("correlation_id", "")), causation_id=str(meta.get("causation_id", "")),
        data=_shortened(scrub(data)),
    )


def _shortened(value: Any) -> Any:
    """Long lists (a batch's 100,000 key ids) cut to their first items and a count."""
    if isinstance(value, dict):
        return {k: _shortened(v) for k, v in value.items()}
    if isinstance(value, list):
        if len(value) > LIST_SHOWN:
            return [*(_shortened(v) for v in value[:LIST_SHOWN]), f"… and {len(value) - LIST_SHOWN:,} more"]
        return [_shortened(v) for v in value]
    return value


def _whole(reads: ReadSide, stream_id: UUID) -> list[tuple[int, Any]]:
    """Every event of a short stream, oldest first."""
    return list(reversed(reads.stream_page(stream_id, limit=STREAM_LIMIT)))


def _sorted(found: Iterable[tuple[int, Any]]) -> list[TimelineEvent]:
    unique = dict(found)
    return [timeline_event(p, unique[p]) for p in sorted(unique)]


def _of(events: list[tuple[int, Any]], aggregate: str) -> bool:
    return bool(events) and type(events[0][1]).__qualname__.startswith(f"{aggregate}.")


def _ids(values: Iterable[Any]) -> list[UUID]:
    return [v if isinstance(v, UUID) else UUID(str(v)) for v in values]


# ---- an order ----


def _fulfilments(reads: ReadSide, own: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """The events of the fulfilment an order's `Order.FulfilmentStarted` names (none for others)."""
    found: list[tuple[int, Any]] = []
    for fulfilment_id in dict.fromkeys(e.fulfilment_id for _, e in own if hasattr(e, "fulfilment_id")):
        found += _whole(reads, fulfilment_id)
    return found


def _grant(reads: ReadSide, order_id: UUID, sku: str, account_hmac: str | None) -> list[tuple[int, Any]]:
    """The grant events about this order: the extension it bought, and the end of that term."""
    if account_hmac is None:
        return []
    found, until = [], None
    for position, event in _whole(reads, grant_id(sku, account_hmac)):
        name = type(event).__qualname__
        if name == "Grant.Extended" and event.order_id == order_id:
            found.append((position, event))
            until = event.until
        elif name == "Grant.Ended" and until is not None and event.until == until:
            found.append((position, event))
    return found


def order(reads: ReadSide, order_id: UUID) -> Timeline | None:
    own = _whole(reads, order_id)
    if not _of(own, "Order"):
        return None
    found = list(own)
    references: dict[str, None] = {}
    keys: dict[UUID, None] = {}
    account = account_hmac = None
    for _, event in own:
        if hasattr(event, "payment_reference"):
            references[event.payment_reference] = None
        for key in getattr(event, "keys", None) or ():  # Order.KeysDelivered
            keys[_ids([key["key_id"]])[0]] = None
        account = getattr(event, "account_masked", account)  # Order.RecipientGiven
        account_hmac = getattr(event, "account_hmac", account_hmac)
    for reference in references:
        found += _whole(reads, payment_id(reference))
    found += _fulfilments(reads, own)
    found += _grant(reads, order_id, own[0][1].sku, account_hmac)
    shown = list(keys)[:KEYS]
    for key_id in shown:
        found += _whole(reads, key_id)
    timeline = Timeline("order", str(order_id), _sorted(found))
    timeline.summary = {"sku": own[0][1].sku, "customer": own[0][1].customer_id}
    if account is not None:
        timeline.summary["account"] = account
    if len(keys) > len(shown):
        timeline.notes.append(f"{len(keys) - len(shown):,} more delivered keys' events are not shown")
    return timeline


# ---- a card key ----

_STOCK_NAMING_KEYS = ("Stock.Reserved", "Stock.Released", "Stock.Delivered", "Stock.Voided")
_LIFE = {
    "Key.Registered": "received", "Stock.Reserved": "reserved", "Stock.Released": "released",
    "Key.Delivered": "delivered", "Key.Redeemed": "redeemed", "Key.Revoked": "revoked", "Key.Voided": "voided",
    "Key.Expired": "expired",
}


def key(reads: ReadSide, key_id: UUID) -> Timeline | None:
    own = _whole(reads, key_id)
    if not _of(own, "Key"):
        return None
    registered, sku = own[0][0], own[0][1].sku
    terminal = [p for p, e in own if type(e).__qualname__ in ("Key.Delivered", "Key.Voided")]
    # A key's stock events come before (or with, in the same command) its delivery or voiding.
    before = terminal[-1] + 1_000 if terminal else None
    found = list(own)
    scanned, complete = 0, False
    while scanned < STOCK_SCAN:
        page = reads.stream_page(stock_id(sku), after=registered, before=before, limit=500)
        for position, event in page:
            if type(event).__qualname__ in _STOCK_NAMING_KEYS and key_id in event.key_ids:
                found.append((position, event))
        scanned += len(page)
        if len(page) < 500:
            complete = True
            break
        before = page[-1][0]
    timeline = Timeline("key", str(key_id), _sorted(found))
    if not complete:
        timeline.notes.append(f"only the {scanned:,} stock events of {sku} nearest the key's last event were "
                              "searched for those naming it")
    timeline.life = [LifeStep(_LIFE[e.name], e.timestamp, e.position) for e in timeline.events if e.name in _LIFE]
    timeline.summary = {"sku": sku}
    return timeline


# ---- a customer ----


def customer(reads: ReadSide, customer_id: str) -> Timeline | None:
    holder = _whole(reads, holder_id(HolderKind.CUSTOMER, customer_id))
    orders: dict[UUID, None] = {}
    for row in reads.view("facts").select("orders", "customer_id = ?", (customer_id,), order="placed_at DESC",
                                          limit=ORDERS):
        orders[UUID(row["order_id"])] = None
    for _, event in holder:
        if hasattr(event, "order_id"):
            orders[_ids([event.order_id])[0]] = None
    if not holder and not orders:
        return None
    found = list(holder)
    for order_id in list(orders)[:ORDERS]:
        own = _whole(reads, order_id)
        found += own
        found += _fulfilments(reads, own)
    timeline = Timeline("customer", customer_id, _sorted(found))
    if len(orders) > ORDERS:
        timeline.notes.append(f"only the newest {ORDERS} orders are shown")
    return timeline


# ---- a SKU ----


def sku(reads: ReadSide, sku_: str, before: int | None = None, limit: int = 100) -> Timeline | None:
    """The newest `limit` events of the SKU's product and stock before position `before`."""
    found: list[tuple[int, Any]] = []
    for stream in (product_id(sku_), stock_id(sku_)):
        found += reads.stream_page(stream, before=before, limit=limit + 1)
    if not found and before is None:
        return None
    found.sort(key=lambda item: item[0], reverse=True)
    timeline = Timeline("sku", sku_, _sorted(found[:limit]))
    timeline.summary = {"sku": sku_}
    if len(found) > limit:
        timeline.older = found[limit - 1][0]
    return timeline


# ---- a batch ----


def batch(reads: ReadSide, batch_id: UUID) -> Timeline | None:
    own = _whole(reads, batch_id)
    if not _of(own, "Batch"):
        return None
    received = own[0][1]
    timeline = Timeline("batch", str(batch_id), _sorted(own))
    count = len(received.key_ids)
    timeline.summary = {"sku": received.sku, "keys": count}
    timeline.notes.append(f"{count:,} keys registered with this batch (one Key.Registered event each, not listed)")
    return timeline
