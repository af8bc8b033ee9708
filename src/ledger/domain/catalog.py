"""Products (entitlement templates) and the catalogue that lists them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.errors import InvalidInput, NotSellable, ProductRetired
from ledger.domain.ids import CATALOG_ID, product_id

DEFAULT_CHANNEL = "default"


class ProductKind(StrEnum):
    CARD_KEY = "card_key"
    GIFT_CARD = "gift_card"
    DIRECT_RECHARGE = "direct_recharge"

    @property
    def fulfilled_from_stock(self) -> bool:
        # Direct recharge credits an account upstream; there is no key to allocate yet.
        return self != ProductKind.DIRECT_RECHARGE


class Product(LedgerAggregate):
    """A product (SKU): the template of an entitlement that is sold, with prices per channel."""

    class Defined(LedgerAggregate.Created):
        """A product (SKU) was defined: an entitlement template with its list prices per channel."""

        sku: str
        name: str
        kind: str
        face_value: Decimal
        currency: str
        prices: dict[str, Decimal]
        validity_days: int | None
        platform: str | None
        per_customer_limit: int | None
        low_stock_threshold: int
        reservation_timeout_s: int | None

    class PriceChanged(LedgerAggregate.Event):
        """The list price of one sales channel changed."""

        channel: str
        price: Decimal

        def apply(self, product: Product) -> None:
            product.prices[self.channel] = self.price

    class FlashSaleScheduled(LedgerAggregate.Event):
        """A flash sale was scheduled for this SKU (its caps live on the FlashSale)."""

        sale_id: str
        starts_at: datetime
        ends_at: datetime

        def apply(self, product: Product) -> None:
            product.flash_sales[self.sale_id] = [self.starts_at, self.ends_at]

    class Retired(LedgerAggregate.Event):
        """The product can no longer be ordered; delivered keys stay valid."""

        reason: str

        def apply(self, product: Product) -> None:
            product.retired = True

    def __init__(
        self,
        sku: str,
        name: str,
        kind: str,
        face_value: Decimal,
        currency: str,
        prices: dict[str, Decimal],
        validity_days: int | None,
        platform: str | None,
        per_customer_limit: int | None,
        low_stock_threshold: int,
        reservation_timeout_s: int | None,
    ) -> None:
        self.sku = sku
        self.name = name
        self.kind = ProductKind(kind)
        self.face_value = face_value
        self.currency = currency
        self.prices = dict(prices)
        self.validity_days = validity_days
        self.platform = platform
        self.per_customer_limit = per_customer_limit
        self.low_stock_threshold = low_stock_threshold
        self.reservation_timeout_s = reservation_timeout_s
        self.flash_sales: dict[str, list[datetime]] = {}
        self.retired = False

    @classmethod
    def define(cls, ctx: Context, **fields: Any) -> Product:
        """Fields are validated by the service (`ledger.handlers.inputs`) before they get here."""
        return cls._start(cls.Defined, product_id(fields["sku"]), ctx, **fields)

    def price_for(self, channel: str) -> Decimal:
        return self.prices.get(channel, self.prices[DEFAULT_CHANNEL])

    def change_price(self, ctx: Context, channel: str, price: Decimal) -> None:
        self._emit(self.PriceChanged, ctx, channel=channel, price=price)

    def schedule_flash_sale(self, ctx: Context, sale_id: str, starts_at: datetime, ends_at: datetime) -> None:
        self._emit(self.FlashSaleScheduled, ctx, sale_id=sale_id, starts_at=starts_at, ends_at=ends_at)

    def active_flash_sale(self, now: datetime) -> str | None:
        for sale_id, (starts_at, ends_at) in self.flash_sales.items():
            if starts_at <= now < ends_at:
                return sale_id
        return None

    def retire(self, ctx: Context, reason: str) -> None:
        if self.retired:
            raise ProductRetired(f"product {self.sku} is already retired", sku=self.sku)
        self._emit(self.Retired, ctx, reason=reason)

    def check_sellable(self) -> None:
        if self.retired:
            raise ProductRetired(f"product {self.sku} is retired", sku=self.sku)
        if not self.kind.fulfilled_from_stock:
            raise NotSellable(f"{self.kind} products cannot be ordered yet", sku=self.sku)

    def check_quantity(self, quantity: int) -> None:
        if self.per_customer_limit is not None and quantity > self.per_customer_limit:
            raise InvalidInput("quantity", f"at most {self.per_customer_limit} per customer")


class Catalog(LedgerAggregate):
    """The one list of SKUs, coupons and flash sales: what exists, for listings and sweeps."""

    class_version = 2

    class Opened(LedgerAggregate.Created):
        """The catalogue was opened (first product or promotion)."""

    class ProductListed(LedgerAggregate.Event):
        """A SKU was added to the catalogue."""

        sku: str

        def apply(self, catalog: Catalog) -> None:
            catalog.skus.append(self.sku)

    class CouponListed(LedgerAggregate.Event):
        """A coupon code was added to the catalogue."""

        code: str

    class FlashSaleListed(LedgerAggregate.Event):
        """A flash sale was added to the catalogue."""

        sale_id: str

    def __init__(self) -> None:
        # Coupons and flash sales are listed by their events alone (in the log, the audit feed and
        # on Kafka): nothing reads a list of them, so the aggregate keeps none.
        self.skus: list[str] = []

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Snapshots from when the catalogue also kept lists of its coupons and flash sales."""
        del state["coupons"], state["flash_sales"]

    @classmethod
    def open(cls, ctx: Context) -> Catalog:
        return cls._start(cls.Opened, CATALOG_ID, ctx)

    def list_product(self, ctx: Context, sku: str) -> None:
        self._emit(self.ProductListed, ctx, sku=sku)

    def list_coupon(self, ctx: Context, code: str) -> None:
        self._emit(self.CouponListed, ctx, code=code)

    def list_flash_sale(self, ctx: Context, sale_id: str) -> None:
        self._emit(self.FlashSaleListed, ctx, sale_id=sale_id)

