"""Placing, paying, expiring, cancelling and refunding orders."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from ledger.domain.catalog import Catalog, Product
from ledger.domain.context import Context
from ledger.domain.errors import (
    AmountMismatch,
    InvalidInput,
    InvalidOrderState,
    OrderRejected,
    PaymentReferenceConflict,
    PurchaseLimitReached,
    RiskRejected,
    TooManyUnpaidReservations,
    UnknownCode,
    UnknownCoupon,
    UnknownOrder,
    UnknownProduct,
)
from ledger.domain.holders import Holder, HolderKind
from ledger.domain.ids import (
    CATALOG_ID,
    coupon_id,
    flash_sale_id,
    holder_id,
    normalise_coupon_code,
    payment_id,
    product_id,
    stock_id,
)
from ledger.domain.money import parse_amount
from ledger.domain.orders import Order, OrderStatus, Payment, PaymentOutcome
from ledger.domain.promotions import Coupon, FlashSale
from ledger.domain.risk import OrderFacts
from ledger.domain.stock import Stock
from ledger.domain.supply import Key
from ledger.service import inputs
from ledger.service.catalog import CatalogService
from ledger.service.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Placed:
    order_id: UUID
    status: str
    amount_due: Decimal
    currency: str
    reserved_until: datetime
    key_ids: list[UUID]
    position: int


@dataclass(frozen=True)
class PaymentResult:
    order_id: UUID
    payment_reference: str
    outcome: str  # delivered | refunded
    amount: Decimal
    key_ids: list[UUID]
    reason: str
    position: int
    replayed: bool = False


@dataclass(frozen=True)
class OrderChange:
    order_id: UUID
    status: str
    position: int
    released_key_ids: list[UUID] = field(default_factory=list)
    revoked_key_ids: list[UUID] = field(default_factory=list)


@dataclass
class _Offer:
    """What one order would take: the price, the promotions and the holders it counts against."""

    product: Product
    stock: Stock
    holders: list[Holder]
    unit_price: Decimal
    subtotal: Decimal
    discount: Decimal
    coupon: Coupon | None
    sale: FlashSale | None


class OrderService(CatalogService):
    # ---- placing ----

    def place_order(
        self,
        ctx: Context,
        *,
        customer_id: str,
        sku: str,
        quantity: int,
        channel: str = "default",
        coupon_code: str | None = None,
        client_ip: str | None = None,
        device_id: str | None = None,
    ) -> Placed:
        inputs.text(customer_id, "customer_id")
        inputs.sku(sku)
        inputs.count(quantity, "quantity")
        if quantity > self.settings.max_quantity_per_order:
            raise InvalidInput("quantity", f"at most {self.settings.max_quantity_per_order} per order")
        inputs.text(channel, "channel")
        coupon_code = normalise_coupon_code(inputs.text(coupon_code, "coupon_code", required=False)) or None
        client_ip = inputs.optional_text(client_ip or ctx.client_ip, "client_ip")
        device_id = inputs.optional_text(device_id or ctx.device_id, "device_id")
        ctx = replace(ctx, client_ip=client_ip, device_id=device_id)  # into every event's metadata
        order_id = uuid4()

        fields: dict[str, Any] = {
            "customer_id": customer_id, "sku": sku, "quantity": quantity, "channel": channel,
            "coupon_code": coupon_code, "client_ip": client_ip, "device_id": device_id,
        }

        def command(uow: UnitOfWork) -> Placed:
            product = uow.load(Product, product_id(sku), UnknownProduct(f"no product {sku}", sku=sku))
            product.check_sellable()
            fields["currency"] = product.currency
            coupon = None
            if coupon_code:
                coupon = uow.load(Coupon, coupon_id(coupon_code), UnknownCoupon(f"no coupon {coupon_code}"))
            offer = self._offer(uow, ctx, product, order_id, fields, coupon, check_unpaid=True)
            self._assess_risk(fields, offer)
            until = ctx.now + timedelta(seconds=product.reservation_timeout_s or self.settings.reservation_timeout_s)
            keys = offer.stock.reserve(ctx, order_id, quantity, until)
            order = Order.place(ctx, order_id, **fields, **_prices(offer))
            order.reserve(ctx, keys, until)
            self._claim(ctx, offer, order)
            uow.add(order)
            self._remember_sku(order_id, sku)
            return Placed(order_id, order.status.value, order.amount_due, order.currency, until, keys, uow.commit())

        with self.sku_lock(sku):
            try:
                return self._run(command)  # a refusal made on stale state is retried in there
            except OrderRejected as rejection:
                rejection.order_id = order_id
                rejection.details["position"] = self._record_refusal(ctx, order_id, fields, rejection)
                raise

    def _record_refusal(self, ctx: Context, order_id: UUID, fields: dict[str, Any], rejection: OrderRejected) -> int:
        """Only the refusal is written: the holders first seen by the checks, and anything
        else they touched, stay unwritten."""
        order = Order.place(ctx, order_id, **fields, **_zero_prices())
        order.reject(ctx, rejection.code, rejection.message, _evidence(rejection))
        refusal = UnitOfWork(self.app)
        refusal.add(order)
        return refusal.commit()

    def _offer(
        self, uow: UnitOfWork, ctx: Context, product: Product, order_id: UUID, fields: dict[str, Any],
        coupon: Coupon | None, *, check_unpaid: bool, use_sale: bool = True,
    ) -> _Offer:
        """Price the order and check every limit; raise the first rule that says no."""
        sku, quantity, customer = fields["sku"], fields["quantity"], fields["customer_id"]
        holders = self._holders(uow, ctx, customer, fields["client_ip"], fields["device_id"])
        if check_unpaid:
            caps = {
                HolderKind.CUSTOMER: self.settings.max_unpaid_per_customer,
                HolderKind.IP: self.settings.max_unpaid_per_ip,
                HolderKind.DEVICE: self.settings.max_unpaid_per_device,
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
        unit_price = product.price_for(fields["channel"])
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
        return _Offer(product, stock, holders, unit_price, subtotal, discount, coupon, sale)

    def _assess_risk(self, fields: dict[str, Any], offer: _Offer) -> None:
        if self.risk is None:
            return
        facts = OrderFacts(
            customer_id=fields["customer_id"], sku=fields["sku"], quantity=fields["quantity"],
            channel=fields["channel"], amount_due=offer.subtotal - offer.discount,
            coupon_code=fields["coupon_code"], client_ip=fields["client_ip"], device_id=fields["device_id"],
        )
        verdict = self.risk.assess(facts)
        if verdict is not None:
            raise RiskRejected(
                f"rejected by risk rule {verdict.rule}", rule=verdict.rule, score=verdict.score,
                evidence=verdict.evidence,
            )

    def _holders(
        self, uow: UnitOfWork, ctx: Context, customer: str, client_ip: str | None, device_id: str | None
    ) -> list[Holder]:
        """The customer first, then the IP and the device when the request named them."""
        wanted = [(HolderKind.CUSTOMER, customer), (HolderKind.IP, client_ip), (HolderKind.DEVICE, device_id)]
        holders = []
        for kind, value in wanted:
            if not value:
                continue
            holder = uow.find(Holder, holder_id(kind, value))
            if holder is None:
                holder = Holder.open(ctx, kind, value)
                uow.add(holder)
            holders.append(holder)
        return holders

    def _claim(self, ctx: Context, offer: _Offer, order: Order) -> None:
        for holder in offer.holders:
            holder.hold(ctx, order.id, order.sku, order.quantity)
        if offer.coupon is not None:
            offer.coupon.use(ctx, order.id, order.customer_id, offer.discount)
        if offer.sale is not None:
            offer.sale.claim(ctx, order.id, order.customer_id, order.quantity)

    # ---- paying ----

    def capture_payment(
        self, ctx: Context, order_id: UUID, *, payment_reference: str, amount: object, provider: str
    ) -> PaymentResult:
        """Idempotent by payment reference: a repeated callback returns the first result."""
        inputs.text(payment_reference, "payment_reference")
        inputs.text(provider, "provider")

        def command(uow: UnitOfWork) -> PaymentResult:
            recorded = uow.find(Payment, payment_id(payment_reference))
            if recorded is not None:
                return self._replay(recorded, order_id)
            order = self._order(uow, order_id)
            paid = parse_amount(amount, order.currency, "amount")
            awaiting = order.status in (OrderStatus.RESERVED, OrderStatus.EXPIRED)
            if awaiting and paid != order.amount_due:
                return self._reject_payment(uow, ctx, order, payment_reference, paid, provider)
            order.capture(ctx, payment_reference, paid, provider)
            if order.status == OrderStatus.EXPIRED:
                self._re_reserve(uow, ctx, order)
            if order.status == OrderStatus.RESERVED:
                keys = self._deliver(uow, ctx, order)
                outcome, reason = PaymentOutcome.DELIVERED, ""
            else:
                # No goods can be given (cancelled, rejected, already paid, or stock gone
                # after expiry): money is never kept without goods.
                keys, outcome, reason = [], PaymentOutcome.REFUNDED, _NO_GOODS[order.status]
                if paid > 0:
                    order.refund(ctx, paid, reason, [], override_redeemed=False, automatic=True)
            payment = Payment.record(
                ctx, payment_id(payment_reference), payment_reference, order.id, paid, order.currency, provider,
                outcome, keys, reason,
            )
            uow.add(payment)
            return PaymentResult(order.id, payment_reference, outcome.value, paid, keys, reason, uow.commit())

        with self._order_lock(order_id):
            return self._run(command)

    def _reject_payment(
        self, uow: UnitOfWork, ctx: Context, order: Order, reference: str, paid: Decimal, provider: str
    ) -> PaymentResult:
        reason = f"amount {paid} does not match the {order.amount_due} {order.currency} due"
        order.reject_payment(ctx, reference, paid, provider, reason)
        uow.add(
            Payment.record(
                ctx, payment_id(reference), reference, order.id, paid, order.currency, provider,
                PaymentOutcome.REJECTED, [], reason,
            )
        )
        position = uow.commit()
        raise AmountMismatch(reason, amount_due=str(order.amount_due), position=position)

    def _re_reserve(self, uow: UnitOfWork, ctx: Context, order: Order) -> None:
        """A payment after expiry: take fresh keys and promotions if every rule still allows."""
        product = uow.load(Product, product_id(order.sku), UnknownProduct(f"no product {order.sku}"))
        coupon = uow.find(Coupon, coupon_id(order.coupon_code)) if order.coupon_code else None
        fields = {
            "customer_id": order.customer_id, "sku": order.sku, "quantity": order.quantity,
            "channel": order.channel, "client_ip": order.client_ip, "device_id": order.device_id,
        }
        if product.retired:
            return  # no new sales of a retired product: the payment is refunded
        try:
            offer = self._offer(
                uow, ctx, product, order.id, fields, coupon, check_unpaid=False, use_sale=bool(order.flash_sale_id)
            )
            if order.flash_sale_id and (offer.sale is None or offer.sale.sale_id != order.flash_sale_id):
                return  # the sale price it was sold at is gone
            keys = offer.stock.reserve(ctx, order.id, order.quantity, ctx.now)
        except OrderRejected:
            return
        order.reserve(ctx, keys, ctx.now)
        for holder in offer.holders:
            if holder.kind == HolderKind.CUSTOMER:
                holder.late_purchase(ctx, order.id, order.sku, order.quantity)
        if coupon is not None:
            coupon.use(ctx, order.id, order.customer_id, order.discount)
        if offer.sale is not None:  # use_sale above: only an order sold at the sale price has one
            offer.sale.claim(ctx, order.id, order.customer_id, order.quantity)

    def _deliver(self, uow: UnitOfWork, ctx: Context, order: Order) -> list[UUID]:
        stock = uow.load(Stock, stock_id(order.sku), UnknownProduct(f"no stock for {order.sku}"))
        key_ids = stock.deliver(ctx, order.id)
        delivered = []
        for key_id in key_ids:
            key = uow.load(Key, key_id, UnknownCode(f"no key {key_id}"))
            key.deliver(ctx, order.id)
            delivered.append(
                {"key_id": key.id, "batch_id": key.batch_id, "supplier": key.supplier, "unit_cost": key.unit_cost}
            )
        order.deliver(ctx, delivered)
        for holder in self._order_holders(uow, order):
            holder.close(ctx, order.id, order.quantity, "paid")
        return key_ids

    # ---- closing unpaid orders ----

    def cancel_order(self, ctx: Context, order_id: UUID, reason: str = "cancelled_by_customer") -> OrderChange:
        inputs.text(reason, "reason")

        def command(uow: UnitOfWork) -> OrderChange:
            order = self._order(uow, order_id)
            if order.status != OrderStatus.RESERVED:
                raise InvalidOrderState(
                    f"order {order_id} is {order.status}; only unpaid orders can be cancelled, paid ones refunded",
                    status=order.status.value,
                )
            released = self._close_reservation(uow, ctx, order, "cancelled", reason)
            return OrderChange(order.id, order.status.value, uow.commit(), released_key_ids=released)

        with self._order_lock(order_id):
            return self._run(command)

    def expire_order(self, ctx: Context, order_id: UUID) -> OrderChange | None:
        """Expire one order if its deadline has passed; None when there was nothing to do."""

        def command(uow: UnitOfWork) -> OrderChange | None:
            order = self._order(uow, order_id)
            if order.status != OrderStatus.RESERVED or order.reserved_until is None or order.reserved_until > ctx.now:
                return None
            released = self._close_reservation(uow, ctx, order, "expired", "reservation_deadline")
            return OrderChange(order.id, order.status.value, uow.commit(), released_key_ids=released)

        with self._order_lock(order_id):
            return self._run(command)

    def expire_due(self, ctx: Context) -> list[OrderChange]:
        """Expire every reservation whose deadline has passed (the sweeper's one call)."""
        catalog = UnitOfWork(self.app).find(Catalog, CATALOG_ID)
        expired = []
        for sku in catalog.skus if catalog else []:
            stock = UnitOfWork(self.app).find(Stock, stock_id(sku))
            for order_id in stock.expired_reservations(ctx.now) if stock else []:
                self._remember_sku(order_id, sku)
                change = self.expire_order(ctx, order_id)
                if change is not None:
                    expired.append(change)
        return expired

    def _close_reservation(self, uow: UnitOfWork, ctx: Context, order: Order, outcome: str, reason: str) -> list[UUID]:
        stock = uow.load(Stock, stock_id(order.sku), UnknownProduct(f"no stock for {order.sku}"))
        released = stock.release(ctx, order.id, reason)
        for holder in self._order_holders(uow, order):
            holder.close(ctx, order.id, order.quantity, outcome)
        if order.coupon_code:
            coupon = uow.find(Coupon, coupon_id(order.coupon_code))
            if coupon is not None:
                coupon.release(ctx, order.id, reason)
        if order.flash_sale_id:
            sale = uow.find(FlashSale, flash_sale_id(order.flash_sale_id))
            if sale is not None:
                sale.release(ctx, order.id, reason)
        if outcome == "expired":
            order.expire(ctx)
        else:
            order.cancel(ctx, reason)
        return released

    def _order_holders(self, uow: UnitOfWork, order: Order) -> list[Holder]:
        wanted = [(HolderKind.CUSTOMER, order.customer_id), (HolderKind.IP, order.client_ip),
                  (HolderKind.DEVICE, order.device_id)]
        found = [uow.find(Holder, holder_id(kind, value)) for kind, value in wanted if value]
        return [h for h in found if h is not None]

    # ---- refunds ----

    def refund_order(
        self, ctx: Context, order_id: UUID, *, amount: object, reason: str, key_ids: list[UUID] | None = None,
        override_redeemed: bool = False,
    ) -> OrderChange:
        """Refund money; revoke keys. A full refund revokes every key unless told which."""
        inputs.text(reason, "reason")

        def command(uow: UnitOfWork) -> OrderChange:
            order = self._order(uow, order_id)
            refund = parse_amount(amount, order.currency, "amount", allow_zero=False)
            revoke = list(key_ids) if key_ids is not None else (
                [k for k in order.delivered if k not in order.revoked] if refund == order.refundable else []
            )
            order.refund(ctx, refund, reason, revoke, override_redeemed, automatic=False)
            for key_id in revoke:
                uow.load(Key, key_id, UnknownCode(f"no key {key_id}")).revoke(ctx, order.id, reason, override_redeemed)
            return OrderChange(order.id, order.status.value, uow.commit(), revoked_key_ids=revoke)

        return self._run(command)

    def _replay(self, payment: Payment, order_id: UUID) -> PaymentResult:
        if payment.order_id != order_id:
            raise PaymentReferenceConflict(
                f"payment {payment.reference} belongs to another order", payment_reference=payment.reference
            )
        if payment.outcome == PaymentOutcome.REJECTED:
            raise AmountMismatch(payment.reason, payment_reference=payment.reference)
        # The first write's position is not kept on the aggregate; the log head is at or after it.
        position = self.app.recorder.max_notification_id() or 0
        return PaymentResult(
            payment.order_id, payment.reference, payment.outcome.value, payment.amount, payment.key_ids,
            payment.reason, position, replayed=True,
        )

    def _order_lock(self, order_id: UUID) -> AbstractContextManager[object]:
        """The lock of the SKU an order touches (nothing to lock if there is no such order).
        An order's SKU never changes, so it is remembered rather than loaded again."""
        sku = self._order_skus.get(order_id)
        if sku is None:
            order = UnitOfWork(self.app).find(Order, order_id)
            if order is None:
                return nullcontext()
            sku = self._remember_sku(order_id, order.sku)
        return self.sku_lock(sku)

    def _remember_sku(self, order_id: UUID, sku: str) -> str:
        if len(self._order_skus) >= 100_000:
            self._order_skus.clear()
        self._order_skus[order_id] = sku
        return sku

    def _order(self, uow: UnitOfWork, order_id: UUID) -> Order:
        return uow.load(Order, order_id, UnknownOrder(f"no order {order_id}", order_id=str(order_id)))


# Why a captured payment went straight back: the order could not be given goods.
_NO_GOODS = {
    OrderStatus.EXPIRED: "expired_out_of_stock",
    OrderStatus.CANCELLED: "order_cancelled",
    OrderStatus.REJECTED: "order_rejected",
    OrderStatus.DELIVERED: "duplicate_payment",
    OrderStatus.REFUNDED: "duplicate_payment",
    OrderStatus.PLACED: "order_not_reserved",
}


def _prices(offer: _Offer) -> dict[str, Any]:
    return {
        "unit_price": offer.unit_price,
        "subtotal": offer.subtotal,
        "discount": offer.discount,
        "amount_due": offer.subtotal - offer.discount,
        "flash_sale_id": offer.sale.sale_id if offer.sale else None,
    }


def _zero_prices() -> dict[str, Any]:
    zero = Decimal(0)
    return {"unit_price": zero, "subtotal": zero, "discount": zero, "amount_due": zero, "flash_sale_id": None}


def _evidence(rejection: OrderRejected) -> dict[str, Any]:
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
