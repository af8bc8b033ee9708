"""`as_of` and `as_of_time` on the report, inventory and books routes.

One app with a background projection runner; a product, two purchases at known positions and
times, and a refund after them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from tests.api_fixtures import auth, open_services
from tests.conftest import FakeClock
from tests.helpers import buy, head, stocked_product

VIEWS = ("facts", "inventory", "sales", "profit", "fraud", "journal")
# Every route that answers "as of", with a role allowed and one refused.
ROUTES = [
    ("/v1/reports/sales", "finance", "storefront"),
    ("/v1/reports/profit", "analyst", "risk"),
    ("/v1/inventory?by=batch", "storefront", "finance"),
    ("/v1/inventory/GAME-1", "analyst", "risk"),
    ("/v1/ledger/trial-balance", "finance", "analyst"),
    ("/v1/ledger/accounts/revenue", "finance", "storefront"),
]


@dataclass
class World:
    client: TestClient
    svc: Services
    clock: FakeClock
    stocked: int  # positions: after the import, after the first and the second purchase
    first: int
    second: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("as-of")
    clock = FakeClock()
    # Checkpoints every 4 positions: the routes answer from a checkpoint and the few events since.
    svc = open_services(f"sqlite:///{tmp / 'ledger.sqlite'}", tmp, clock=clock, read_wait_s=2.0,
                        as_of_checkpoint_events=4)
    ledger = svc.ledger
    stocked_product(ledger, "GAME-1", 10, price="10.00", unit_cost="6.00")
    stocked = head(ledger)
    clock.advance(hours=1)
    first, _ = buy(ledger, "alice", "GAME-1", 1)
    at_first = head(ledger)
    clock.advance(hours=1)
    buy(ledger, "bob", "GAME-1", 2)
    at_second = head(ledger)
    clock.advance(hours=1)
    ledger.refund_order(ledger.context("admin"), first.order_id, amount="10.00", reason="asked")
    assert svc.checkpoints.build() == head(ledger) // 4
    with TestClient(create_app(svc, background=True), raise_server_exceptions=False) as client:
        assert svc.wait_for(VIEWS, head(ledger)) is not None
        yield World(client, svc, clock, stocked, at_first, at_second)
    svc.close()


def _get(world: World, path: str, role: str = "finance", **params: object) -> dict[str, Any]:
    response = world.client.get(path, params=params, headers=auth(role))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _without_position(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("position", "as_of")}


def _figures(report: dict[str, Any], *columns: str) -> list[tuple[Decimal, ...]]:
    return [tuple(Decimal(str(row[c])) for c in columns) for row in report["rows"]]


@pytest.mark.parametrize(("path", "allowed", "refused"), ROUTES, ids=[r[0] for r in ROUTES])
def test_as_of_the_head_is_the_live_answer(world: World, path: str, allowed: str, refused: str) -> None:
    top = head(world.svc.ledger)
    live = _get(world, path, allowed)
    past = _get(world, path, allowed, as_of=top)
    assert past["position"] == top and live["position"] == top
    assert _without_position(past) == _without_position(live)
    assert world.client.get(path, params={"as_of": top}, headers=auth(refused)).status_code == 403
    assert world.client.get(path, params={"as_of": top}).status_code == 401


@pytest.mark.parametrize(("path", "allowed", "refused"), ROUTES, ids=[r[0] for r in ROUTES])
def test_as_of_refuses_bad_points_naming_the_field(world: World, path: str, allowed: str, refused: str) -> None:
    top = head(world.svc.ledger)
    cases = [
        ({"as_of": top + 1}, "query.as_of"),
        ({"as_of": -1}, "query.as_of"),
        ({"as_of": 1, "as_of_time": "2026-03-01T12:00:00Z"}, "query.as_of_time"),
        ({"as_of_time": "yesterday"}, "query.as_of_time"),
    ]
    for params, field in cases:
        response = world.client.get(path, params=params, headers=auth(allowed))
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in [e["field"] for e in response.json()["errors"]], params


def test_reports_as_of_show_what_they_said_then(world: World) -> None:
    sales = {p: _get(world, "/v1/reports/sales", group_by="sku", as_of=p) for p in (world.stocked, world.first,
                                                                                     world.second)}
    assert [s["position"] for s in sales.values()] == [world.stocked, world.first, world.second]
    assert sales[world.stocked]["rows"] == []
    assert _figures(sales[world.first], "orders", "units", "net") == [(1, 1, 10)]
    assert _figures(sales[world.second], "orders", "units", "net") == [(2, 3, 30)]
    assert _figures(_get(world, "/v1/reports/sales", group_by="sku"), "units", "refunds", "net") == [(3, 10, 20)]

    csv = world.client.get("/v1/reports/profit", params={"as_of": world.first},
                           headers={**auth("finance"), "Accept": "text/csv"})
    assert csv.status_code == 200 and csv.headers["x-read-position"] == str(world.first)
    assert csv.text.count("\r\n") == 2  # the header and one row


def test_inventory_and_books_as_of(world: World) -> None:
    before = _get(world, "/v1/inventory/GAME-1", "storefront", as_of=world.stocked)
    assert (before["available"], before["delivered"]) == (10, 0)
    later = _get(world, "/v1/inventory/GAME-1", "storefront", as_of=world.second)
    assert (later["available"], later["delivered"]) == (7, 3)
    nothing = world.client.get("/v1/inventory/GAME-1", params={"as_of": 0}, headers=auth("storefront"))
    assert nothing.status_code == 404

    trial = _get(world, "/v1/ledger/trial-balance", as_of=world.second)
    assert trial["as_of"] == world.second and trial["balanced"] is True
    balances = {a["account"]: a["balance"] for a in trial["accounts"]}
    assert Decimal(balances["revenue"]) == -30 and Decimal(balances["refunds"]) == 0
    revenue = _get(world, "/v1/ledger/accounts/revenue", as_of=world.first)
    assert [e["position"] <= world.first for e in revenue["entries"]] == [True]


def test_as_of_time_answers_at_the_last_event_before_it(world: World) -> None:
    ledger = world.svc.ledger
    first_time = ledger.app.mapper.to_domain_event(
        ledger.app.recorder.select_notifications(world.first, 1)[0]).timestamp
    body = _get(world, "/v1/reports/sales", group_by="sku", as_of_time=(first_time + timedelta(minutes=5)).isoformat())
    assert body["position"] == world.first
    assert [r["units"] for r in body["rows"]] == [1]
    naive = (first_time + timedelta(minutes=5)).replace(tzinfo=None).isoformat()  # no zone: UTC
    assert _get(world, "/v1/ledger/trial-balance", as_of_time=naive)["position"] == world.first
    early = _get(world, "/v1/inventory", "storefront", as_of_time="2000-01-01T00:00:00Z")
    assert early["position"] == 0 and early["items"] == []


def test_a_storefront_looping_as_of_1970_costs_no_fold_of_the_history(world: World) -> None:
    """The attack of issue 21: a storefront token asking again and again for the stock as of 1970.
    Each answer reads at most the events past the last checkpoint, once; none folds the log."""
    checkpoints = world.svc.checkpoints
    world.client.get("/v1/inventory", params={"as_of_time": "1970-01-01T00:00:00Z"}, headers=auth("storefront"))
    before = checkpoints.reads
    for _ in range(20):
        body = _get(world, "/v1/inventory", "storefront", as_of_time="1970-01-01T00:00:00Z")
        assert body["position"] == 0 and body["items"] == []
    assert checkpoints.reads - before <= 2 * world.svc.settings.as_of_checkpoint_events
