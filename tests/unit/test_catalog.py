"""Products and the catalogue on their own: prices per channel, what is sellable, limits, flash
sale windows, what the catalogue lists."""

from __future__ import annotations

from datetime import timedelta

import pytest
from eventsourcing.domain import Snapshot

from ledger.domain.catalog import DEFAULT_CHANNEL, Catalog, ProductKind
from ledger.domain.errors import InvalidInput, NotSellable, ProductRetired
from ledger.domain.ids import CATALOG_ID
from tests.unit.domain import CTX, NOW, D, product


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
