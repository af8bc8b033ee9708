"""Products, coupons and flash sales: one function per command."""

from __future__ import annotations

import re

from ledger.commands import ChangePrice, CreateCoupon, CreateFlashSale, DefineProduct, RetireProduct
from ledger.domain.catalog import DEFAULT_CHANNEL, Catalog, Product, ProductKind, ReversalPolicy
from ledger.domain.context import Context
from ledger.domain.errors import AlreadyExists, InvalidInput, UnknownProduct
from ledger.domain.ids import CATALOG_ID, coupon_id, flash_sale_id, normalise_coupon_code, product_id
from ledger.domain.money import check_currency, parse_amount
from ledger.domain.promotions import Coupon, DiscountKind, FlashSale
from ledger.domain.stock import Stock
from ledger.handlers import inputs
from ledger.results import Written
from ledger.writer.session import Session


def catalog(uow: Session, ctx: Context) -> Catalog:
    found = uow.find(Catalog, CATALOG_ID)
    if found is None:
        found = Catalog.open(ctx)
        uow.add(found)
    return found


def load_product(uow: Session, sku: str) -> Product:
    return uow.load(Product, product_id(sku), UnknownProduct(f"no product {sku}", sku=sku))


def define_product(cmd: DefineProduct, uow: Session) -> Written:
    inputs.sku(cmd.sku)
    inputs.text(cmd.name, "name")
    if cmd.kind not in {k.value for k in ProductKind}:
        raise InvalidInput("kind", f"one of {', '.join(k.value for k in ProductKind)}")
    check_currency(cmd.currency)
    prices = {DEFAULT_CHANNEL: parse_amount(cmd.price, cmd.currency, "price")}
    for channel, channel_price in (cmd.channel_prices or {}).items():
        inputs.text(channel, "channel_prices")
        prices[channel] = parse_amount(channel_price, cmd.currency, f"channel_prices.{channel}")
    face_value = parse_amount(cmd.face_value, cmd.currency, "face_value")
    validity_days = inputs.count(cmd.validity_days, "validity_days", minimum=0, optional=True)
    platform = inputs.optional_text(cmd.platform, "platform")
    per_customer_limit = inputs.count(cmd.per_customer_limit, "per_customer_limit", optional=True)
    low_stock_threshold = inputs.count(cmd.low_stock_threshold, "low_stock_threshold", minimum=0)
    reservation_timeout_s = inputs.count(cmd.reservation_timeout_s, "reservation_timeout_s", optional=True)
    fulfilment = _fulfilment(cmd, uow.settings.fulfilment_deadline_s) if ProductKind(cmd.kind).fulfilled_upstream \
        else None
    if cmd.kind == ProductKind.PLATFORM_GRANT.value and not validity_days:
        raise InvalidInput("validity_days", "a platform grant's term in days is required")
    if uow.find(Product, product_id(cmd.sku)) is not None:
        raise AlreadyExists(f"product {cmd.sku} already exists", sku=cmd.sku)
    product = Product.define(
        cmd.ctx, sku=cmd.sku, name=cmd.name, kind=cmd.kind, face_value=face_value, currency=cmd.currency,
        prices=prices, validity_days=validity_days, platform=platform, per_customer_limit=per_customer_limit,
        low_stock_threshold=low_stock_threshold, reservation_timeout_s=reservation_timeout_s,
    )
    if fulfilment is not None:
        product.configure_fulfilment(cmd.ctx, *fulfilment)
    catalog(uow, cmd.ctx).list_product(cmd.ctx, cmd.sku)
    uow.add(product, Stock.open(cmd.ctx, cmd.sku))
    return Written(product.id, 0)


# What an upstream product's recipient account looks like, unless its definition says.
_DEFAULT_ACCOUNTS = {
    ProductKind.DIRECT_RECHARGE: (r"\+?[0-9]{6,15}", "a phone number of 6 to 15 digits"),
    ProductKind.PLATFORM_GRANT: (r"[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z]{2,24}", "an email address"),
}


def _fulfilment(cmd: DefineProduct, default_deadline_s: int) -> tuple[str, str, int, ReversalPolicy]:
    """An upstream product's fulfilment settings, checked: (account pattern, hint, deadline, on reversal)."""
    pattern, hint = _DEFAULT_ACCOUNTS[ProductKind(cmd.kind)]
    if cmd.account_pattern is not None:
        pattern = inputs.text(cmd.account_pattern, "account_pattern")
        try:
            re.compile(pattern)
        except re.error as error:
            raise InvalidInput("account_pattern", f"not a regular expression: {error}") from None
        hint = inputs.text(cmd.account_hint, "account_hint", required=False) or f"matching {pattern}"
    elif cmd.account_hint is not None:
        hint = inputs.text(cmd.account_hint, "account_hint")
    deadline = inputs.count(cmd.fulfilment_deadline_s, "fulfilment_deadline_s", optional=True) or default_deadline_s
    if cmd.on_reversal not in {p.value for p in ReversalPolicy}:
        raise InvalidInput("on_reversal", f"one of {', '.join(p.value for p in ReversalPolicy)}")
    return pattern, hint, deadline, ReversalPolicy(cmd.on_reversal)


def change_price(cmd: ChangePrice, uow: Session) -> Written:
    inputs.text(cmd.channel, "channel")
    product = load_product(uow, cmd.sku)
    product.change_price(cmd.ctx, cmd.channel, parse_amount(cmd.price, product.currency, "price"))
    return Written(product.id, 0)


def retire_product(cmd: RetireProduct, uow: Session) -> Written:
    product = load_product(uow, cmd.sku)
    product.retire(cmd.ctx, cmd.reason)
    return Written(product.id, 0)


def create_coupon(cmd: CreateCoupon, uow: Session) -> Written:
    inputs.text(cmd.code, "code")
    code = normalise_coupon_code(cmd.code)
    if cmd.kind not in {k.value for k in DiscountKind}:
        raise InvalidInput("kind", "one of amount, percent")
    check_currency(cmd.currency)
    amount = parse_amount(cmd.value, cmd.currency, "value", allow_zero=False)
    if cmd.kind == DiscountKind.PERCENT and amount > 100:
        raise InvalidInput("value", "a percentage must be at most 100")
    inputs.window(cmd.starts_at, cmd.ends_at)
    for s in cmd.skus or []:
        inputs.sku(s, "skus")
    min_spend = parse_amount(cmd.min_spend, cmd.currency, "min_spend")
    total_cap = inputs.count(cmd.total_cap, "total_cap", optional=True)
    per_customer_cap = inputs.count(cmd.per_customer_cap, "per_customer_cap", optional=True)
    if uow.find(Coupon, coupon_id(code)) is not None:
        raise AlreadyExists(f"coupon {code} already exists", code=code)
    coupon = Coupon.create(
        cmd.ctx, code=code, kind=cmd.kind, value=amount, currency=cmd.currency, min_spend=min_spend,  # type: ignore[arg-type]
        skus=list(cmd.skus or []), starts_at=cmd.starts_at, ends_at=cmd.ends_at, total_cap=total_cap,
        per_customer_cap=per_customer_cap,
    )
    catalog(uow, cmd.ctx).list_coupon(cmd.ctx, code)
    uow.add(coupon)
    return Written(coupon.id, 0)


def create_flash_sale(cmd: CreateFlashSale, uow: Session) -> Written:
    inputs.text(cmd.sale_id, "sale_id")
    inputs.window(cmd.starts_at, cmd.ends_at)
    inputs.count(cmd.total_quantity, "total_quantity")
    inputs.count(cmd.per_customer_limit, "per_customer_limit", optional=True)
    product = load_product(uow, cmd.sku)
    if uow.find(FlashSale, flash_sale_id(cmd.sale_id)) is not None:
        raise AlreadyExists(f"flash sale {cmd.sale_id} already exists", sale_id=cmd.sale_id)
    for other, (other_start, other_end) in product.flash_sales.items():
        if cmd.starts_at < other_end and other_start < cmd.ends_at:
            raise InvalidInput("starts_at", f"overlaps flash sale {other} of {cmd.sku}")
    sale = FlashSale.create(
        cmd.ctx, cmd.sale_id, cmd.sku, cmd.starts_at, cmd.ends_at, parse_amount(cmd.price, product.currency, "price"),
        cmd.total_quantity, cmd.per_customer_limit,
    )
    product.schedule_flash_sale(cmd.ctx, cmd.sale_id, cmd.starts_at, cmd.ends_at)
    catalog(uow, cmd.ctx).list_flash_sale(cmd.ctx, cmd.sale_id)
    uow.add(sale)
    return Written(sale.id, 0)
