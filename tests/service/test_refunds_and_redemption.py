"""Refunds revoke keys for good and never exceed what was paid; each redemption failure is distinct."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledger.domain.errors import (
    AlreadyRedeemed,
    InvalidInput,
    KeyNotDelivered,
    KeyRevoked,
    KeyVoided,
    OutOfStock,
    RedeemedKeyRefund,
    RefundExceedsPaid,
    UnknownCode,
    WrongPlatform,
)
from ledger.domain.ids import redeemer_id
from ledger.domain.orders import Order
from ledger.domain.supply import Key, Redeemer
from ledger.results import OrderChange
from ledger.service.ledger import Ledger
from ledger.storage import event_log
from tests.helpers import buy, delivered_codes, fresh_codes, head, import_batch, place, stocked_product


def assert_only_refusals_recorded(ledger: Ledger, before: int) -> list[str]:
    """A refused redemption changes nothing but its record against the account: the rule that
    refused, never the code (support and risk see code guessing). The rules, in order."""
    written = list(event_log.events(ledger.app, after=before))
    assert written and all(isinstance(e, Redeemer.Opened | Redeemer.Refused) for e in written), written
    codes = {getattr(k, "code_hmac", None) for k in written} - {None}
    assert not codes and all(not hasattr(e, "code") for e in written)
    return [e.rule for e in written if isinstance(e, Redeemer.Refused)]


def _key(ledger: Ledger, key_id: UUID) -> Key:
    key = ledger.app.repository.get(key_id)
    assert isinstance(key, Key)
    return key


def _refunds(ledger: Ledger, order_id: UUID) -> list[Order.Refunded]:
    return [e for e in ledger.app.events.get(order_id) if isinstance(e, Order.Refunded)]


def _refund(ledger: Ledger, order_id: UUID, amount: object, **kwargs: Any) -> OrderChange:
    return ledger.refund_order(ledger.context("support"), order_id, amount=amount, reason="customer_request",
                               **kwargs)


# ---- refunds ----


def test_full_refund_revokes_keys_and_they_never_return_to_stock(ledger: Ledger) -> None:
    codes = stocked_product(ledger, keys=3)
    placed, paid = buy(ledger, quantity=2)
    sold = delivered_codes(ledger, placed.order_id)
    available = list(ledger.reads.stock("GAME-1").available)

    change = _refund(ledger, placed.order_id, "20.00")
    assert change.status == "refunded"
    assert sorted(change.revoked_key_ids) == sorted(paid.key_ids)
    order = ledger.reads.order(placed.order_id)
    assert order.status == "refunded"
    assert order.amount_refunded == order.amount_paid == Decimal("20.00")
    assert sorted(order.revoked) == sorted(paid.key_ids)
    assert all(_key(ledger, k).status == "revoked" for k in paid.key_ids)
    stock = ledger.reads.stock("GAME-1")
    assert stock.available == available
    assert set(paid.key_ids).isdisjoint(stock.available)

    # The remaining key sells; after that, nothing (in particular no revoked key) is left to sell.
    other, other_paid = buy(ledger, customer="bob")
    assert set(other_paid.key_ids).isdisjoint(paid.key_ids)
    assert set(delivered_codes(ledger, other.order_id)).isdisjoint(sold)
    assert set(sold) | set(delivered_codes(ledger, other.order_id)) == set(codes)
    with pytest.raises(OutOfStock):
        place(ledger, customer="carol")
    for code in sold:
        with pytest.raises(KeyRevoked):
            ledger.redeem(ledger.context("alice"), code=code, account_id="acct-1")


def test_partial_refund_keeps_the_keys(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2)
    placed, paid = buy(ledger, quantity=2)
    change = _refund(ledger, placed.order_id, "5.00")
    assert change.revoked_key_ids == []
    order = ledger.reads.order(placed.order_id)
    assert order.status == "delivered"
    assert order.amount_refunded == Decimal("5.00") and order.refundable == Decimal("15.00")
    assert all(_key(ledger, k).status == "delivered" for k in paid.key_ids)
    # Refunding the rest revokes every key still held.
    change = _refund(ledger, placed.order_id, "15.00")
    assert sorted(change.revoked_key_ids) == sorted(paid.key_ids)
    assert ledger.reads.order(placed.order_id).status == "refunded"


def test_partial_refund_of_one_named_key(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2)
    placed, paid = buy(ledger, quantity=2)
    change = _refund(ledger, placed.order_id, "10.00", key_ids=[paid.key_ids[0]])
    assert change.revoked_key_ids == [paid.key_ids[0]]
    assert _key(ledger, paid.key_ids[0]).status == "revoked"
    assert _key(ledger, paid.key_ids[1]).status == "delivered"
    assert ledger.reads.order(placed.order_id).status == "delivered"


def test_refunds_never_exceed_what_was_paid(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed, _ = buy(ledger)
    before = head(ledger)
    with pytest.raises(RefundExceedsPaid) as caught:
        _refund(ledger, placed.order_id, "10.01")
    assert caught.value.details["refundable"] == "10.00"
    assert head(ledger) == before
    _refund(ledger, placed.order_id, "4.00")
    before = head(ledger)
    with pytest.raises(RefundExceedsPaid):
        _refund(ledger, placed.order_id, "6.01")
    assert head(ledger) == before
    _refund(ledger, placed.order_id, "6.00")
    with pytest.raises(RefundExceedsPaid):
        _refund(ledger, placed.order_id, "0.01")
    order = ledger.reads.order(placed.order_id)
    assert order.amount_refunded == order.amount_paid == Decimal("10.00")
    assert sum(r.amount for r in _refunds(ledger, placed.order_id)) == Decimal("10.00")


def test_an_unpaid_order_cannot_be_refunded(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed = place(ledger)
    before = head(ledger)
    with pytest.raises(RefundExceedsPaid):
        _refund(ledger, placed.order_id, "10.00")
    assert head(ledger) == before


@pytest.mark.parametrize("amount", ["0", "-1.00", 1.5, "1.001"])
def test_refund_amount_must_be_a_positive_exact_amount(ledger: Ledger, amount: object) -> None:
    stocked_product(ledger, keys=1)
    placed, _ = buy(ledger)
    before = head(ledger)
    with pytest.raises(InvalidInput) as caught:
        _refund(ledger, placed.order_id, amount)
    assert caught.value.field == "amount"
    assert head(ledger) == before


def test_refunding_a_redeemed_key_needs_an_explicit_override(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed, paid = buy(ledger)
    [code] = delivered_codes(ledger, placed.order_id)
    ledger.redeem(ledger.context("alice"), code=code, account_id="acct-1")

    before = head(ledger)
    with pytest.raises(RedeemedKeyRefund) as caught:
        _refund(ledger, placed.order_id, "10.00")
    assert caught.value.code == "redeemed-key-refund-needs-override"
    assert head(ledger) == before
    order = ledger.reads.order(placed.order_id)
    assert order.amount_refunded == 0 and order.revoked == [] and order.status == "delivered"
    assert _key(ledger, paid.key_ids[0]).status == "redeemed"

    change = _refund(ledger, placed.order_id, "10.00", override_redeemed=True)
    assert change.revoked_key_ids == paid.key_ids
    [refunded] = _refunds(ledger, placed.order_id)
    assert refunded.override_redeemed is True and refunded.automatic is False
    revoked = [e for e in ledger.app.events.get(paid.key_ids[0]) if isinstance(e, Key.Revoked)]
    assert len(revoked) == 1 and revoked[0].was_redeemed is True and revoked[0].override is True
    assert _key(ledger, paid.key_ids[0]).status == "revoked"


def test_money_only_refund_of_a_redeemed_key_needs_no_override(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed, _ = buy(ledger)
    [code] = delivered_codes(ledger, placed.order_id)
    ledger.redeem(ledger.context("alice"), code=code, account_id="acct-1")
    change = _refund(ledger, placed.order_id, "2.00")
    assert change.revoked_key_ids == []
    [refunded] = _refunds(ledger, placed.order_id)
    assert refunded.override_redeemed is False


# ---- redemption ----


def test_a_delivered_key_is_redeemed_exactly_once(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed, paid = buy(ledger)
    [code] = delivered_codes(ledger, placed.order_id)
    redeemed = ledger.redeem(ledger.context("alice"), code=f"  {code} ", account_id="acct-1")
    assert redeemed.key_id == paid.key_ids[0] and redeemed.sku == "GAME-1"
    key = _key(ledger, paid.key_ids[0])
    assert key.status == "redeemed" and key.redeemed_by == "acct-1"

    before = head(ledger)
    for account in ("acct-1", "acct-2"):
        with pytest.raises(AlreadyRedeemed) as caught:
            ledger.redeem(ledger.context("mallory"), code=code, account_id=account)
        assert caught.value.code == "already-redeemed"
    assert_only_refusals_recorded(ledger, before)
    redemptions = [e for e in ledger.app.events.get(paid.key_ids[0]) if isinstance(e, Key.Redeemed)]
    assert len(redemptions) == 1


@pytest.mark.parametrize("code", ["NEVER-IMPORTED-1234", "", "has space", "x" * 300])
def test_unknown_code(ledger: Ledger, code: str) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    with pytest.raises(UnknownCode) as caught:
        ledger.redeem(ledger.context("alice"), code=code, account_id="acct-1")
    assert caught.value.code == "unknown-code"
    assert_only_refusals_recorded(ledger, before)


def test_key_in_stock_or_only_reserved_is_not_delivered(ledger: Ledger) -> None:
    codes = stocked_product(ledger, keys=2)
    with pytest.raises(KeyNotDelivered):
        ledger.redeem(ledger.context("alice"), code=codes[1], account_id="acct-1")
    placed = place(ledger)
    [reserved_code] = [c for c in codes if _key(ledger, placed.key_ids[0]).code_hmac == ledger.vault.fingerprint(c)]
    before = head(ledger)
    with pytest.raises(KeyNotDelivered) as caught:
        ledger.redeem(ledger.context("alice"), code=reserved_code, account_id="acct-1")
    assert caught.value.code == "key-not-delivered"
    assert_only_refusals_recorded(ledger, before)


def test_revoked_key_cannot_be_redeemed(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed, _ = buy(ledger)
    [code] = delivered_codes(ledger, placed.order_id)
    _refund(ledger, placed.order_id, "10.00")
    before = head(ledger)
    with pytest.raises(KeyRevoked) as caught:
        ledger.redeem(ledger.context("alice"), code=code, account_id="acct-1")
    assert caught.value.code == "key-revoked"
    assert_only_refusals_recorded(ledger, before)


def test_voided_key_cannot_be_redeemed(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    codes = fresh_codes(2, "RECALL")
    batch = import_batch(ledger, "GAME-1", codes)
    ledger.recall_batch(ledger.context("admin"), batch.batch_id, reason="leaked")
    before = head(ledger)
    for code in codes:
        with pytest.raises(KeyVoided) as caught:
            ledger.redeem(ledger.context("alice"), code=code, account_id="acct-1")
        assert caught.value.code == "key-voided"
    assert_only_refusals_recorded(ledger, before)


def test_wrong_platform(ledger: Ledger) -> None:
    stocked_product(ledger, keys=2, platform="steam")
    placed, paid = buy(ledger, quantity=2)
    first, second = delivered_codes(ledger, placed.order_id)
    before = head(ledger)
    with pytest.raises(WrongPlatform) as caught:
        ledger.redeem(ledger.context("alice"), code=first, account_id="acct-1", platform="xbox")
    assert caught.value.details["platform"] == "steam"
    assert_only_refusals_recorded(ledger, before)
    assert _key(ledger, paid.key_ids[0]).status == "delivered"
    ledger.redeem(ledger.context("alice"), code=first, account_id="acct-1", platform="steam")
    ledger.redeem(ledger.context("alice"), code=second, account_id="acct-1")
    redeemed = [e for e in ledger.app.events.get(paid.key_ids[1]) if isinstance(e, Key.Redeemed)]
    assert redeemed[0].platform == "steam"


def test_redemption_errors_are_distinct() -> None:
    classes = [UnknownCode, KeyNotDelivered, AlreadyRedeemed, KeyRevoked, KeyVoided, WrongPlatform]
    assert len({c.code for c in classes}) == len(classes)
    for a in classes:
        for b in classes:
            assert a is b or not issubclass(a, b)


def test_code_guessing_leaves_a_record_of_each_refusal_against_the_account(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    for guess in ("GUESS-0001-AAAA", "GUESS-0002-AAAA", "GUESS-0003-AAAA"):
        with pytest.raises(UnknownCode):
            ledger.redeem(ledger.context("mallory"), code=guess, account_id="acct-mallory")
    assert assert_only_refusals_recorded(ledger, before) == ["unknown-code"] * 3
    redeemer = ledger.reads.find(Redeemer, redeemer_id("acct-mallory"))
    assert redeemer is not None and redeemer.refused == 3
    before = head(ledger)
    with pytest.raises(InvalidInput):  # bad input is not an attempt: nothing is written
        ledger.redeem(ledger.context("mallory"), code="GUESS-0004-AAAA", account_id="")
    assert head(ledger) == before
