"""Products (entitlement templates) and the catalogue that lists them."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypedDict

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.errors import InvalidInput, NotSellable, ProductRetired
from ledger.domain.ids import CATALOG_ID, product_id

DEFAULT_CHANNEL = "default"


class ProductKind(StrEnum):
    CARD_KEY = "card_key"
    GIFT_CARD = "gift_card"
    DIRECT_RECHARGE = "direct_recharge"  # an account topped up by an upstream supplier's API
    PLATFORM_GRANT = "platform_grant"  # a membership or seat activated on a partner platform's API
    DIGITAL_ACCESS = "digital_access"  # no stock, no supplier: access granted at payment

    @property
    def fulfilled_from_stock(self) -> bool:
        return self in (ProductKind.CARD_KEY, ProductKind.GIFT_CARD)

    @property
    def fulfilled_upstream(self) -> bool:
        """Sent to a supplier after payment, for a recipient account the order names."""
        return self in (ProductKind.DIRECT_RECHARGE, ProductKind.PLATFORM_GRANT)


class ReversalPolicy(StrEnum):
    """What happens to an order whose completed recharge the supplier takes back later."""

    REFUND = "refund"
    REFULFIL = "refulfil"  # send it again, to the next supplier on the route


class Offer(TypedDict):
    """One supplier's offer for an upstream product: its own product code, what it costs, its rank."""

    supplier_product: str
    cost: Decimal
    priority: int


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

    class FulfilmentConfigured(LedgerAggregate.Event):
        """How an upstream product is fulfilled: the recipient account's pattern, the deadline, the reversal policy."""

        account_pattern: str
        account_hint: str
        deadline_s: int
        on_reversal: str

        def apply(self, product: Product) -> None:
            product.account_pattern = self.account_pattern
            product.account_hint = self.account_hint
            product.fulfilment_deadline_s = self.deadline_s
            product.on_reversal = self.on_reversal

    class OfferSet(LedgerAggregate.Event):
        """A supplier offers this upstream product (its code for it, the cost per unit, a priority)."""

        supplier: str
        supplier_product: str
        cost: Decimal
        priority: int

        def apply(self, product: Product) -> None:
            product.offers[self.supplier] = {
                "supplier_product": self.supplier_product, "cost": self.cost, "priority": self.priority,
            }

    class OfferRemoved(LedgerAggregate.Event):
        """A supplier no longer offers this product: routing stops sending it there."""

        supplier: str

        def apply(self, product: Product) -> None:
            product.offers.pop(self.supplier, None)

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
        # Upstream kinds (`FulfilmentConfigured`, `OfferSet`): empty for stock and access products.
        self.account_pattern = ""
        self.account_hint = ""
        self.fulfilment_deadline_s = 0
        self.on_reversal = ReversalPolicy.REFUND.value
        self.offers: dict[str, Offer] = {}

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

    def configure_fulfilment(self, ctx: Context, account_pattern: str, account_hint: str, deadline_s: int,
                             on_reversal: ReversalPolicy) -> None:
        self._emit(self.FulfilmentConfigured, ctx, account_pattern=account_pattern, account_hint=account_hint,
                   deadline_s=deadline_s, on_reversal=on_reversal.value)

    def set_offer(self, ctx: Context, supplier: str, supplier_product: str, cost: Decimal, priority: int) -> None:
        if not self.kind.fulfilled_upstream:
            raise NotSellable(f"{self.kind} products are not fulfilled by suppliers", sku=self.sku)
        self._emit(self.OfferSet, ctx, supplier=supplier, supplier_product=supplier_product, cost=cost,
                   priority=priority)

    def remove_offer(self, ctx: Context, supplier: str) -> None:
        if supplier not in self.offers:
            raise InvalidInput("supplier", f"{supplier} has no offer for {self.sku}")
        self._emit(self.OfferRemoved, ctx, supplier=supplier)

    def check_account(self, account: str | None) -> str:
        """The recipient account an upstream product needs, checked against its pattern."""
        if not self.kind.fulfilled_upstream:
            if account:
                raise InvalidInput("recipient_account", f"{self.kind} products take no recipient account")
            return ""
        if not account:
            raise InvalidInput("recipient_account", f"is required for {self.sku} ({self.account_hint})")
        if not isinstance(account, str) or re.fullmatch(self.account_pattern, account) is None:
            raise InvalidInput("recipient_account", f"must be {self.account_hint}")
        return account

    def retire(self, ctx: Context, reason: str) -> None:
        if self.retired:
            raise ProductRetired(f"product {self.sku} is already retired", sku=self.sku)
        self._emit(self.Retired, ctx, reason=reason)

    def check_sellable(self) -> None:
        if self.retired:
            raise ProductRetired(f"product {self.sku} is retired", sku=self.sku)
        if self.kind.fulfilled_upstream and not self.account_pattern:
            raise NotSellable(f"{self.sku} has no fulfilment configured", sku=self.sku)

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

