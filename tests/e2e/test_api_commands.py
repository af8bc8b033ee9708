"""The command routes over HTTP: roles, validation, idempotency, problem types, and codes never leaking."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.problems import PROBLEM, TYPE_BASE
from api.routes import catalog, orders, redemptions
from api.services import Services
from tests.api_fixtures import auth, open_services
from tests.helpers import fresh_codes as _fresh_codes

_ids = count(1)
ISSUED: set[str] = set()  # every code this module generated, for the leak check


def fresh_codes(n: int, prefix: str) -> list[str]:
    codes = _fresh_codes(n, prefix)
    ISSUED.update(codes)
    return codes


class RecordingClient(TestClient):
    """A TestClient that keeps every (method, path, status, body text) it saw."""

    seen: list[tuple[str, str, int, str]]

    def request(self, method: str, url: httpx._types.URLTypes, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        response: httpx.Response = super().request(method, url, **kwargs)
        self.seen.append((method, httpx.URL(str(url)).path, response.status_code, response.text))
        return response


@pytest.fixture(scope="module")
def module_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    path: Path = tmp_path_factory.mktemp("api-commands")
    # Every route is tried with an unknown token from one address: no limit on those here
    # (LEDGER_AUTH_FAILURES_PER_MINUTE has tests of its own, test_api_tokens).
    services = open_services(f"sqlite:///{path / 'ledger.sqlite'}", path, auth_failures_per_minute=0)
    yield services
    services.close()


@pytest.fixture(scope="module")
def http(module_services: Services) -> Iterator[RecordingClient]:
    """One app for the whole module: every test uses its own SKUs, customers and keys."""
    with RecordingClient(create_app(module_services, background=True), raise_server_exceptions=False) as client:
        client.seen = []
        yield client


def uid(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}-{uuid4().hex[:6]}"


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def product_body(sku: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": sku, "name": f"{sku} key", "kind": "card_key", "face_value": "10.00", "currency": "USD",
        "price": "10.00", "channel_prices": {"partner": "9.50"}, "validity_days": 365, "platform": "steam",
        "per_customer_limit": None, "low_stock_threshold": 1, "reservation_timeout_s": 600,
    }
    body.update(overrides)
    return body


def make_product(http: TestClient, keys: int = 3, **overrides: Any) -> tuple[str, list[str]]:
    """A product with `keys` codes imported through the API; (sku, codes)."""
    sku = uid("SKU")
    r = http.post("/v1/products", json=product_body(sku, **overrides), headers=auth("admin"))
    assert r.status_code == 201, r.text
    codes = fresh_codes(keys, sku) if keys else []
    if keys:
        r = http.post(f"/v1/products/{sku}/batches", headers=auth("admin"),
                      json={"supplier": "acme", "unit_cost": "6.00", "codes": codes})
        assert r.status_code == 201, r.text
    return sku, codes


def order(http: TestClient, sku: str, quantity: int = 1, customer: str | None = None, **extra: Any) -> httpx.Response:
    body = {"customer_id": customer or uid("cust"), "sku": sku, "quantity": quantity, **extra}
    response: httpx.Response = http.post("/v1/orders", json=body, headers=auth("storefront"))
    return response


def pay(http: TestClient, placed: dict[str, Any], reference: str | None = None,
        amount: str | None = None) -> httpx.Response:
    body = {"payment_reference": reference or uid("pay"), "amount": amount or placed["amount_due"], "provider": "psp"}
    response: httpx.Response = http.post(f"/v1/orders/{placed['order_id']}/payments", json=body,
                                         headers=auth("payments"))
    return response


def paid_order(http: TestClient, sku: str, quantity: int = 1) -> dict[str, Any]:
    r = order(http, sku, quantity)
    assert r.status_code == 201, r.text
    placed: dict[str, Any] = r.json()
    r = pay(http, placed)
    assert r.status_code == 200 and r.json()["outcome"] == "delivered", r.text
    return placed


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["type"] == TYPE_BASE + code, body
    assert body["status"] == status
    return body


# ---- the route matrix: happy path, 401, 403, 422 for every route ----


Setup = Callable[[TestClient], dict[str, Any]]


def _order_ctx(http: TestClient) -> dict[str, Any]:
    sku, _ = make_product(http, keys=2)
    r = order(http, sku)
    assert r.status_code == 201, r.text
    return {"sku": sku, "placed": r.json(), "id": r.json()["order_id"]}


def _paid_ctx(http: TestClient) -> dict[str, Any]:
    sku, codes = make_product(http, keys=2)
    placed = paid_order(http, sku)
    return {"sku": sku, "placed": placed, "id": placed["order_id"], "codes": codes}


def _product_ctx(http: TestClient) -> dict[str, Any]:
    sku, codes = make_product(http, keys=1)
    return {"sku": sku, "codes": codes}


def _coupon_ctx(http: TestClient) -> dict[str, Any]:
    code = uid("SAVE").upper()
    r = http.post("/v1/promotions", headers=auth("admin"), json={
        "type": "coupon", "code": code, "kind": "percent", "value": "10", "currency": "USD",
        "starts_at": iso(-timedelta(days=1)), "ends_at": iso(timedelta(days=1)), "total_cap": 5,
    })
    assert r.status_code == 201, r.text
    return {"code": code}


def _nothing(http: TestClient) -> dict[str, Any]:
    return {}


# (method, path template, setup, allowed role, forbidden role, good body, expected status, bad body, bad field)
ROUTES: list[tuple[str, str, Setup, str, str, Callable[[dict[str, Any]], Any], int, Any, str]] = [
    ("POST", "/v1/orders", _product_ctx, "storefront", "analyst",
     lambda c: {"customer_id": uid("c"), "sku": c["sku"], "quantity": 1}, 201,
     {"customer_id": "c", "sku": "X", "quantity": 0}, "quantity"),
    ("POST", "/v1/orders/{id}/payments", _order_ctx, "payments", "storefront",
     lambda c: {"payment_reference": uid("p"), "amount": c["placed"]["amount_due"], "provider": "psp"}, 200,
     {"payment_reference": "p", "amount": "1.2.3", "provider": "psp"}, "amount"),
    ("GET", "/v1/orders/{id}", _order_ctx, "storefront", "partner", lambda c: None, 200,
     None, "order_id"),
    ("GET", "/v1/orders/{id}/keys", _paid_ctx, "storefront", "risk", lambda c: None, 200,
     None, "order_id"),
    ("POST", "/v1/orders/{id}/cancel", _order_ctx, "admin", "storefront", lambda c: {"reason": "ops"}, 200,
     {"reason": "ops", "extra": 1}, "extra"),
    ("POST", "/v1/orders/{id}/refunds", _paid_ctx, "admin", "finance",
     lambda c: {"amount": c["placed"]["amount_due"], "reason": "goodwill"}, 200,
     {"amount": "-1", "reason": "x"}, "amount"),
    ("POST", "/v1/products", _nothing, "admin", "storefront", lambda c: product_body(uid("P")), 201,
     product_body("P", price="9.999.1"), "price"),
    ("GET", "/v1/products", _product_ctx, "analyst", "partner", lambda c: None, 200, None, ""),
    ("GET", "/v1/products/{sku}", _product_ctx, "finance", "risk", lambda c: None, 200, None, "sku"),
    ("POST", "/v1/products/{sku}/batches", _product_ctx, "admin", "storefront",
     lambda c: {"supplier": "acme", "unit_cost": "5.00", "codes": fresh_codes(2, "M")}, 201,
     {"supplier": "acme", "unit_cost": "5,00", "codes": ["A-1"]}, "unit_cost"),
    ("POST", "/v1/promotions", _product_ctx, "admin", "storefront",
     lambda c: {"type": "flash_sale", "sale_id": uid("fs"), "sku": c["sku"], "starts_at": iso(timedelta(days=1)),
                "ends_at": iso(timedelta(days=2)), "price": "5.00", "total_quantity": 10}, 201,
     {"type": "coupon", "code": "X1", "kind": "amount", "value": "1.00", "currency": "usd",
      "starts_at": iso(timedelta(0)), "ends_at": iso(timedelta(days=1))}, "currency"),
    ("GET", "/v1/promotions/{code}", _coupon_ctx, "storefront", "analyst", lambda c: None, 200, None, "code"),
    ("POST", "/v1/redemptions", _paid_ctx, "partner", "analyst",
     lambda c: {"code": "", "account_id": "acct-1"}, 200,
     {"code": "A-1", "account_id": "acct-1", "platform": "x" * 201}, "platform"),
]

BAD_PATH = {"{id}": "not-a-uuid", "{sku}": "bad sku!", "{code}": "no spaces allowed"}


def _path(template: str, ctx: dict[str, Any]) -> str:
    return template.format(**{k: v for k, v in ctx.items() if isinstance(v, str)})


def _route_id(route: tuple[Any, ...]) -> str:
    return f"{route[0]} {route[1]}"


def test_every_app_route_is_covered(http: TestClient) -> None:
    routers = (orders.router, catalog.products_router, catalog.promotions_router, redemptions.router)
    served = {(m, r.path) for router in routers for r in router.routes for m in r.methods}  # type: ignore[attr-defined]
    covered = {(m, p.replace("{id}", "{order_id}")) for m, p, *_ in ROUTES}
    assert served == covered


@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_route_happy_path(http: TestClient, route: tuple[Any, ...]) -> None:
    method, template, setup, role, _, good, status, *_ = route
    ctx = setup(http)
    body = good(ctx)
    if template == "/v1/redemptions":
        body["code"] = json.loads(http.get(f"/v1/orders/{ctx['id']}/keys", headers=auth("storefront")).text)[
            "keys"][0]["code"]
    r = http.request(method, _path(template, ctx), json=body, headers=auth(role))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["position"], int)


@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_route_needs_a_token(http: TestClient, route: tuple[Any, ...]) -> None:
    method, template, *_ = route
    path = template.replace("{id}", str(uuid4())).replace("{sku}", "S1").replace("{code}", "C1")
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = http.request(method, path, json={}, headers=headers)
        assert_problem(r, 401, "unauthorized")


@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_route_refuses_the_wrong_role(http: TestClient, route: tuple[Any, ...]) -> None:
    method, template, _, _, forbidden, *_ = route
    path = template.replace("{id}", str(uuid4())).replace("{sku}", "S1").replace("{code}", "C1")
    assert_problem(http.request(method, path, json={}, headers=auth(forbidden)), 403, "forbidden")


@pytest.mark.parametrize("route", [r for r in ROUTES if r[8]], ids=_route_id)
def test_route_names_the_bad_field(http: TestClient, route: tuple[Any, ...]) -> None:
    method, template, _, role, _, _, _, bad, field = route
    if bad is None:  # the input is the path
        path = template
        for placeholder, value in BAD_PATH.items():
            path = path.replace(placeholder, value)
    else:
        path = template.replace("{id}", str(uuid4())).replace("{sku}", "S1").replace("{code}", "C1")
    body = assert_problem(http.request(method, path, json=bad, headers=auth(role)), 422, "invalid-input")
    fields = [e["field"] for e in body["errors"]]
    assert any(f == field or f.endswith(f".{field}") for f in fields), fields
    assert all(set(e) == {"field", "message"} for e in body["errors"])


def test_missing_body_and_malformed_json_are_422(http: TestClient) -> None:
    as_json = {"content-type": "application/json"}
    r = http.post("/v1/orders", content=b"{not json", headers={**auth("storefront"), **as_json})
    assert_problem(r, 422, "invalid-input")
    r = http.post("/v1/products/S1/batches", content=b"[1,", headers={**auth("admin"), **as_json})
    assert_problem(r, 422, "invalid-input")
    r = http.post("/v1/promotions", json={"type": "voucher"}, headers=auth("admin"))
    assert_problem(r, 422, "invalid-input")


# ---- products and promotions ----


def test_products_read_straight_from_the_ledger(http: TestClient) -> None:
    sku, _ = make_product(http, keys=0, per_customer_limit=4)
    r = http.post("/v1/promotions", headers=auth("admin"), json={
        "type": "flash_sale", "sale_id": uid("flash"), "sku": sku, "starts_at": iso(timedelta(hours=1)),
        "ends_at": iso(timedelta(hours=2)), "price": "7.50", "total_quantity": 3, "per_customer_limit": 1,
    })
    assert r.status_code == 201 and r.json()["type"] == "flash_sale", r.text
    sale_id = r.json()["sale_id"]
    product = http.get(f"/v1/products/{sku}", headers=auth("storefront")).json()
    assert product["price"] == "10.00" and product["face_value"] == "10.00"
    assert product["channel_prices"] == {"partner": "9.50"}
    assert product["per_customer_limit"] == 4 and product["retired"] is False
    assert [s["sale_id"] for s in product["flash_sales"]] == [sale_id]
    listing = http.get("/v1/products", headers=auth("analyst")).json()
    assert sku in {p["sku"] for p in listing["products"]}
    assert_problem(http.get("/v1/products/NOPE-404", headers=auth("finance")), 404, "unknown-product")
    again = http.post("/v1/products", json=product_body(sku), headers=auth("admin"))
    assert_problem(again, 409, "already-exists")


def test_coupon_is_read_back_with_uses_left(http: TestClient) -> None:
    sku, _ = make_product(http, keys=2)
    code = _coupon_ctx(http)["code"]
    r = order(http, sku, coupon_code=code.lower())
    assert r.status_code == 201, r.text
    coupon = http.get(f"/v1/promotions/{code}", headers=auth("storefront")).json()
    assert coupon["uses_left"] == 4 and coupon["value"] == "10.00" and coupon["kind"] == "percent"
    assert_problem(http.get("/v1/promotions/UNKNOWN1", headers=auth("admin")), 404, "unknown-coupon")
    duplicate = http.post("/v1/promotions", headers=auth("admin"), json={
        "type": "coupon", "code": code.lower(), "kind": "amount", "value": "1.00", "currency": "USD",
        "starts_at": iso(-timedelta(days=1)), "ends_at": iso(timedelta(days=1)),
    })
    assert assert_problem(duplicate, 409, "already-exists")["status"] == 409


def test_coupon_window_is_checked_by_the_ledger(http: TestClient) -> None:
    r = http.post("/v1/promotions", headers=auth("admin"), json={
        "type": "coupon", "code": uid("W"), "kind": "amount", "value": "1.00", "currency": "USD",
        "starts_at": iso(timedelta(days=1)), "ends_at": iso(timedelta(0)),
    })
    assert assert_problem(r, 422, "invalid-input")["errors"][0]["field"] == "ends_at"
    naive = datetime.now().replace(tzinfo=None).isoformat()
    r = http.post("/v1/promotions", headers=auth("admin"), json={
        "type": "coupon", "code": uid("W"), "kind": "amount", "value": "1.00", "currency": "USD",
        "starts_at": naive, "ends_at": iso(timedelta(days=1)),
    })
    assert any(e["field"].endswith("starts_at") for e in assert_problem(r, 422, "invalid-input")["errors"])


# ---- batches ----


def test_batch_with_bad_lines_lists_each_and_imports_nothing(http: TestClient, module_services: Services) -> None:
    sku, _ = make_product(http, keys=0)
    good = fresh_codes(2, sku)
    codes = [good[0], "has space", good[1], good[0], ""]
    r = http.post(f"/v1/products/{sku}/batches", headers=auth("admin"),
                  json={"supplier": "acme", "unit_cost": "6.00", "codes": codes})
    body = assert_problem(r, 422, "import-rejected")
    assert [e["line"] for e in body["errors"]] == [2, 4, 5]
    assert "duplicate of line 1" in body["errors"][1]["reason"]
    assert all(set(e) == {"line", "reason"} for e in body["errors"])
    assert not any(c and c in r.text for c in codes)
    assert module_services.ledger.reads.stock(sku).available == []
    # An already-imported code is refused on a later batch too.
    assert http.post(f"/v1/products/{sku}/batches", headers=auth("admin"),
                     json={"supplier": "acme", "unit_cost": "6.00", "codes": good[:1]}).status_code == 201
    r = http.post(f"/v1/products/{sku}/batches", headers=auth("admin"),
                  json={"supplier": "acme", "unit_cost": "6.00", "codes": good})
    assert assert_problem(r, 422, "import-rejected")["errors"] == [{"line": 1, "reason": "code already imported"}]
    assert len(module_services.ledger.reads.stock(sku).available) == 1


def test_batch_upload_as_a_file(http: TestClient, module_services: Services) -> None:
    sku, _ = make_product(http, keys=0)
    codes = fresh_codes(3, sku)
    csv = "code,serial\n" + "".join(f"{c},{i}\n" for i, c in enumerate(codes))
    r = http.post(f"/v1/products/{sku}/batches", headers=auth("admin"), data={"supplier": "acme", "unit_cost": "6"},
                  files={"file": ("keys.csv", csv.encode(), "text/csv")})
    assert r.status_code == 201 and r.json()["keys"] == 3, r.text
    plain = fresh_codes(2, sku)
    r = http.post(f"/v1/products/{sku}/batches", headers=auth("admin"), data={"supplier": "acme", "unit_cost": "6"},
                  files={"file": ("keys.txt", "\n".join(plain).encode(), "text/plain")})
    assert r.status_code == 201 and r.json()["keys"] == 2, r.text
    bad = f"{plain[0]}\nok-{sku}-1\nbad code\n\n"
    r = http.post(f"/v1/products/{sku}/batches", headers=auth("admin"), data={"supplier": "acme", "unit_cost": "6"},
                  files={"file": ("keys.txt", bad.encode(), "text/plain")})
    body = assert_problem(r, 422, "import-rejected")
    assert [e["line"] for e in body["errors"]] == [1, 3, 4]
    assert plain[0] not in r.text
    assert len(module_services.ledger.reads.stock(sku).available) == 5
    form = {"supplier": "acme", "unit_cost": "6"}
    missing = http.post(f"/v1/products/{sku}/batches", headers=auth("admin"), data=form,
                        files={"other": ("k.txt", b"A-1", "text/plain")})
    assert "file" in [e["field"] for e in assert_problem(missing, 422, "invalid-input")["errors"]]
    bad_cost = http.post(f"/v1/products/{sku}/batches", headers=auth("admin"), data={**form, "unit_cost": "x"},
                         files={"file": ("k.txt", b"A-1", "text/plain")})
    assert [e["field"] for e in assert_problem(bad_cost, 422, "invalid-input")["errors"]] == ["unit_cost"]
    unknown = http.post("/v1/products/NO-SUCH-SKU/batches", headers=auth("admin"),
                        json={"supplier": "acme", "unit_cost": "6.00", "codes": ["Z-1"]})
    assert_problem(unknown, 404, "unknown-product")


# ---- idempotency ----


def test_idempotency_key_replays_the_stored_response(http: TestClient, module_services: Services) -> None:
    sku, _ = make_product(http, keys=3)
    customer = uid("idem")
    body = {"customer_id": customer, "sku": sku, "quantity": 1}
    headers = {**auth("storefront"), "Idempotency-Key": uid("key")}
    first = http.post("/v1/orders", json=body, headers=headers)
    second = http.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second.headers["idempotent-replayed"] == "true"
    holder = module_services.ledger.reads.customer(customer)
    assert holder is not None and list(holder.open_orders) == [first.json()["order_id"]]
    assert len(module_services.ledger.reads.stock(sku).available) == 2
    other = http.post("/v1/orders", json={**body, "quantity": 2}, headers=headers)
    assert_problem(other, 409, "conflict")
    # Another caller may use the same key for its own request.
    sku2_headers = {**auth("admin"), "Idempotency-Key": headers["Idempotency-Key"]}
    assert http.post("/v1/products", json=product_body(uid("I")), headers=sku2_headers).status_code == 201


def test_idempotency_on_every_post_route(http: TestClient) -> None:
    sku, _ = make_product(http, keys=0)
    for path, body in [
        ("/v1/products", product_body(uid("IP"))),
        (f"/v1/products/{sku}/batches", {"supplier": "acme", "unit_cost": "1.00", "codes": fresh_codes(1, "ID")}),
        ("/v1/promotions", {"type": "coupon", "code": uid("IC"), "kind": "amount", "value": "1.00",
                            "currency": "USD", "starts_at": iso(-timedelta(days=1)), "ends_at": iso(timedelta(1))}),
    ]:
        headers = {**auth("admin"), "Idempotency-Key": uid("k")}
        first, second = (http.post(path, json=body, headers=headers) for _ in range(2))
        assert first.status_code == second.status_code == 201, (path, first.text, second.text)
        assert first.json() == second.json() and second.headers["idempotent-replayed"] == "true"
        assert_problem(http.post(path, json={**body, "name": "other"} if path == "/v1/products" else
                                 {**body, "supplier": "other"} if "batches" in path else {**body, "value": "2.00"},
                                 headers=headers), 409, "conflict")


def test_a_refusal_is_replayed_too(http: TestClient) -> None:
    sku, _ = make_product(http, keys=1)
    headers = {**auth("storefront"), "Idempotency-Key": uid("k")}
    body = {"customer_id": uid("c"), "sku": sku, "quantity": 2}
    first = http.post("/v1/orders", json=body, headers=headers)
    second = http.post("/v1/orders", json=body, headers=headers)
    assert_problem(first, 409, "out-of-stock")
    assert second.json() == first.json()


# ---- payments and redemption ----


def test_repeated_payment_callback_returns_the_same_keys(http: TestClient) -> None:
    sku, _ = make_product(http, keys=3)
    placed = order(http, sku, quantity=2).json()
    reference = uid("pay")
    first, second = pay(http, placed, reference), pay(http, placed, reference)
    assert first.status_code == second.status_code == 200
    assert first.json()["outcome"] == "delivered" and len(first.json()["key_ids"]) == 2
    assert second.json()["key_ids"] == first.json()["key_ids"] and second.json()["replayed"] is True
    keys = http.get(f"/v1/orders/{placed['order_id']}/keys", headers=auth("storefront")).json()["keys"]
    assert [k["key_id"] for k in keys] == first.json()["key_ids"]


def test_redemption_refusals_have_distinct_types(http: TestClient, module_services: Services) -> None:
    sku, codes = make_product(http, keys=3)
    placed = paid_order(http, sku)
    code = http.get(f"/v1/orders/{placed['order_id']}/keys", headers=auth("storefront")).json()["keys"][0]["code"]

    def redeem(c: str, role: str = "partner", platform: str | None = None) -> httpx.Response:
        body = {"code": c, "account_id": "acct-9", "platform": platform}
        response: httpx.Response = http.post("/v1/redemptions", json=body, headers=auth(role))
        return response

    assert_problem(redeem(code, platform="origin"), 409, "wrong-platform")
    ok = redeem(code, "storefront")
    assert ok.status_code == 200 and ok.json()["sku"] == sku and code not in ok.text
    types = {
        "already-redeemed": redeem(code),
        "unknown-code": redeem("NEVER-SEEN-1"),
        "key-not-delivered": redeem(next(c for c in codes if c != code)),
    }
    for name, response in types.items():
        assert_problem(response, 404 if name == "unknown-code" else 409, name)
    # Revoked: refund a delivered, unredeemed key.
    refunded = paid_order(http, sku)
    revoked_code = http.get(f"/v1/orders/{refunded['order_id']}/keys", headers=auth("storefront")).json()["keys"][0]
    r = http.post(f"/v1/orders/{refunded['order_id']}/refunds", headers=auth("admin"),
                  json={"amount": refunded["amount_due"], "reason": "goodwill"})
    assert r.status_code == 200 and r.json()["revoked_key_ids"] == [revoked_code["key_id"]], r.text
    assert_problem(redeem(revoked_code["code"]), 409, "key-revoked")
    # Voided: a supplier recall of keys still in stock (no API route yet: through the ledger).
    sku2, codes2 = make_product(http, keys=1)
    batch = module_services.ledger.reads.stock(sku2)
    assert len(batch.available) == 1
    key: Any = module_services.ledger.app.repository.get(batch.available[0])
    module_services.ledger.recall_batch(module_services.ledger.context("admin"), key.batch_id, "supplier recall")
    assert_problem(redeem(codes2[0]), 409, "key-voided")


def test_redemption_is_rate_limited(tmp_path: Path) -> None:
    services = open_services(f"sqlite:///{tmp_path / 'l.sqlite'}", tmp_path, rate_limit_per_minute=2)
    try:
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            # The limiter is per process and per token: tolerate counts left by other tests and a minute turning.
            responses = [client.post("/v1/redemptions", json={"code": "NOPE-1", "account_id": "a"},
                                     headers=auth("partner")) for _ in range(5)]
            assert {r.status_code for r in responses} <= {404, 429}
            assert_problem(responses[-1], 429, "rate-limited")
            assert responses[-1].headers["retry-after"] == "60"
    finally:
        services.close()


# ---- problem types for order refusals ----


def test_order_refusals_have_stable_problem_types(http: TestClient) -> None:
    scarce, _ = make_product(http, keys=1)
    body = assert_problem(order(http, scarce, quantity=2), 409, "out-of-stock")
    assert body["order_id"] and body["title"] == "OutOfStock"
    sku, _ = make_product(http, keys=3, per_customer_limit=2)
    customer = uid("lim")
    assert order(http, sku, quantity=2, customer=customer).status_code == 201
    assert_problem(order(http, sku, quantity=1, customer=customer), 409, "purchase-limit-reached")

    sku2, _ = make_product(http, keys=3)
    code = uid("ONCE").upper()
    assert http.post("/v1/promotions", headers=auth("admin"), json={
        "type": "coupon", "code": code, "kind": "amount", "value": "1.00", "currency": "USD",
        "starts_at": iso(-timedelta(days=1)), "ends_at": iso(timedelta(days=1)), "total_cap": 1,
    }).status_code == 201
    placed = order(http, sku2, coupon_code=code)
    assert placed.status_code == 201 and placed.json()["amount_due"] == "9.00", placed.text
    assert_problem(order(http, sku2, coupon_code=code), 409, "coupon-exhausted")
    assert_problem(pay(http, placed.json(), amount="1.00"), 409, "amount-mismatch")
    assert_problem(http.get(f"/v1/orders/{uuid4()}", headers=auth("storefront")), 404, "unknown-order")
    paid = paid_order(http, sku2)
    cancel = http.post(f"/v1/orders/{paid['order_id']}/cancel", headers=auth("admin"))
    assert_problem(cancel, 409, "invalid-order-state")
    too_much = http.post(f"/v1/orders/{paid['order_id']}/refunds", headers=auth("admin"),
                         json={"amount": "99.00", "reason": "x"})
    assert_problem(too_much, 409, "refund-exceeds-paid")


# ---- codes never leak (runs last: it reads everything the module's client saw) ----


def test_zz_codes_appear_only_in_keys_responses(http: RecordingClient, module_services: Services) -> None:
    sku, codes = make_product(http, keys=2)
    placed = paid_order(http, sku, quantity=2)
    http.get(f"/v1/orders/{placed['order_id']}/keys", headers=auth("storefront"))
    http.get(f"/v1/orders/{placed['order_id']}", headers=auth("storefront"))
    http.get(f"/v1/products/{sku}", headers=auth("storefront"))
    all_codes = ISSUED | set(codes)  # from every test that used this client
    assert len(all_codes) > 10
    shown_in_keys = 0
    for method, path, _status, text in http.seen:
        found = [c for c in all_codes if c in text]
        if method == "GET" and path.endswith("/keys"):
            shown_in_keys += len(found)
        else:
            assert not found, (method, path)
    assert shown_in_keys >= 2
