"""Products, coupons and flash sales."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ledger.domain.catalog import DEFAULT_CHANNEL, Catalog, Product, ProductKind
from ledger.domain.context import Context
from ledger.domain.errors import AlreadyExists, InvalidInput, UnknownProduct
from ledger.domain.ids import (
    CATALOG_ID,
    coupon_id,
    flash_sale_id,
    normalise_coupon_code,
    product_id,
)
from ledger.domain.money import check_currency, parse_amount
from ledger.domain.promotions import Coupon, DiscountKind, FlashSale
from ledger.domain.stock import Stock
from ledger.service import inputs
from ledger.service.core import ServiceCore
from ledger.service.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Written:
    """The id a command wrote to, and the log position of its last event."""

    id: UUID
    position: int


class CatalogService(ServiceCore):
    def _catalog(self, uow: UnitOfWork, ctx: Context) -> Catalog:
        catalog = uow.find(Catalog, CATALOG_ID)
        if catalog is None:
            catalog = Catalog.open(ctx)
            uow.add(catalog)
        return catalog

    def define_product(
        self,
        ctx: Context,
        *,
        sku: str,
        name: str,
        kind: str = ProductKind.CARD_KEY.value,
        face_value: object,
        currency: str,
        price: object,
        channel_prices: dict[str, object] | None = None,
        validity_days: int | None = None,
        platform: str | None = None,
        per_customer_limit: int | None = None,
        low_stock_threshold: int = 0,
        reservation_timeout_s: int | None = None,
    ) -> Written:
        inputs.sku(sku)
        inputs.text(name, "name")
        if kind not in {k.value for k in ProductKind}:
            raise InvalidInput("kind", f"one of {', '.join(k.value for k in ProductKind)}")
        check_currency(currency)
        prices = {DEFAULT_CHANNEL: parse_amount(price, currency, "price")}
        for channel, channel_price in (channel_prices or {}).items():
            inputs.text(channel, "channel_prices")
            prices[channel] = parse_amount(channel_price, currency, f"channel_prices.{channel}")
        fields = {
            "sku": sku,
            "name": name,
            "kind": kind,
            "face_value": parse_amount(face_value, currency, "face_value"),
            "currency": currency,
            "prices": prices,
            "validity_days": inputs.count(validity_days, "validity_days", minimum=0, optional=True),
            "platform": inputs.optional_text(platform, "platform"),
            "per_customer_limit": inputs.count(per_customer_limit, "per_customer_limit", optional=True),
            "low_stock_threshold": inputs.count(low_stock_threshold, "low_stock_threshold", minimum=0),
            "reservation_timeout_s": inputs.count(reservation_timeout_s, "reservation_timeout_s", optional=True),
        }

        def command(uow: UnitOfWork) -> Written:
            if uow.find(Product, product_id(sku)) is not None:
                raise AlreadyExists(f"product {sku} already exists", sku=sku)
            product = Product.define(ctx, **fields)
            catalog = self._catalog(uow, ctx)
            catalog.list_product(ctx, sku)
            uow.add(product, Stock.open(ctx, sku))
            return Written(product.id, uow.commit())

        return self._run(command)

    def change_price(self, ctx: Context, sku: str, price: object, channel: str = DEFAULT_CHANNEL) -> Written:
        inputs.text(channel, "channel")

        def command(uow: UnitOfWork) -> Written:
            product = uow.load(Product, product_id(sku), UnknownProduct(f"no product {sku}", sku=sku))
            product.change_price(ctx, channel, parse_amount(price, product.currency, "price"))
            return Written(product.id, uow.commit())

        return self._run(command)

    def retire_product(self, ctx: Context, sku: str, reason: str = "") -> Written:
        def command(uow: UnitOfWork) -> Written:
            product = uow.load(Product, product_id(sku), UnknownProduct(f"no product {sku}", sku=sku))
            product.retire(ctx, reason)
            return Written(product.id, uow.commit())

        return self._run(command)

    def create_coupon(
        self,
        ctx: Context,
        *,
        code: str,
        kind: str,
        value: object,
        currency: str,
        starts_at: datetime,
        ends_at: datetime,
        min_spend: object = "0",
        skus: list[str] | None = None,
        total_cap: int | None = None,
        per_customer_cap: int | None = None,
    ) -> Written:
        inputs.text(code, "code")
        code = normalise_coupon_code(code)
        if kind not in {k.value for k in DiscountKind}:
            raise InvalidInput("kind", "one of amount, percent")
        check_currency(currency)
        amount = parse_amount(value, currency, "value", allow_zero=False)
        if kind == DiscountKind.PERCENT and amount > 100:
            raise InvalidInput("value", "a percentage must be at most 100")
        inputs.window(starts_at, ends_at)
        for s in skus or []:
            inputs.sku(s, "skus")
        fields = {
            "code": code,
            "kind": kind,
            "value": amount,
            "currency": currency,
            "min_spend": parse_amount(min_spend, currency, "min_spend"),
            "skus": list(skus or []),
            "starts_at": starts_at,
            "ends_at": ends_at,
            "total_cap": inputs.count(total_cap, "total_cap", optional=True),
            "per_customer_cap": inputs.count(per_customer_cap, "per_customer_cap", optional=True),
        }

        def command(uow: UnitOfWork) -> Written:
            if uow.find(Coupon, coupon_id(code)) is not None:
                raise AlreadyExists(f"coupon {code} already exists", code=code)
            coupon = Coupon.create(ctx, **fields)  # type: ignore[arg-type]
            self._catalog(uow, ctx).list_coupon(ctx, code)
            uow.add(coupon)
            return Written(coupon.id, uow.commit())

        return self._run(command)

    def create_flash_sale(
        self,
        ctx: Context,
        *,
        sale_id: str,
        sku: str,
        starts_at: datetime,
        ends_at: datetime,
        price: object,
        total_quantity: int,
        per_customer_limit: int | None = None,
    ) -> Written:
        inputs.text(sale_id, "sale_id")
        inputs.window(starts_at, ends_at)
        inputs.count(total_quantity, "total_quantity")
        inputs.count(per_customer_limit, "per_customer_limit", optional=True)

        def command(uow: UnitOfWork) -> Written:
            product = uow.load(Product, product_id(sku), UnknownProduct(f"no product {sku}", sku=sku))
            if uow.find(FlashSale, flash_sale_id(sale_id)) is not None:
                raise AlreadyExists(f"flash sale {sale_id} already exists", sale_id=sale_id)
            for other, (other_start, other_end) in product.flash_sales.items():
                if starts_at < other_end and other_start < ends_at:
                    raise InvalidInput("starts_at", f"overlaps flash sale {other} of {sku}")
            sale = FlashSale.create(
                ctx, sale_id, sku, starts_at, ends_at, parse_amount(price, product.currency, "price"),
                total_quantity, per_customer_limit,
            )
            product.schedule_flash_sale(ctx, sale_id, starts_at, ends_at)
            self._catalog(uow, ctx).list_flash_sale(ctx, sale_id)
            uow.add(sale)
            return Written(sale.id, uow.commit())

        return self._run(command)

