"""Upstream fulfilment over HTTP: suppliers, floats, offers and settlements (admin, finance),
suppliers' signed callbacks (no token: the signature), and support's search.

Every route refuses the roles it is not for; bad input names its field and writes nothing; a
callback that is not applied (bad signature, unknown supplier or request, another supplier's
request, a replay, garbage, 2 MB) changes nothing and is counted in /metrics. The fulfilment
worker does not run here: the tests start attempts as it would, then answer them by callback."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from ledger import commands as c
from ledger.config import ROLES
from ledger.fulfilment.connector import signature
from ledger.results import AttemptPlan, Placed
from ledger.storage import event_log
from tests.api_fixtures import auth, open_services

SECRET_A = "secret-of-sup-a-0123456789"
SECRET_B = "secret-of-sup-b-9876543210"
_n = count(1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    path: Path = tmp_path_factory.mktemp("api-upstream")
    url, database = f"sqlite:///{path / 'ledger.sqlite'}", None
    if request.param == "postgresql":
        server: str = request.getfixturevalue("pg_server")
        database = f"ledger_test_{uuid4().hex[:12]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        url = f"{server.rsplit('/', 1)[0]}/{database}"
    # No fulfilment worker: these tests start attempts themselves and answer them by callback.
    services = open_services(url, path, serve_fulfilment=False)
    yield services
    services.close()
    if database is not None:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(scope="module")
def http(svc: Services) -> Iterator[TestClient]:
    with TestClient(create_app(svc, background=True), raise_server_exceptions=False) as client:
        yield client


def uid(prefix: str) -> str:
    return f"{prefix}-{next(_n)}-{uuid4().hex[:6]}"


def head(svc: Services) -> int:
    return svc.reads.head()


def supplier_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"base_url": "http://127.0.0.1:9/api", "secret": SECRET_A, "currency": "USD",
                            "timeout_ms": 1000, "concurrency": 4}
    return {**body, **overrides}


def recharge_product(http: TestClient, sku: str) -> None:
    body = {"sku": sku, "name": "Top-up 10", "kind": "direct_recharge", "face_value": "10.00", "currency": "USD",
            "price": "10.50", "account_pattern": r"1[0-9]{10}", "account_hint": "an 11-digit mobile number",
            "fulfilment_deadline_s": 3600}
    assert http.post("/v1/products", json=body, headers=auth("admin")).status_code == 201


def upstream(http: TestClient) -> tuple[str, str, str]:
    """A recharge product offered by two funded suppliers: (sku, cheap supplier, dear supplier)."""
    sku, cheap, dear = uid("TOPUP"), uid("sup-a"), uid("sup-b")
    recharge_product(http, sku)
    for name, secret, cost in ((cheap, SECRET_A, "9.60"), (dear, SECRET_B, "9.80")):
        assert http.put(f"/v1/suppliers/{name}", json=supplier_body(secret=secret),
                        headers=auth("admin")).status_code == 200
        assert http.post(f"/v1/suppliers/{name}/float", json={"amount": "100.00", "reference": f"wire-{name}"},
                         headers=auth("admin")).status_code == 200
        assert http.put(f"/v1/products/{sku}/offers/{name}", json={"supplier_product": f"{name}-10", "cost": cost},
                        headers=auth("admin")).status_code == 200
    return sku, cheap, dear


def paid(svc: Services, sku: str, account: str = "13812345678", customer: str | None = None) -> Placed:
    ledger, ctx = svc.ledger, svc.ledger.context("test")
    placed = ledger.place_order(ctx, customer_id=customer or uid("cust"), sku=sku, quantity=1,
                                recipient_account=account)
    result = ledger.capture_payment(ctx, placed.order_id, payment_reference=uid("pay"), amount="10.50",
                                    provider="test")
    assert result.outcome == "accepted"
    return placed


def attempt(svc: Services, placed: Placed) -> AttemptPlan:
    """The attempt the worker would start for this order (recorded before any call)."""
    from ledger.domain.ids import fulfilment_id

    plan = svc.ledger.execute(c.StartAttempt(ctx=svc.ledger.context("fulfilment"),
                                             fulfilment_id=fulfilment_id(placed.order_id))).get()
    assert isinstance(plan, AttemptPlan)
    return plan


def callback(http: TestClient, supplier: str, secret: str | None, body: Any, *,
             signature_header: str | None = None) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if signature_header is not None:
        headers["X-Signature"] = signature_header
    elif secret is not None:
        headers["X-Signature"] = signature(secret, raw)
    return http.post(f"/v1/upstreams/{supplier}/callbacks", content=raw, headers=headers)


def status_of(svc: Services, placed: Placed) -> str:
    return svc.ledger.reads.order(placed.order_id).status.value


def counted(http: TestClient, supplier: str, result: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("ledger_upstream_callbacks_total{") and f'supplier="{supplier}"' in line \
                and f'result="{result}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# ---- suppliers, floats, offers, settlements ----


def test_a_supplier_is_set_funded_offered_and_listed_without_its_secret(http: TestClient, svc: Services,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sku, cheap, dear = upstream(http)
    answers = [http.get("/v1/suppliers", headers=auth(role)) for role in ("admin", "finance")]
    for answer in answers:
        assert answer.status_code == 200
        listed = {s["name"]: s for s in answer.json()["suppliers"]}
        a = listed[cheap]
        assert (a["base_url"], a["currency"], a["timeout_ms"], a["concurrency"]) == (
            "http://127.0.0.1:9/api", "USD", 1000, 4)
        assert a["float"] == {"currency": "USD", "funded": "100.00", "charged": "0.00", "held": "0.00",
                              "available": "100.00", "low_threshold": "0.00", "low": False}
        assert a["health"] == {"breaker": "unknown", "outstanding": 0}  # no worker in this process
        assert a["offers"] == [{"sku": sku, "supplier_product": f"{cheap}-10", "currency": "USD", "cost": "9.60",
                                "priority": 0}]
        assert "secret" not in answer.text and SECRET_A not in answer.text and SECRET_B not in answer.text
    # Changing its settings keeps its float; the new secret is as invisible as the old one.
    new_secret = "rotated-secret-of-sup-a-42"
    assert http.put(f"/v1/suppliers/{cheap}", json=supplier_body(secret=new_secret, timeout_ms=2500),
                    headers=auth("admin")).status_code == 200
    a = {s["name"]: s for s in http.get("/v1/suppliers", headers=auth("admin")).json()["suppliers"]}[cheap]
    assert (a["timeout_ms"], a["float"]["available"]) == (2500, "100.00")
    # An attempt holds its cost on the float until it ends: `held`, and one outstanding.
    plan = attempt(svc, paid(svc, sku))
    a = {s["name"]: s for s in http.get("/v1/suppliers", headers=auth("admin")).json()["suppliers"]}[plan.supplier]
    assert a["float"]["held"] == "9.60" and a["float"]["available"] == "90.40" and a["health"]["outstanding"] == 1
    # Removing an offer takes it off the supplier's list.
    assert http.delete(f"/v1/products/{sku}/offers/{dear}", headers=auth("admin")).status_code == 200
    b = {s["name"]: s for s in http.get("/v1/suppliers", headers=auth("admin")).json()["suppliers"]}[dear]
    assert b["offers"] == []
    # No secret in a log line, nor in any stored event (only sealed).
    assert not any(s in caplog.text for s in (SECRET_A, SECRET_B, new_secret))
    stored = " ".join(repr(vars(e)) for e in event_log.events(svc.ledger.app, size=1000))
    assert not any(s in stored for s in (SECRET_A, SECRET_B, new_secret))


def test_a_settlement_is_recorded_once_per_reference(http: TestClient, svc: Services) -> None:
    ref = uid("settle")
    body = {"amount": "1200.00", "currency": "USD", "reference": ref, "period": "2026-11"}
    first = http.post("/v1/suppliers/Keystone%20Wholesale/settlements", json=body, headers=auth("finance"))
    assert first.status_code == 201, first.text
    assert first.json()["supplier"] == "Keystone Wholesale" and first.json()["reference"] == ref
    at = head(svc)
    again = http.post("/v1/suppliers/Keystone%20Wholesale/settlements", json=body, headers=auth("finance"))
    assert again.status_code == 201 and head(svc) == at  # the same settlement: answered, nothing written
    other = http.post("/v1/suppliers/Keystone%20Wholesale/settlements", json={**body, "amount": "1300.00"},
                      headers=auth("finance"))
    assert other.status_code == 409 and other.json()["type"].endswith("/already-exists")
    assert head(svc) == at


def test_bad_input_names_the_field_and_writes_nothing(http: TestClient, svc: Services) -> None:
    sku, cheap, _ = upstream(http)
    admin = auth("admin")
    at = head(svc)
    cases: list[tuple[str, str, dict[str, Any] | None, int, str | None]] = [
        ("PUT", f"/v1/suppliers/{uid('s')}", supplier_body(base_url="ftp://x.example"), 422, "base_url"),
        ("PUT", f"/v1/suppliers/{uid('s')}", supplier_body(base_url="http://x.example/?q=1"), 422, "base_url"),
        ("PUT", f"/v1/suppliers/{uid('s')}", supplier_body(secret="tiny-secret"), 422, "secret"),
        ("PUT", f"/v1/suppliers/{uid('s')}", supplier_body(timeout_ms=5), 422, "timeout_ms"),
        ("PUT", f"/v1/suppliers/{uid('s')}", supplier_body(concurrency=0), 422, "concurrency"),
        ("PUT", f"/v1/suppliers/{uid('s')}", {**supplier_body(), "extra": 1}, 422, "extra"),
        ("PUT", "/v1/suppliers/bad%20name", supplier_body(), 422, "path.name"),
        ("PUT", f"/v1/suppliers/{cheap}", supplier_body(currency="EUR"), 422, "currency"),
        ("POST", f"/v1/suppliers/{cheap}/float", {"amount": "-5", "reference": "x"}, 422, "amount"),
        ("POST", f"/v1/suppliers/{cheap}/float", {"amount": "0", "reference": "x"}, 422, "amount"),
        ("POST", f"/v1/suppliers/{cheap}/float", {"amount": "1.001", "reference": "x"}, 422, "amount"),
        ("POST", f"/v1/suppliers/{cheap}/float", {"amount": "5.00"}, 422, "reference"),
        ("POST", f"/v1/suppliers/{uid('nobody')}/float", {"amount": "5.00", "reference": "x"}, 404, None),
        ("POST", f"/v1/suppliers/{cheap}/settlements", {"amount": "5.00", "currency": "usd", "reference": "x"},
         422, "currency"),
        ("PUT", f"/v1/products/{sku}/offers/{cheap}", {"supplier_product": "p", "cost": "9.601"}, 422, "cost"),
        ("PUT", f"/v1/products/{sku}/offers/{cheap}", {"cost": "9.60"}, 422, "supplier_product"),
        ("PUT", f"/v1/products/{sku}/offers/{cheap}", {"supplier_product": "p", "cost": "1", "priority": -1},
         422, "priority"),
        ("PUT", f"/v1/products/{uid('NOPE')}/offers/{cheap}", {"supplier_product": "p", "cost": "1"}, 404, None),
        ("PUT", f"/v1/products/{sku}/offers/{uid('nobody')}", {"supplier_product": "p", "cost": "1"}, 404, None),
        ("DELETE", f"/v1/products/{sku}/offers/{uid('nobody')}", None, 422, "supplier"),
    ]
    for method, path, body, status, field in cases:
        answer = http.request(method, path, json=body, headers=admin)
        assert answer.status_code == status, (method, path, body, answer.text)
        if field is not None:
            assert field in {e["field"] for e in answer.json()["errors"]}, (path, body, answer.json())
        assert SECRET_A not in answer.text and "tiny-secret" not in answer.text  # a secret is never echoed
    # An offer on a product that is not fulfilled upstream is refused too.
    card = uid("CARD")
    assert http.post("/v1/products", json={"sku": card, "name": "Card", "face_value": "5.00", "currency": "USD",
                                           "price": "5.00"}, headers=admin).status_code == 201
    at = head(svc)
    refused = http.put(f"/v1/products/{card}/offers/{cheap}", json={"supplier_product": "p", "cost": "1"},
                       headers=admin)
    assert refused.status_code == 409 and refused.json()["type"].endswith("/not-sellable")
    assert head(svc) == at


def test_products_of_every_kind_are_defined_with_their_fulfilment(http: TestClient, svc: Services) -> None:
    admin = auth("admin")
    grant = {"sku": uid("VIDEO"), "name": "Video, 1 month", "kind": "platform_grant", "face_value": "15.00",
             "currency": "USD", "price": "12.00", "validity_days": 30, "on_reversal": "refulfil",
             "fulfilment_deadline_s": 600}
    assert http.post("/v1/products", json=grant, headers=admin).status_code == 201
    product = svc.ledger.reads.product(grant["sku"])
    assert (product.on_reversal, product.fulfilment_deadline_s, product.account_hint) == (
        "refulfil", 600, "an email address")
    course = {"sku": uid("COURSE"), "name": "A course", "kind": "digital_access", "face_value": "30.00",
              "currency": "USD", "price": "30.00", "validity_days": 365}
    assert http.post("/v1/products", json=course, headers=admin).status_code == 201
    at = head(svc)
    no_term = http.post("/v1/products", json={**grant, "sku": uid("VIDEO"), "validity_days": None}, headers=admin)
    assert no_term.status_code == 422 and no_term.json()["errors"][0]["field"] == "validity_days"
    bad_pattern = http.post("/v1/products", json={**grant, "sku": uid("VIDEO"), "account_pattern": "(["},
                            headers=admin)
    assert bad_pattern.status_code == 422 and bad_pattern.json()["errors"][0]["field"] == "account_pattern"
    bad_policy = http.post("/v1/products", json={**grant, "sku": uid("VIDEO"), "on_reversal": "shrug"},
                           headers=admin)
    assert bad_policy.status_code == 422 and bad_policy.json()["errors"][0]["field"] == "on_reversal"
    assert head(svc) == at


ROUTES: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("PUT", "/v1/suppliers/sup-roles", supplier_body(), {"admin"}),
    ("GET", "/v1/suppliers", None, {"admin", "finance"}),
    ("POST", "/v1/suppliers/sup-roles/float", {"amount": "1.00", "reference": "r"}, {"admin"}),
    ("PUT", "/v1/suppliers/sup-roles/low-float", {"threshold": "1.00"}, {"admin"}),
    ("POST", "/v1/suppliers/sup-roles/reconciliation", None, {"admin", "finance"}),
    ("POST", "/v1/suppliers/sup-roles/settlements", {"amount": "1.00", "currency": "USD", "reference": "r-roles"},
     {"admin", "finance"}),
    ("PUT", "/v1/products/TOPUP-ROLES/offers/sup-roles", {"supplier_product": "p", "cost": "1.00"}, {"admin"}),
    ("DELETE", "/v1/products/TOPUP-ROLES/offers/sup-roles", None, {"admin"}),
    ("GET", "/v1/support/orders?order_id=00000000-0000-4000-8000-000000000001", None, {"admin", "support"}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_every_route_refuses_a_token_of_another_role(http: TestClient, svc: Services, method: str, path: str,
                                                     body: dict[str, Any] | None, allowed: set[str]) -> None:
    at = head(svc)
    assert http.request(method, path, json=body).status_code == 401
    assert http.request(method, path, json=body, headers={"Authorization": "Bearer stolen"}).status_code == 401
    for role in sorted(set(ROLES) - allowed):
        answer = http.request(method, path, json=body, headers=auth(role))
        assert answer.status_code == 403, (role, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert head(svc) == at  # a refused token wrote nothing


def test_a_low_float_threshold_is_set_and_listed_and_bad_input_writes_nothing(http: TestClient,
                                                                               svc: Services) -> None:
    _, cheap, _ = upstream(http)
    at = head(svc)
    for body, field in (({"threshold": "-1"}, "threshold"), ({"threshold": 1.5}, "threshold"), ({}, "threshold")):
        answer = http.put(f"/v1/suppliers/{cheap}/low-float", json=body, headers=auth("admin"))
        assert answer.status_code == 422 and field in answer.text, answer.text
    assert http.put("/v1/suppliers/nobody/low-float", json={"threshold": "1.00"},
                    headers=auth("admin")).status_code == 404
    assert head(svc) == at
    assert http.put(f"/v1/suppliers/{cheap}/low-float", json={"threshold": "150.00"},
                    headers=auth("admin")).status_code == 200
    listed = {s["name"]: s for s in http.get("/v1/suppliers", headers=auth("finance")).json()["suppliers"]}
    assert listed[cheap]["float"]["low"] is True and listed[cheap]["float"]["low_threshold"] == "150.00"


def test_finance_reconciles_a_statement_and_bad_input_names_it(http: TestClient, svc: Services) -> None:
    sku, cheap, _ = upstream(http)
    placed = paid(svc, sku)
    plan = attempt(svc, placed)
    svc.ledger.execute(c.RecordAttempt(ctx=svc.ledger.context("test"), fulfilment_id=plan.fulfilment_id,
                                     attempt_id=plan.attempt_id, outcome="succeeded", charged="9.60")).get()
    header = "request_id,status,charged,currency,completed_at\n"
    csv = {"Content-Type": "text/csv", **auth("finance")}
    clean = f"{header}{plan.attempt_id},succeeded,9.60,USD,2026-03-01T12:00:00Z\n"
    answer = http.post(f"/v1/suppliers/{cheap}/reconciliation", content=clean, headers=csv)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["lines"], answer.json()["differences"]) == (1, [])
    extra = clean + "never-sent-1,succeeded,9.60,USD,2026-03-01T12:00:00Z\n"
    found = http.post(f"/v1/suppliers/{cheap}/reconciliation", content=extra, headers=csv).json()["differences"]
    assert [(d["kind"], d["request_id"]) for d in found] == [("unknown_request", "never-sent-1")]
    bad = http.post(f"/v1/suppliers/{cheap}/reconciliation", content="id,status\n", headers=csv)
    assert bad.status_code == 422 and "statement:1:" in bad.text
    assert http.post("/v1/suppliers/nobody/reconciliation", content=clean, headers=csv).status_code == 404


# ---- callbacks ----


def answer_body(plan: AttemptPlan, status: str, **fields: Any) -> dict[str, Any]:
    return {"request_id": plan.attempt_id, "status": status, "supplier_ref": f"REF-{plan.attempt_id[-6:]}",
            **fields}


def test_a_signed_callback_is_applied_once_and_a_replay_or_contradiction_is_refused(
        http: TestClient, svc: Services) -> None:
    sku, cheap, _ = upstream(http)
    placed = paid(svc, sku)
    plan = attempt(svc, placed)
    assert plan.supplier == cheap
    pending = callback(http, cheap, SECRET_A, answer_body(plan, "pending"))
    assert pending.status_code == 202 and status_of(svc, placed) == "fulfilling"
    at = head(svc)
    done = callback(http, cheap, SECRET_A, answer_body(plan, "succeeded", charged="9.55"))
    assert done.status_code == 204, done.text
    order = svc.ledger.reads.order(placed.order_id)
    assert (order.status.value, str(order.cost)) == ("delivered", "9.55")
    assert head(svc) > at
    at = head(svc)
    replay = callback(http, cheap, SECRET_A, answer_body(plan, "succeeded", charged="9.55"))
    assert replay.status_code == 409 and replay.json()["type"].endswith("/callback-replayed")
    contradiction = callback(http, cheap, SECRET_A, answer_body(plan, "failed", reason="supplier_error",
                                                                 retryable=True, charged="0.00"))
    assert contradiction.status_code == 409 and contradiction.json()["type"].endswith("/attempt-conflict")
    assert head(svc) == at and status_of(svc, placed) == "delivered"
    assert counted(http, cheap, "applied") == 1 and counted(http, cheap, "pending") == 1
    assert counted(http, cheap, "replayed") == 1 and counted(http, cheap, "conflict") == 1
    # Later the supplier takes it back: the order is refunded (the product says refund).
    reversed_ = callback(http, cheap, SECRET_A, answer_body(plan, "reversed", reason="supplier_reversed",
                                                            charged="0.00"))
    assert reversed_.status_code == 204
    order = svc.ledger.reads.order(placed.order_id)
    assert (order.status.value, str(order.amount_refunded)) == ("refunded", "10.50")


def test_a_failure_by_callback_moves_the_order_to_the_next_route(http: TestClient, svc: Services) -> None:
    sku, cheap, dear = upstream(http)
    placed = paid(svc, sku)
    plan = attempt(svc, placed)
    failed = callback(http, cheap, SECRET_A, answer_body(plan, "failed", reason="supplier_error", retryable=True,
                                                         charged="0.00"))
    assert failed.status_code == 204
    assert attempt(svc, placed).supplier == dear


def test_a_callback_that_is_not_applied_changes_nothing_and_is_counted(http: TestClient, svc: Services) -> None:
    sku, cheap, dear = upstream(http)
    placed = paid(svc, sku)
    plan = attempt(svc, placed)
    good = answer_body(plan, "succeeded", charged="9.60")
    raw = json.dumps(good).encode()
    unknown_id = answer_body(plan, "succeeded", charged="9.60", request_id=f"{plan.fulfilment_id}-9")
    refused: list[tuple[str, httpx.Response, int, str]] = [
        (cheap, callback(http, cheap, None, good), 401, "bad_signature"),  # no signature
        (cheap, callback(http, cheap, SECRET_B, good), 401, "bad_signature"),  # another secret
        (cheap, callback(http, cheap, None, raw, signature_header=signature(SECRET_A, raw)[7:]), 401,
         "bad_signature"),  # no sha256= prefix
        (cheap, callback(http, cheap, None, raw + b" ", signature_header=signature(SECRET_A, raw)), 401,
         "bad_signature"),  # signed over other bytes
        ("unknown", callback(http, uid("nobody"), SECRET_A, good), 404, "unknown_supplier"),
        # Signed by the right secret for another supplier's attempt: that supplier was never sent it.
        (dear, callback(http, dear, SECRET_B, good), 404, "unknown_request"),
        (cheap, callback(http, cheap, SECRET_A, unknown_id), 404, "unknown_request"),
        (cheap, callback(http, cheap, SECRET_A, {**good, "request_id": f"{uuid4()}-1"}), 404, "unknown_request"),
        (cheap, callback(http, cheap, SECRET_A, {**good, "request_id": "ord-7f3a9c-1"}), 404, "unknown_request"),
        (cheap, callback(http, cheap, SECRET_A, b"not json at all"), 400, "malformed"),
        (cheap, callback(http, cheap, SECRET_A, b"\xff\xfe{}"), 400, "malformed"),
        (cheap, callback(http, cheap, SECRET_A, [good]), 400, "malformed"),
        (cheap, callback(http, cheap, SECRET_A, b"[" * 20000 + b"]" * 20000), 400, "malformed"),
        (cheap, callback(http, cheap, SECRET_A, {**good, "status": "maybe"}), 400, "malformed"),
        (cheap, callback(http, cheap, SECRET_A, {**good, "charged": 9.6}), 400, "malformed"),
        (cheap, callback(http, cheap, SECRET_A, {**good, "charged": "9.601"}), 400, "malformed"),
        (cheap, callback(http, cheap, SECRET_A, {**good, "padding": "x" * 2_000_000}), 413, "too_large"),
    ]
    at = head(svc)
    for supplier, answer, status, result in refused:
        assert answer.status_code == status, (result, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert SECRET_A not in answer.text
        assert counted(http, supplier, result) > 0, (supplier, result)
    assert head(svc) == at and status_of(svc, placed) == "fulfilling"
    assert svc.ledger.reads.fulfilment_of(placed.order_id).attempts[plan.attempt_id]["status"] == "submitted"
    # A header that is not even ASCII is no signature either (and no server error).
    odd = http.post(f"/v1/upstreams/{cheap}/callbacks", content=raw,
                    headers={"X-Signature": b"sha256=\xe9\xe9"})  # type: ignore[dict-item]
    assert odd.status_code == 401 and head(svc) == at
    # A bearer token, even an admin's, is no signature.
    tokened = http.post(f"/v1/upstreams/{cheap}/callbacks", content=raw,
                        headers={**auth("admin"), "Content-Type": "application/json"})
    assert tokened.status_code == 401 and head(svc) == at
    # A body streamed without Content-Length is cut off at 64 KB just the same.
    chunks = (b"x" * 65536 for _ in range(32))
    streamed = http.post(f"/v1/upstreams/{cheap}/callbacks", content=chunks,
                         headers={"X-Signature": signature(SECRET_A, b"")})
    assert streamed.status_code == 413
    assert counted(http, "unknown", "unknown_supplier") >= 1 and counted(http, cheap, "too_large") == 2
    # And the good one still applies.
    assert callback(http, cheap, SECRET_A, good).status_code == 204
    assert status_of(svc, placed) == "delivered"


# ---- support ----


def test_support_finds_an_order_by_each_key_and_sees_every_attempt(http: TestClient, svc: Services) -> None:
    sku, cheap, dear = upstream(http)
    customer, account = uid("cust"), "13911112222"
    placed = paid(svc, sku, account=account, customer=customer)
    first = attempt(svc, placed)
    svc.ledger.execute(c.RecordAttempt(ctx=svc.ledger.context("fulfilment"), fulfilment_id=first.fulfilment_id,
                                       attempt_id=first.attempt_id, outcome="unknown", reason="ReadTimeout")).get()
    assert callback(http, cheap, SECRET_A, answer_body(first, "failed", reason="supplier_error", retryable=True,
                                                       charged="0.00")).status_code == 204
    second = attempt(svc, placed)
    assert callback(http, dear, SECRET_B, answer_body(second, "succeeded", charged="9.80")).status_code == 204
    order = svc.ledger.reads.order(placed.order_id)
    reference = next(iter(order.payments))
    searches = {"order_id": str(placed.order_id), "customer_id": customer, "account": account,
                "payment_reference": reference}
    for by, value in searches.items():
        answer = http.get("/v1/support/orders", params={by: value}, headers=auth("support"))
        assert answer.status_code == 200, (by, answer.text)
        orders = answer.json()["orders"]
        assert [o["order_id"] for o in orders] == [str(placed.order_id)], by
        found = orders[0]
        assert (found["status"], found["recipient_account"], found["amount_paid"]) == ("delivered", account, "10.50")
        trace = found["fulfilment"]
        assert trace["status"] == "succeeded" and trace["gave_up"] is None
        assert [(a["supplier"], a["status"], a["unknown"], a["reason"], a["charged"]) for a in trace["attempts"]] \
            == [(cheap, "failed", True, "supplier_error", None), (dear, "succeeded", False, None, "9.80")]
        assert trace["attempts"][1]["supplier_ref"] == f"REF-{second.attempt_id[-6:]}"
    # Any other role that may search (admin) sees the account masked.
    masked = http.get("/v1/support/orders", params={"account": account}, headers=auth("admin")).json()["orders"]
    assert masked[0]["recipient_account"] == "139****2222"
    # Nothing matches: an empty list, not an error.
    for by, value in (("account", "13900000000"), ("customer_id", uid("nobody")), ("order_id", str(uuid4())),
                      ("payment_reference", uid("nopay")), ("key", "NO-SUCH-CODE")):
        answer = http.get("/v1/support/orders", params={by: value}, headers=auth("support"))
        assert answer.status_code == 200 and answer.json()["orders"] == [], (by, answer.text)


def test_support_finds_a_card_key_order_by_its_code_or_key_id(http: TestClient, svc: Services) -> None:
    sku, code = uid("GAME"), f"CODE-{uuid4().hex[:12].upper()}"
    ledger, ctx = svc.ledger, svc.ledger.context("test")
    ledger.define_product(ctx, sku=sku, name="Game", face_value="10.00", currency="USD", price="9.00")
    ledger.import_keys(ctx, sku=sku, supplier="acme", unit_cost="5.00", codes=[(1, code)])
    placed = ledger.place_order(ctx, customer_id=uid("cust"), sku=sku, quantity=1)
    result = ledger.capture_payment(ctx, placed.order_id, payment_reference=uid("pay"), amount="9.00",
                                    provider="test")
    for value in (code, str(result.key_ids[0])):
        answer = http.get("/v1/support/orders", params={"key": value}, headers=auth("support"))
        assert answer.status_code == 200
        orders = answer.json()["orders"]
        assert [o["order_id"] for o in orders] == [str(placed.order_id)]
        assert orders[0]["recipient_account"] is None and orders[0]["fulfilment"] is None
        assert orders[0]["key_ids"] == [str(k) for k in result.key_ids]
        assert code not in answer.text  # a search by code never echoes it


def test_support_search_takes_exactly_one_key(http: TestClient, svc: Services) -> None:
    at = head(svc)
    none = http.get("/v1/support/orders", headers=auth("support"))
    assert none.status_code == 422
    assert {e["field"] for e in none.json()["errors"]} == {f"query.{k}" for k in (
        "order_id", "customer_id", "account", "payment_reference", "key")}
    two = http.get("/v1/support/orders", params={"customer_id": "a", "account": "1"}, headers=auth("support"))
    assert two.status_code == 422 and {e["field"] for e in two.json()["errors"]} == {"query.customer_id",
                                                                                      "query.account"}
    bad = http.get("/v1/support/orders", params={"order_id": "nope"}, headers=auth("support"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.order_id"
    assert head(svc) == at


def test_the_openapi_document_describes_the_new_routes(http: TestClient) -> None:
    spec = http.get("/openapi.json").json()
    paths = spec["paths"]
    hook = paths["/v1/upstreams/{supplier}/callbacks"]["post"]
    assert {"202", "204", "400", "401", "404", "409", "413"} <= hook["responses"].keys()
    assert "security" not in hook  # no bearer token: the signature
    assert [p["name"] for p in hook["parameters"] if p["in"] == "header"] == ["X-Signature"]
    secret = spec["components"]["schemas"]["SupplierIn"]["properties"]["secret"]
    assert secret["writeOnly"] is True
    assert "secret" not in json.dumps(spec["components"]["schemas"]["SuppliersOut"])
    assert "secret" not in json.dumps(spec["components"]["schemas"]["SupplierOut"])
    for path, method in (("/v1/suppliers/{name}", "put"), ("/v1/suppliers", "get"),
                         ("/v1/suppliers/{name}/float", "post"), ("/v1/suppliers/{name}/settlements", "post"),
                         ("/v1/products/{sku}/offers/{supplier}", "put"),
                         ("/v1/products/{sku}/offers/{supplier}", "delete"), ("/v1/support/orders", "get")):
        expected = {"401", "403"} | ({"422"} if path != "/v1/suppliers" else set())  # it takes no input
        assert expected <= paths[path][method]["responses"].keys(), (path, method)


def test_breakers_of_a_worker_in_the_process_show_as_health(tmp_path: Path) -> None:
    services = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path)
    try:
        with TestClient(create_app(services, background=True)) as client:
            name = uid("sup")
            assert client.put(f"/v1/suppliers/{name}", json=supplier_body(), headers=auth("admin")).status_code == 200
            breakers = client.app.state.breakers  # type: ignore[attr-defined]
            listed = client.get("/v1/suppliers", headers=auth("admin")).json()["suppliers"]
            assert listed[0]["health"]["breaker"] == "closed"
            for _ in range(breakers.failures):
                breakers.failed(name)
            listed = client.get("/v1/suppliers", headers=auth("admin")).json()["suppliers"]
            assert listed[0]["health"]["breaker"] == "open"
    finally:
        services.close()


def test_the_access_log_never_shows_a_searched_account_or_code(http: TestClient,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    logging.getLogger("uvicorn.access").info(  # as uvicorn writes each request (after create_app)
        '%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "GET",
        "/v1/support/orders?account=13812345678", "1.1", 200)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "GET", "/v1/support/orders?x=1&key=CODE-SECRET-1", "1.1", 200)
    assert "13812345678" not in caplog.text and "CODE-SECRET-1" not in caplog.text
    assert "?account=***" in caplog.text and "&key=***" in caplog.text
