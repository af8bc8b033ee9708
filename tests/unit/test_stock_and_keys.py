"""Stock and Key on their own: no oversell, a key delivered once, a refunded key never resold."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.errors import (
    AlreadyRedeemed,
    BatchAlreadyRecalled,
    InvalidOrderState,
    KeyNotDelivered,
    KeyRevoked,
    KeyVoided,
    OutOfStock,
    RedeemedKeyRefund,
    WrongPlatform,
)
from ledger.domain.supply import Batch, Key, KeyStatus
from tests.profiles import examples
from tests.unit.domain import CTX, NOW, D, key, later, pending, stock

UNTIL = NOW + timedelta(minutes=15)


def test_no_oversell_a_reservation_beyond_what_is_available_is_refused_and_changes_nothing() -> None:
    pool, batches = stock(2, 1)
    held = pool.reserve(CTX, uuid4(), 2, UNTIL, batches.__getitem__)
    pending(pool)
    with pytest.raises(OutOfStock) as refused:
        pool.reserve(CTX, uuid4(), 2, UNTIL, batches.__getitem__)
    assert refused.value.details == {"sku": "GAME-1", "available": 1}
    assert pending(pool) == [] and pool.available_count == 1 and pool.reserved_count == 2
    assert held == next(iter(batches.values()))


def test_one_order_holds_one_reservation_and_delivery_needs_one() -> None:
    pool, batches = stock(3)
    order_id = uuid4()
    pool.reserve(CTX, order_id, 1, UNTIL, batches.__getitem__)
    with pytest.raises(InvalidOrderState, match="already holds"):
        pool.reserve(CTX, order_id, 1, UNTIL, batches.__getitem__)
    with pytest.raises(InvalidOrderState, match="holds no reservation"):
        pool.deliver(CTX, uuid4())


def test_delivered_keys_leave_stock_for_good_released_ones_come_back_first() -> None:
    pool, batches = stock(4)
    keys = next(iter(batches.values()))
    paid, unpaid = uuid4(), uuid4()
    assert pool.reserve(CTX, paid, 2, UNTIL, batches.__getitem__) == keys[:2]
    assert pool.reserve(CTX, unpaid, 1, UNTIL, batches.__getitem__) == keys[2:3]
    assert pool.deliver(CTX, paid) == keys[:2]
    assert pool.release(CTX, paid, "late") == []  # nothing to give back from a delivered order
    assert pool.release(CTX, unpaid, "expired") == keys[2:3]
    assert pool.available_keys(batches.__getitem__) == [keys[2], keys[3]]
    assert pool.delivered == 2 and pool.reserved_count == 0


def test_only_reservations_past_their_deadline_are_due() -> None:
    pool, batches = stock(3)
    early, late = uuid4(), uuid4()
    pool.reserve(CTX, early, 1, NOW + timedelta(minutes=5), batches.__getitem__)
    pool.reserve(CTX, late, 1, NOW + timedelta(minutes=15), batches.__getitem__)
    assert pool.expired_reservations(NOW + timedelta(minutes=4)) == []
    assert pool.expired_reservations(NOW + timedelta(minutes=5)) == [early]  # due at the deadline itself
    assert set(pool.expired_reservations(NOW + timedelta(hours=1))) == {early, late}


Step = tuple[str, int, int]


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["reserve", "release", "deliver", "replenish", "void"]),
                          st.integers(0, 5), st.integers(1, 4)), max_size=30))
def test_any_sequence_keeps_every_key_in_exactly_one_place(steps: list[Step]) -> None:
    """Available, reserved, delivered and voided keys partition what came in; no key is reserved
    twice or handed out after delivery; a refusal for want of stock comes only when short."""
    pool, batches = stock(3)
    orders: list[UUID] = []
    delivered: set[UUID] = set()
    voided: set[UUID] = set()
    for action, which, n in steps:
        if action == "reserve":
            orders.append(uuid4())
            before = pool.available_count
            try:
                got = pool.reserve(CTX, orders[-1], n, UNTIL, batches.__getitem__)
            except OutOfStock:
                assert before < n
                continue
            assert len(got) == n == len(set(got)) and not set(got) & (delivered | voided)
        elif action == "replenish":
            batch_id, new = uuid4(), [uuid4() for _ in range(n)]
            batches[batch_id] = new
            pool.replenish(CTX, batch_id, new)
        elif action == "void":
            batch_id = list(batches)[which % len(batches)]
            voided.update(pool.void(CTX, batch_id, batches[batch_id], "recall"))
        elif orders:
            order_id = orders[which % len(orders)]
            if action == "release":
                pool.release(CTX, order_id, "expired")
            elif pool.reserved_keys(order_id):
                delivered.update(pool.deliver(CTX, order_id))
        available = pool.available_keys(batches.__getitem__)
        reserved = [k for r in pool.reservations.values() for k in r["keys"]]
        everything = [k for keys in batches.values() for k in keys]
        assert sorted(available + reserved + list(delivered) + list(voided)) == sorted(everything)
        assert len(available) == pool.available_count and pool.delivered == len(delivered)
        assert pool.voided == len(voided)


def test_a_key_is_delivered_once_ever() -> None:
    card = key()
    first, second = uuid4(), uuid4()
    card.deliver(CTX, first)
    with pytest.raises(InvalidOrderState, match="cannot be delivered"):
        card.deliver(CTX, second)
    assert card.order_id == first and card.status == KeyStatus.DELIVERED
    delivery = Key.delivery(CTX, card.id, second)  # the writer's blind delivery: only as the key's second event
    assert delivery.originator_version == 2 and delivery.order_id == second


def test_a_refunded_key_is_never_resold_redeemed_or_voided() -> None:
    card = key()
    order_id = uuid4()
    card.deliver(CTX, order_id)
    card.revoke(later(days=1), order_id, "refund", override=False)
    assert card.status == KeyStatus.REVOKED
    with pytest.raises(InvalidOrderState):
        card.deliver(CTX, uuid4())
    with pytest.raises(KeyRevoked):
        card.redeem(CTX, "acct", None)
    with pytest.raises(InvalidOrderState):
        card.void(CTX, "recall")
    with pytest.raises(InvalidOrderState):
        card.revoke(CTX, order_id, "again", override=True)


def test_only_the_order_a_key_went_to_can_revoke_it_and_a_redeemed_one_needs_an_override() -> None:
    card = key()
    order_id = uuid4()
    with pytest.raises(InvalidOrderState):
        card.revoke(CTX, order_id, "not sold yet", override=True)
    card.deliver(CTX, order_id)
    with pytest.raises(InvalidOrderState):
        card.revoke(CTX, uuid4(), "someone else's", override=True)
    card.redeem(CTX, "acct-1", None)
    with pytest.raises(RedeemedKeyRefund):
        card.revoke(CTX, order_id, "refund", override=False)
    card.revoke(CTX, order_id, "refund", override=True)
    revoked = card.collect_events()[-1]
    assert isinstance(revoked, Key.Revoked) and revoked.was_redeemed and revoked.override


def test_redemption_follows_the_key_life() -> None:
    card = key(platform="steam")
    with pytest.raises(KeyNotDelivered):
        card.redeem(CTX, "acct", "steam")
    card.deliver(CTX, uuid4())
    with pytest.raises(WrongPlatform) as wrong:
        card.redeem(CTX, "acct", "xbox")
    assert wrong.value.details == {"platform": "steam"}
    card.redeem(CTX, "acct", None)  # no platform named: the key's own
    redeemed = card.collect_events()[-1]
    assert isinstance(redeemed, Key.Redeemed) and redeemed.platform == "steam" and card.redeemed_by == "acct"
    with pytest.raises(AlreadyRedeemed):
        card.redeem(CTX, "acct-2", "steam")
    voided = key()
    voided.void(CTX, "recall")
    with pytest.raises(KeyVoided):
        voided.redeem(CTX, "acct", None)


def test_a_batch_is_recalled_once_and_keeps_its_cost_exactly() -> None:
    keys = [uuid4(), uuid4()]
    batch = Batch.receive(CTX, uuid4(), "GAME-1", "acme", D("4.125"), "KWD", keys)
    assert batch.unit_cost == D("4.125") and batch.key_ids == keys
    batch.recall(CTX, "leaked", keys[:1])
    with pytest.raises(BatchAlreadyRecalled):
        batch.recall(CTX, "again", [])
