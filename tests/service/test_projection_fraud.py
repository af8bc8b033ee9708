"""The fraud read model: each rule fires on a history built through the ledger and stays
quiet on an ordinary one; alerts are never repeated; batching and restarts change nothing;
and a scored subject is rejected at order time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.domain.errors import AmountMismatch, RiskRejected
from ledger.domain.ids import key_id
from ledger.domain.orders import Order
from ledger.domain.risk import OrderFacts
from ledger.results import Placed
from ledger.service.ledger import Ledger, open_ledger
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from projections.models.fraud import Fraud, FraudRules, alerts, subject
from projections.models.risk import FraudRiskAssessor
from tests import recharge
from tests.conftest import FakeClock, LedgerFactory

SKU = "GAME-1"
TOPUP = "TOPUP-10"
PRICE = "10.00"
LOOSE = {"max_unpaid_per_customer": 100, "max_unpaid_per_ip": 100, "max_unpaid_per_device": 100}
_serial = count(1)


# ---- helpers ----


@pytest.fixture
def loose(make_ledger: LedgerFactory) -> Ledger:
    """A ledger whose unpaid caps let long histories through, stocked with keys."""
    ledger = make_ledger(**LOOSE)
    ledger.define_product(ledger.context("admin"), sku=SKU, name="Game key", face_value=PRICE, currency="USD",
                          price=PRICE, platform="pc")
    recharge.upstream_product(ledger, TOPUP, {})  # ordered, not fulfilled: the rule reads the placement
    return ledger


@pytest.fixture
def store(loose: Ledger) -> Iterator[ViewStore]:
    view_store = ViewStore(loose.settings)
    yield view_store
    view_store.close()


class Codes:
    """Imported codes by key id, so a test can redeem exactly the keys an order got."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.by_key: dict[UUID, str] = {}

    def stock(self, n: int) -> None:
        codes = [f"FR-{next(_serial):06d}-Q7ZK" for _ in range(n)]
        self.ledger.import_keys(self.ledger.context("admin"), sku=SKU, supplier="acme", unit_cost="6.00",
                                codes=list(enumerate(codes, start=1)))
        for code in codes:
            self.by_key[key_id(self.ledger.vault.fingerprint(code))] = code


@pytest.fixture
def codes(loose: Ledger) -> Codes:
    stocked = Codes(loose)
    stocked.stock(40)
    return stocked


def place(ledger: Ledger, customer: str, ip: str | None = None, device: str | None = None, **kwargs: Any) -> Placed:
    return ledger.place_order(ledger.context(customer), customer_id=customer, sku=SKU, quantity=1, client_ip=ip,
                              device_id=device, **kwargs)


def pay(ledger: Ledger, placed: Placed) -> list[UUID]:
    result = ledger.capture_payment(ledger.context("psp"), placed.order_id, payment_reference=f"pay-{next(_serial)}",
                                    amount=placed.amount_due, provider="psp")
    return result.key_ids


def run(ledger: Ledger, store: ViewStore, batch_size: int = 5000) -> Fraud:
    projections = build_projections(store, ["fraud"])
    Runner(ledger.app, store, projections, batch_size=batch_size).catch_up()
    fraud = projections[-1]
    assert isinstance(fraud, Fraud)
    return fraud


def event_at(ledger: Ledger, position: int) -> Any:
    notification = ledger.app.recorder.select_notifications(position, 1)[0]
    assert notification.id == position
    return ledger.app.mapper.to_domain_event(notification)


def order_of(ledger: Ledger, event: Any) -> Order:
    """The order an event belongs to: an order event's own, or the order a key was delivered to."""
    if isinstance(event, Order.Event):
        return ledger.reads.order(event.originator_id)
    delivered = [e for e in ledger.app.events.get(event.originator_id) if type(e).__qualname__ == "Key.Delivered"]
    return ledger.reads.order(getattr(delivered[0], "order_id"))  # noqa: B009


def only_alert(store: ViewStore, rule: str, kind: str, ident: str) -> dict[str, Any]:
    found = alerts(store, rule=rule, subject_kind=kind, subject_id=ident)
    assert len(found) == 1, found
    return found[0]


def rules_fired(store: ViewStore) -> set[str]:
    return {a["rule"] for a in alerts(store)}


# ---- (a) velocity ----


def test_velocity_fires_per_customer_ip_and_device(loose: Ledger, codes: Codes, store: ViewStore,
                                                   clock: FakeClock) -> None:
    placed = []
    for _ in range(6):  # more than 5 within 600 s
        placed.append(place(loose, "speedy", "198.51.100.7", "dev-speedy"))
        clock.advance(seconds=30)
    run(loose, store)
    score = FraudRules().velocity_score
    for kind, ident in (("customer", "speedy"), ("ip", "198.51.100.7"), ("device", "dev-speedy")):
        alert = only_alert(store, "velocity", kind, ident)
        assert alert["score"] == score
        assert len(alert["positions"]) == 6
        for position in alert["positions"]:
            event = event_at(loose, position)
            assert isinstance(event, Order.Placed)
            assert (event.customer_id, event.client_ip, event.device_id) == ("speedy", "198.51.100.7", "dev-speedy")
        assert {event_at(loose, p).originator_id for p in alert["positions"]} == {p.order_id for p in placed}
        row = subject(store, None, kind, ident)
        assert row is not None and row["score"] == score and row["alerts"] == 1 and row["top_rule"] == "velocity"


def test_velocity_quiet_when_orders_are_spread_out(loose: Ledger, codes: Codes, store: ViewStore,
                                                   clock: FakeClock) -> None:
    for _ in range(12):  # one order every 3 minutes: at most 4 inside any 10 minutes
        pay(loose, place(loose, "steady", "198.51.100.8", "dev-steady"))
        clock.advance(seconds=180)
    run(loose, store)
    assert alerts(store) == []
    assert subject(store, None, "customer", "steady") is None


def test_velocity_escalates_only_by_another_threshold(loose: Ledger, codes: Codes, store: ViewStore,
                                                      clock: FakeClock) -> None:
    for _ in range(10):  # orders 6..10 are over the limit: one alert
        place(loose, "burst")
        clock.advance(seconds=1)
    run(loose, store)
    assert len(alerts(store, rule="velocity", subject_id="burst")) == 1
    place(loose, "burst")  # the 6th over the limit: 5 more since the first alert
    run(loose, store)
    found = alerts(store, rule="velocity", subject_id="burst")
    assert [a["count"] for a in found] == [1, 6]
    row = subject(store, None, "customer", "burst")
    assert row is not None and row["alerts"] == 2 and row["score"] == 2 * FraudRules().velocity_score


# ---- (b) many customers behind one device or IP ----


def test_many_customers_on_one_device(loose: Ledger, codes: Codes, store: ViewStore, clock: FakeClock) -> None:
    for n in range(4):  # more than 3 customers, each from its own IP
        place(loose, f"farm-{n}", f"192.0.2.{n + 1}", "dev-farm")
        clock.advance(seconds=200)
    run(loose, store)
    alert = only_alert(store, "many-customers", "device", "dev-farm")
    assert alert["score"] == FraudRules().many_customers_score
    customers = {event_at(loose, p).customer_id for p in alert["positions"]}
    assert customers == {f"farm-{n}" for n in range(4)}
    assert all(event_at(loose, p).device_id == "dev-farm" for p in alert["positions"])
    assert rules_fired(store) == {"many-customers"}


def test_many_customers_on_one_ip(loose: Ledger, codes: Codes, store: ViewStore, clock: FakeClock) -> None:
    for n in range(11):
        place(loose, f"nat-{n}", "203.0.113.50", f"dev-nat-{n}")
        clock.advance(seconds=200)
    run(loose, store)
    alert = only_alert(store, "many-customers", "ip", "203.0.113.50")
    assert len(alert["positions"]) == 11
    assert all(event_at(loose, p).client_ip == "203.0.113.50" for p in alert["positions"])


def test_household_device_stays_quiet(loose: Ledger, codes: Codes, store: ViewStore, clock: FakeClock) -> None:
    for n in range(3):  # three people share a tablet, each buying twice
        for _ in range(2):
            pay(loose, place(loose, f"family-{n}", "192.0.2.9", "dev-tablet"))
            clock.advance(seconds=300)
    run(loose, store)
    assert alerts(store) == []


# ---- (c) expired unpaid reservations ----


def test_expired_holds_per_customer_ip_and_device(loose: Ledger, codes: Codes, store: ViewStore,
                                                  clock: FakeClock) -> None:
    placed = []
    for _ in range(4):  # four reservations that are never paid
        placed.append(place(loose, "hoarder", "198.51.100.20", "dev-hoard"))
        clock.advance(seconds=200)
    clock.advance(seconds=1000)
    assert len(loose.expire_due(loose.context())) == 4
    run(loose, store)
    for kind, ident in (("customer", "hoarder"), ("ip", "198.51.100.20"), ("device", "dev-hoard")):
        alert = only_alert(store, "expired-holds", kind, ident)
        assert alert["score"] == FraudRules().expired_holds_score
        events = [event_at(loose, p) for p in alert["positions"]]
        assert all(isinstance(e, Order.Expired) for e in events)
        assert {e.originator_id for e in events} == {p.order_id for p in placed}
    assert rules_fired(store) == {"expired-holds"}


def test_paid_or_few_expired_holds_stay_quiet(loose: Ledger, codes: Codes, store: ViewStore,
                                              clock: FakeClock) -> None:
    for _ in range(3):
        place(loose, "forgetful", "198.51.100.21", "dev-forget")  # three lapse: at the limit
        pay(loose, place(loose, "payer", "198.51.100.22", "dev-pay"))
        clock.advance(seconds=200)
    clock.advance(seconds=1000)
    loose.expire_due(loose.context())
    run(loose, store)
    assert alerts(store) == []


# ---- (d) coupon use by new customers from one device ----


def _coupon(ledger: Ledger, clock: FakeClock) -> None:
    ledger.create_coupon(ledger.context("admin"), code="WELCOME5", kind="amount", value="5.00", currency="USD",
                         starts_at=clock.now - timedelta(days=1), ends_at=clock.now + timedelta(days=30),
                         per_customer_cap=1)


def test_coupon_new_customers_from_one_device(loose: Ledger, codes: Codes, store: ViewStore,
                                              clock: FakeClock) -> None:
    _coupon(loose, clock)
    for n in range(3):  # three brand-new accounts, each a first order with the welcome coupon
        pay(loose, place(loose, f"fresh-{n}", f"192.0.2.{60 + n}", "dev-coupon", coupon_code="WELCOME5"))
        clock.advance(seconds=300)
    run(loose, store)
    alert = only_alert(store, "coupon-new-customers", "device", "dev-coupon")
    assert alert["score"] == FraudRules().coupon_new_customers_score
    events = [event_at(loose, p) for p in alert["positions"]]
    assert all(isinstance(e, Order.Placed) and e.coupon_code == "WELCOME5" for e in events)
    assert all(e.device_id == "dev-coupon" for e in events)
    assert {e.customer_id for e in events} == {"fresh-0", "fresh-1", "fresh-2"}
    assert rules_fired(store) == {"coupon-new-customers"}


def test_coupon_by_returning_customers_stays_quiet(loose: Ledger, codes: Codes, store: ViewStore,
                                                   clock: FakeClock) -> None:
    _coupon(loose, clock)
    for n in range(3):  # customers who bought before, then use the coupon on the shared device
        pay(loose, place(loose, f"regular-{n}", "192.0.2.70", f"dev-own-{n}"))
        clock.advance(seconds=300)
    for n in range(3):
        pay(loose, place(loose, f"regular-{n}", "192.0.2.70", "dev-kiosk", coupon_code="WELCOME5"))
        clock.advance(seconds=300)
    run(loose, store)
    assert alerts(store) == []


# ---- (e) refunds after redemption ----


def _buy_and_redeem(ledger: Ledger, codes: Codes, customer: str, account: str) -> tuple[Placed, UUID]:
    placed = place(ledger, customer)
    [key] = pay(ledger, placed)
    ledger.redeem(ledger.context(account), code=codes.by_key[key], account_id=account)
    return placed, key


def test_refund_after_redeem(loose: Ledger, codes: Codes, store: ViewStore, clock: FakeClock) -> None:
    refunded = []
    for _ in range(2):  # more than one redeemed key refunded
        placed, _key = _buy_and_redeem(loose, codes, "chargeback", "acct-cb")
        loose.refund_order(loose.context("support"), placed.order_id, amount=PRICE, reason="not working",
                           override_redeemed=True)
        refunded.append(placed.order_id)
        clock.advance(seconds=400)
    run(loose, store)
    alert = only_alert(store, "refund-after-redeem", "customer", "chargeback")
    assert alert["score"] == FraudRules().refund_after_redeem_score
    events = [event_at(loose, p) for p in alert["positions"]]
    assert all(type(e).__qualname__ == "Key.Revoked" and e.was_redeemed for e in events)
    assert {e.order_id for e in events} == set(refunded)
    assert all(loose.reads.order(e.order_id).customer_id == "chargeback" for e in events)


def test_refund_before_redeem_stays_quiet(loose: Ledger, codes: Codes, store: ViewStore,
                                          clock: FakeClock) -> None:
    for _ in range(3):
        placed = place(loose, "changed-mind")
        pay(loose, placed)
        loose.refund_order(loose.context("support"), placed.order_id, amount=PRICE, reason="changed mind")
        clock.advance(seconds=400)
    _buy_and_redeem(loose, codes, "changed-mind", "acct-own")
    run(loose, store)
    assert alerts(store) == []


# ---- (f) resale ----


def test_resale_keys_redeemed_by_many_accounts(loose: Ledger, codes: Codes, store: ViewStore,
                                               clock: FakeClock) -> None:
    for n in range(4):  # one buyer, four different redeeming accounts
        _buy_and_redeem(loose, codes, "reseller", f"buyer-acct-{n}")
        clock.advance(seconds=400)
    run(loose, store)
    alert = only_alert(store, "resale", "customer", "reseller")
    assert alert["score"] == FraudRules().resale_score
    events = [event_at(loose, p) for p in alert["positions"]]
    assert all(type(e).__qualname__ == "Key.Redeemed" for e in events)
    assert {e.account_id for e in events} == {f"buyer-acct-{n}" for n in range(4)}
    assert all(order_of(loose, e).customer_id == "reseller" for e in events)


def test_own_redemptions_stay_quiet(loose: Ledger, codes: Codes, store: ViewStore, clock: FakeClock) -> None:
    for _ in range(6):
        _buy_and_redeem(loose, codes, "gamer", "acct-gamer")
        clock.advance(seconds=400)
    run(loose, store)
    assert alerts(store) == []


# ---- (g) rejected payments ----


def test_repeated_payment_rejections(loose: Ledger, codes: Codes, store: ViewStore, clock: FakeClock) -> None:
    placed = place(loose, "carder")
    for n in range(4):  # more than three mismatched callbacks
        with pytest.raises(AmountMismatch):
            loose.capture_payment(loose.context("psp"), placed.order_id, payment_reference=f"bad-{n}",
                                  amount="0.01", provider="psp")
        clock.advance(seconds=10)
    run(loose, store)
    alert = only_alert(store, "payment-rejected", "customer", "carder")
    assert alert["score"] == FraudRules().payment_rejected_score
    events = [event_at(loose, p) for p in alert["positions"]]
    assert len(events) == 4
    assert all(isinstance(e, Order.PaymentRejected) and e.originator_id == placed.order_id for e in events)


def test_one_failed_payment_then_success_stays_quiet(loose: Ledger, codes: Codes, store: ViewStore) -> None:
    for n in range(3):
        placed = place(loose, f"typo-{n}")
        with pytest.raises(AmountMismatch):
            loose.capture_payment(loose.context("psp"), placed.order_id, payment_reference=f"typo-{n}",
                                  amount="1.00", provider="psp")
        pay(loose, placed)
    run(loose, store)
    assert alerts(store) == []


# ---- (h) one customer recharging many accounts ----


def top_up(ledger: Ledger, customer: str, account: str) -> int:
    """A recharge ordered for `account`; the position of its `Order.RecipientGiven`."""
    before = ledger.app.recorder.max_notification_id() or 0
    ledger.place_order(ledger.context(customer), customer_id=customer, sku=TOPUP, quantity=1,
                       recipient_account=account)
    after = ledger.app.recorder.max_notification_id() or 0
    return next(p for p in range(before + 1, after + 1) if isinstance(event_at(ledger, p), Order.RecipientGiven))


def test_recharge_accounts_one_customer_many_accounts(loose: Ledger, store: ViewStore, clock: FakeClock) -> None:
    positions = {}
    for account in ["13800000001", "13800000002", "13800000001", "13800000003", "13800000004"]:
        positions[account] = top_up(loose, "topper", account)  # the latest order per account is the proof
        clock.advance(seconds=130)  # slower than velocity's 5 in 10 minutes
    run(loose, store)
    alert = only_alert(store, "recharge-accounts", "customer", "topper")
    assert alert["count"] == 1 and alert["score"] == 20
    assert sorted(alert["positions"]) == sorted(positions.values())  # the 4 accounts, the repeat once
    assert rules_fired(store) == {"recharge-accounts"}
    for account in ("13800000005", "13800000006"):
        top_up(loose, "topper", account)
        clock.advance(seconds=130)
    run(loose, store)
    assert len(alerts(store, rule="recharge-accounts")) == 1  # 3 over the limit: the next alert is at 4
    top_up(loose, "topper", "13800000007")
    run(loose, store)
    assert [a["count"] for a in alerts(store, rule="recharge-accounts")] == [1, 4]


def test_recharge_accounts_quiet_for_a_household_and_for_accounts_spread_out(loose: Ledger, store: ViewStore,
                                                                            clock: FakeClock) -> None:
    for _ in range(3):
        for account in ("13800000011", "13800000012", "13800000013"):  # the same three, again and again
            top_up(loose, "family", account)
            clock.advance(seconds=200)
    for n in range(5):  # a new account every other day: never more than one in a day's window
        top_up(loose, "traveller", f"1390000002{n}")
        clock.advance(days=2)
    run(loose, store)
    assert alerts(store, rule="recharge-accounts") == []


def test_recharge_accounts_keep_no_account_nor_its_hash(loose: Ledger, store: ViewStore, clock: FakeClock) -> None:
    accounts = [f"1380000010{n}" for n in range(5)]
    for account in accounts:
        top_up(loose, "topper", account)
        clock.advance(seconds=130)
    fraud = run(loose, store)
    kept = repr(fraud.dump())
    assert alerts(store, rule="recharge-accounts")
    for account in accounts:
        assert account not in kept and loose.vault.account_fingerprint(account) not in kept


def test_recharge_accounts_limit_and_window_from_settings(loose: Ledger, store: ViewStore, clock: FakeClock,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_FRAUD_MAX_RECHARGE_ACCOUNTS", "1")
    monkeypatch.setenv("LEDGER_FRAUD_RECHARGE_ACCOUNTS_WINDOW_S", "60")
    top_up(loose, "pair", "13800000201")
    clock.advance(seconds=61)  # outside the window: the first account no longer counts
    top_up(loose, "pair", "13800000202")
    run(loose, store)
    assert alerts(store, rule="recharge-accounts") == []
    top_up(loose, "pair", "13800000203")
    run(loose, store)
    assert only_alert(store, "recharge-accounts", "customer", "pair")["count"] == 1


# ---- no spam, batching, restarts ----


def _mixed_history(ledger: Ledger, codes: Codes, clock: FakeClock) -> None:
    """Every rule fires at least once, among ordinary traffic."""
    _coupon(ledger, clock)
    for _ in range(6):
        pay(ledger, place(ledger, "mix-speedy", "198.51.100.90", "dev-mix"))
        clock.advance(seconds=20)
    for _ in range(4):
        place(ledger, "mix-hoarder", "198.51.100.91", "dev-hoard")
        clock.advance(seconds=150)
    for n in range(4):
        pay(ledger, place(ledger, f"mix-new-{n}", f"192.0.2.{100 + n}", "dev-mix-coupon", coupon_code="WELCOME5"))
        clock.advance(seconds=200)
    clock.advance(seconds=1000)
    ledger.expire_due(ledger.context())
    for n in range(4):
        _buy_and_redeem(ledger, codes, "mix-reseller", f"mix-acct-{n}")
    for _ in range(2):
        placed, _key = _buy_and_redeem(ledger, codes, "mix-cb", "mix-cb-acct")
        ledger.refund_order(ledger.context("support"), placed.order_id, amount=PRICE, reason="x",
                            override_redeemed=True)
    placed = place(ledger, "mix-carder")
    for n in range(4):
        with pytest.raises(AmountMismatch):
            ledger.capture_payment(ledger.context("psp"), placed.order_id, payment_reference=f"mix-bad-{n}",
                                   amount="0.02", provider="psp")
    for n in range(4):
        top_up(ledger, "mix-topper", f"1370000000{n}")
        clock.advance(seconds=130)
    for n in range(5):
        pay(ledger, place(ledger, f"mix-ok-{n}", f"192.0.2.{150 + n}", f"dev-ok-{n}"))
        clock.advance(seconds=60)


def test_every_rule_fires_once_and_never_again(loose: Ledger, codes: Codes, store: ViewStore,
                                               clock: FakeClock) -> None:
    _mixed_history(loose, codes, clock)
    projections = build_projections(store, ["fraud"])
    runner = Runner(loose.app, store, projections)
    runner.catch_up()
    fraud = projections[-1]
    first = fraud.dump()
    assert {a["rule"] for a in first["alerts"]} == {
        "velocity", "many-customers", "expired-holds", "coupon-new-customers", "refund-after-redeem", "resale",
        "payment-rejected", "recharge-accounts",
    }
    keys = [(a["rule"], a["subject_kind"], a["subject_id"]) for a in first["alerts"]]
    assert len(keys) == len(set(keys))  # one alert per (rule, subject): no count reached a second threshold
    assert ("velocity", "customer", "mix-speedy") in keys and ("expired-holds", "device", "dev-hoard") in keys
    # More processing, on the same runner and on a restarted one, repeats nothing.
    assert runner.catch_up() == 0
    Runner(loose.app, store, build_projections(store, ["fraud"])).catch_up()
    assert fraud.dump() == first
    # New ordinary traffic adds no alert either.
    pay(loose, place(loose, "late-ok", "192.0.2.200", "dev-late"))
    Runner(loose.app, store, build_projections(store, ["fraud"])).catch_up()
    assert fraud.dump()["alerts"] == first["alerts"]


def test_same_result_in_one_batch_small_batches_and_after_restarts(
    loose: Ledger, codes: Codes, clock: FakeClock, tmp_path: Path
) -> None:
    _mixed_history(loose, codes, clock)
    head = loose.app.recorder.max_notification_id() or 0

    def dump_of(name: str, batch_size: int, stops: list[int]) -> dict[str, Any]:
        store = ViewStore(loose.settings, f"sqlite:///{tmp_path / name}")
        try:
            for stop in [*stops, head]:  # a fresh runner (a restart) for every leg
                projections = build_projections(store, ["fraud"])
                Runner(loose.app, store, projections, batch_size=batch_size).catch_up(until=stop)
            return projections[-1].dump()
        finally:
            store.close()

    one = dump_of("one.sqlite", 100_000, [])
    assert one["alerts"]
    assert dump_of("small.sqlite", 2, []) == one
    assert dump_of("restarts.sqlite", 3, [head // 5, head // 3, head // 2, head - 7]) == one


# ---- risk at order time ----


def test_scalper_rejected_at_order_time(loose: Ledger, codes: Codes, store: ViewStore, clock: FakeClock) -> None:
    for _ in range(6):
        place(loose, "scalper", "203.0.113.66", "dev-scalper")
        clock.advance(seconds=5)
    run(loose, store)
    threshold = FraudRules().velocity_score
    guarded = open_ledger(loose.settings, clock=clock, risk=FraudRiskAssessor(store, threshold))
    try:
        with pytest.raises(RiskRejected) as rejected:
            place(guarded, "scalper", "203.0.113.66", "dev-scalper")
        assert rejected.value.details["rule"] == "velocity"
        order_id = rejected.value.order_id
        assert order_id is not None
        [rejection] = [e for e in guarded.app.events.get(order_id) if isinstance(e, Order.Rejected)]
        assert rejection.reason == "risk-rejected"
        assert rejection.evidence["rule"] == "velocity"
        assert rejection.evidence["evidence"]["subject"] == "customer:scalper"
        # The scalper's alias on the same device is caught by the device's score.
        with pytest.raises(RiskRejected):
            place(guarded, "scalper-alias", "192.0.2.250", "dev-scalper")
        # Someone else goes through.
        assert place(guarded, "bystander", "192.0.2.251", "dev-bystander").status == "reserved"
    finally:
        guarded.close()


def test_risk_assessor_verdict_and_off_switch(loose: Ledger, codes: Codes, store: ViewStore,
                                              clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = OrderFacts("scalper", SKU, 1, "default", Decimal(PRICE), None, "203.0.113.66", "dev-scalper")
    assert FraudRiskAssessor(store, 10).assess(facts) is None  # nothing projected yet, not even the tables
    for _ in range(6):
        place(loose, "scalper", "203.0.113.66", "dev-scalper")
    run(loose, store)
    verdict = FraudRiskAssessor(store, 10).assess(facts)
    assert verdict is not None and verdict.rule == "velocity" and verdict.score == 10
    assert verdict.evidence["subject"] == "customer:scalper" and len(verdict.evidence["positions"]) == 6
    assert all(event_at(loose, p).customer_id == "scalper" for p in verdict.evidence["positions"])
    assert FraudRiskAssessor(store, 11).assess(facts) is None
    assert FraudRiskAssessor(store, 0).assess(facts) is None
    monkeypatch.delenv("LEDGER_FRAUD_REJECT_SCORE", raising=False)
    assert FraudRiskAssessor(store).assess(facts) is None  # off unless configured
    monkeypatch.setenv("LEDGER_FRAUD_REJECT_SCORE", "5")
    assert FraudRiskAssessor(store).assess(facts) is not None


def test_rules_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_FRAUD_VELOCITY_MAX_ORDERS", "2")
    assert FraudRules().velocity_max_orders == 2
    assert FraudRules().score("refund-after-redeem") == 30


@pytest.mark.postgres
def test_postgres_same_rules_and_risk(make_ledger: LedgerFactory, pg_url: str, clock: FakeClock) -> None:
    ledger = make_ledger(pg_url, **LOOSE)
    ledger.define_product(ledger.context("admin"), sku=SKU, name="Game key", face_value=PRICE, currency="USD",
                          price=PRICE, platform="pc")
    recharge.upstream_product(ledger, TOPUP, {})
    stocked = Codes(ledger)
    stocked.stock(40)
    _mixed_history(ledger, stocked, clock)
    store = ViewStore(ledger.settings)
    try:
        run(ledger, store, batch_size=7)
        assert rules_fired(store) == {
            "velocity", "many-customers", "expired-holds", "coupon-new-customers", "refund-after-redeem", "resale",
            "payment-rejected", "recharge-accounts",
        }
        row = subject(store, None, "customer", "mix-reseller")
        assert row is not None and row["top_rule"] == "resale" and row["rule_scores"] == {"resale": 30}
        facts = OrderFacts("mix-reseller", SKU, 1, "default", Decimal(PRICE), None, None, None)
        verdict = FraudRiskAssessor(store, 30).assess(facts)
        assert verdict is not None and verdict.rule == "resale" and len(verdict.evidence["positions"]) == 4
    finally:
        store.close()


def test_code_guessing_by_one_account_or_ip_is_flagged(loose: Ledger, store: ViewStore, clock: FakeClock) -> None:
    from ledger.domain.errors import UnknownCode

    limit = FraudRules().max_unknown_codes
    for n in range(limit + 1):  # one account, one IP, codes that match nothing
        with pytest.raises(UnknownCode):
            loose.redeem(loose.context("partner", client_ip="203.0.113.9"), code=f"GUESS-{n:04d}-ZZZZ",
                         account_id="acct-guesser")
        clock.advance(seconds=30)
    run(loose, store)
    for kind, who in (("account", "acct-guesser"), ("ip", "203.0.113.9")):
        alert = only_alert(store, "code-guessing", kind, who)
        assert alert["score"] == FraudRules().code_guessing_score
        events = [event_at(loose, p) for p in alert["positions"]]
        assert all(type(e).__qualname__ == "Redeemer.Refused" and e.rule == "unknown-code" for e in events)
        assert all("GUESS" not in repr(vars(e)) for e in events)  # no code, in clear or otherwise


def test_a_few_mistyped_codes_stay_quiet(loose: Ledger, store: ViewStore, clock: FakeClock) -> None:
    from ledger.domain.errors import UnknownCode

    for n in range(FraudRules().max_unknown_codes):
        with pytest.raises(UnknownCode):
            loose.redeem(loose.context("partner"), code=f"TYPO-{n:04d}-ZZZZ", account_id="acct-clumsy")
        clock.advance(seconds=900)
    run(loose, store)
    assert [a for a in alerts(store) if a["rule"] == "code-guessing"] == []
