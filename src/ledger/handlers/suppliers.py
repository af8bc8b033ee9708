"""Upstream suppliers and their offers: one function per command."""

from __future__ import annotations

from urllib.parse import urlparse

from ledger.commands import FundSupplier, RemoveOffer, SetLowFloat, SetOffer, SetSupplier, SettleSupplier
from ledger.domain.catalog import Product
from ledger.domain.context import Context
from ledger.domain.errors import AlreadyExists, InvalidInput, UnknownProduct, UnknownSupplier
from ledger.domain.ids import SUPPLIER_LIST_ID, product_id, settlement_id, supplier_id
from ledger.domain.money import check_currency, parse_amount
from ledger.domain.suppliers import Settlement, Supplier, SupplierList
from ledger.handlers import inputs
from ledger.results import Written
from ledger.writer.session import Session


def load_supplier(uow: Session, name: str) -> Supplier:
    return uow.load(Supplier, supplier_id(name), UnknownSupplier(f"no supplier {name}", supplier=name))


def supplier_list(uow: Session, ctx: Context) -> SupplierList:
    found = uow.find(SupplierList, SUPPLIER_LIST_ID)
    if found is None:
        found = SupplierList.open(ctx)
        uow.add(found)
    return found


def set_supplier(cmd: SetSupplier, uow: Session) -> Written:
    inputs.sku(cmd.name, "name")  # the same shape as a SKU: it names topics, routes and metrics
    try:
        url = urlparse(inputs.text(cmd.base_url, "base_url"))
    except ValueError:  # e.g. an unclosed IPv6 bracket
        url = urlparse("")
    if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
        raise InvalidInput("base_url", "an http(s) URL without query or fragment, e.g. https://api.example.com")
    secret = inputs.text(cmd.secret, "secret", normal_form=False)  # compared as bytes: not a name
    if len(secret) < 16:
        raise InvalidInput("secret", "at least 16 characters")
    check_currency(cmd.currency)
    timeout_ms = inputs.count(cmd.timeout_ms, "timeout_ms", minimum=100)
    concurrency = inputs.count(cmd.concurrency, "concurrency")
    assert timeout_ms is not None and concurrency is not None
    sealed = uow.vault.supplier_secrets.seal(secret)
    base_url = cmd.base_url.rstrip("/")
    supplier = uow.find(Supplier, supplier_id(cmd.name))
    if supplier is None:
        supplier = Supplier.register(cmd.ctx, cmd.name, base_url, sealed, cmd.currency, timeout_ms, concurrency)
        uow.add(supplier)
    elif supplier.currency != cmd.currency:
        raise InvalidInput("currency", f"supplier {cmd.name}'s float is in {supplier.currency}")
    else:
        supplier.change(cmd.ctx, base_url, sealed, timeout_ms, concurrency)
    supplier_list(uow, cmd.ctx).add(cmd.ctx, cmd.name)  # once; also lists one registered before the list was
    return Written(supplier.id, 0)


def set_low_float(cmd: SetLowFloat, uow: Session) -> Written:
    supplier = load_supplier(uow, cmd.name)
    supplier.set_low_float(cmd.ctx, parse_amount(cmd.threshold, supplier.currency, "threshold"))
    return Written(supplier.id, 0)


def fund_supplier(cmd: FundSupplier, uow: Session) -> Written:
    inputs.text(cmd.reference, "reference")
    supplier = load_supplier(uow, cmd.name)
    supplier.fund(cmd.ctx, parse_amount(cmd.amount, supplier.currency, "amount", allow_zero=False), cmd.reference)
    return Written(supplier.id, 0)


def settle_supplier(cmd: SettleSupplier, uow: Session) -> Written:
    """Recorded once per reference: the same settlement again is answered as it was, another one
    under a used reference is refused."""
    inputs.text(cmd.supplier, "supplier")
    inputs.text(cmd.reference, "reference")
    inputs.text(cmd.period, "period", required=False)
    check_currency(cmd.currency)
    amount = parse_amount(cmd.amount, cmd.currency, "amount", allow_zero=False)
    found = uow.find_claim(Settlement, settlement_id(cmd.reference))
    if found is not None:
        if (found.supplier, found.amount, found.currency, found.period) != (cmd.supplier, amount, cmd.currency,
                                                                              cmd.period):
            raise AlreadyExists(f"settlement {cmd.reference} was recorded with other figures",
                                reference=cmd.reference)
        return Written(found.id, 0)
    settlement = Settlement.record(cmd.ctx, cmd.supplier, amount, cmd.currency, cmd.reference, cmd.period)
    uow.add(settlement)
    return Written(settlement.id, 0)


def set_offer(cmd: SetOffer, uow: Session) -> Written:
    product = uow.load(Product, product_id(cmd.sku), UnknownProduct(f"no product {cmd.sku}", sku=cmd.sku))
    supplier = load_supplier(uow, cmd.supplier)
    supplier_product = inputs.text(cmd.supplier_product, "supplier_product")
    if supplier.currency != product.currency:
        raise InvalidInput("supplier", f"{cmd.supplier}'s float is in {supplier.currency}, {cmd.sku} sells in "
                                       f"{product.currency}")
    cost = parse_amount(cmd.cost, product.currency, "cost")
    priority = inputs.count(cmd.priority, "priority", minimum=0)
    assert priority is not None
    product.set_offer(cmd.ctx, cmd.supplier, supplier_product, cost, priority)
    return Written(product.id, 0)


def remove_offer(cmd: RemoveOffer, uow: Session) -> Written:
    product = uow.load(Product, product_id(cmd.sku), UnknownProduct(f"no product {cmd.sku}", sku=cmd.sku))
    product.remove_offer(cmd.ctx, cmd.supplier)
    return Written(product.id, 0)
