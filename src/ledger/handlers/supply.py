"""Batches in, recalls, and redemption by code: one function per command."""

from __future__ import annotations

from ledger.commands import ImportKeys, RecallBatch, Redeem
from ledger.domain.errors import (
    AlreadyRedeemed,
    KeyExpired,
    KeyNotDelivered,
    KeyRevoked,
    KeyVoided,
    ProductRetired,
    UnknownBatch,
    UnknownCode,
    UnknownProduct,
    WrongPlatform,
)
from ledger.domain.ids import key_id, redeemer_id, stock_id
from ledger.domain.money import parse_amount
from ledger.domain.stock import Stock
from ledger.domain.supply import Batch, Key, Redeemer
from ledger.handlers import inputs
from ledger.handlers.catalog import load_product
from ledger.handlers.orders import close_reservation, load_order
from ledger.results import Imported, Recalled, Redeemed
from ledger.supplier_import.files import check_code
from ledger.supplier_import.importer import import_codes
from ledger.writer.session import Session


def import_keys(cmd: ImportKeys, uow: Session) -> Imported:
    """All or nothing: every bad, duplicate or already-stored line is reported, or all go in.

    Written by `ledger.supplier_import.importer` in a transaction of its own, streamed (a supplier file of
    100,000 codes is one COPY on PostgreSQL); its idempotency answer goes in as its last event."""
    inputs.text(cmd.supplier, "supplier")
    product = load_product(uow, cmd.sku)
    if product.retired:
        raise ProductRetired(f"product {cmd.sku} is retired", sku=cmd.sku)
    cost = parse_amount(cmd.unit_cost, product.currency, "unit_cost")
    stock = uow.load(Stock, stock_id(cmd.sku), UnknownProduct(f"no stock for {cmd.sku}", sku=cmd.sku))
    try:
        done = import_codes(
            uow.model.app, uow.vault, cmd.ctx, product=product, stock=stock, supplier=cmd.supplier, cost=cost,
            codes=cmd.codes, line_errors=cmd.line_errors or [], progress=cmd.progress,
            then=lambda b: uow.answer_events(cmd.ctx, Imported(b.batch_id, b.key_ids, 0)),
        )
    except BaseException:
        uow.model.drop(stock.id)  # it may hold a replenishment that was never written
        raise
    return Imported(done.batch_id, done.key_ids, done.position)


def recall_batch(cmd: RecallBatch, uow: Session) -> Recalled:
    """Void every undelivered key of a batch; unpaid orders holding one are cancelled."""
    inputs.text(cmd.reason, "reason")
    batch = uow.load(Batch, cmd.batch_id, UnknownBatch(f"no batch {cmd.batch_id}"))
    stock = uow.load(Stock, stock_id(batch.sku), UnknownProduct(f"no stock for {batch.sku}"))
    affected = stock.orders_holding(batch.key_ids)
    for order_id in affected:
        close_reservation(uow, cmd.ctx, load_order(uow, order_id), "cancelled", "supplier_recall")
    voided = stock.void(cmd.ctx, batch.id, batch.key_ids, cmd.reason)
    for key in voided:
        uow.load(Key, key, UnknownCode(f"no key {key}")).void(cmd.ctx, cmd.reason)
    batch.recall(cmd.ctx, cmd.reason, voided)
    return Recalled(batch.id, len(voided), affected, 0)


def redeem(cmd: Redeem, uow: Session) -> Redeemed:
    """A refusal is recorded against the account (the rule, never the code), then raised."""
    inputs.text(cmd.account_id, "account_id")
    platform = inputs.optional_text(cmd.platform, "platform")
    try:
        if not isinstance(cmd.code, str) or check_code(cmd.code.strip()):
            raise UnknownCode("no such code")
        fingerprint = uow.vault.fingerprint(cmd.code.strip())
        key = uow.load(Key, key_id(fingerprint), UnknownCode("no such code"))
        key.redeem(cmd.ctx, cmd.account_id, platform)
    except REFUSALS as refusal:
        uow.rollback()
        redeemer = uow.find(Redeemer, redeemer_id(cmd.account_id))
        if redeemer is None:
            redeemer = Redeemer.open(cmd.ctx, cmd.account_id)
            uow.add(redeemer)
        redeemer.refuse(cmd.ctx, refusal.code, platform)
        uow.keep()
        raise
    return Redeemed(key.id, key.sku, 0)


# What a redeeming account may be refused for: each refusal is recorded.
REFUSALS = (UnknownCode, KeyNotDelivered, AlreadyRedeemed, KeyRevoked, KeyVoided, KeyExpired, WrongPlatform)
