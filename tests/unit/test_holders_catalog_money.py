"""Holders, products, the catalogue, answers, contexts and money, each on its own."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from eventsourcing.domain import Snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.answers import Answer, answer_id
from ledger.domain.catalog import DEFAULT_CHANNEL, Catalog, ProductKind
from ledger.domain.context import Context
from ledger.domain.errors import InvalidInput, NotSellable, ProductRetired
from ledger.domain.holders import Holder, HolderKind
from ledger.domain.ids import CATALOG_ID, holder_id
from ledger.domain.money import check_currency, minor_units, parse_amount, quantize
from tests.profiles import examples
from tests.unit.domain import CTX, NOW, D, product

# ---- holders ----


def test_a_holder_counts_unpaid_reservations_and_the_units_it_keeps() -> None:
    holder = Holder.open(CTX, HolderKind.CUSTOMER, "alice")
    assert holder.id == holder_id(HolderKind.CUSTOMER, "alice") != holder_id(HolderKind.DEVICE, "alice")
    paid, lapsed = uuid4(), uuid4()
    holder.hold(CTX, paid, "GAME-1", 2)
    holder.hold(CTX, lapsed, "GAME-1", 1)
    assert holder.unpaid == 2 and holder.units("GAME-1") == 3
    holder.close(CTX, paid, 2, "paid")
    holder.close(CTX, lapsed, 1, "expired")
    assert holder.unpaid == 0 and holder.units("GAME-1") == 2  # bought units stay, lapsed ones go back
    holder.collect_events()
    holder.close(CTX, lapsed, 1, "expired")  # closed already: nothing happens
    assert holder.collect_events() == []
    holder.late_purchase(CTX, lapsed, "GAME-1", 1)  # paid after its reservation lapsed
    assert holder.units("GAME-1") == 3 and holder.units("GAME-2") == 0


# ---- products and the catalogue ----


def test_a_channel_without_its_own_price_pays_the_default() -> None:
    game = product(prices={DEFAULT_CHANNEL: D("10.00"), "wholesale": D("8.00")})
    assert (game.price_for("wholesale"), game.price_for("app")) == (D("8.00"), D("10.00"))
    game.change_price(CTX, "app", D("9.50"))
    assert game.price_for("app") == D("9.50") and game.price_for(DEFAULT_CHANNEL) == D("10.00")


def test_a_retired_or_unstocked_product_is_not_sellable() -> None:
    game = product()
    game.check_sellable()
    game.retire(CTX, "end of line")
    with pytest.raises(ProductRetired):
        game.check_sellable()
    with pytest.raises(ProductRetired, match="already retired"):
        game.retire(CTX, "again")
    with pytest.raises(NotSellable):
        product(ProductKind.DIRECT_RECHARGE).check_sellable()
    assert ProductKind.GIFT_CARD.fulfilled_from_stock and not ProductKind.DIRECT_RECHARGE.fulfilled_from_stock


def test_the_per_customer_limit_bounds_one_order() -> None:
    limited = product(per_customer_limit=2)
    limited.check_quantity(2)
    with pytest.raises(InvalidInput, match="at most 2 per customer"):
        limited.check_quantity(3)
    product().check_quantity(10_000)


def test_a_flash_sale_is_active_inside_its_window_only() -> None:
    game = product()
    game.schedule_flash_sale(CTX, "spring", NOW + timedelta(hours=1), NOW + timedelta(hours=2))
    assert game.active_flash_sale(NOW) is None
    assert game.active_flash_sale(NOW + timedelta(hours=1)) == "spring"
    assert game.active_flash_sale(NOW + timedelta(hours=2)) is None


def test_the_catalogue_lists_what_exists_in_order() -> None:
    catalog = Catalog.open(CTX)
    assert catalog.id == CATALOG_ID
    catalog.list_product(CTX, "GAME-1")
    catalog.list_product(CTX, "GAME-2")
    catalog.list_coupon(CTX, "TAKE5")
    catalog.list_flash_sale(CTX, "spring")
    assert catalog.skus == ["GAME-1", "GAME-2"]
    assert [type(e) for e in catalog.collect_events()][-2:] == [Catalog.CouponListed, Catalog.FlashSaleListed]


def test_a_catalogue_snapshot_from_when_it_listed_coupons_and_flash_sales_still_loads() -> None:
    catalog = Catalog.open(CTX)
    catalog.list_product(CTX, "GAME-1")
    taken = Snapshot.take(catalog)
    assert taken.state["class_version"] == 2 and "coupons" not in taken.state
    state = {k: v for k, v in taken.state.items() if k != "class_version"} | {"coupons": ["TAKE5"],
                                                                               "flash_sales": ["spring"]}
    old = Snapshot(originator_id=taken.originator_id, originator_version=taken.originator_version,
                   timestamp=taken.timestamp, topic=taken.topic, state=state)
    loaded = old.mutate(None)
    assert isinstance(loaded, Catalog) and loaded.skus == ["GAME-1"] and loaded.version == catalog.version
    assert {"coupons", "flash_sales"}.isdisjoint(vars(loaded))


# ---- answers and contexts ----


def test_answers_are_keyed_per_caller() -> None:
    assert answer_id("admin:abc", "k1") == answer_id("admin:abc", "k1")
    assert answer_id("admin:abc", "k1") != answer_id("psp:def", "k1")
    answer = Answer.give(CTX, "admin:abc", "k1", "POST /orders {..}", {"result": {"order_id": "x"}})
    assert answer.id == answer_id("admin:abc", "k1") and answer.outcome == {"result": {"order_id": "x"}}


def test_a_context_needs_an_aware_time_and_names_its_origin() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Context(now=datetime(2026, 3, 1, 12, 0))
    plain = Context(now=NOW, actor="psp")
    assert plain.meta() == {"actor": "psp", "correlation_id": plain.correlation_id,
                            "causation_id": plain.correlation_id}
    traced = Context(now=NOW, correlation_id="c1", causation_id="e9", client_ip="10.0.0.1", device_id="d1")
    assert traced.meta() == {"actor": "system", "correlation_id": "c1", "causation_id": "e9",
                             "client_ip": "10.0.0.1", "device_id": "d1"}
    assert traced.at(NOW + timedelta(minutes=1)).meta() == traced.meta()


# ---- money ----


@pytest.mark.parametrize(("value", "currency", "expected"), [
    ("30", "USD", "30.00"), ("2635.2", "USD", "2635.20"), (" 0.10 ", "EUR", "0.10"), (7, "USD", "7.00"),
    ("1500", "JPY", "1500"), ("1.005", "KWD", "1.005"), ("0", "USD", "0.00"), ("1E+2", "USD", "100.00"),
])
def test_amounts_parse_exactly_to_the_currency_minor_units(value: object, currency: str, expected: str) -> None:
    assert str(parse_amount(value, currency, "amount")) == expected


@pytest.mark.parametrize(("value", "currency", "why"), [
    (1.5, "USD", "not a float"), (True, "USD", "not a float"), ("1.005", "USD", "USD has 2 decimal places"),
    ("1.5", "JPY", "JPY has 0 decimal places"), ("-0.01", "USD", "must not be negative"),
    ("NaN", "USD", "finite"), ("Infinity", "USD", "finite"), ("ten", "USD", "is not a decimal amount"),
    ("", "USD", "is not a decimal amount"), (None, "USD", "is not a decimal amount"),
])
def test_bad_amounts_are_refused_naming_the_field(value: object, currency: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as refused:
        parse_amount(value, currency, "unit_cost")
    assert refused.value.field == "unit_cost"


def test_zero_can_be_refused_and_currencies_are_checked() -> None:
    with pytest.raises(InvalidInput, match="greater than zero"):
        parse_amount("0.00", "USD", "price", allow_zero=False)
    assert check_currency("EUR") == "EUR"
    for bad in ("usd", "US", "EURO", 978):
        with pytest.raises(InvalidInput, match="ISO 4217"):
            check_currency(bad)  # type: ignore[arg-type]
    assert (minor_units("USD"), minor_units("JPY"), minor_units("BHD")) == (2, 0, 3)


def test_quantize_rounds_half_up_away_from_zero() -> None:
    assert [str(quantize(D(v), "USD")) for v in ("0.005", "0.015", "0.0249", "2.675", "-0.005")] == [
        "0.01", "0.02", "0.02", "2.68", "-0.01"]
    assert str(quantize(D("0.5"), "JPY")) == "1" and str(quantize(D("0.0005"), "KWD")) == "0.001"


@settings(max_examples=examples(100), deadline=None)
@given(st.integers(0, 10**12), st.sampled_from(["USD", "JPY", "KWD"]))
def test_any_amount_in_minor_units_parses_to_itself(minor: int, currency: str) -> None:
    places = minor_units(currency)
    text = f"{minor // 10**places}.{minor % 10**places:0{places}d}" if places else str(minor)
    amount = parse_amount(text, currency, "amount")
    assert amount == Decimal(minor).scaleb(-places) and str(amount) == text
    assert sum([amount] * 3, Decimal(0)) == Decimal(3 * minor).scaleb(-places)  # no drift, ever
