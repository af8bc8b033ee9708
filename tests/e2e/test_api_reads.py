"""The read routes: inventory, reports, books, fraud, audit and projection status.

One app with a background projection runner serves the whole module; it is seeded once
(a product, purchases, a refund, a burst of orders from one IP that trips the velocity rule)."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from tests.api_fixtures import auth, caught_up, open_services
from tests.helpers import buy, head, place, stocked_product

IP = "203.0.113.9"


@dataclass
class World:
    client: TestClient
    svc: Services
    codes: list[str]
    order_id: str



@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("reads")
    # Every route is tried with an unknown token from one address: no limit on those here
    # (LEDGER_AUTH_FAILURES_PER_MINUTE has tests of its own, test_api_tokens).
    svc = open_services(f"sqlite:///{tmp / 'ledger.sqlite'}", tmp, read_wait_s=1.0, auth_failures_per_minute=0)
    ledger = svc.ledger
    codes = stocked_product(ledger, "GAME-1", 20, price="10.00", unit_cost="6.00", low_stock_threshold=3)
    first, _ = buy(ledger, "alice", "GAME-1", 1)
    buy(ledger, "bob", "GAME-1", 2)
    ledger.refund_order(ledger.context("admin"), first.order_id, amount="5.00", reason="goodwill")
    for n in range(6):  # over velocity_max_orders (5): one velocity alert for the IP
        place(ledger, f"mallory-{n}", "GAME-1", 1, client_ip=IP)
    with TestClient(create_app(svc, background=True), raise_server_exceptions=False) as client:
        caught_up(svc)
        yield World(client, svc, codes, str(first.order_id))
    svc.close()


# ---- auth and validation, for every route ----

# (path, a role allowed, a role refused, a bad request, the field its 422 names)
ROUTES = [
    ("/v1/inventory", "storefront", "finance", "/v1/inventory?by=color", "query.by"),
    ("/v1/inventory/GAME-1?by=batch", "analyst", "risk", "/v1/inventory/GAME-1?min_position=-1",
     "query.min_position"),
    ("/v1/reports/sales", "finance", "storefront", "/v1/reports/sales?group_by=day,color", "query.group_by"),
    ("/v1/reports/profit", "analyst", "risk", "/v1/reports/profit?from=2024-13-01", "query.from"),
    ("/v1/ledger/trial-balance", "finance", "analyst", "/v1/ledger/trial-balance?as_of=-1", "query.as_of"),
    ("/v1/ledger/accounts/revenue", "finance", "storefront", "/v1/ledger/accounts/revenue?limit=0", "query.limit"),
    ("/v1/fraud/alerts", "risk", "finance", "/v1/fraud/alerts?rule=bogus", "query.rule"),
    ("/v1/fraud/subjects/customer/alice", "risk", "analyst", "/v1/fraud/subjects/planet/x", "path.kind"),
    ("/v1/audit/events", "analyst", "risk", "/v1/audit/events?limit=5000", "query.limit"),
    ("/v1/audit/streams/{order}", "finance", "analyst", "/v1/audit/streams/not-a-uuid", "path.stream_id"),
    ("/v1/projections", "admin", "finance", "/v1/projections?min_position=abc", "query.min_position"),
]


@pytest.mark.parametrize(("path", "allowed", "refused", "bad", "field"), ROUTES, ids=[r[0] for r in ROUTES])
def test_route_auth_and_validation(world: World, path: str, allowed: str, refused: str, bad: str,
                                   field: str) -> None:
    path = path.replace("{order}", world.order_id)
    ok = world.client.get(path, headers=auth(allowed))
    assert ok.status_code == 200, ok.text
    assert ok.json()["position"] >= 1
    admin = world.client.get(path, headers=auth("admin"))
    assert admin.status_code == 200, admin.text

    refused_response = world.client.get(path, headers=auth(refused))
    assert refused_response.status_code == 403
    assert refused_response.headers["content-type"].startswith("application/problem+json")
    assert world.client.get(path).status_code == 401
    assert world.client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401

    invalid = world.client.get(bad, headers=auth(allowed))
    assert invalid.status_code == 422, invalid.text
    assert field in [e["field"] for e in invalid.json()["errors"]]


# ---- inventory ----


def test_inventory_counts(world: World) -> None:
    body = world.client.get("/v1/inventory?by=batch", headers=auth("storefront")).json()
    (item,) = [i for i in body["items"] if i["sku"] == "GAME-1"]
    assert item["delivered"] == 3 and item["reserved"] >= 6
    assert item["available"] + item["reserved"] + item["delivered"] + item["revoked"] + item["redeemed"] == 20
    assert item["low_stock"] is False and item["threshold"] == 3
    (batch,) = item["batches"]
    assert batch["supplier"] == "acme" and Decimal(batch["unit_cost"]) == Decimal("6.00")
    assert (batch["unit_cost"], batch["currency"]) == ("6.00", "USD")
    assert "batches" not in world.client.get("/v1/inventory/GAME-1", headers=auth("storefront")).json()
    missing = world.client.get("/v1/inventory/NOPE", headers=auth("storefront"))
    assert missing.status_code == 404 and missing.json()["type"].endswith("/not-found")


def test_read_your_writes(world: World) -> None:
    client = world.client
    before = client.get("/v1/inventory/GAME-1", headers=auth("storefront")).json()
    placed = client.post("/v1/orders", json={"customer_id": "carol", "sku": "GAME-1", "quantity": 2},
                         headers=auth("storefront"))
    assert placed.status_code == 201, placed.text
    position = placed.json()["position"]
    after = client.get(f"/v1/inventory/GAME-1?min_position={position}", headers=auth("storefront"))
    assert after.status_code == 200
    assert after.json()["position"] >= position
    assert after.json()["reserved"] == before["reserved"] + 2
    assert after.json()["available"] == before["available"] - 2


def test_min_position_beyond_the_head_is_422_at_once(world: World) -> None:
    """No write ever returned a position beyond the log's head: waiting could not help."""
    far = head(world.svc.ledger) + 1_000_000
    for path in ("/v1/inventory/GAME-1", "/v1/audit/events", "/v1/projections", "/v1/reconciliation",
                 "/v1/fraud/alerts", "/v1/ledger/trial-balance", "/v1/reports/sales"):
        started = time.monotonic()
        response = world.client.get(f"{path}?min_position={far}", headers=auth("admin"))
        assert time.monotonic() - started < world.svc.settings.read_wait_s, path
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == ["query.min_position"]
    at_head = world.client.get(f"/v1/audit/events?min_position={head(world.svc.ledger)}", headers=auth("finance"))
    assert at_head.status_code == 200


def test_min_position_the_read_models_do_not_reach_in_time_is_503(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A position a write returned may wait; read models that stay behind it answer 503."""
    position = head(world.svc.ledger)
    monkeypatch.setattr(world.svc.settings, "read_wait_s", 0.05)
    monkeypatch.setattr(world.svc.reads, "position", lambda names: position - 1)  # a runner stuck one event behind
    # No answer kept by the test before: one read at this position less than 50 ms ago (a fast
    # machine) is rightly served as it is, without waiting.
    monkeypatch.setattr(world.svc, "_fresh", None)
    response = world.client.get(f"/v1/inventory/GAME-1?min_position={position}", headers=auth("admin"))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["type"].endswith("/not-yet-consistent")


# ---- reports ----


def test_sales_report_sums_exactly(world: World) -> None:
    body = world.client.get("/v1/reports/sales?group_by=sku", headers=auth("finance")).json()
    assert body["group_by"] == ["sku"]
    (row,) = body["rows"]
    assert row["sku"] == "GAME-1" and row["currency"] == "USD" and "day" not in row
    assert (row["orders"], row["units"]) == (2, 3)
    assert [Decimal(row[c]) for c in ("gross", "discounts", "refunds", "net")] == [
        Decimal(30), Decimal(0), Decimal(5), Decimal(25)
    ]
    # exactly the currency's minor units, as commands accept money
    assert [row[c] for c in ("gross", "discounts", "refunds", "net", "returned_payments")] == [
        "30.00", "0.00", "5.00", "25.00", "0.00"]
    full = world.client.get("/v1/reports/sales", headers=auth("finance")).json()
    assert full["group_by"] == ["day", "sku", "channel", "promotion"]
    assert sum(Decimal(r["net"]) for r in full["rows"]) == Decimal(25)
    empty = world.client.get("/v1/reports/sales?from=2000-01-01&to=2000-01-31", headers=auth("finance")).json()
    assert empty["rows"] == [] and empty["from"] == "2000-01-01"
    backwards = world.client.get("/v1/reports/sales?from=2000-02-01&to=2000-01-01", headers=auth("finance"))
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "query.to"


def test_profit_report_and_csv(world: World) -> None:
    body = world.client.get("/v1/reports/profit?group_by=supplier", headers=auth("analyst")).json()
    (row,) = body["rows"]
    assert row["supplier"] == "acme" and row["keys_sold"] == 3
    # revenue 30, refunds 5, cost 3 x 6 = 18: profit 7, margin 7 / 25
    assert Decimal(row["profit"]) == Decimal(7) and Decimal(row["margin"]) == Decimal("0.28")
    assert {c: row[c] for c in ("revenue", "discounts", "refunds", "cost_of_goods", "write_offs", "profit")} == {
        "revenue": "30.00", "discounts": "0.00", "refunds": "5.00", "cost_of_goods": "18.00", "write_offs": "0.00",
        "profit": "7.00"}
    assert row["margin"] == "0.2800"

    response = world.client.get("/v1/reports/profit?group_by=day,batch",
                                headers={**auth("analyst"), "Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert int(response.headers["X-Read-Position"]) >= 1
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1 and list(rows[0])[:3] == ["day", "batch", "currency"]
    assert Decimal(rows[0]["revenue"]) == Decimal(30)
    assert (rows[0]["revenue"], rows[0]["cost_of_goods"], rows[0]["profit"]) == ("30.00", "18.00", "7.00")

    sales_csv = world.client.get("/v1/reports/sales?group_by=channel", headers={**auth("finance"),
                                                                                "Accept": "text/csv"})
    (sale,) = list(csv.DictReader(io.StringIO(sales_csv.text)))
    assert sale["channel"] == "default" and Decimal(sale["net"]) == Decimal(25)
    assert (sale["gross"], sale["net"]) == ("30.00", "25.00")


# ---- books ----


def test_trial_balance_is_balanced(world: World) -> None:
    body = world.client.get("/v1/ledger/trial-balance", headers=auth("finance")).json()
    assert body["balanced"] is True and body["as_of"] is None
    balances = {(a["account"], a["currency"]): Decimal(a["balance"]) for a in body["accounts"]}
    assert sum(balances.values()) == 0
    assert balances[("revenue", "USD")] == Decimal(-30)
    assert balances[("refunds", "USD")] == Decimal(5)
    assert balances[("customer_deposits", "USD")] == 0  # listed though it nets to zero
    assert body["totals"] == [{"currency": "USD", "debit": body["totals"][0]["debit"],
                               "credit": body["totals"][0]["debit"], "balanced": True}]
    shown = {(a["account"], a["currency"]): (a["debit"], a["credit"], a["balance"]) for a in body["accounts"]}
    assert shown[("revenue", "USD")] == ("0.00", "30.00", "-30.00")
    assert shown[("refunds", "USD")] == ("5.00", "0.00", "5.00")
    assert shown[("customer_deposits", "USD")][2] == "0.00"
    assert re.fullmatch(r"\d+\.\d{2}", body["totals"][0]["debit"])

    early = world.client.get("/v1/ledger/trial-balance?as_of=1", headers=auth("finance")).json()
    assert early["balanced"] is True and early["as_of"] == 1
    assert all(Decimal(a["balance"]) == 0 for a in early["accounts"])  # nothing posted at position 1


def test_account_entries_paginate(world: World) -> None:
    client = world.client
    entries: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        page = client.get(f"/v1/ledger/accounts/payment_clearing?after={after}&limit=1", headers=auth("finance"))
        assert page.status_code == 200
        entries += page.json()["entries"]
        after = page.json()["next_after"]
    assert [(e["event_type"], Decimal(e["debit"]), Decimal(e["credit"])) for e in entries] == [
        ("Order.PaymentCaptured", Decimal(10), 0), ("Order.PaymentCaptured", Decimal(20), 0),
        ("Order.Refunded", 0, Decimal(5)),
    ]
    assert [(e["debit"], e["credit"]) for e in entries] == [("10.00", "0.00"), ("20.00", "0.00"), ("0.00", "5.00")]
    body = page.json()
    assert body["type"] == "asset"
    assert [(b["currency"], Decimal(b["balance"])) for b in body["balances"]] == [("USD", Decimal(25))]
    unknown = client.get("/v1/ledger/accounts/petty_cash", headers=auth("finance"))
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")


# ---- fraud ----


def test_fraud_alerts_and_subject(world: World) -> None:
    client = world.client
    body = client.get("/v1/fraud/alerts?rule=velocity&subject_kind=ip", headers=auth("risk")).json()
    alerts = [a for a in body["alerts"] if a["subject_id"] == IP]
    assert len(alerts) == 1 and alerts[0]["rule"] == "velocity" and alerts[0]["positions"]
    assert body["next_since"] is None
    later = client.get(f"/v1/fraud/alerts?since={alerts[0]['position']}&rule=velocity", headers=auth("risk"))
    assert all(a["position"] > alerts[0]["position"] for a in later.json()["alerts"])
    bad_kind = client.get("/v1/fraud/alerts?subject_kind=planet", headers=auth("risk"))
    assert bad_kind.status_code == 422 and bad_kind.json()["errors"][0]["field"] == "query.subject_kind"

    mallory = client.get(f"/v1/fraud/subjects/ip/{IP}", headers=auth("risk")).json()
    assert mallory["alerted"] is True and mallory["score"] >= 10 and mallory["top_rule"] == "velocity"
    assert mallory["rule_scores"]["velocity"] >= 10 and len(mallory["recent_alerts"]) == 1
    clean = client.get("/v1/fraud/subjects/customer/bob", headers=auth("risk")).json()
    assert clean["alerted"] is False and clean["score"] == 0


# ---- audit ----


def test_audit_feed_pages_every_event_without_codes(world: World) -> None:
    client = world.client
    last = head(world.svc.ledger)
    positions: list[int] = []
    texts: list[str] = []
    after: int | None = 0
    while after is not None:
        page = client.get(f"/v1/audit/events?after={after}&limit=7", headers=auth("finance"))
        assert page.status_code == 200
        texts.append(page.text)
        body = page.json()
        assert len(body["events"]) <= 7
        positions += [e["position"] for e in body["events"]]
        after = body["next_after"]
        if after is not None:
            assert after == body["events"][-1]["position"]
    assert positions[: last] == list(range(1, last + 1))  # complete, in order, no gaps
    assert positions == sorted(set(positions))

    everything = client.get("/v1/audit/events?limit=1000", headers=auth("analyst")).json()["events"]
    types = {e["type"] for e in everything}
    assert {"Order.Placed", "Key.Registered", "Order.KeysDelivered", "Order.Refunded"} <= types
    registered = next(e for e in everything if e["type"] == "Key.Registered")
    assert "sealed_code" not in registered["data"] and "code_hmac" not in registered["data"]
    assert registered["data"]["meta"]["actor"] and registered["version"] == 1 and registered["stream_id"]

    placed = client.get("/v1/audit/events?type=Order.Placed,Order.Refunded&limit=1000", headers=auth("finance"))
    assert {e["type"] for e in placed.json()["events"]} == {"Order.Placed", "Order.Refunded"}
    unknown = client.get("/v1/audit/events?type=Order.Teleported", headers=auth("finance"))
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "query.type"

    stream = client.get(f"/v1/audit/streams/{world.order_id}", headers=auth("finance")).json()
    assert [e["version"] for e in stream["events"]] == list(range(1, len(stream["events"]) + 1))
    assert stream["events"][0]["type"] == "Order.Placed"
    texts.append(str(stream))
    missing = client.get("/v1/audit/streams/00000000-0000-0000-0000-000000000000", headers=auth("finance"))
    assert missing.status_code == 404

    for text in texts:
        assert "sealed_code" not in text and "code_hmac" not in text
        for code in world.codes:
            assert code not in text


# ---- projections ----


def test_projection_status(world: World) -> None:
    position = caught_up(world.svc)
    body = world.client.get("/v1/projections", headers=auth("admin")).json()
    names = {p["name"] for p in body["projections"]}
    assert {"facts", "inventory", "sales", "profit", "fraud", "journal"} <= names
    for status in body["projections"]:
        assert status["version"] >= 1 and status["head"] >= position
        assert status["lag_events"] == max(0, status["head"] - status["position"]) and status["lag_seconds"] >= 0


# ---- PostgreSQL: the same SQL against NUMERIC money ----


@pytest.mark.postgres
def test_reads_on_postgres(pg_url: str, tmp_path: Any) -> None:
    svc = open_services(pg_url, tmp_path, read_wait_s=2.0)
    try:
        codes = stocked_product(svc.ledger, "PG-1", 4, price="9.99", unit_cost="4.10")
        first, _ = buy(svc.ledger, "alice", "PG-1", 2)
        svc.ledger.refund_order(svc.ledger.context("admin"), first.order_id, amount="1.01", reason="goodwill")
        with TestClient(create_app(svc, background=True), raise_server_exceptions=False) as client:
            position = head(svc.ledger)
            inventory = client.get(f"/v1/inventory/PG-1?min_position={position}&by=batch", headers=auth("analyst"))
            assert inventory.status_code == 200 and inventory.json()["delivered"] == 2
            assert Decimal(inventory.json()["batches"][0]["unit_cost"]) == Decimal("4.10")
            assert inventory.json()["batches"][0]["unit_cost"] == "4.10"  # PostgreSQL's NUMERIC(20, 4) too
            sales = client.get(f"/v1/reports/sales?group_by=sku&min_position={position}", headers=auth("finance"))
            (row,) = sales.json()["rows"]
            assert (Decimal(row["gross"]), Decimal(row["net"])) == (Decimal("19.98"), Decimal("18.97"))
            profit = client.get("/v1/reports/profit?group_by=sku", headers={**auth("finance"), "Accept": "text/csv"})
            (prow,) = list(csv.DictReader(io.StringIO(profit.text)))
            assert Decimal(prow["profit"]) == Decimal("18.97") - Decimal("8.20")
            tb = client.get(f"/v1/ledger/trial-balance?min_position={position}", headers=auth("finance")).json()
            assert tb["balanced"] is True
            account = client.get("/v1/ledger/accounts/refunds", headers=auth("finance")).json()
            assert [Decimal(e["debit"]) for e in account["entries"]] == [Decimal("1.01")]
            feed = client.get("/v1/audit/events?limit=1000", headers=auth("finance"))
            assert [e["position"] for e in feed.json()["events"]] == list(range(1, position + 1))
            assert not any(code in feed.text for code in codes)
    finally:
        svc.close()
