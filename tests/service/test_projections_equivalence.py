"""For random histories, read models built live (after every command, in small batches)
equal the same read models rebuilt from zero, inventory equals a naive fold over the keys'
own aggregates, and the journal balances. Histories sell keys; others sell recharges and platform
grants (delivered, failed, given up, lost answers, reversed and refunded or delivered again,
refunded by hand) and digital access, and reconcile clean."""

from __future__ import annotations

import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import commands as c
from ledger.config import Settings
from ledger.domain.errors import DomainError
from ledger.domain.fulfilment import Fulfilment, OpenFulfilments
from ledger.domain.ids import OPEN_FULFILMENTS_ID, fulfilment_id
from ledger.domain.supply import Key
from ledger.results import AttemptPlan
from ledger.service.ledger import Ledger, open_ledger
from projections.engine.as_of import History, LiveReadModels
from projections.engine.rebuild import rebuild
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from projections.models.journal import trial_balance
from projections.models.reconcile import FOLDS, reconcile
from tests import recharge
from tests.conftest import TEST_CIPHER_KEY, FakeClock
from tests.outcomes import assert_explored, outcomes
from tests.profiles import deep, examples

SKUS = ("GAME-100", "MUSIC-1M")
UPSTREAM = ("TOPUP-5", "SEAT-1")  # a recharge refunded on reversal; a platform grant delivered again
ANSWERS = ("succeeded", "succeeded", "failed", "unknown")
commands = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(0, 5), st.sampled_from(SKUS), st.integers(1, 3), st.booleans()),
        # buying weighs double, or too few histories sell anything
        st.tuples(st.just("buy"), st.integers(0, 5), st.sampled_from(SKUS), st.just(1), st.booleans()),
        st.tuples(st.just("hold"), st.integers(0, 5), st.sampled_from(SKUS), st.integers(1, 2)),
        st.tuples(st.just("expire"), st.integers(5, 30)),
        st.tuples(st.just("expire"), st.just(16)),  # past the 15-minute reservation deadline
        st.tuples(st.just("refund"), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("redeem"), st.integers(0, 20)),
        st.tuples(st.just("restock"), st.sampled_from(SKUS), st.integers(1, 4)),
        st.tuples(st.just("recall"), st.integers(0, 5)),
    ),
    min_size=3,
    max_size=18,
)
# Histories of orders without keys, among a few sales of keys: recharges and grants delivered,
# failed, given up (every route failed, or the deadline passed: `expire` moves the clock),
# answers lost, reversed and refunded or delivered again, refunded by hand; access granted.
recharge_commands = st.lists(
    st.one_of(
        # a recharge placed, paid (or not), and its supplier's first answer (or every route failing)
        st.tuples(st.just("recharge"), st.integers(0, 5), st.sampled_from(UPSTREAM),
                  st.sampled_from(["succeeded", "succeeded", "failed", "unknown", "paid", "unpaid", "no route"])),
        # recharging weighs more, as buying does above
        st.tuples(st.just("recharge"), st.integers(0, 5), st.sampled_from(UPSTREAM), st.just("succeeded")),
        st.tuples(st.just("recharge"), st.integers(0, 5), st.sampled_from(UPSTREAM),
                  st.sampled_from(["no route", "unknown"])),
        st.tuples(st.just("answer"), st.integers(0, 20), st.sampled_from(ANSWERS)),
        st.tuples(st.just("answer"), st.integers(0, 2), st.sampled_from(ANSWERS)),  # one of the latest
        st.tuples(st.just("reverse"), st.integers(0, 20)),
        st.tuples(st.just("refund-recharge"), st.integers(0, 20)),
        st.tuples(st.just("access"), st.integers(0, 5)),
        st.tuples(st.just("buy"), st.integers(0, 5), st.sampled_from(SKUS), st.just(1), st.booleans()),
        st.tuples(st.just("expire"), st.integers(5, 30)),
    ),
    min_size=3,
    max_size=18,
)
# Histories where validity runs out: keys of the first SKU are valid for two days, access and
# grants for thirty; `validity` moves the clock by days and sweeps.
validity_commands = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(0, 5), st.sampled_from(SKUS), st.just(1), st.booleans()),
        st.tuples(st.just("buy"), st.integers(0, 5), st.just(SKUS[0]), st.integers(1, 2), st.just(False)),
        st.tuples(st.just("redeem"), st.integers(0, 20)),
        st.tuples(st.just("refund"), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("access"), st.integers(0, 5)),
        st.tuples(st.just("recharge"), st.integers(0, 5), st.just("SEAT-1"), st.just("succeeded")),
        st.tuples(st.just("validity"), st.sampled_from([1, 2, 3, 15, 31])),
    ),
    min_size=3,
    max_size=18,
)


class World:
    def __init__(self, ledger: Ledger, clock: FakeClock, recharges: bool = False, validity: bool = False) -> None:
        self.ledger, self.clock = ledger, clock
        self.paid: list = []
        self.batches: list = []
        self.codes: dict = {}
        self.next_code = 0
        admin = ledger.context("admin")
        for n, sku in enumerate(SKUS):
            ledger.define_product(admin, sku=sku, name=sku, face_value="10", currency="USD", price=f"{7 + n}.50",
                                  low_stock_threshold=2, per_customer_limit=6,
                                  validity_days=2 if validity and n == 0 else None)
            self.restock(sku, 5)
        ledger.create_coupon(admin, code="TAKE1", kind="amount", value="1.00", currency="USD", starts_at=clock.now,
                             ends_at=clock.now.replace(year=2030), total_cap=2)
        self.recharges: list = []
        if recharges or validity:
            self.sell_upstream()

    def sell_upstream(self) -> None:
        ledger = self.ledger
        # cheap's float covers a few top-ups only: routes then wait for it, or go to dear
        recharge.suppliers(ledger, ("cheap",), funded="12.00")
        recharge.suppliers(ledger, ("dear",), funded="200.00")
        recharge.upstream_product(ledger, "TOPUP-5", {"cheap": "4.80", "dear": "4.90"}, face_value="5.00",
                                  price="5.25")
        recharge.upstream_product(ledger, "SEAT-1", {"cheap": "7.10", "dear": "7.00"}, face_value="8.00",
                                  price="9.99", kind="platform_grant", on_reversal="refulfil",
                                  validity_days=30)
        recharge.run(ledger, c.DefineProduct, sku="ACCESS", name="Access", kind="digital_access", face_value="3.00",
                     currency="USD", price="3.00", validity_days=30)

    def restock(self, sku: str, count: int) -> None:
        codes = []
        for _ in range(count):
            self.next_code += 1
            codes.append((len(codes) + 1, f"{sku}-{self.next_code:05d}"))
        imported = self.ledger.import_keys(self.ledger.context("admin"), sku=sku, supplier=f"sup-{self.next_code % 3}",
                                           unit_cost=f"{3 + self.next_code % 4}.25", codes=codes)
        self.batches.append(imported.batch_id)
        for (_, code), key_id in zip(codes, imported.key_ids, strict=True):
            self.codes[key_id] = code

    def answer(self, order_id: UUID, outcome: str) -> None:
        """The fulfilment worker's next step: the next attempt (or the outstanding one), answered."""
        plan = recharge.start(self.ledger, order_id)
        if isinstance(plan, AttemptPlan):
            recharge.answer(self.ledger, plan, outcome, reason="supplier said so")

    def apply(self, command: tuple) -> None:
        ledger, ctx = self.ledger, self.ledger.context("storefront")
        kind = command[0]
        if kind in ("buy", "hold"):
            _, customer, sku, quantity, *rest = command
            coupon = "TAKE1" if rest and rest[0] else None
            placed = ledger.place_order(ctx, customer_id=f"c{customer}", sku=sku, quantity=quantity,
                                        coupon_code=coupon, device_id=f"d{customer % 2}")
            if kind == "buy":
                ledger.capture_payment(ctx, placed.order_id, payment_reference=f"p{placed.order_id}",
                                       amount=placed.amount_due, provider="psp")
                self.paid.append(placed.order_id)
        elif kind == "expire":
            self.clock.advance(minutes=command[1])
            ledger.expire_due(ledger.context("sweeper"))
        elif kind == "validity":
            self.clock.advance(days=command[1])
            ledger.expire_due(ledger.context("sweeper"))
            ledger.expire_validities(ledger.context("sweeper"), limit=2)  # chunks, even in small histories
        elif kind == "refund" and self.paid:
            order = ledger.reads.order(self.paid[command[1] % len(self.paid)])
            if order.refundable > 0:
                ledger.refund_order(ledger.context("admin"), order.id, amount=order.refundable, reason="asked",
                                    override_redeemed=command[2])
        elif kind == "redeem" and self.paid:
            order = ledger.reads.order(self.paid[command[1] % len(self.paid)])
            for key_id in order.delivered[:1]:
                ledger.redeem(ctx, code=self.codes[key_id], account_id=f"acct-{command[1]}")
        elif kind == "recharge":
            _, customer, sku, fate = command
            account = f"138{customer:04d}{len(self.recharges) % 3:04d}" if sku == "TOPUP-5" else \
                f"c{customer}-{len(self.recharges) % 3}@example.com"
            placed = ledger.place_order(ctx, customer_id=f"c{customer}", sku=sku, quantity=1, recipient_account=account,
                                        device_id=f"d{customer % 2}")
            self.recharges.append(placed.order_id)
            if fate != "unpaid":
                ledger.capture_payment(ctx, placed.order_id, payment_reference=f"p{placed.order_id}",
                                       amount=placed.amount_due, provider="psp")
            if fate in ANSWERS:
                self.answer(placed.order_id, fate)
            elif fate == "no route":
                recharge.give_up(ledger, placed.order_id)
        elif kind == "answer" and self.recharges:
            # aimed at the fulfilments still open when there are any, or most steps do nothing
            still_open = ledger.reads.find(OpenFulfilments, OPEN_FULFILMENTS_ID)
            open_ids = set(still_open.ids) if still_open else set()
            candidates = [o for o in self.recharges if fulfilment_id(o) in open_ids] or self.recharges
            self.answer(candidates[-1 - command[1] % len(candidates)], command[2])
        elif kind == "reverse":
            fulfilments = (ledger.reads.find(Fulfilment, fulfilment_id(o)) for o in self.recharges)
            delivered = [(f.id, found[0]) for f in fulfilments if f is not None and (found := f.succeeded) is not None]
            if delivered:
                fulfilment, attempt = delivered[-1 - command[1] % len(delivered)]
                recharge.run(ledger, c.RecordAttempt, fulfilment_id=fulfilment, attempt_id=attempt,
                             outcome="reversed", reason="chargeback")
        elif kind == "refund-recharge":  # a delivered one, by hand
            delivered = [o for o in map(ledger.reads.order, self.recharges) if str(o.status) == "delivered"]
            if delivered:
                order = delivered[-1 - command[1] % len(delivered)]
                ledger.refund_order(ledger.context("admin"), order.id, amount=order.refundable, reason="asked")
        elif kind == "access":
            placed = ledger.place_order(ctx, customer_id=f"c{command[1]}", sku="ACCESS", quantity=1)
            ledger.capture_payment(ctx, placed.order_id, payment_reference=f"p{placed.order_id}",
                                   amount=placed.amount_due, provider="psp")
        elif kind == "restock":
            self.restock(command[1], command[2])
        elif kind == "recall" and self.batches:
            ledger.recall_batch(ledger.context("admin"), self.batches[command[1] % len(self.batches)], "leak")


def naive_inventory(ledger: Ledger, world: World) -> dict[str, Counter[str]]:
    """Count each key's state from its own aggregate and the SKU's stock."""
    counts: dict[str, Counter[str]] = {sku: Counter() for sku in SKUS}
    for key_id in world.codes:
        key = ledger.app.repository.get(key_id)
        assert isinstance(key, Key)
        state = str(key.status)
        if state == "in_stock":
            state = "available" if key_id in ledger.reads.stock(key.sku).available else "reserved"
        counts[key.sku][state] += 1
    return counts


EXAMPLES = 40


def test_live_equals_rebuilt_equals_reference() -> None:
    seen: Counter[str] = Counter()
    ran = live_equals_rebuilt_equals_reference(seen)
    # Refusals are swallowed below, so show that the histories did what the read models must follow.
    assert_explored(seen, {**EXPLORED, "histories that sold": ran // 2}, ran)


# What the run's histories reach between them, at least (derandomized in CI, the 40 histories
# reach: 87 deliveries in 34 histories, 12 refunds, 11 expiries, 26 redemptions, 11 coupon
# exhaustions; before the strategies leaned toward sales: 37 deliveries, 8 refunds, 6 expiries, no
# exhausted coupon).
EXPLORED = {"delivered": 40, "refunded": 6, "expired": 5, "redeemed": 10, "revoked": 5, "recalled": 10,
            "coupon-exhausted": 3, "out-of-stock": 5}


def live_equals_rebuilt_equals_reference(seen: Counter[str]) -> int:
    """Run the property; add what each history did to `seen`; return how many histories ran."""
    ran = 0

    @settings(max_examples=examples(EXAMPLES), deadline=None, derandomize=not deep(),
              suppress_health_check=[HealthCheck.too_slow])
    @given(commands)
    def check(history: list[tuple]) -> None:
        nonlocal ran
        ran += 1
        happened = check_history(history)
        seen.update(happened)
        seen["histories that sold"] += bool(happened["delivered"])

    check()
    return ran


RECHARGE_EXAMPLES = 25


def test_live_equals_rebuilt_equals_reference_with_recharges() -> None:
    seen: Counter[str] = Counter()
    ran = 0

    @settings(max_examples=examples(RECHARGE_EXAMPLES), deadline=None, derandomize=not deep(),
              suppress_health_check=[HealthCheck.too_slow])
    @given(recharge_commands)
    def check(history: list[tuple]) -> None:
        nonlocal ran
        ran += 1
        seen.update(check_history(history, recharges=True))

    check()
    # What the histories reach between them, at least (the 25 derandomized ones reach 34 deliveries by
    # a supplier, 6 given up, 7 reversals, 11 grants of access, 11 refunds, 20 left in progress).
    assert_explored(seen, RECHARGES_EXPLORED, ran)


RECHARGES_EXPLORED = {"fulfilled": 15, "gave-up": 3, "fulfilment-reversed": 3, "granted": 5, "refunded": 5,
                      "in progress": 8}


VALIDITY_EXAMPLES = 20


def test_live_equals_rebuilt_equals_reference_with_expiries() -> None:
    seen: Counter[str] = Counter()
    ran = 0

    @settings(max_examples=examples(VALIDITY_EXAMPLES), deadline=None, derandomize=not deep(),
              suppress_health_check=[HealthCheck.too_slow])
    @given(validity_commands)
    def check(history: list[tuple]) -> None:
        nonlocal ran
        ran += 1
        seen.update(check_history(history, recharges=True, validity=True))

    check()
    assert_explored(seen, VALIDITY_EXPLORED, ran)


VALIDITY_EXPLORED = {"key-expired": 5, "access-ended": 2, "grant-ended": 2, "redeemed": 3}


def check_history(history: list[tuple], recharges: bool = False, validity: bool = False) -> Counter[str]:
    """Live equals rebuilt equals reference for one history; what the history did."""
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock()
        ledger = open_ledger(Settings(database_url=f"sqlite:///{Path(tmp) / 'l.sqlite'}", data_dir=Path(tmp),
                                      cipher_key=TEST_CIPHER_KEY, max_unpaid_per_customer=50,
                                      max_unpaid_per_device=50), clock=clock)
        store = ViewStore(ledger.settings)
        live = Runner(ledger.app, store, lambda: build_projections(store), batch_size=4)
        world = World(ledger, clock, recharges=recharges, validity=validity)
        for command in history:
            try:
                world.apply(command)
            except DomainError:
                pass  # refusals are part of the history too
            live.catch_up()
            books = trial_balance(store, next(p for p in live.projections if p.name == "journal"))
            assert books.balanced
        live_dump = {p.name: p.dump() for p in live.projections}

        rebuild(ledger.app, store)  # from zero, into fresh tables, then swapped in
        assert live.follow_swaps()
        rebuilt_dump = {p.name: p.dump() for p in live.projections}
        assert rebuilt_dump == live_dump

        expected = naive_inventory(ledger, world)
        expired: Counter[str] = Counter()
        for row in live_dump["inventory"]["expired"]:
            expired[row["sku"]] += row["expired"]
        for row in live_dump["inventory"]["skus"]:
            states = ("available", "reserved", "delivered", "redeemed", "revoked", "voided")
            assert {s: row[s] for s in states} == {s: expected[row["sku"]][s] for s in states}, row["sku"]
            assert expired[row["sku"]] == expected[row["sku"]]["expired"], row["sku"]
        breakage = sum(r["keys"] for r in live_dump["sales"]["breakage"])
        assert breakage == sum(c["expired"] for c in expected.values())
        assert sum(Decimal(r["debit"]) for r in live_dump["journal"]["balances"]) == sum(
            Decimal(r["credit"]) for r in live_dump["journal"]["balances"]
        )
        happened = outcomes(ledger)
        if recharges:
            # Every payment ended in goods or went back, or its recharge is still with a supplier.
            views = LiveReadModels(store, {p.name: p for p in live.projections})
            reconciled = reconcile(History(ledger.app, folds=FOLDS), views, now=clock.now)
            assert reconciled.findings == []
            still_open = ledger.reads.find(OpenFulfilments, OPEN_FULFILMENTS_ID)  # the writer's own list
            assert {fulfilment_id(UUID(p.order_id)) for p in reconciled.in_progress} == set(
                still_open.ids if still_open else ())
            happened["in progress"] += len(reconciled.in_progress)
        store.close()
        ledger.close()
        return happened


def test_low_stock_alert_fires_once_per_downward_crossing(ledger: Ledger) -> None:
    admin = ledger.context("admin")
    ledger.define_product(admin, sku="LOW-1", name="low", face_value="1", currency="USD", price="1.00",
                          low_stock_threshold=2, per_customer_limit=None)
    ledger.import_keys(admin, sku="LOW-1", supplier="s", unit_cost="0.50", codes=[(i, f"LOW-{i}") for i in range(5)])
    store = ViewStore(ledger.settings)
    runner = Runner(ledger.app, store, build_projections(store, ["inventory"]), batch_size=1)

    def buy(n: int) -> None:
        placed = ledger.place_order(ledger.context(), customer_id=f"buyer-{n}", sku="LOW-1", quantity=1)
        ledger.capture_payment(ledger.context(), placed.order_id, payment_reference=f"low-{n}", amount="1.00",
                               provider="psp")

    def alerts() -> int:
        runner.catch_up()
        return len(runner.projections[1].dump()["alerts"])

    buy(1)
    buy(2)
    assert alerts() == 0  # 3 left, above the threshold of 2
    buy(3)
    assert alerts() == 1  # 2 left: crossed downwards
    buy(4)
    assert alerts() == 1  # still low: no second alert
    ledger.import_keys(admin, sku="LOW-1", supplier="s", unit_cost="0.50", codes=[(1, "LOW-NEW-1"), (2, "LOW-NEW-2")])
    assert alerts() == 1  # refilled above the threshold (3 left): re-armed, no alert
    buy(5)
    assert alerts() == 2  # crossed downwards again


def test_products_without_stock_have_no_inventory_and_raise_no_alert(ledger: Ledger) -> None:
    """A recharge or access SKU has no keys: no row counting nothing (it would read as sold out),
    no low-stock alert whatever its threshold, and its orders (held and delivered on the SKU's
    stock book with no keys) leave the keys' SKU counts alone."""
    admin = ledger.context("admin")
    ledger.define_product(admin, sku="LOW-1", name="low", face_value="1", currency="USD", price="1.00",
                          low_stock_threshold=2, per_customer_limit=None)
    ledger.import_keys(admin, sku="LOW-1", supplier="s", unit_cost="0.50", codes=[(i, f"LOW-{i}") for i in range(5)])
    recharge.suppliers(ledger, ("cheap",))
    recharge.upstream_product(ledger, "TOPUP-10", {"cheap": "9.60"}, low_stock_threshold=5)
    recharge.run(ledger, c.DefineProduct, sku="COURSE", name="Course", kind="digital_access", face_value="20.00",
                 currency="USD", price="20.00", low_stock_threshold=3)
    recharge.deliver(ledger, recharge.paid(ledger, "alice").order_id)
    recharge.paid(ledger, "bob", account="13900000002")  # still with its supplier
    ledger.place_order(ledger.context(), customer_id="carol", sku="TOPUP-10", quantity=1,
                       recipient_account="13900000003")  # held, unpaid
    course = ledger.place_order(ledger.context(), customer_id="dave", sku="COURSE", quantity=1)
    ledger.capture_payment(ledger.context(), course.order_id, payment_reference="course-1", amount="20.00",
                           provider="psp")
    key_order = ledger.place_order(ledger.context(), customer_id="erin", sku="LOW-1", quantity=1)
    ledger.capture_payment(ledger.context(), key_order.order_id, payment_reference="low-1", amount="1.00",
                           provider="psp")
    store = ViewStore(ledger.settings)
    runner = Runner(ledger.app, store, build_projections(store, ["inventory"]), batch_size=3)
    runner.catch_up()
    dump = runner.projections[1].dump()
    assert [(r["sku"], r["available"], r["delivered"], r["low_stock"]) for r in dump["skus"]] == [("LOW-1", 4, 1, 0)]
    assert dump["alerts"] == []
    store.close()
