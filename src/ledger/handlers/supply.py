"""Batches in, recalls, and redemption by code: one function per command."""

from __future__ import annotations

from uuid import uuid4

from ledger.commands import ImportKeys, RecallBatch, Redeem
from ledger.domain.errors import ImportRejected, LineError, ProductRetired, UnknownBatch, UnknownCode, UnknownProduct
from ledger.domain.ids import key_id, stock_id
from ledger.domain.money import parse_amount
from ledger.domain.stock import Stock
from ledger.domain.supply import Batch, Key
from ledger.handlers import inputs
from ledger.handlers.catalog import load_product
from ledger.handlers.orders import close_reservation, load_order
from ledger.keyfile import check_code
from ledger.results import Imported, Recalled, Redeemed
from ledger.writer.session import Session


def import_keys(cmd: ImportKeys, uow: Session) -> Imported:
    """All or nothing: every bad, duplicate or already-stored line is reported, or all go in."""
    inputs.text(cmd.supplier, "supplier")
    ctx, sku = cmd.ctx, cmd.sku
    product = load_product(uow, sku)
    if product.retired:
        raise ProductRetired(f"product {sku} is retired", sku=sku)
    cost = parse_amount(cmd.unit_cost, product.currency, "unit_cost")
    errors = list(cmd.line_errors or [])
    first_seen: dict[str, int] = {}
    fingerprints: list[tuple[int, str, str]] = []
    for line, code in cmd.codes:
        problem = check_code(code)
        if problem:
            errors.append(LineError(line, problem))
            continue
        fingerprint = uow.vault.fingerprint(code)
        if fingerprint in first_seen:
            errors.append(LineError(line, f"duplicate of line {first_seen[fingerprint]}"))
            continue
        first_seen[fingerprint] = line
        if uow.recorder.select_events(key_id(fingerprint), limit=1):
            errors.append(LineError(line, "code already imported"))
            continue
        fingerprints.append((line, code, fingerprint))
    if not fingerprints and not errors:
        errors.append(LineError(1, "no codes given"))
    if errors:
        raise ImportRejected(sorted(errors, key=lambda e: e.line))
    batch_id = uuid4()
    keys = [
        Key.register(ctx, key_id(fingerprint), batch_id, sku, cmd.supplier, cost, product.platform, fingerprint,
                     uow.vault.seal(code))
        for _, code, fingerprint in fingerprints
    ]
    key_ids = [k.id for k in keys]
    batch = Batch.receive(ctx, batch_id, sku, cmd.supplier, cost, product.currency, key_ids)
    stock = uow.load(Stock, stock_id(sku), UnknownProduct(f"no stock for {sku}", sku=sku))
    stock.replenish(ctx, batch_id, key_ids)
    uow.add(batch)
    for key in keys:  # written with the batch, not kept in the writer's memory
        for event in key.collect_events():
            uow.record(event)
    return Imported(batch_id, key_ids, 0)


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
    inputs.text(cmd.account_id, "account_id")
    if not isinstance(cmd.code, str) or check_code(cmd.code.strip()):
        raise UnknownCode("no such code")
    fingerprint = uow.vault.fingerprint(cmd.code.strip())
    key = uow.load(Key, key_id(fingerprint), UnknownCode("no such code"))
    key.redeem(cmd.ctx, cmd.account_id, cmd.platform)
    return Redeemed(key.id, key.sku, 0)
