"""Sales and profit read models: hand-computed figures, an independent naive fold over the
whole log for a larger scripted history, batch-size independence, and SQLite == PostgreSQL."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.domain.errors import DomainError
from ledger.service.ledger import Ledger
from projections.engine.base import Projection, Row
from projections.engine.rebuild import rebuild
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from tests.conftest import FakeClock, LedgerFactory
from tests.recharge import recharge_history

D = Decimal
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPEN, CLOSE = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
Dump = dict[str, dict[str, list[Row]]]


def codes(prefix: str, n: int) -> list[tuple[int, str]]:
    return [(i + 1, f"{prefix}-{i:04d}-XQ7Z") for i in range(n)]


def run(ledger: Ledger, url: str | None = None, batch_size: int = 5000) -> Dump:
    store = ViewStore(ledger.settings, url)
    projections: list[Projection] = build_projections(store, ["sales", "profit"])
    Runner(ledger.app, store, projections, batch_size=batch_size).catch_up()
    return {p.name: p.dump() for p in projections if p.name in ("sales", "profit")}


def keyed(rows: list[Row], *key: str) -> dict[tuple[Any, ...], Row]:
    return {tuple(r[k] for k in key): r for r in rows}


# ---- hand-computed ----


def small_history(ledger: Ledger, clock: FakeClock) -> dict[str, Any]:
    c = ledger.context
    ledger.define_product(
        c(), sku="GAME", name="Game", face_value="10", currency="EUR", price="10.00", channel_prices={"web": "12.00"}
    )
    ledger.create_coupon(c(), code="SAVE2", kind="amount", value="2.00", currency="EUR", starts_at=OPEN, ends_at=CLOSE)
    batch_a = ledger.import_keys(c(), sku="GAME", supplier="acme", unit_cost="6.00", codes=codes("A", 4))
    batch_b = ledger.import_keys(c(), sku="GAME", supplier="beta", unit_cost="7.00", codes=codes("B", 3))
    # Day 1: A (3 keys of batch A, coupon), a duplicate payment of A, B (batch A's last key and
    # one of batch B), C cancelled then paid (automatic refund).
    a = ledger.place_order(c(), customer_id="alice", sku="GAME", quantity=3, coupon_code="SAVE2")
    assert a.amount_due == D("28.00")
    ledger.capture_payment(c(), a.order_id, payment_reference="pa-1", amount="28.00", provider="psp")
    dup = ledger.capture_payment(c(), a.order_id, payment_reference="pa-2", amount="28.00", provider="psp")
    assert dup.outcome == "refunded"
    b = ledger.place_order(c(), customer_id="bob", sku="GAME", quantity=2)
    ledger.capture_payment(c(), b.order_id, payment_reference="pb-1", amount="20.00", provider="psp")
    o = ledger.place_order(c(), customer_id="carol", sku="GAME", quantity=1, channel="web")
    ledger.cancel_order(c(), o.order_id)
    late = ledger.capture_payment(c(), o.order_id, payment_reference="pc-1", amount="12.00", provider="psp")
    assert late.outcome == "refunded"
    # Day 2: partial refund of A revoking its first key; B redeemed then refunded in full
    # (override); batch B recalled (its 2 keys in stock are voided).
    clock.advance(days=1)
    first = ledger.reads.order_keys(a.order_id)[0]
    ledger.refund_order(c(), a.order_id, amount="10.00", reason="goodwill", key_ids=[first.key_id])
    ledger.redeem(c(), code=ledger.reads.order_keys(b.order_id)[1].code, account_id="bob-acct")
    ledger.refund_order(c(), b.order_id, amount="20.00", reason="chargeback", override_redeemed=True)
    assert ledger.recall_batch(c(), batch_b.batch_id, "recall").voided == 2
    return {"a": str(batch_a.batch_id), "b": str(batch_b.batch_id)}


def test_hand_computed_sales(ledger: Ledger, clock: FakeClock) -> None:
    small_history(ledger, clock)
    rows = keyed(run(ledger)["sales"]["daily"], "day", "sku", "channel", "promotion")
    z = D(0)

    def sale(orders: int, units: int, gross: str, disc: str, refunds: str, net: str, returned: str) -> Row:
        return {"orders": orders, "units": units, "gross": D(gross), "discounts": D(disc), "refunds": D(refunds),
                "net": D(net), "returned_payments": D(returned)}

    expected = {
        ("2026-03-01", "GAME", "default", "SAVE2"): sale(1, 3, "30", "2", "0", "28", "28"),
        ("2026-03-01", "GAME", "default", ""): sale(1, 2, "20", "0", "0", "20", "0"),
        ("2026-03-01", "GAME", "web", ""): sale(0, 0, "0", "0", "0", "0", "12"),
        ("2026-03-02", "GAME", "default", "SAVE2"): sale(0, 0, "0", "0", "10", "-10", "0"),
        ("2026-03-02", "GAME", "default", ""): sale(0, 0, "0", "0", "20", "-20", "0"),
    }
    assert set(rows) == set(expected)
    for key, figures in expected.items():
        row = rows[key]
        assert row["currency"] == "EUR"
        assert {k: row[k] for k in figures} == figures, key
    assert sum((r["net"] for r in rows.values()), z) == D(18)  # 28 + 20 - 10 - 20


def test_hand_computed_profit(ledger: Ledger, clock: FakeClock) -> None:
    batches = small_history(ledger, clock)
    rows = keyed(run(ledger)["profit"]["daily"], "day", "batch_id")

    def line(sold: int, off: int, revenue: str, disc: str, refunds: str, cog: str, wo: str, profit: str,
             margin: str | None) -> Row:
        return {"keys_sold": sold, "keys_written_off": off, "revenue": D(revenue), "discounts": D(disc),
                "refunds": D(refunds), "cost_of_goods": D(cog), "write_offs": D(wo), "profit": D(profit),
                "margin": None if margin is None else D(margin)}

    expected = {
        # A: 30 over 3 keys, discount 2.00 as 0.68 + 0.66 + 0.66; B's first key: 10. Cost 4 x 6.
        ("2026-03-01", batches["a"]): line(4, 0, "40", "2", "0", "24", "0", "14", "0.3684"),  # 14 / 38
        ("2026-03-01", batches["b"]): line(1, 0, "10", "0", "0", "7", "0", "3", "0.3"),
        # A's refund 10 (3.34 + 3.33 + 3.33) + B's first key 10; two revoked keys at 6.
        ("2026-03-02", batches["a"]): line(0, 2, "0", "0", "20", "-12", "12", "-20", "1"),
        # B's second key refunded 10 and revoked (7); two keys voided (14).
        ("2026-03-02", batches["b"]): line(0, 3, "0", "0", "10", "-7", "21", "-24", "2.4"),
    }
    assert set(rows) == set(expected)
    for key, figures in expected.items():
        row = rows[key]
        assert (row["sku"], row["currency"]) == ("GAME", "EUR")
        assert row["supplier"] == ("acme" if key[1] == batches["a"] else "beta")
        assert {k: row[k] for k in figures} == figures, key
    # Each key's cost counted once: all 7 keys are sold-and-kept, revoked or voided; 3 kept.
    assert sum((r["cost_of_goods"] for r in rows.values()), D(0)) == D(12)  # A's two kept keys at 6
    assert sum((r["write_offs"] for r in rows.values()), D(0)) == D(33)


def test_apportioning_is_exact_per_order(ledger: Ledger, clock: FakeClock) -> None:
    c = ledger.context
    ledger.define_product(c(), sku="ODD", name="Odd", face_value="10", currency="USD", price="3.33")
    ledger.create_coupon(c(), code="TEN", kind="percent", value="10", currency="USD", starts_at=OPEN, ends_at=CLOSE)
    batch = ledger.import_keys(c(), sku="ODD", supplier="acme", unit_cost="1.00", codes=codes("O", 7))
    order = ledger.place_order(c(), customer_id="u", sku="ODD", quantity=7, coupon_code="TEN")
    ledger.capture_payment(c(), order.order_id, payment_reference="p", amount=str(order.amount_due), provider="x")
    ledger.refund_order(c(), order.order_id, amount="1.00", reason="goodwill", key_ids=[])
    (row,) = run(ledger)["profit"]["daily"]
    assert row["batch_id"] == str(batch.batch_id)
    assert (row["revenue"], row["discounts"], row["refunds"]) == (D("23.31"), D("2.33"), D("1.00"))


# ---- recharges, platform grants and digital access (tests/recharge.py's history) ----


def test_recharges_are_sales_once_delivered_and_refunds_only_after_delivery(ledger: Ledger,
                                                                              clock: FakeClock) -> None:
    recharge_history(ledger, clock)
    rows = keyed(run(ledger)["sales"]["daily"], "day", "sku")
    figures = {key: (r["orders"], r["units"], r["gross"], r["refunds"], r["net"], r["returned_payments"])
               for key, r in rows.items()}
    assert figures == {
        # delivered (10.50) and reversed (10.50, delivered that day); gave_up's refund never was a sale,
        # pending is not delivered yet.
        ("2026-03-01", "TOPUP-10"): (2, 2, D("21"), D(0), D("21"), D("10.5")),
        ("2026-03-01", "TOPUP-20"): (1, 1, D("21"), D(0), D("21"), D(0)),  # delivered again on day 2: one sale
        ("2026-03-01", "COURSE"): (1, 1, D("20"), D(0), D("20"), D(0)),  # access granted at payment
        ("2026-03-02", "TOPUP-10"): (0, 0, D(0), D("10.5"), D("-10.5"), D(0)),  # reversed, then refunded
    }


def test_recharge_profit_is_per_supplier_at_what_it_charged(ledger: Ledger, clock: FakeClock) -> None:
    recharge_history(ledger, clock)
    rows = keyed(run(ledger)["profit"]["daily"], "day", "sku", "supplier", "batch_id")
    figures = {key: (r["keys_sold"], r["revenue"], r["refunds"], r["cost_of_goods"], r["profit"])
               for key, r in rows.items()}
    assert figures == {
        # charged 9.55 (delivered) + 9.60 (reversed), both by cheap
        ("2026-03-01", "TOPUP-10", "cheap", ""): (2, D("21"), D(0), D("19.15"), D("1.85")),
        # the reversal gives cheap's 9.60 back; the refund is of the sale cheap made
        ("2026-03-02", "TOPUP-10", "cheap", ""): (0, D(0), D("10.5"), D("-9.6"), D("-0.9")),
        # sold once, through cheap; reversed by cheap, delivered again by dear, which costs 19.60
        ("2026-03-01", "TOPUP-20", "cheap", ""): (1, D("21"), D(0), D("19.2"), D("1.8")),
        ("2026-03-02", "TOPUP-20", "cheap", ""): (0, D(0), D(0), D("-19.2"), D("19.2")),
        ("2026-03-02", "TOPUP-20", "dear", ""): (0, D(0), D(0), D("19.6"), D("-19.6")),
        ("2026-03-01", "COURSE", "", ""): (1, D("20"), D(0), D(0), D("20")),  # no supplier, no cost
    }
    assert sum((r["profit"] for r in rows.values()), D(0)) == D("22.35")  # 62 - 10.50 - (9.55 + 19.60)


def test_facts_know_each_recharge_status_supplier_and_cost(ledger: Ledger, clock: FakeClock) -> None:
    orders = recharge_history(ledger, clock)
    store = ViewStore(ledger.settings)
    facts, *_ = projections = build_projections(store, ["sales"])
    Runner(ledger.app, store, projections).catch_up()
    by_id = {r["order_id"]: r for r in facts.dump()["orders"]}
    fulfilments = {r["order_id"]: r for r in facts.dump()["fulfilments"]}
    seen = {name: (by_id[str(order_id)]["status"], fulfilments[str(order_id)]["sale_supplier"],
                   fulfilments[str(order_id)]["supplier"], fulfilments[str(order_id)]["cost"])
            for name, order_id in orders.items()}
    assert seen == {
        "delivered": ("delivered", "cheap", "cheap", D("9.55")),
        "gave_up": ("refunded", None, None, D(0)),
        "reversed": ("refunded", "cheap", "cheap", D(0)),
        "pending": ("fulfilling", None, None, D(0)),
        "refulfilled": ("delivered", "cheap", "dear", D("19.6")),
        "granted": ("delivered", None, None, D(0)),
    }
    assert {(r["name"], r["currency"]) for r in facts.dump()["suppliers"]} == {("cheap", "USD"), ("dear", "USD")}
    store.close()


def test_rebuilding_one_read_model_over_live_facts_gives_the_same_recharge_figures(ledger: Ledger,
                                                                                  clock: FakeClock) -> None:
    """A rebuild of sales or profit alone looks orders up in facts that already stand at the head
    (a recharge delivered twice, refunds before and after delivery): the same rows."""
    recharge_history(ledger, clock)
    store = ViewStore(ledger.settings)
    live = build_projections(store, ["sales", "profit"])
    Runner(ledger.app, store, live).catch_up()
    before = {p.name: p.dump() for p in live[1:]}
    rebuild(ledger.app, store, ["sales", "profit"])
    after = {p.name: p.dump() for p in build_projections(store, ["sales", "profit"])[1:]}
    assert after == before
    store.close()


# ---- a larger scripted history and a naive reference fold ----


def big_history(ledger: Ledger, clock: FakeClock, seed: int = 7, steps: int = 160) -> None:
    """Several SKUs, channels, coupons, a flash sale, expiries, late and duplicate payments,
    partial and full refunds, redemptions and recalls over a few days; deterministic."""
    clock.now = START
    c = ledger.context
    rnd = random.Random(seed)
    ledger.define_product(c(), sku="GAME", name="Game", face_value="10", currency="EUR", price="10.00",
                          channel_prices={"web": "11.50", "app": "9.99"})
    ledger.define_product(c(), sku="GIFT", name="Gift", face_value="25", currency="EUR", price="25.00")
    ledger.create_coupon(c(), code="SAVE2", kind="amount", value="2.00", currency="EUR", starts_at=OPEN, ends_at=CLOSE)
    ledger.create_coupon(c(), code="PCT15", kind="percent", value="15", currency="EUR", starts_at=OPEN, ends_at=CLOSE)
    ledger.create_flash_sale(c(), sale_id="spring", sku="GIFT", starts_at=START + timedelta(hours=3),
                             ends_at=START + timedelta(days=2), price="19.99", total_quantity=10)
    batches: list[UUID] = []
    serial = 0

    def restock(sku: str) -> None:
        nonlocal serial
        serial += 1
        cost = f"{rnd.randint(300, 900) / 100:.2f}"
        batch = ledger.import_keys(c(), sku=sku, supplier=f"sup{serial}", unit_cost=cost,
                                   codes=codes(f"{sku}{serial}", rnd.randint(3, 8)))
        batches.append(batch.batch_id)

    for sku in ("GAME", "GIFT", "GAME"):
        restock(sku)
    open_orders: list[tuple[UUID, Decimal]] = []
    paid: list[UUID] = []
    for step in range(steps):
        action = rnd.choice(["place"] * 5 + ["pay"] * 5 + ["refund", "refund", "redeem", "cancel", "clock",
                                                           "restock", "recall", "dup"])
        try:
            if action == "place":
                placed = ledger.place_order(
                    c(), customer_id=f"cust{rnd.randint(1, 12)}", sku=rnd.choice(["GAME", "GIFT"]),
                    quantity=rnd.randint(1, 3), channel=rnd.choice(["default", "web", "app"]),
                    coupon_code=rnd.choice([None, None, "SAVE2", "PCT15"]),
                )
                open_orders.append((placed.order_id, placed.amount_due))
            elif action in ("pay", "cancel") and open_orders:
                order_id, due = open_orders.pop(rnd.randrange(len(open_orders)))
                if action == "cancel":
                    ledger.cancel_order(c(), order_id)
                    if rnd.random() < 0.5:
                        open_orders.append((order_id, due))  # a payment after cancelling: refunded
                    continue
                result = ledger.capture_payment(c(), order_id, payment_reference=f"pay{step}", amount=str(due),
                                                provider="psp")
                if result.outcome == "delivered":
                    paid.append(order_id)
            elif action == "dup" and paid:
                order_id = rnd.choice(paid)
                due = ledger.app.repository.get(order_id).amount_due
                ledger.capture_payment(c(), order_id, payment_reference=f"dup{step}", amount=str(due),
                                       provider="psp")
            elif action == "refund" and paid:
                order_id = rnd.choice(paid)
                order: Any = ledger.app.repository.get(order_id)
                if order.refundable <= 0:
                    continue
                if rnd.random() < 0.5:
                    ledger.refund_order(c(), order_id, amount=str(order.refundable), reason="full",
                                        override_redeemed=True)
                else:
                    amount = max(D("0.01"), (order.refundable / 3).quantize(D("0.01")))
                    live = [k for k in order.delivered if k not in order.revoked]
                    ledger.refund_order(c(), order_id, amount=str(amount), reason="partial",
                                        key_ids=live[:1] if rnd.random() < 0.5 else [], override_redeemed=True)
            elif action == "redeem" and paid:
                keys = [k for k in ledger.reads.order_keys(rnd.choice(paid)) if k.status == "delivered"]
                if keys:
                    ledger.redeem(c(), code=keys[0].code, account_id="acct")
            elif action == "clock":
                clock.advance(hours=rnd.choice([1, 7, 20]))
                ledger.expire_due(c())
            elif action == "restock":
                restock(rnd.choice(["GAME", "GIFT"]))
            elif action == "recall" and len(batches) > 3:
                ledger.recall_batch(c(), batches.pop(rnd.randrange(len(batches))), "recall")
        except DomainError:
            pass


def reference(ledger: Ledger) -> Dump:
    """A naive fold written apart from the projections: every event, in log order."""
    app = ledger.app
    orders: dict[str, Any] = {}
    delivered: dict[str, list[dict[str, Any]]] = {}
    keys: dict[str, Any] = {}
    currencies: dict[str, str] = {}
    sales: dict[tuple[str, ...], dict[str, Any]] = defaultdict(lambda: defaultdict(lambda: D(0)))
    profit: dict[tuple[str, ...], dict[str, Any]] = defaultdict(lambda: defaultdict(lambda: D(0)))

    def cents_split(total: Decimal, n: int) -> list[Decimal]:
        cents = int(total * 100)
        each = cents // n
        return [D(cents - each * (n - 1)) / 100] + [D(each) / 100] * (n - 1)

    def promo(o: Any) -> str:
        if o.coupon_code and o.flash_sale_id:
            return f"{o.coupon_code}+flash:{o.flash_sale_id}"
        return o.coupon_code or (f"flash:{o.flash_sale_id}" if o.flash_sale_id else "")

    for n in app.recorder.select_notifications(1, 100000):
        e: Any = app.mapper.to_domain_event(n)
        kind = type(e).__qualname__
        day = e.timestamp.astimezone(UTC).date().isoformat()
        oid = str(e.originator_id)
        if kind == "Product.Defined":
            currencies[e.sku] = e.currency
        elif kind == "Order.Placed":
            orders[oid] = e
        elif kind == "Key.Registered":
            keys[oid] = e
        elif kind == "Order.KeysDelivered":
            o = orders[oid]
            s = sales[(day, o.sku, o.channel, promo(o))]
            s["currency"] = o.currency
            s["orders"] += 1
            s["units"] += len(e.keys)
            s["gross"] += o.subtotal
            s["discounts"] += o.discount
            delivered[oid] = [{"key_id": str(k["key_id"]), "batch": str(k["batch_id"]), "supplier": k["supplier"],
                               "cost": D(str(k["unit_cost"]))} for k in e.keys]
            for k, rev, disc in zip(delivered[oid], cents_split(o.subtotal, len(e.keys)),
                                    cents_split(o.discount, len(e.keys)), strict=True):
                p = profit[(day, o.sku, k["supplier"], k["batch"])]
                p["currency"] = o.currency
                p["keys_sold"] += 1
                p["revenue"] += rev
                p["discounts"] += disc
                p["cost_of_goods"] += k["cost"]
        elif kind == "Order.Refunded":
            o = orders[oid]
            s = sales[(day, o.sku, o.channel, promo(o))]
            s["currency"] = o.currency
            if e.automatic or oid not in delivered:
                s["returned_payments"] += e.amount
                continue
            s["refunds"] += e.amount
            for k, share in zip(delivered[oid], cents_split(e.amount, len(delivered[oid])), strict=True):
                p = profit[(day, o.sku, k["supplier"], k["batch"])]
                p["currency"] = o.currency
                p["refunds"] += share
        elif kind in ("Key.Revoked", "Key.Voided"):
            reg = keys[oid]
            cost = reg.unit_cost
            if kind == "Key.Revoked":
                cost = next(k["cost"] for k in delivered[str(e.order_id)] if k["key_id"] == oid)
            p = profit[(day, reg.sku, reg.supplier, str(reg.batch_id))]
            p["currency"] = currencies[reg.sku]
            p["keys_written_off"] += 1
            p["write_offs"] += cost
            if kind == "Key.Revoked":
                p["cost_of_goods"] -= cost

    sales_rows = []
    for (day, sku, channel, promotion), s in sales.items():
        row = {"day": day, "sku": sku, "channel": channel, "promotion": promotion, "currency": s["currency"],
               "orders": int(s["orders"]), "units": int(s["units"])}
        for col in ("gross", "discounts", "refunds", "returned_payments"):
            row[col] = s[col]
        row["net"] = s["gross"] - s["discounts"] - s["refunds"]
        sales_rows.append(row)
    profit_rows = []
    for (day, sku, supplier, batch), p in profit.items():
        row = {"day": day, "sku": sku, "supplier": supplier, "batch_id": batch, "currency": p["currency"],
               "keys_sold": int(p["keys_sold"]), "keys_written_off": int(p["keys_written_off"])}
        for col in ("revenue", "discounts", "refunds", "cost_of_goods", "write_offs"):
            row[col] = p[col]
        base = p["revenue"] - p["discounts"] - p["refunds"]
        row["profit"] = base - p["cost_of_goods"] - p["write_offs"]
        row["margin"] = None if base == 0 else (row["profit"] / base).quantize(D("0.0001"), ROUND_HALF_UP)
        profit_rows.append(row)
    return {"sales": {"daily": sales_rows}, "profit": {"daily": profit_rows}}


def comparable(dump: Dump, batch_names: bool = False) -> dict[str, Any]:
    """Rows as sets of sorted items; optionally batch ids replaced by their (unique) supplier."""
    out: dict[str, Any] = {}
    for name, tables in dump.items():
        rows = []
        for row in tables["daily"]:
            r = dict(row)
            if batch_names and "batch_id" in r:
                r["batch_id"] = r["supplier"]
            rows.append(tuple(sorted((k, str(v) if v is None else D(v) if isinstance(v, Decimal) else v)
                                     for k, v in r.items())))
        out[name] = sorted(rows, key=str)
    return out


def test_big_history_matches_the_reference_fold(ledger: Ledger, clock: FakeClock) -> None:
    big_history(ledger, clock)
    dump = run(ledger)
    expected = reference(ledger)
    assert comparable(dump) == comparable(expected)
    # The history exercised what it is meant to.
    sales = dump["sales"]["daily"]
    profit = dump["profit"]["daily"]
    assert len({r["day"] for r in sales}) >= 3
    assert any(r["returned_payments"] for r in sales) and any(r["refunds"] for r in sales)
    assert any(r["promotion"].startswith("flash:") for r in sales)
    assert any(r["promotion"] == "SAVE2" for r in sales) and any(r["promotion"] == "PCT15" for r in sales)
    assert any(r["write_offs"] and not r["keys_sold"] for r in profit)
    topics = [n.topic for n in ledger.app.recorder.select_notifications(1, 100000)]
    assert any(t.endswith("Key.Revoked") for t in topics) and any(t.endswith("Key.Voided") for t in topics)
    # Per-order exactness: profit's revenue and discounts add up to sales' gross and discounts.
    assert sum((r["revenue"] for r in profit), D(0)) == sum((r["gross"] for r in sales), D(0))
    assert sum((r["discounts"] for r in profit), D(0)) == sum((r["discounts"] for r in sales), D(0))
    assert sum((r["refunds"] for r in profit), D(0)) == sum((r["refunds"] for r in sales), D(0))


def test_small_batches_give_the_same_dump(ledger: Ledger, clock: FakeClock, tmp_path: Path) -> None:
    big_history(ledger, clock, steps=100)
    one = run(ledger, f"sqlite:///{tmp_path / 'one.sqlite'}")
    small = run(ledger, f"sqlite:///{tmp_path / 'small.sqlite'}", batch_size=3)
    assert small == one
    assert comparable(one) == comparable(reference(ledger))


def test_postgres_gives_the_same_results(make_ledger: LedgerFactory, clock: FakeClock, pg_url: str) -> None:
    lite = make_ledger()
    big_history(lite, clock, steps=100)
    lite_dump = run(lite)
    pg = make_ledger(pg_url)
    big_history(pg, clock, steps=100)
    pg_dump = run(pg)
    assert comparable(pg_dump) == comparable(reference(pg))
    suppliers = {r["supplier"] for r in lite_dump["profit"]["daily"]}
    assert len(suppliers) > 2
    assert comparable(pg_dump, batch_names=True) == comparable(lite_dump, batch_names=True)


@pytest.mark.postgres
def test_postgres_gives_the_same_recharge_figures(make_ledger: LedgerFactory, clock: FakeClock, pg_url: str) -> None:
    """Sales, profit and the books of recharges, and the facts' statuses, as on SQLite."""
    figures = []
    for url in (None, pg_url):
        clock.now = START
        ledger = make_ledger(url)
        orders = recharge_history(ledger, clock)
        store = ViewStore(ledger.settings)
        projections = build_projections(store, ["sales", "profit", "journal"])
        Runner(ledger.app, store, projections, batch_size=7).catch_up()
        assert store.is_postgres == (url is not None)
        names = {str(order_id): name for name, order_id in orders.items()}
        facts, sales, profit, journal = projections
        figures.append((
            sorted((names[r["order_id"]], r["status"]) for r in facts.dump()["orders"]),
            sales.dump(), profit.dump()["daily"], journal.dump()["balances"],
        ))
        store.close()
    assert figures[0] == figures[1]
