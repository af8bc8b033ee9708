"""A holder (a customer, an IP address or a device) on its own: unpaid reservations and units kept."""

from __future__ import annotations

from uuid import uuid4

from ledger.domain.holders import Holder, HolderKind
from ledger.domain.ids import holder_id
from tests.unit.domain import CTX


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
