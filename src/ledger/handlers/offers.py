"""The rules an order is priced and limited by, as plain functions of loaded aggregates.

Placing an order and re-reserving keys for a payment that came after expiry ask the
same questions: who holds what (customer, IP, device), which price applies (channel,
flash sale), what a coupon takes off, and whether the stock has the keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from ledger.domain.catalog import Product
from ledger.domain.context import Context
from ledger.domain.errors import (
    OrderRejected,
    PurchaseLimitReached,
    RiskRejected,
    TooManyUnpaidReservations,
    UnknownProduct,
)
from ledger.domain.holders import Holder, HolderKind
from ledger.domain.ids import flash_sale_id, holder_id, stock_id
from ledger.domain.orders import Order
from ledger.domain.promotions import Coupon, FlashSale
from ledger.domain.risk import OrderFacts
from ledger.domain.stock import Stock
from ledger.writer.session import Session


@dataclass(frozen=True)
class Wanted:
    """What an order asks for, checked: the fields of `Order.Placed` that the customer chose."""

    customer_id: str
    sku: str
    quantity: int
    channel: str
    coupon_code: str | None
    client_ip: str | None
    device_id: str | None

    @classmethod
    def of(cls, order: Order) -> Wanted:
        return cls(order.customer_id, order.sku, order.quantity, order.channel, order.coupon_code,
                   order.client_ip, order.device_id)


@dataclass
class Offer:
    """What one order would take: the price, the promotions and the holders it counts against."""

    product: Product
    stock: Stock
    holders: list[Holder]
    unit_price: Decimal
    subtotal: Decimal
    discount: Decimal
    coupon: Coupon | None
    sale: FlashSale | None

    def prices(self) -> dict[str, Any]:
        return {
            "unit_price": self.unit_price,
            "subtotal": self.subtotal,
            "discount": self.discount,
            "amount_due": self.subtotal - self.discount,
            "flash_sale_id": self.sale.sale_id if self.sale else None,
        }


def make_offer(
    uow: Session, ctx: Context, product: Product, wanted: Wanted, coupon: Coupon | None,
    *, check_unpaid: bool, use_sale: bool = True,
) -> Offer:
    """Price the order and check every limit; raise the first rule that says no."""
    sku, quantity, customer = wanted.sku, wanted.quantity, wanted.customer_id
    holders = holders_of(uow, ctx, wanted)
    if check_unpaid:
        caps = {
            HolderKind.CUSTOMER: uow.settings.max_unpaid_per_customer,
            HolderKind.IP: uow.settings.max_unpaid_per_ip,
            HolderKind.DEVICE: uow.settings.max_unpaid_per_device,
        }
        for holder in holders:
            cap = caps[HolderKind(holder.kind)]
            if holder.unpaid >= cap:
                raise TooManyUnpaidReservations(
                    f"{holder.kind} already holds {holder.unpaid} unpaid reservations",
                    subject=holder.kind, limit=cap,
                )
    limit = product.per_customer_limit
    if limit is not None and holders[0].units(sku) + quantity > limit:
        raise PurchaseLimitReached(
            f"{sku} allows {limit} per customer; {holders[0].units(sku)} already bought or held",
            limit=limit, held=holders[0].units(sku),
        )
    unit_price = product.price_for(wanted.channel)
    sale = None
    sale_id = product.active_flash_sale(ctx.now) if use_sale else None
    if sale_id is not None:
        sale = uow.find(FlashSale, flash_sale_id(sale_id))
        if sale is not None and sale.units_left >= quantity:
            sale.check_claim(customer, quantity)
            unit_price = sale.price
        else:
            sale = None  # sold out: the list price applies again
    subtotal = unit_price * quantity
    discount = Decimal(0)
    if coupon is not None:
        discount = coupon.discount_for(sku, subtotal, product.currency, customer, ctx.now)
    stock = uow.load(Stock, stock_id(sku), UnknownProduct(f"no stock for {sku}"))
    return Offer(product, stock, holders, unit_price, subtotal, discount, coupon, sale)


def assess_risk(uow: Session, wanted: Wanted, offer: Offer) -> None:
    if uow.risk is None:
        return
    facts = OrderFacts(
        customer_id=wanted.customer_id, sku=wanted.sku, quantity=wanted.quantity, channel=wanted.channel,
        amount_due=offer.subtotal - offer.discount, coupon_code=wanted.coupon_code,
        client_ip=wanted.client_ip, device_id=wanted.device_id,
    )
    verdict = uow.risk.assess(facts)
    if verdict is not None:
        raise RiskRejected(
            f"rejected by risk rule {verdict.rule}", rule=verdict.rule, score=verdict.score, evidence=verdict.evidence,
        )


def holders_of(uow: Session, ctx: Context, wanted: Wanted) -> list[Holder]:
    """The customer first, then the IP and the device when the request named them."""
    holders = []
    for kind, value in holder_keys(wanted.customer_id, wanted.client_ip, wanted.device_id):
        holder = uow.find(Holder, holder_id(kind, value))
        if holder is None:
            holder = Holder.open(ctx, kind, value)
            uow.add(holder)
        holders.append(holder)
    return holders


def order_holders(uow: Session, order: Order) -> list[Holder]:
    found = [uow.find(Holder, holder_id(kind, value))
             for kind, value in holder_keys(order.customer_id, order.client_ip, order.device_id)]
    return [h for h in found if h is not None]


def holder_keys(customer: str, client_ip: str | None, device_id: str | None) -> list[tuple[HolderKind, str]]:
    wanted = [(HolderKind.CUSTOMER, customer), (HolderKind.IP, client_ip), (HolderKind.DEVICE, device_id)]
    return [(kind, value) for kind, value in wanted if value]


def claim(ctx: Context, offer: Offer, order: Order) -> None:
    for holder in offer.holders:
        holder.hold(ctx, order.id, order.sku, order.quantity)
    if offer.coupon is not None:
        offer.coupon.use(ctx, order.id, order.customer_id, offer.discount)
    if offer.sale is not None:
        offer.sale.claim(ctx, order.id, order.customer_id, order.quantity)


def placed_fields(wanted: Wanted, currency: str, prices: dict[str, Any]) -> dict[str, Any]:
    return {**asdict(wanted), "currency": currency, **prices}


def zero_prices() -> dict[str, Any]:
    zero = Decimal(0)
    return {"unit_price": zero, "subtotal": zero, "discount": zero, "amount_due": zero, "flash_sale_id": None}


def evidence(rejection: OrderRejected) -> dict[str, Any]:
    """The rule's details as JSON-able data: scalars, and lists and dicts of them."""

    def plain(value: Any) -> Any:
        if isinstance(value, int | float | str | bool | None):
            return value
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return str(value)

    return {k: plain(v) for k, v in rejection.details.items()}
