"""Weekly cohort repurchase rate.

A customer's cohort is the ISO week of their first delivered order. For each cohort:
how many customers it has, how many bought again (a second delivered order, any week),
and the rate. Run it with:

    ledger replay docs/reports/cohort_repurchase.py:CohortRepurchase --out cohorts.csv
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ledger.domain.orders import Order
from projections.engine.events import handles
from projections.engine.replay import Report


class CohortRepurchase(Report):
    def __init__(self) -> None:
        self.customer_of: dict[Any, str] = {}
        self.first_week: dict[str, str] = {}
        self.orders: dict[str, int] = {}

    @handles(Order.Placed)
    def on_Order_Placed(self, event: Order.Placed) -> None:
        self.customer_of[event.originator_id] = event.customer_id

    @handles(Order.KeysDelivered)
    def on_Order_KeysDelivered(self, event: Order.KeysDelivered) -> None:
        customer = self.customer_of[event.originator_id]
        year, week, _ = event.timestamp.isocalendar()
        self.first_week.setdefault(customer, f"{year}-W{week:02d}")
        self.orders[customer] = self.orders.get(customer, 0) + 1

    def rows(self) -> Iterable[dict[str, Any]]:
        cohorts: dict[str, list[str]] = {}
        for customer, week in self.first_week.items():
            cohorts.setdefault(week, []).append(customer)
        for week in sorted(cohorts):
            members = cohorts[week]
            again = sum(1 for c in members if self.orders[c] > 1)
            rate = (Decimal(again) / len(members)).quantize(Decimal("0.0001"))
            yield {"cohort_week": week, "customers": len(members), "repurchased": again, "rate": rate}
