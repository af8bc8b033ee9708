"""A deterministic store simulation: suppliers, products, promotions, a few thousand orders,
then direct recharges fulfilled by two simulated upstream suppliers and access products.

`run_demo` drives the ledger through its public commands on a simulated clock; `run_upstream`
then sells recharges and access through the same commands and lets the fulfilment worker send
the recharges to real supplier processes (`shell.simulated`) until each is delivered or
refunded. `summarize` reads every event back from the store (never the simulation's own
counters), so the summary proves that the stored history adds up.

Everything the seed decides stays decided by it: the orders, their fates and money, which
recharges are delivered and which refunded. Which attempts the flaky supplier fails is drawn by
the simulator from each attempt's request id, and request ids come from random order ids: the
attempts per supplier, the answers lost, and so the number of events, vary from run to run.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger import commands as c
from ledger.config import Settings
from ledger.domain.errors import DomainError, OrderRejected, RedeemedKeyRefund
from ledger.domain.fulfilment import Fulfilment, OpenFulfilments
from ledger.domain.ids import OPEN_FULFILMENTS_ID
from ledger.domain.orders import Order, OrderStatus, Payment
from ledger.domain.stock import Stock
from ledger.domain.supply import Key
from ledger.fulfilment.worker import FulfilmentWorker
from ledger.service.ledger import Ledger
from ledger.storage import event_log
from shell.statements import fetch_statement, held_against_log

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CURRENCY = "USD"
SCALPER = "scalper-01"
SCALPER_IP = "203.0.113.66"
SCALPER_DEVICE = "dev-scalper-7f3a"
SCALPER_ALIASES = ("scalper-02", "scalper-03", "scalper-04")
SWEEP_EVERY = 50  # orders between sweeper runs


class SimClock:
    """A clock the demo moves forward itself: same seed, same timeline."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass(frozen=True)
class ProductSpec:
    sku: str
    name: str
    kind: str
    face_value: str
    price: str
    platform: str | None
    limit: int | None
    weight: int
    # (supplier, unit cost, share of stock)
    supply: tuple[tuple[str, str, float], ...]


PRODUCTS = (
    ProductSpec("VID-1M", "Video membership, 1 month", "card_key", "15.99", "13.49", "streamflix", 2, 22,
                (("Keystone Wholesale", "10.20", 0.6), ("Pixel Distribution", "10.85", 0.4))),
    ProductSpec("MUS-3M", "Music membership, 3 months", "card_key", "29.97", "26.99", "tunebox", 2, 14,
                (("Pixel Distribution", "21.40", 0.5), ("Northwind Codes", "20.90", 0.5))),
    ProductSpec("COINS-1000", "Game coins, 1000", "card_key", "9.99", "8.99", "pc", 10, 24,
                (("Northwind Codes", "6.10", 0.7), ("Keystone Wholesale", "6.45", 0.3))),
    ProductSpec("OFFICE-1Y", "Office licence, 1 year", "card_key", "99.99", "69.00", "windows", 1, 8,
                (("Keystone Wholesale", "41.00", 1.0),)),
    ProductSpec("EBOOK-10", "E-book voucher, 10 USD", "card_key", "10.00", "9.49", None, 5, 12,
                (("Northwind Codes", "7.30", 0.5), ("Pixel Distribution", "7.05", 0.5))),
    ProductSpec("GIFT-25", "Gift card, 25 USD", "gift_card", "25.00", "25.00", None, 4, 12,
                (("Harbor Gift Co", "23.75", 1.0),)),
    ProductSpec("GIFT-50", "Gift card, 50 USD", "gift_card", "50.00", "50.00", None, 2, 8,
                (("Harbor Gift Co", "47.25", 1.0),)),
)
RECALLED = ("EBOOK-10", "Pixel Distribution")  # the batch a supplier recalls mid-run
FLASH_SKU = "COINS-1000"
SPRING_SKUS = ("VID-1M", "MUS-3M", "EBOOK-10")


# ---- upstream: direct recharge through two simulated suppliers, and access without stock ----

RECHARGE_SKU = "MOBILE-30"
ACCESS_SKU = "COURSE-PY"
# (name, `ledger upstream simulate` options): the preferred one fails 30 % of its attempts and
# loses 5 % of its answers; the other one is steady. Both charge 96 % of the face value, so
# what a recharge costs does not depend on which one delivered it.
FLAKY, STEADY = "flashtop", "steadypay"
SIMULATED_SUPPLIERS = ((FLAKY, ("--fail-rate", "0.3", "--timeout-rate", "0.05", "--cost-rate", "0.96")),
                       (STEADY, ("--cost-rate", "0.96")))
INVALID_ACCOUNT_SHARE = 0.1  # customers who type a number the operator does not know: refunded
SETTLE_TIMEOUT_S = 120.0
# The worker runs once every recharge is sold, at the simulated clock's time by then: a deadline
# this long is never reached in the demo, so no recharge is refunded for want of time.
RECHARGE_DEADLINE_S = 86_400


@dataclass
class DemoRun:
    """What the simulation did; for the record only, the summary is read from the store."""

    recalled_batch: UUID | None = None
    scalper_ids: tuple[str, ...] = (SCALPER, *SCALPER_ALIASES)


@dataclass
class Summary:
    events: int = 0
    orders: int = 0
    orders_by_status: dict[str, int] = field(default_factory=dict)
    units_sold: int = 0
    keys_delivered: int = 0
    distinct_keys_delivered: int = 0
    keys_in_two_orders: int = 0
    keys_redeemed: int = 0
    keys_revoked: int = 0
    keys_voided: int = 0
    payments_captured: int = 0
    payments_replayed_or_rejected: int = 0
    revenue: Decimal = Decimal(0)
    discounts: Decimal = Decimal(0)
    refunds: Decimal = Decimal(0)
    cost_of_goods_sold: Decimal = Decimal(0)
    gross_profit: Decimal = Decimal(0)
    rejections: dict[str, int] = field(default_factory=dict)
    scalper_rejections: dict[str, int] = field(default_factory=dict)
    recharges_sold: int = 0
    recharges_delivered: int = 0
    recharges_refunded: int = 0
    access_granted: int = 0
    attempts_by_supplier: dict[str, int] = field(default_factory=dict)
    answers_lost: int = 0

    # What the simulators' draws on random request ids decide (see the module's docstring).
    VARIES_BY_RUN = frozenset({"events", "attempts_by_supplier", "answers_lost"})

    def numbers(self) -> dict[str, Any]:
        """Everything a seed decides (no ids, nothing in VARIES_BY_RUN), for comparing two runs."""
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()
                if k not in self.VARIES_BY_RUN}


@dataclass
class _Pending:
    order_id: UUID
    customer: str
    amount: Decimal
    due: datetime


def _codes(rng: random.Random, sku: str, count: int) -> list[tuple[int, str]]:
    prefix = sku.split("-")[0][:4]
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return [
        (line, f"{prefix}-" + "-".join("".join(rng.choice(alphabet) for _ in range(5)) for _ in range(3)))
        for line in range(1, count + 1)
    ]


class _Driver:
    def __init__(self, ledger: Ledger, clock: SimClock, rng: random.Random, run: DemoRun) -> None:
        self.ledger = ledger
        self.clock = clock
        self.rng = rng
        self.run = run
        self.unpaid: list[_Pending] = []  # placed, will never be paid: the sweeper expires them
        self.late: list[_Pending] = []  # paid only after the deadline
        self.delivered: list[tuple[UUID, str, str]] = []  # order, customer, sku
        self.payment_no = 0

    def ctx(self, actor: str = "demo", **kwargs: str | None) -> Any:
        return self.ledger.context(actor=actor, **kwargs)

    # ---- setup ----

    def setup(self, orders: int) -> None:
        rng, ledger = self.rng, self.ledger
        weights = sum(p.weight for p in PRODUCTS)
        for spec in PRODUCTS:
            ledger.define_product(
                self.ctx("admin"), sku=spec.sku, name=spec.name, kind=spec.kind, face_value=spec.face_value,
                currency=CURRENCY, price=spec.price, channel_prices={"app": _cents(Decimal(spec.price) * 98 / 100)},
                validity_days=365, platform=spec.platform, per_customer_limit=spec.limit, low_stock_threshold=10,
            )
            # Enough stock for the expected demand and then some; gift cards run tight on purpose.
            expected = orders * 1.35 * spec.weight / weights
            total = max(20, int(expected * (0.95 if spec.kind == "gift_card" else 1.3)))
            for supplier, cost, share in spec.supply:
                result = ledger.import_keys(
                    self.ctx("supply"), sku=spec.sku, supplier=supplier, unit_cost=cost,
                    codes=_codes(rng, spec.sku, max(5, int(total * share))),
                )
                if (spec.sku, supplier) == RECALLED:
                    self.run.recalled_batch = result.batch_id
            self.clock.advance(30)
        ends = START + timedelta(days=60)
        ledger.create_coupon(
            self.ctx("admin"), code="WELCOME5", kind="amount", value="5.00", currency=CURRENCY,
            starts_at=START, ends_at=ends, min_spend="20.00", total_cap=max(10, orders // 10), per_customer_cap=1,
        )
        ledger.create_coupon(
            self.ctx("admin"), code="SPRING10", kind="percent", value="10", currency=CURRENCY,
            starts_at=START, ends_at=ends, skus=list(SPRING_SKUS),
            total_cap=max(10, orders // 12), per_customer_cap=2,
        )
        ledger.create_coupon(
            self.ctx("admin"), code="BIGSPENDER", kind="percent", value="15", currency=CURRENCY,
            starts_at=START, ends_at=ends, min_spend="60.00", total_cap=max(5, orders // 60),
        )
        # The flash sale opens a while in, so both list and sale prices are seen.
        sale_start = self.clock.now + timedelta(hours=4)
        ledger.create_flash_sale(
            self.ctx("admin"), sale_id="coins-happy-hour", sku=FLASH_SKU, starts_at=sale_start,
            ends_at=sale_start + timedelta(hours=3), price="5.99", total_quantity=max(20, orders // 15),
            per_customer_limit=3,
        )

    # ---- the order stream ----

    def customer(self, customers: int) -> tuple[str, str, str]:
        n = self.rng.randrange(customers)
        return f"cust-{n:05d}", f"10.{n // 250 % 250}.{n % 250}.{1 + n % 7}", f"dev-{n:05d}"

    def pay(self, order_id: UUID, amount: Decimal, customer: str, provider: str = "cardpay") -> str | None:
        self.payment_no += 1
        reference = f"pay-{self.payment_no:07d}"
        try:
            self.ledger.capture_payment(
                self.ctx(f"provider:{provider}"), order_id, payment_reference=reference, amount=str(amount),
                provider=provider,
            )
        except DomainError:
            return None  # refused: the store records why
        return reference

    def place(self, customer: str, ip: str, device: str, sku: str, quantity: int, coupon: str | None) -> Any:
        try:
            return self.ledger.place_order(
                self.ctx(f"customer:{customer}", client_ip=ip, device_id=device), customer_id=customer, sku=sku,
                quantity=quantity, channel="app" if self.rng.random() < 0.3 else "default", coupon_code=coupon,
                client_ip=ip, device_id=device,
            )
        except OrderRejected:
            return None  # refused: the store records why

    def one_order(self, customers: int) -> None:
        rng = self.rng
        customer, ip, device = self.customer(customers)
        spec = rng.choices(PRODUCTS, weights=[p.weight for p in PRODUCTS])[0]
        quantity = 1 if rng.random() < 0.75 else rng.randint(2, 3)
        coupon = None
        roll = rng.random()
        if roll < 0.07:
            coupon = "WELCOME5"
        elif roll < 0.13 and (spec.sku in SPRING_SKUS or rng.random() < 0.1):
            coupon = "SPRING10"
        elif roll < 0.15:
            coupon = "BIGSPENDER"
        placed = self.place(customer, ip, device, spec.sku, quantity, coupon)
        if placed is None:
            return
        fate = rng.random()
        if fate < 0.80:
            self.clock.advance(rng.uniform(5, 240))
            reference = self.pay(placed.order_id, placed.amount_due, customer)
            if reference is not None:
                self.delivered.append((placed.order_id, customer, spec.sku))
                if rng.random() < 0.03:  # the provider calls back twice
                    self.ledger.capture_payment(
                        self.ctx("provider:cardpay"), placed.order_id, payment_reference=reference,
                        amount=str(placed.amount_due), provider="cardpay",
                    )
                elif rng.random() < 0.01:  # the customer pays twice, under another reference
                    self.pay(placed.order_id, placed.amount_due, customer, provider="wallet")
        elif fate < 0.83:
            self.ledger.cancel_order(self.ctx(f"customer:{customer}"), placed.order_id)
        elif fate < 0.86:
            try:
                self.ledger.capture_payment(
                    self.ctx("provider:cardpay"), placed.order_id, payment_reference=f"bad-{placed.order_id.hex[:12]}",
                    amount=str(placed.amount_due + Decimal("1.00")), provider="cardpay",
                )
            except DomainError:
                pass  # refused: the store records why
            self.unpaid.append(_Pending(placed.order_id, customer, placed.amount_due, placed.reserved_until))
        elif fate < 0.89:
            # Paid after the deadline: some get fresh keys, some are refunded automatically.
            delay = timedelta(seconds=rng.uniform(1200, 7200))
            self.late.append(_Pending(placed.order_id, customer, placed.amount_due, placed.reserved_until + delay))
        else:
            self.unpaid.append(_Pending(placed.order_id, customer, placed.amount_due, placed.reserved_until))

    def after_sale(self) -> None:
        """Redeem some delivered keys; refund a few orders."""
        rng = self.rng
        if not self.delivered or rng.random() > 0.45:
            return
        order_id, customer, _sku = self.delivered[rng.randrange(len(self.delivered))]
        order = self.ledger.reads.order(order_id)
        if order.status != OrderStatus.DELIVERED:
            return
        if rng.random() < 0.08:
            try:
                self.ledger.refund_order(
                    self.ctx("support"), order_id, amount=str(order.refundable), reason="customer_request"
                )
            except RedeemedKeyRefund:
                # Support approves it anyway: the key is revoked and the override is on record.
                self.ledger.refund_order(
                    self.ctx("support"), order_id, amount=str(order.refundable), reason="goodwill_redeemed",
                    override_redeemed=True,
                )
            return
        platform = self.ledger.reads.product(order.sku).platform
        for key in self.ledger.reads.order_keys(order_id):
            if key.status == "delivered":
                try:
                    self.ledger.redeem(self.ctx(f"customer:{customer}"), code=key.code, account_id=customer,
                                       platform=platform)
                except DomainError:
                    pass  # refused: the store records why
                break

    def settle_late(self) -> None:
        now = self.clock.now
        due = [p for p in self.late if p.due <= now]
        self.late = [p for p in self.late if p.due > now]
        for p in due:
            if self.pay(p.order_id, p.amount, p.customer, provider="banktransfer") is not None:
                self.delivered.append((p.order_id, p.customer, ""))

    def sweep(self) -> int:
        return len(self.ledger.expire_due(self.ctx("sweeper")))

    def scalper_burst(self, rounds: int) -> None:
        """One customer on one IP and device, plus sock-puppet accounts on the same device."""
        rng = self.rng
        for _ in range(rounds):
            self.clock.advance(rng.uniform(1, 4))
            sku = rng.choice(("OFFICE-1Y", "VID-1M", FLASH_SKU, "GIFT-50"))
            placed = self.place(SCALPER, SCALPER_IP, SCALPER_DEVICE, sku, rng.randint(1, 3), None)
            if (
                placed is not None and rng.random() < 0.5
                and self.pay(placed.order_id, placed.amount_due, SCALPER) is not None
            ):
                self.delivered.append((placed.order_id, SCALPER, sku))
            alias = rng.choice(SCALPER_ALIASES)
            self.place(alias, SCALPER_IP, SCALPER_DEVICE, rng.choice(("VID-1M", "OFFICE-1Y")), 1, None)

    def recall(self) -> None:
        if self.run.recalled_batch is not None:
            self.ledger.recall_batch(self.ctx("supply"), self.run.recalled_batch, "supplier reported leaked codes")


DEMO_REJECT_SCORE = 30  # the demo's LEDGER_FRAUD_REJECT_SCORE: `ledger demo` bootstraps with it


def run_demo(
    ledger: Ledger, clock: SimClock, seed: int, orders: int, tick: Callable[[int], None],
    refresh_risk: Callable[[], None] | None = None,
) -> DemoRun:
    """Drive the ledger; `tick(n)` is called as orders go through (for a progress bar).

    `refresh_risk` brings the read model that the ledger's risk assessor reads up to date
    (the assessor itself is armed when the ledger is built, `shell.composition`). It is first
    called after the first scalper burst, which so runs unchecked; later bursts meet the
    fraud read model at order time, which is what the demo is there to show.
    """
    rng = random.Random(seed)
    run = DemoRun()
    driver = _Driver(ledger, clock, rng, run)
    driver.setup(orders)
    customers = max(20, orders // 2)
    scalper_at = {orders // 4, orders // 2, (3 * orders) // 4}
    recall_at = (3 * orders) // 5
    armed: Callable[[], None] | None = None  # refresh_risk, from the end of the first burst on
    for i in range(orders):
        clock.advance(rng.expovariate(1 / 40))
        driver.one_order(customers)
        driver.after_sale()
        if i in scalper_at:
            if armed is not None:
                armed()
            driver.scalper_burst(12)
            if i == min(scalper_at):
                armed = refresh_risk
                if armed is not None:
                    armed()
        if i == recall_at:
            driver.recall()
        if i % SWEEP_EVERY == SWEEP_EVERY - 1:
            driver.sweep()
            if armed is not None:
                armed()
            driver.settle_late()
        tick(1)
    # Close the day: let every reservation lapse, take the last late payments, sweep again.
    clock.advance(3 * 3600)
    driver.sweep()
    clock.advance(6 * 3600)
    driver.settle_late()
    driver.sweep()
    return run


def run_upstream(ledger: Ledger, clock: SimClock, seed: int, orders: int, suppliers: dict[str, str], secret: str,
                 settings: Settings) -> None:
    """Sell direct recharges (a few to accounts no operator knows) and an access product, then
    run the fulfilment worker until every recharge is delivered or refunded. `suppliers`: name
    -> base URL of a running simulator of SIMULATED_SUPPLIERS, each with `secret`."""
    rng = random.Random(seed * 7919 + 1)  # its own stream: the card-key history above stays as it was
    admin = ledger.context("admin")
    ledger.define_product(admin, sku=RECHARGE_SKU, name="Mobile top-up, 30 USD", kind="direct_recharge",
                          face_value="30.00", currency=CURRENCY, price="30.60", account_pattern=r"[0-9]{10,11}",
                          account_hint="a mobile number of 10 or 11 digits", fulfilment_deadline_s=RECHARGE_DEADLINE_S)
    ledger.define_product(admin, sku=ACCESS_SKU, name="Python course, 1 year", kind="digital_access",
                          face_value="49.00", currency=CURRENCY, price="39.00", validity_days=365)
    for priority, (name, url) in enumerate(sorted(suppliers.items(), key=lambda s: s[0] != FLAKY)):
        for command in (
            c.SetSupplier(ctx=admin, name=name, base_url=url, secret=secret, currency=CURRENCY, timeout_ms=1000,
                          concurrency=4),
            c.FundSupplier(ctx=admin, name=name, amount="20000.00", reference=f"prepay-{name}"),
            c.SetOffer(ctx=admin, sku=RECHARGE_SKU, supplier=name, supplier_product=f"{name}-m30", cost="28.80",
                       priority=priority),
        ):
            ledger.execute(command).get()

    def pay(placed: Any, reference: str) -> None:
        ledger.capture_payment(ledger.context("provider:cardpay"), placed.order_id, payment_reference=reference,
                               amount=str(placed.amount_due), provider="cardpay")

    for n in range(max(5, orders // 40)):
        clock.advance(rng.uniform(5, 60))
        customer = f"learner-{n:04d}"
        try:
            placed = ledger.place_order(ledger.context(f"customer:{customer}"), customer_id=customer,
                                        sku=ACCESS_SKU, quantity=1)
        except OrderRejected:
            continue
        pay(placed, f"course-pay-{n:05d}")
    for n in range(max(10, orders // 20)):
        clock.advance(rng.uniform(1, 20))
        invalid = rng.random() < INVALID_ACCOUNT_SHARE
        account = f"0000{rng.randrange(10**6):06d}" if invalid else f"13{rng.randrange(10**9):09d}"
        customer = f"topup-{n:04d}"
        try:
            placed = ledger.place_order(ledger.context(f"customer:{customer}"), customer_id=customer,
                                        sku=RECHARGE_SKU, quantity=1, recipient_account=account)
        except OrderRejected:
            continue
        pay(placed, f"topup-pay-{n:05d}")
    settle_fulfilments(ledger, settings)


def reconcile_suppliers(ledger: Ledger, suppliers: dict[str, str], secret: str) -> dict[str, int]:
    """Each supplier's statement (asked of it, `GET /v1/statement`) held against the attempts
    recorded with it, as `ledger reconcile supplier NAME --fetch` does: differences per supplier."""
    return {name: len(held_against_log(ledger.app, name, *fetch_statement(url, secret, 5000))[1])
            for name, url in sorted(suppliers.items())}


def open_fulfilments(ledger: Ledger) -> int:
    found = ledger.reads.find(OpenFulfilments, OPEN_FULFILMENTS_ID)
    return len(found.ids) if found else 0


def settle_fulfilments(ledger: Ledger, settings: Settings, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Run the fulfilment worker (as `ledger serve` does) until no fulfilment is open. The
    simulated clock stands still meanwhile, so no deadline passes: each recharge ends as its
    suppliers decide, delivered or (an account no supplier can top up) refunded."""
    worker = FulfilmentWorker(ledger, settings.model_copy(update={"fulfilment_poll_s": 0.05}))
    worker.follow(ledger.writer)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), name="demo-fulfilment", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while open_fulfilments(ledger):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{open_fulfilments(ledger)} recharges still open after {timeout_s:.0f} s")
            time.sleep(0.05)
    finally:
        stop.set()
        worker.wake()
        thread.join(timeout=10)
        worker.close()


def _cents(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01")))


# ---- reading it all back ----


def iter_events(ledger: Ledger, page: int = 2000) -> Any:
    """Every stored event in log order, decoded through the application's mapper."""
    return event_log.events(ledger.app, size=page)


def summarize(ledger: Ledger, scalpers: tuple[str, ...] = (SCALPER, *SCALPER_ALIASES)) -> Summary:
    s = Summary()
    customer_of: dict[UUID, str] = {}
    quantity_of: dict[UUID, int] = {}
    discount_of: dict[UUID, Decimal] = {}
    delivered_orders: set[UUID] = set()
    key_orders: dict[UUID, set[UUID]] = {}
    key_deliveries = 0
    order_keys_delivered = 0
    stock_keys_delivered = 0
    rejections: Counter[str] = Counter()
    scalper_rejections: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    for event in iter_events(ledger):
        s.events += 1
        if isinstance(event, Order.Placed):
            customer_of[event.originator_id] = event.customer_id
            quantity_of[event.originator_id] = event.quantity
            discount_of[event.originator_id] = event.discount
        elif isinstance(event, Order.Rejected):
            rejections[event.reason] += 1
            if customer_of.get(event.originator_id) in scalpers:
                scalper_rejections[event.reason] += 1
        elif isinstance(event, Order.KeysDelivered):
            delivered_orders.add(event.originator_id)
            order_keys_delivered += len(event.keys)
            s.cost_of_goods_sold += sum((Decimal(k["unit_cost"]) for k in event.keys), Decimal(0))
        elif isinstance(event, Order.PaymentCaptured):
            s.payments_captured += 1
            s.revenue += event.amount
        elif isinstance(event, Order.Refunded):
            s.refunds += event.amount
        elif isinstance(event, Key.Delivered):
            key_deliveries += 1
            key_orders.setdefault(event.originator_id, set()).add(event.order_id)
        elif isinstance(event, Key.Redeemed):
            s.keys_redeemed += 1
        elif isinstance(event, Key.Revoked):
            s.keys_revoked += 1
        elif isinstance(event, Key.Voided):
            s.keys_voided += 1
        elif isinstance(event, Stock.Delivered):
            stock_keys_delivered += len(event.key_ids)
        elif isinstance(event, Payment.Recorded) and event.outcome != "delivered":
            s.payments_replayed_or_rejected += 1
        elif isinstance(event, Fulfilment.Requested):
            s.recharges_sold += 1
        elif isinstance(event, Order.Fulfilled):
            s.recharges_delivered += 1
            s.cost_of_goods_sold += event.cost  # what the supplier charged for it
        elif isinstance(event, Order.FulfilmentReversed):
            s.recharges_delivered -= 1
            s.cost_of_goods_sold -= event.cost
        elif isinstance(event, Fulfilment.GaveUp):
            s.recharges_refunded += 1
        elif isinstance(event, Fulfilment.AttemptStarted):
            attempts[event.supplier] += 1
        elif isinstance(event, Fulfilment.AttemptUnknown):
            s.answers_lost += 1
        elif isinstance(event, Order.Granted):
            s.access_granted += 1
    s.orders = len(customer_of)
    statuses: Counter[str] = Counter()
    for order_id in customer_of:
        statuses[ledger.reads.order(order_id).status.value] += 1
    s.orders_by_status = dict(sorted(statuses.items()))
    s.units_sold = sum(quantity_of[o] for o in delivered_orders)
    s.discounts = sum((discount_of[o] for o in delivered_orders), Decimal(0))
    # Three independent counts of the same thing: per key, per order, per stock.
    s.keys_delivered = key_deliveries if key_deliveries == order_keys_delivered == stock_keys_delivered else -1
    s.distinct_keys_delivered = len(key_orders)
    s.keys_in_two_orders = sum(1 for orders in key_orders.values() if len(orders) > 1)
    s.gross_profit = s.revenue - s.refunds - s.cost_of_goods_sold
    s.rejections = dict(sorted(rejections.items()))
    s.scalper_rejections = dict(sorted(scalper_rejections.items()))
    s.attempts_by_supplier = dict(sorted(attempts.items()))
    return s


def store_is_empty(ledger: Ledger) -> bool:
    return not event_log.head(ledger.app)

