"""Every event says who asked, in which request chain, from where, and when (by the command's clock)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.errors import OutOfStock
from ledger.service.ledger import Ledger
from tests.conftest import FakeClock
from tests.helpers import all_events, head, stocked_product


def _since(ledger: Ledger, position: int) -> list[Any]:
    """The events written after `position`, in log order."""
    notifications = ledger.app.recorder.select_notifications(position + 1, 10_000)
    return [ledger.app.mapper.to_domain_event(n) for n in notifications]


def _run_everything(ledger: Ledger, clock: FakeClock) -> None:
    """One of each command, with a distinct clock reading each time."""
    stocked_product(ledger, keys=4)
    clock.advance(minutes=1)
    ledger.create_coupon(
        ledger.context("marketing"), code="SAVE", kind="amount", value="1.00", currency="USD",
        starts_at=clock.now, ends_at=clock.now + timedelta(days=1),
    )
    clock.advance(minutes=1)
    placed = ledger.place_order(ledger.context("web", client_ip="10.0.0.1", device_id="dev-1"),
                                customer_id="alice", sku="GAME-1", quantity=2, coupon_code="SAVE")
    clock.advance(minutes=1)
    ledger.capture_payment(ledger.context("psp"), placed.order_id, payment_reference="p-1",
                           amount=placed.amount_due, provider="psp")
    clock.advance(minutes=1)
    first, second = ledger.reads.order_keys(placed.order_id)
    ledger.redeem(ledger.context("alice"), code=first.code, account_id="acct")
    clock.advance(minutes=1)
    ledger.refund_order(ledger.context("support"), placed.order_id, amount="9.00", reason="one key back",
                        key_ids=[second.key_id])
    clock.advance(minutes=1)
    expiring = ledger.place_order(ledger.context("web"), customer_id="bob", sku="GAME-1", quantity=1)
    clock.advance(minutes=30)
    ledger.expire_due(ledger.context("sweeper"))
    clock.advance(minutes=1)
    ledger.cancel_order(ledger.context("web"),
                        ledger.place_order(ledger.context("web"), customer_id="carol", sku="GAME-1",
                                           quantity=1).order_id)
    with pytest.raises(OutOfStock):
        ledger.place_order(ledger.context("web"), customer_id="dave", sku="GAME-1", quantity=5)
    assert ledger.reads.order(expiring.order_id).status == "expired"


def test_every_event_carries_actor_correlation_and_causation(ledger: Ledger, clock: FakeClock) -> None:
    _run_everything(ledger, clock)
    events = all_events(ledger)
    assert len(events) > 30
    kinds = set()
    for event in events:
        assert isinstance(event, LedgerAggregate.Event)
        meta = event.meta
        assert meta["actor"], event
        assert meta["correlation_id"], event
        assert meta["causation_id"], event
        assert set(meta) <= {"actor", "correlation_id", "causation_id", "client_ip", "device_id"}
        kinds.add(type(event).__qualname__)
    for expected in ("Order.Placed", "Order.KeysDelivered", "Order.Refunded", "Order.Expired", "Order.Cancelled",
                     "Order.Rejected", "Key.Registered", "Key.Redeemed", "Key.Revoked", "Stock.Reserved",
                     "Holder.ReservationHeld", "Coupon.Used", "Payment.Recorded", "Batch.Received"):
        assert expected in kinds


def test_one_command_writes_one_correlation_and_its_actor(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2)
    before = head(ledger)
    ctx = ledger.context("web")
    placed = ledger.place_order(ctx, customer_id="alice", sku="GAME-1", quantity=1)
    written = _since(ledger, before)
    assert {type(e).__qualname__ for e in written} >= {"Order.Placed", "Order.KeysReserved", "Stock.Reserved"}
    assert {e.meta["correlation_id"] for e in written} == {ctx.correlation_id}
    assert {e.meta["causation_id"] for e in written} == {ctx.correlation_id}  # a root command causes itself
    assert {e.meta["actor"] for e in written} == {"web"}

    before = head(ledger)
    ledger.capture_payment(ledger.context("psp"), placed.order_id, payment_reference="p", amount="10.00",
                           provider="psp")
    paid = _since(ledger, before)
    assert {e.meta["actor"] for e in paid} == {"psp"}
    assert len({e.meta["correlation_id"] for e in paid}) == 1
    assert paid[0].meta["correlation_id"] != ctx.correlation_id


def test_given_correlation_and_causation_ids_are_kept(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    ctx = ledger.context("web", correlation_id="req-123", causation_id="msg-9")
    ledger.place_order(ctx, customer_id="alice", sku="GAME-1", quantity=1)
    for event in _since(ledger, before):
        assert event.meta["correlation_id"] == "req-123"
        assert event.meta["causation_id"] == "msg-9"


def test_client_ip_and_device_id_are_recorded_when_the_command_had_them(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2)
    before = head(ledger)
    ledger.place_order(ledger.context("web", client_ip="203.0.113.5", device_id="dev-7"), customer_id="alice",
                       sku="GAME-1", quantity=1)
    written = _since(ledger, before)
    assert written
    for event in written:
        assert event.meta["client_ip"] == "203.0.113.5"
        assert event.meta["device_id"] == "dev-7"
    placed = [e for e in written if type(e).__qualname__ == "Order.Placed"]
    assert placed[0].client_ip == "203.0.113.5" and placed[0].device_id == "dev-7"

    before = head(ledger)
    ledger.place_order(ledger.context("web"), customer_id="bob", sku="GAME-1", quantity=1)
    for event in _since(ledger, before):
        assert "client_ip" not in event.meta and "device_id" not in event.meta


def test_event_timestamps_are_the_command_clock(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=2)
    for event in all_events(ledger):
        assert event.timestamp == clock.now

    clock.advance(minutes=7)
    before = head(ledger)
    placed = ledger.place_order(ledger.context("web"), customer_id="alice", sku="GAME-1", quantity=1)
    written = _since(ledger, before)
    assert written and all(e.timestamp == clock.now for e in written)
    assert placed.reserved_until == clock.now + timedelta(seconds=900)

    clock.advance(hours=1, seconds=3)
    before = head(ledger)
    ledger.expire_due(ledger.context("sweeper"))
    written = _since(ledger, before)
    assert written and all(e.timestamp == clock.now for e in written)


def test_timestamp_is_the_context_now_not_the_wall_clock(ledger: Ledger, clock: FakeClock) -> None:
    stocked_product(ledger, keys=1)
    ctx = Context(now=clock.now + timedelta(days=3), actor="replayer")
    before = head(ledger)
    ledger.place_order(ctx, customer_id="alice", sku="GAME-1", quantity=1)
    written = _since(ledger, before)
    assert written and all(e.timestamp == ctx.now for e in written)


def test_every_stored_event_timestamp_matches_a_clock_reading(ledger: Ledger, clock: FakeClock) -> None:
    readings: list[datetime] = []

    def recording() -> datetime:
        readings.append(clock.now)
        return clock.now

    ledger.clock = recording
    _run_everything(ledger, clock)
    assert {e.timestamp for e in all_events(ledger)} <= set(readings)
    assert len({e.timestamp for e in all_events(ledger)}) >= 8


def test_context_requires_an_aware_time(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        Context(now=clock.now.replace(tzinfo=None))


def test_client_ip_and_device_given_to_place_order_reach_the_metadata(ledger: Ledger) -> None:
    admin = ledger.context("admin")
    ledger.define_product(admin, sku="META-1", name="m", face_value="1", currency="USD", price="1.00")
    ledger.import_keys(admin, sku="META-1", supplier="s", unit_cost="0.50", codes=[(1, "META-CODE-1")])
    placed = ledger.place_order(ledger.context("storefront"), customer_id="c", sku="META-1", quantity=1,
                                client_ip="203.0.113.7", device_id="dev-9")
    for event in ledger.app.events.get(placed.order_id):
        assert event.meta["client_ip"] == "203.0.113.7" and event.meta["device_id"] == "dev-9"  # type: ignore[attr-defined]
