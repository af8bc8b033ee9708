"""`validity_days` for every kind: an unredeemed key, granted access and a platform grant's term
end when they say, as events, found by the sweeper through day books, not through the history."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger import commands as c
from ledger.domain.errors import KeyExpired
from ledger.domain.fulfilment import Grant
from ledger.domain.ids import VALIDITY_CURSOR_ID, grant_id
from ledger.domain.orders import Order
from ledger.domain.supply import Key, KeyStatus, Redeemer
from ledger.domain.validity import ValidityCursor
from ledger.results import AttemptPlan
from ledger.service.ledger import Ledger
from tests.conftest import FakeClock
from tests.helpers import all_events, buy, delivered_codes, pay, place, stocked_product
from tests.service.test_fulfilment import SECRET, answer, paid_recharge, run, start


def sweep(ledger: Ledger) -> int:
    return ledger.expire_validities(ledger.context("sweeper"))


def names(ledger: Ledger, *kinds: type) -> list[str]:
    return [type(e).__qualname__ for e in all_events(ledger) if isinstance(e, kinds)]


def test_an_unredeemed_key_expires_after_its_validity_and_cannot_be_redeemed(
        ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=3, validity_days=30)
    _, first = buy(ledger, "alice")
    _, second = buy(ledger, "bob")
    kept, redeemed = delivered_codes(ledger, first.order_id)[0], delivered_codes(ledger, second.order_id)[0]
    ledger.redeem(ledger.context("storefront"), code=redeemed, account_id="bob")
    clock.advance(days=30, seconds=-1)
    assert sweep(ledger) == 0  # not yet
    clock.advance(seconds=1)
    assert sweep(ledger) == 1  # the redeemed key never expires
    assert ledger.reads.find(Key, first.key_ids[0]).status == KeyStatus.EXPIRED
    assert ledger.reads.find(Key, second.key_ids[0]).status == KeyStatus.REDEEMED
    with pytest.raises(KeyExpired) as refused:
        ledger.redeem(ledger.context("storefront"), code=kept, account_id="alice")
    assert refused.value.code == "key-expired"
    redeemer = ledger.reads.find(Redeemer, Redeemer.open(ledger.context(), "alice").id)
    assert redeemer is not None and redeemer.refused == 1  # recorded like any other refusal
    expired = [e for e in all_events(ledger) if isinstance(e, Key.Expired)]
    assert [(e.originator_id, e.value, e.due) for e in expired] == [(first.key_ids[0], Decimal("10.00"), clock())]
    assert sweep(ledger) == 0  # once


def test_keys_without_validity_never_expire_and_revoked_keys_do_not(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, "FOREVER", keys=1)
    stocked_product(ledger, "GAME-1", keys=1, validity_days=5)
    buy(ledger, sku="FOREVER")
    placed, _ = buy(ledger, sku="GAME-1")
    ledger.refund_order(ledger.context("support"), placed.order_id, reason="asked", amount=placed.amount_due)
    clock.advance(days=400)
    assert sweep(ledger) == 0
    assert names(ledger, Key.Expired) == []


def test_access_ends_at_its_valid_until(ledger: Ledger, clock: FakeClock) -> None:
    run(ledger, c.DefineProduct, sku="COURSE-1", name="Course", kind="digital_access", face_value="20.00",
        currency="USD", price="20.00", validity_days=30)
    placed = place(ledger, sku="COURSE-1")
    assert pay(ledger, placed).outcome == "delivered"
    clock.advance(days=29)
    assert sweep(ledger) == 0
    clock.advance(days=1)
    assert sweep(ledger) == 1
    ended = [e for e in all_events(ledger) if isinstance(e, Order.AccessEnded)]
    assert [e.originator_id for e in ended] == [placed.order_id]
    assert ledger.reads.find(Order, placed.order_id).status == "delivered"  # the sale stands


def _grant_product(ledger: Ledger) -> None:
    run(ledger, c.DefineProduct, sku="VIDEO-1M", name="Video, one month", kind="platform_grant",
        face_value="15.00", currency="USD", price="15.00", validity_days=30)
    run(ledger, c.SetSupplier, name="partner", base_url="http://127.0.0.1:9000", secret=SECRET, currency="USD")
    run(ledger, c.FundSupplier, name="partner", amount="100.00", reference="wire")
    run(ledger, c.SetOffer, sku="VIDEO-1M", supplier="partner", supplier_product="vid-30", cost="12.00")


def _grant_once(ledger: Ledger) -> None:
    placed = paid_recharge(ledger, account="ann@example.com", sku="VIDEO-1M")
    plan = start(ledger, placed)
    assert isinstance(plan, AttemptPlan)
    answer(ledger, plan, "succeeded", charged="12.00")


def test_a_grant_renewed_in_time_does_not_end_until_its_new_term(ledger: Ledger, clock: FakeClock) -> None:
    _grant_product(ledger)
    gid = grant_id("VIDEO-1M", ledger.vault.account_fingerprint("ann@example.com"))
    _grant_once(ledger)
    clock.advance(days=10)
    _grant_once(ledger)  # renewed: now until day 60
    clock.advance(days=25)  # day 35: the first term's end has passed
    assert sweep(ledger) == 0
    clock.advance(days=25)  # day 60
    assert sweep(ledger) == 1
    grant = ledger.reads.find(Grant, gid)
    assert grant is not None and grant.ended
    assert names(ledger, Grant.Ended) == ["Grant.Ended"]
    _grant_once(ledger)  # a renewal after the end starts a new term from now
    clock.advance(days=30)
    assert sweep(ledger) == 1
    assert names(ledger, Grant.Ended) == ["Grant.Ended", "Grant.Ended"]


def test_the_sweep_works_in_bounded_chunks(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=7, validity_days=1)
    for n in range(7):
        buy(ledger, f"c{n}")
    clock.advance(days=2)
    answers = []
    more = True
    while more:
        swept = run(ledger, c.ExpireValidities, limit=3)
        answers.append((swept.ended, swept.more))
        more = swept.more
    assert [a[0] for a in answers] == [3, 3, 1]
    assert len(names(ledger, Key.Expired)) == 7


class _Counting:
    """Counts the aggregates the store is asked for (the writer's cold loads) while a sweep runs."""

    def __init__(self, ledger: Ledger) -> None:
        self.repository = ledger.app.repository
        self.real = self.repository.get
        self.loaded: list[Any] = []

    def __enter__(self) -> _Counting:
        def get(aggregate_id: Any, *args: Any, **kwargs: Any) -> Any:
            self.loaded.append(aggregate_id)
            return self.real(aggregate_id, *args, **kwargs)

        self.repository.get = get
        return self

    def __exit__(self, *exc: object) -> None:
        self.repository.get = self.real


def test_sweeping_cost_does_not_grow_with_history(make_ledger: Any, clock: FakeClock, tmp_path: Path) -> None:
    """The last sweep after two days of sales, and after twelve (each day's keys expired and swept
    already), by a ledger opened cold over the store: the same commands, the same aggregates read."""
    costs = []
    for history in (2, 12):
        url = f"sqlite:///{tmp_path / f'history-{history}.sqlite'}"
        writer = make_ledger(url)
        stocked_product(writer, keys=2 * history + 2, validity_days=1, prefix=f"H{history}")
        for day in range(history):
            buy(writer, f"d{day}-a")
            buy(writer, f"d{day}-b")
            clock.advance(days=2)
            assert sweep(writer) == 2
        buy(writer, "last-a")
        buy(writer, "last-b")
        clock.advance(days=2)
        cold = make_ledger(url)  # nothing in memory: every aggregate the sweep needs is read
        commands: list[Any] = []
        real_execute = cold.execute

        def counted(command: Any, idempotency: Any = None, _real: Any = real_execute,
                    _commands: list[Any] = commands) -> Any:
            _commands.append(command)
            return _real(command, idempotency)

        cold.execute = counted  # type: ignore[method-assign]
        with _Counting(cold) as counting:
            assert sweep(cold) == 2
        costs.append((len(commands), len(counting.loaded)))
        cursor = cold.reads.find(ValidityCursor, VALIDITY_CURSOR_ID)
        assert cursor is not None and cursor.first_day == clock().date()
    assert costs[0] == costs[1], costs
    assert costs[0][1] > 0  # the measure measures: the cold sweep did read


def test_read_models_and_timelines_show_what_ended(ledger: Ledger, clock: FakeClock) -> None:
    from projections.engine.read_side import ReadSide
    from projections.engine.registry import build_projections
    from projections.engine.runner import Runner
    from projections.engine.store import ViewStore
    from projections.models import report_queries, timeline

    stocked_product(ledger, keys=3, validity_days=30)
    _, sold = buy(ledger, "alice", quantity=2)
    run(ledger, c.DefineProduct, sku="COURSE-1", name="Course", kind="digital_access", face_value="20.00",
        currency="USD", price="20.00", validity_days=30)
    access = place(ledger, sku="COURSE-1")
    pay(ledger, access)
    _grant_product(ledger)
    granted = paid_recharge(ledger, account="ann@example.com", sku="VIDEO-1M")
    plan = start(ledger, granted)
    assert isinstance(plan, AttemptPlan)
    answer(ledger, plan, "succeeded", charged="12.00")
    clock.advance(days=31)
    assert sweep(ledger) == 4  # two keys, the access, the grant
    store = ViewStore(ledger.settings)
    try:
        Runner(ledger.app, store, build_projections(store)).catch_up()
        reads = ReadSide(ledger.app, store)
        skus, batches = report_queries.inventory(reads, "GAME-1", batches=True)
        assert (skus[0]["delivered"], skus[0]["expired"], skus[0]["available"]) == (0, 2, 1)
        assert batches is not None and batches[0]["expired"] == 2
        breakage = reads.view("sales").select("breakage")
        assert [(r["day"], r["sku"], r["keys"], Decimal(str(r["value"]))) for r in breakage] == [
            (clock().date().isoformat(), "GAME-1", 2, Decimal("20.00"))]
        key_line = timeline.key(reads, sold.key_ids[0])
        assert key_line is not None and [s.state for s in key_line.life][-1] == "expired"
        access_line = timeline.order(reads, access.order_id)
        assert access_line is not None and access_line.events[-1].name == "Order.AccessEnded"
        grant_line = timeline.order(reads, granted.order_id)
        assert grant_line is not None
        assert [e.name for e in grant_line.events if e.aggregate == "Grant"] == ["Grant.Extended", "Grant.Ended"]
    finally:
        store.close()


def test_keys_expire_in_chunks_on_postgresql(pg_ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(pg_ledger, keys=5, validity_days=1)
    for n in range(5):
        buy(pg_ledger, f"c{n}")
    clock.advance(days=1)
    assert pg_ledger.expire_validities(pg_ledger.context("sweeper"), limit=2) == 5
    assert len(names(pg_ledger, Key.Expired)) == 5
    assert sweep(pg_ledger) == 0
