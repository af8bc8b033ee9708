"""`Ledger.reads`: reads straight from the event store: current aggregates, delivered codes, timelines.

Reads never go through the writer: once a command has answered, its transaction has
committed, so the store already holds what it wrote."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ledger.application import LedgerApp
from ledger.domain import ids
from ledger.domain.base import LedgerAggregate
from ledger.domain.catalog import Catalog, Product
from ledger.domain.errors import NotFound, UnknownCoupon, UnknownOrder, UnknownProduct
from ledger.domain.fulfilment import Fulfilment
from ledger.domain.holders import Holder, HolderKind
from ledger.domain.ids import (
    CATALOG_ID,
    SUPPLIER_LIST_ID,
    coupon_id,
    fulfilment_id,
    holder_id,
    payment_id,
    product_id,
    recipient_id,
    stock_id,
    supplier_id,
)
from ledger.domain.orders import Order, Payment
from ledger.domain.promotions import Coupon
from ledger.domain.recipients import Recipient
from ledger.domain.stock import Stock
from ledger.domain.suppliers import Supplier, SupplierList
from ledger.domain.supply import Batch, Key, KeyStatus
from ledger.encoding.fields import event_data
from ledger.vault import CodeVault

T = TypeVar("T", bound=LedgerAggregate)
WITHDRAWN = frozenset({KeyStatus.REVOKED, KeyStatus.VOIDED})  # keys whose codes are never shown again


@dataclass(frozen=True)
class DeliveredKey:
    key_id: UUID
    code: str
    status: str


@dataclass(frozen=True)
class TimelineEntry:
    timestamp: datetime
    stream: str
    stream_id: UUID
    version: int
    event: str
    data: dict[str, Any]


class StockView:
    """A SKU's stock with its available keys listed (the aggregate keeps lots, not lists)."""

    def __init__(self, stock: Stock, available: list[UUID]) -> None:
        self.stock = stock
        self.available = available

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stock, name)


class StoreReads:
    """The write side's state, read from the store: `Ledger.reads`."""

    def __init__(self, app: LedgerApp, vault: CodeVault) -> None:
        self.app = app
        self.vault = vault

    def find(self, cls: type[T], aggregate_id: UUID) -> T | None:
        try:
            found: LedgerAggregate = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, cls) else None

    def load(self, cls: type[T], aggregate_id: UUID, missing: NotFound) -> T:
        found = self.find(cls, aggregate_id)
        if found is None:
            raise missing
        return found

    def product(self, sku: str) -> Product:
        return self.load(Product, product_id(sku), UnknownProduct(f"no product {sku}", sku=sku))

    def products(self, after: str | None = None, limit: int | None = None) -> list[Product]:
        """Every product in the catalogue's order; with `after` or `limit`, a page of them in SKU
        order (SKUs after `after`, at most `limit`), only those loaded."""
        catalog = self.find(Catalog, CATALOG_ID)
        skus = list(catalog.skus) if catalog else []
        if after is not None or limit is not None:
            skus = sorted(s for s in skus if s > (after or ""))[:limit]
        found = [self.find(Product, product_id(sku)) for sku in skus]
        return [p for p in found if p is not None]

    def stock(self, sku: str) -> StockView:
        stock = self.load(Stock, stock_id(sku), UnknownProduct(f"no product {sku}", sku=sku))
        return StockView(stock, stock.available_keys(self._batch_keys))

    def _batch_keys(self, batch_id: UUID) -> Sequence[UUID]:
        batch = self.find(Batch, batch_id)
        return batch.key_ids if batch else []

    def order(self, order_id: UUID) -> Order:
        return self.load(Order, order_id, UnknownOrder(f"no order {order_id}"))

    def coupon(self, code: str) -> Coupon:
        return self.load(Coupon, coupon_id(code), UnknownCoupon(f"no coupon {code}"))

    def customer(self, customer_id: str) -> Holder | None:
        return self.find(Holder, holder_id(HolderKind.CUSTOMER, customer_id))

    # ---- upstream suppliers, and what support searches by ----

    def suppliers(self) -> list[Supplier]:
        """Every upstream supplier, in the order they were registered."""
        listed = self.find(SupplierList, SUPPLIER_LIST_ID)
        found = [self.find(Supplier, supplier_id(name)) for name in (listed.names if listed else [])]
        return [s for s in found if s is not None]

    def fulfilment_of(self, order_id: UUID) -> Fulfilment | None:
        return self.find(Fulfilment, fulfilment_id(order_id))

    def orders_for_account(self, account: str) -> list[UUID]:
        """The orders placed for a recipient account, found by its keyed hash."""
        recipient = self.find(Recipient, recipient_id(self.vault.account_fingerprint(account)))
        return list(recipient.order_ids) if recipient else []

    def orders_of_customer(self, customer_id: str) -> list[UUID]:
        """The orders a customer placed that held a reservation (a refused one holds none)."""
        return _orders_of(self.stream(holder_id(HolderKind.CUSTOMER, customer_id)))

    def order_paid_by(self, payment_reference: str) -> UUID | None:
        payment = self.find(Payment, payment_id(payment_reference))
        return payment.order_id if payment else None

    def order_of_key(self, key: str) -> UUID | None:
        """The order a key was delivered to, by the key's id or by its code (looked up by keyed hash)."""
        try:
            found = self.find(Key, UUID(key))
        except ValueError:
            found = None
        if found is None:
            found = self.find(Key, ids.key_id(self.vault.fingerprint(key.strip())))
        return found.order_id if found else None

    def order_keys(self, order_id: UUID) -> list[DeliveredKey]:
        """The codes delivered by an order, unsealed: for the buyer's storefront only. A key taken
        back (revoked by a refund, voided by a recall) is left out, its code not even unsealed."""
        order = self.order(order_id)
        keys = []
        for key_id in order.delivered:
            key = self.find(Key, key_id)
            if key is not None and key.status not in WITHDRAWN:
                keys.append(DeliveredKey(key.id, self.vault.unseal(key.sealed_code), key.status.value))
        return keys

    def history(self, ident: str) -> list[TimelineEntry]:
        """The timeline of an order, key, batch (by id), a product (by SKU) or a customer."""
        streams: list[UUID] = []
        with contextlib.suppress(ValueError):
            streams.append(UUID(ident))
        streams += [product_id(ident), stock_id(ident), holder_id(HolderKind.CUSTOMER, ident)]
        entries: list[TimelineEntry] = []
        for stream in streams:
            entries += self.stream(stream)
        customer = self.customer(ident)
        if customer is not None:
            for order_id in _orders_of(entries):
                entries += self.stream(order_id)
        return sorted(entries, key=lambda e: (e.timestamp, str(e.stream_id), e.version))

    def stream(self, stream_id: UUID) -> list[TimelineEntry]:
        """Every event of one aggregate, oldest first."""
        entries = []
        for event in self.app.events.get(stream_id):
            assert isinstance(event, LedgerAggregate.Event)
            stream, _, name = type(event).__qualname__.rpartition(".")
            entries.append(
                TimelineEntry(event.timestamp, stream, stream_id, event.originator_version, name, event_data(event))
            )
        return entries


def _orders_of(entries: list[TimelineEntry]) -> list[UUID]:
    seen: dict[UUID, None] = {}
    for entry in entries:
        if entry.stream == "Holder" and "order_id" in entry.data:
            seen[entry.data["order_id"]] = None
    return list(seen)
