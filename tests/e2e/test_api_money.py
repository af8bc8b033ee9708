"""Money in every read response and CSV export is a decimal string with exactly the currency's
minor units (as commands accept it), on a real history made by the demo: discounts, refunds,
costs and sums that a read model would otherwise give back as "10" or "2635.2"."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from projections.engine.registry import PROJECTION_NAMES
from projections.models import report_queries
from tests.api_fixtures import auth, open_services
from tests.demo_history import seeded
from tests.helpers import head

USD = re.compile(r"-?\d+\.\d{2}")  # the demo sells in USD
MONEY = {*report_queries.SALES.money, *report_queries.PROFIT.money,
         "debit", "credit", "balance", "unit_cost", "money_in", "refunds_payable"}
READS = [
    ("/v1/reports/sales", "finance"), ("/v1/reports/profit", "finance"), ("/v1/reports/profit?group_by=sku", "finance"),
    ("/v1/ledger/trial-balance", "finance"), ("/v1/ledger/accounts/discounts", "finance"),
    ("/v1/ledger/accounts/cost_of_goods_sold", "finance"), ("/v1/inventory?by=batch", "analyst"),
    ("/v1/reconciliation", "finance"),
]


def _amounts(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in MONEY and not isinstance(item, dict | list):
                yield key, item
            else:
                yield from _amounts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _amounts(item)


def test_every_amount_has_exactly_the_currencys_minor_units(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    seeded(url, tmp_path, orders=60).close()
    svc = open_services(url, tmp_path)
    try:
        with TestClient(create_app(svc, background=True), raise_server_exceptions=False) as client:
            assert svc.wait_for(PROJECTION_NAMES, head(svc.ledger)) is not None
            seen: list[tuple[str, str]] = []
            for path, role in READS:
                response = client.get(path, headers=auth(role))
                assert response.status_code == 200, (path, response.text)
                for key, amount in _amounts(response.json()):
                    assert isinstance(amount, str) and USD.fullmatch(amount), (path, key, amount)
                    seen.append((key, amount))
                if path.startswith("/v1/reports/"):
                    exported = client.get(path, headers={**auth(role), "Accept": "text/csv"})
                    for row in csv.DictReader(io.StringIO(exported.text)):
                        for key in MONEY & row.keys():
                            assert USD.fullmatch(row[key]), (path, key, row[key])
            # the history really has amounts a read model holds without trailing zeros
            assert any(amount.endswith("0") and amount != "0.00" for _, amount in seen)
            assert {key for key, _ in seen} >= {"discounts", "cost_of_goods", "debit", "unit_cost", "money_in"}
    finally:
        svc.close()
