"""Batches in, recalls, and redemption by code."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from ledger.domain.catalog import Product
from ledger.domain.context import Context
from ledger.domain.errors import (
    LineError,
    ProductRetired,
    UnknownBatch,
    UnknownCode,
    UnknownProduct,
)
from ledger.domain.ids import key_id, product_id, stock_id
from ledger.domain.money import parse_amount
from ledger.domain.stock import Stock
from ledger.domain.supply import Batch, Key
from ledger.imports import ImportProgress, import_codes
from ledger.keyfile import check_code
from ledger.service import inputs
from ledger.service.orders import OrderService
from ledger.service.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Imported:
    batch_id: UUID
    key_ids: list[UUID]
    position: int


@dataclass(frozen=True)
class Recalled:
    batch_id: UUID
    voided: int
    cancelled_orders: list[UUID]
    position: int


@dataclass(frozen=True)
class Redeemed:
    key_id: UUID
    sku: str
    position: int


class SupplyService(OrderService):
    def import_keys(
        self, ctx: Context, *, sku: str, supplier: str, unit_cost: object, codes: list[tuple[int, str]],
        line_errors: list[LineError] | None = None, progress: ImportProgress | None = None,
    ) -> Imported:
        """All or nothing: every bad, duplicate or already-stored line is reported, or all go in.

        Written in one transaction of its own by `ledger.imports` (streamed, any size), so
        not inside `Ledger.batch()`."""
        inputs.text(supplier, "supplier")
        batch_id = uuid4()

        def command(uow: UnitOfWork) -> Imported:
            if uow.deferred:
                raise RuntimeError("an import writes its own transaction: run it outside Ledger.batch()")
            product = uow.load(Product, product_id(sku), UnknownProduct(f"no product {sku}", sku=sku))
            if product.retired:
                raise ProductRetired(f"product {sku} is retired", sku=sku)
            cost = parse_amount(unit_cost, product.currency, "unit_cost")
            stock = uow.load(Stock, stock_id(sku), UnknownProduct(f"no stock for {sku}", sku=sku))
            done = import_codes(
                self.app, self.vault, ctx, product=product, stock=stock, supplier=supplier, cost=cost, codes=codes,
                line_errors=line_errors or [], progress=progress, batch_id=batch_id,
            )
            return Imported(done.batch_id, done.key_ids, done.position)

        with self.sku_lock(sku):
            return self._run(command)

    def recall_batch(self, ctx: Context, batch_id: UUID, reason: str) -> Recalled:
        """Void every undelivered key of a batch; unpaid orders holding one are cancelled."""
        inputs.text(reason, "reason")

        def command(uow: UnitOfWork) -> Recalled:
            batch = uow.load(Batch, batch_id, UnknownBatch(f"no batch {batch_id}"))
            stock = uow.load(Stock, stock_id(batch.sku), UnknownProduct(f"no stock for {batch.sku}"))
            affected = stock.orders_holding(batch.key_ids)
            for order_id in affected:
                self._close_reservation(uow, ctx, self._order(uow, order_id), "cancelled", "supplier_recall")
            voided = stock.void(ctx, batch.id, batch.key_ids, reason)
            for key in voided:
                uow.load(Key, key, UnknownCode(f"no key {key}")).void(ctx, reason)
            batch.recall(ctx, reason, voided)
            return Recalled(batch.id, len(voided), affected, uow.commit())

        return self._run(command)

    def redeem(self, ctx: Context, *, code: str, account_id: str, platform: str | None = None) -> Redeemed:
        inputs.text(account_id, "account_id")
        if not isinstance(code, str) or check_code(code.strip()):
            raise UnknownCode("no such code")
        fingerprint = self.vault.fingerprint(code.strip())

        def command(uow: UnitOfWork) -> Redeemed:
            key = uow.load(Key, key_id(fingerprint), UnknownCode("no such code"))
            key.redeem(ctx, account_id, platform)
            return Redeemed(key.id, key.sku, uow.commit())

        return self._run(command)
