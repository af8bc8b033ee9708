"""Every list route is paged with a maximum: a `limit` above it is refused (422 naming the field, not a
history-sized answer), and following `next_after` walks the whole list a page at a time."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.domain.ids import stock_id
from tests.api_fixtures import auth, caught_up, open_services
from tests.helpers import buy, stocked_product


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("limits")
    svc = open_services(f"sqlite:///{tmp / 'ledger.sqlite'}", tmp)
    for n in range(5):
        stocked_product(svc.ledger, f"SKU-{n}", 6)
    for _ in range(4):
        buy(svc.ledger, "alice", "SKU-0", 1)
    with TestClient(create_app(svc, background=True), raise_server_exceptions=False) as test_client:
        caught_up(svc)
        yield test_client
    svc.close()


STOCK = str(stock_id("SKU-0"))
LISTS = [  # route, what it needs besides, role, largest limit
    ("/v1/audit/events", {}, "finance", 1000),
    (f"/v1/audit/streams/{STOCK}", {}, "finance", 1000),
    ("/v1/fraud/alerts", {}, "risk", 1000),
    ("/v1/ledger/accounts/revenue", {}, "finance", 1000),
    ("/v1/inventory", {}, "storefront", 1000),
    ("/v1/products", {}, "storefront", 1000),
    ("/v1/support/orders", {"customer_id": "alice"}, "support", 1000),
]


@pytest.mark.parametrize(("path", "needs", "role", "largest"), LISTS)
def test_a_limit_above_the_maximum_is_refused(client: TestClient, path: str, needs: dict[str, str], role: str,
                                              largest: int) -> None:
    assert client.get(path, params={**needs, "limit": largest}, headers=auth(role)).status_code == 200
    for limit in (largest + 1, 10**9, 0):
        refused = client.get(path, params={**needs, "limit": limit}, headers=auth(role))
        assert refused.status_code == 422, (path, limit, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == ["query.limit"]


def _walk(client: TestClient, path: str, role: str, items: str, key: str) -> list[object]:
    seen: list[object] = []
    after: object = None
    while True:
        params = {"limit": 2, **({"after": after} if after is not None else {})}
        body = client.get(path, params=params, headers=auth(role)).json()
        assert len(body[items]) <= 2
        seen += [item[key] for item in body[items]]
        after = body.get("next_after")  # left out on the last page of a route that leaves out nulls
        if after is None:
            return seen


def test_pages_walk_the_whole_list(client: TestClient) -> None:
    skus = _walk(client, "/v1/inventory", "storefront", "items", "sku")
    assert skus == [f"SKU-{n}" for n in range(5)]
    assert _walk(client, "/v1/products", "storefront", "products", "sku") == skus
    whole = client.get(f"/v1/audit/streams/{STOCK}", params={"limit": 1000}, headers=auth("finance")).json()
    positions = [e["position"] for e in whole["events"]]
    assert len(positions) >= 5 and positions == sorted(positions) and whole["next_after"] is None
    assert _walk(client, f"/v1/audit/streams/{STOCK}", "finance", "events", "position") == positions
    assert {e["stream_id"] for e in whole["events"]} == {STOCK}


def test_support_finds_the_newest_orders_first(client: TestClient) -> None:
    every = client.get("/v1/support/orders", params={"customer_id": "alice"}, headers=auth("support")).json()
    newest = client.get("/v1/support/orders", params={"customer_id": "alice", "limit": 2},
                        headers=auth("support")).json()
    assert len(every["orders"]) == 4 and newest["orders"] == every["orders"][:2]


def test_an_unknown_stream_is_404(client: TestClient) -> None:
    missing = client.get(f"/v1/audit/streams/{UUID(int=0)}", headers=auth("finance"))
    assert missing.status_code == 404
