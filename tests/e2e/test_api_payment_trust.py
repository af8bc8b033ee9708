"""Who may confirm a payment, tried the way an attacker would: over HTTP, with a stolen storefront
token or a forged, stale or replayed provider callback. Only a callback signed with the provider's
secret (Standard Webhooks) or the `payments` role confirms one; every other attempt is refused and
writes nothing. And the codes of a refunded order are never shown again."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.services import Services
from ledger import commands as c
from ledger.domain.ids import holder_id, payment_id
from ledger.domain.orders import OrderStatus
from tests.api_fixtures import TOKENS, auth, ui_sign_in
from tests.helpers import head, stocked_product

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
PROVIDER = "cardpay"
WEBHOOK = f"/v1/payment-providers/{PROVIDER}/webhooks"


@pytest.fixture
def services(api_services: Services) -> Services:
    """The API's store (tests/api_fixtures.py) with a product in stock and the provider registered."""
    ledger = api_services.ledger
    stocked_product(ledger, "GAME-1", keys=6)
    ledger.execute(c.SetPaymentProvider(ctx=ledger.context("admin"), name=PROVIDER, scheme="standard-webhooks",
                                        secret=SECRET)).get()
    return api_services


@pytest.fixture
def http(services: Services, client: TestClient) -> TestClient:
    return client


def place(http: TestClient, customer: str = "cust-1", **extra: Any) -> dict[str, Any]:
    r = http.post("/v1/orders", json={"customer_id": customer, "sku": "GAME-1", "quantity": 1, **extra},
                  headers=auth("storefront"))
    assert r.status_code == 201, r.text
    placed: dict[str, Any] = r.json()
    return placed


def signed(body: bytes, *, key: bytes = KEY, message_id: str | None = None,
           at: int | None = None) -> dict[str, str]:
    """The Standard Webhooks headers of `body`, computed as a provider does (no library)."""
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    timestamp = str(at if at is not None else int(time.time()))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": message_id, "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(), "content-type": "application/json"}


def confirmation(placed: dict[str, Any], reference: str = "pi_1") -> bytes:
    return json.dumps({"type": "payment.succeeded", "timestamp": "2026-03-01T12:00:00Z", "data": {
        "order_id": placed["order_id"], "payment_reference": reference, "amount": placed["amount_due"]}}).encode()


def status_of(services: Services, placed: dict[str, Any]) -> OrderStatus:
    return services.ledger.reads.order(uuid.UUID(placed["order_id"])).status


def test_a_stolen_storefront_token_cannot_confirm_a_payment(http: TestClient, services: Services) -> None:
    placed = place(http)
    before = head(services.ledger)
    r = http.post(f"/v1/orders/{placed['order_id']}/payments", headers=auth("storefront"),
                  json={"payment_reference": "free-goods", "amount": placed["amount_due"], "provider": "psp"})
    assert r.status_code == 403, r.text
    assert head(services.ledger) == before, "a refused payment wrote something"
    assert status_of(services, placed) == OrderStatus.RESERVED
    assert http.get(f"/v1/orders/{placed['order_id']}/keys", headers=auth("storefront")).json()["keys"] == []
    # Nor can the storefront call the provider's route without the provider's secret (below), and the
    # trusted back end's role can.
    r = http.post(f"/v1/orders/{placed['order_id']}/payments", headers=auth("payments"),
                  json={"payment_reference": "psp-1", "amount": placed["amount_due"], "provider": "psp"})
    assert r.status_code == 200 and r.json()["outcome"] == "delivered", r.text


def test_a_correctly_signed_provider_callback_confirms_the_payment(http: TestClient, services: Services) -> None:
    placed = place(http)
    body = confirmation(placed)
    r = http.post(WEBHOOK, content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    assert (r.json()["outcome"], r.json()["payment_reference"], len(r.json()["key_ids"])) == ("delivered", "pi_1", 1)
    assert status_of(services, placed) == OrderStatus.DELIVERED
    keys = http.get(f"/v1/orders/{placed['order_id']}/keys", headers=auth("storefront")).json()["keys"]
    assert [k["key_id"] for k in keys] == r.json()["key_ids"]
    stream = services.ledger.reads.stream(uuid.UUID(placed["order_id"]))
    captured = [e for e in stream if e.event == "PaymentCaptured"]
    assert [e.data["provider"] for e in captured] == [PROVIDER]


@pytest.mark.parametrize("forgery", ["other secret", "tampered body", "no signature", "an hour old",
                                     "ten minutes ahead", "not a timestamp", "unknown provider"])
def test_a_forged_or_stale_callback_is_refused_and_writes_nothing(
    http: TestClient, services: Services, forgery: str
) -> None:
    placed = place(http)
    body, path = confirmation(placed), WEBHOOK
    headers = signed(body)
    if forgery == "other secret":
        headers = signed(body, key=b"\x01" * 32)
    elif forgery == "tampered body":
        body = body.replace(b'"pi_1"', b'"pi_2"')
    elif forgery == "no signature":
        del headers["webhook-signature"]
    elif forgery == "an hour old":
        headers = signed(body, at=int(time.time()) - 3600)
    elif forgery == "ten minutes ahead":
        headers = signed(body, at=int(time.time()) + 600)
    elif forgery == "not a timestamp":
        headers["webhook-timestamp"] = "yesterday"
    else:
        path = "/v1/payment-providers/someone-else/webhooks"
    before = head(services.ledger)
    r = http.post(path, content=body, headers=headers)
    assert r.status_code == (404 if forgery == "unknown provider" else 401), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert head(services.ledger) == before, f"{forgery}: something was written"
    assert status_of(services, placed) == OrderStatus.RESERVED


def test_a_replayed_webhook_id_is_answered_as_before_and_changes_nothing(
    http: TestClient, services: Services
) -> None:
    placed = place(http)
    body = confirmation(placed)
    headers = signed(body)
    first = http.post(WEBHOOK, content=body, headers=headers)
    assert first.status_code == 200, first.text
    after_first = head(services.ledger)
    again = http.post(WEBHOOK, content=body, headers=headers)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert head(services.ledger) == after_first
    # The same webhook-id for another payment (signed: the provider's own mistake, or its key stolen): 409.
    other = place(http, "cust-2")
    other_body = confirmation(other, "pi_2")
    before = head(services.ledger)
    r = http.post(WEBHOOK, content=other_body, headers=signed(other_body, message_id=headers["webhook-id"]))
    assert r.status_code == 409, r.text
    assert head(services.ledger) == before
    assert status_of(services, other) == OrderStatus.RESERVED


def test_a_signed_event_that_confirms_no_payment_changes_nothing(http: TestClient, services: Services) -> None:
    placed = place(http)
    body = json.dumps({"type": "payment.failed", "data": {"order_id": placed["order_id"]}}).encode()
    before = head(services.ledger)
    r = http.post(WEBHOOK, content=body, headers=signed(body))
    assert r.status_code == 202, r.text
    bad = b'{"type": "payment.succeeded", "data": {"order_id": "nope"}}'
    r = http.post(WEBHOOK, content=bad, headers=signed(bad))
    assert r.status_code == 400 and "order_id" in r.json()["detail"], r.text
    assert head(services.ledger) == before


def test_the_provider_secret_is_never_shown(http: TestClient, services: Services) -> None:
    feed = http.get("/v1/audit/events", params={"limit": 1000}, headers=auth("finance"))
    assert feed.status_code == 200
    registered = [e for e in feed.json()["events"] if e["type"] == "PaymentProvider.Registered"]
    assert [e["data"]["name"] for e in registered] == [PROVIDER]
    assert SECRET not in feed.text and SECRET.removeprefix("whsec_") not in feed.text
    assert "secret_sealed" not in feed.text


def test_the_keys_of_a_refunded_order_are_never_shown_again(http: TestClient, services: Services) -> None:
    placed = place(http)
    paid = http.post(f"/v1/orders/{placed['order_id']}/payments", headers=auth("payments"),
                     json={"payment_reference": "psp-r", "amount": placed["amount_due"], "provider": "psp"})
    assert paid.status_code == 200, paid.text
    keys = http.get(f"/v1/orders/{placed['order_id']}/keys", headers=auth("storefront")).json()["keys"]
    assert len(keys) == 1
    refund = http.post(f"/v1/orders/{placed['order_id']}/refunds", headers=auth("admin"),
                       json={"amount": placed["amount_due"], "reason": "goodwill"})
    assert refund.status_code == 200 and refund.json()["revoked_key_ids"] == [keys[0]["key_id"]], refund.text
    after = http.get(f"/v1/orders/{placed['order_id']}/keys", headers=auth("storefront"))
    assert after.status_code == 200 and after.json()["keys"] == []
    assert keys[0]["code"] not in after.text


# ---- analysts see pseudonyms ----


def _feed(http: TestClient, role: str) -> httpx.Response:
    r = http.get("/v1/audit/events", params={"limit": 1000}, headers=auth(role))
    assert r.status_code == 200, r.text
    return r


def test_an_analyst_sees_customers_by_pseudonym_and_no_ip_device_or_payment_reference(
    http: TestClient, services: Services
) -> None:
    customer, ip, device = "alice@example.com", "203.0.113.77", "device-4f9a7c"
    orders = [place(http, customer, client_ip=ip, device_id=device) for _ in range(2)]
    for n, placed in enumerate(orders):
        body = confirmation(placed, f"pi_secretref_{n}")
        assert http.post(WEBHOOK, content=body, headers=signed(body)).status_code == 200
    clear = _feed(http, "finance").text
    assert all(value in clear for value in (customer, ip, device, "pi_secretref_0"))  # finance reconciles by them

    feed = _feed(http, "analyst")
    for value in (customer, ip, device, "pi_secretref_0", "pi_secretref_1", "alice"):
        assert value not in feed.text, f"an analyst sees {value}"
    placed_events = [e for e in feed.json()["events"] if e["type"] == "Order.Placed"]
    pseudonyms = {e["data"]["customer_id"] for e in placed_events}
    assert len(placed_events) == 2 and len(pseudonyms) == 1, "one customer, one stable pseudonym"
    assert next(iter(pseudonyms)).startswith("customer-")
    assert all("client_ip" not in e["data"] and "device_id" not in e["data"] for e in placed_events)
    # The ids of aggregates derived from an IP, a device, a customer or a payment reference are
    # keyed too: an analyst cannot confirm a guess by hashing it.
    for guessable in (holder_id("ip", ip), holder_id("device", device), holder_id("customer", customer),
                      payment_id("pi_secretref_0")):
        assert str(guessable) not in feed.text and str(guessable) in clear


def test_an_analyst_cannot_open_a_customer_timeline_and_sees_order_timelines_pseudonymised(
    http: TestClient, services: Services
) -> None:
    placed = place(http, "bob@example.com", client_ip="198.51.100.9")
    body = confirmation(placed, "pi_bob")
    assert http.post(WEBHOOK, content=body, headers=signed(body)).status_code == 200
    signed_in = ui_sign_in(http, TOKENS["analyst"], follow_redirects=False)
    assert signed_in.status_code == 303, signed_in.text
    timeline = http.get(f"/ui/timeline/order/{placed['order_id']}")
    assert timeline.status_code == 200, timeline.text
    for value in ("bob@example.com", "198.51.100.9", "pi_bob"):
        assert value not in timeline.text
    assert http.get("/ui/timeline/customer/bob@example.com").status_code == 403
    # Nor can a guess be confirmed through the event browser's aggregate filter.
    for guessed in (holder_id("ip", "198.51.100.9"), holder_id("customer", "bob@example.com"), payment_id("pi_bob")):
        page = http.get("/ui/events", params={"aggregate": str(guessed)})
        assert page.status_code == 200 and 'data-type="' not in page.text, guessed
    assert 'data-type="Order.Placed"' in http.get("/ui/events", params={"aggregate": placed["order_id"]}).text


def test_support_sees_one_customer_in_clear_and_no_feed(http: TestClient, services: Services) -> None:
    placed = place(http, "carol@example.com", client_ip="192.0.2.5")
    body = confirmation(placed, "pi_carol")
    assert http.post(WEBHOOK, content=body, headers=signed(body)).status_code == 200
    found = http.get("/v1/support/orders", params={"customer_id": "carol@example.com"}, headers=auth("support"))
    assert found.status_code == 200, found.text
    (order,) = found.json()["orders"]
    assert (order["customer_id"], order["payment_references"]) == ("carol@example.com", ["pi_carol"])
    assert http.get("/v1/support/orders", headers=auth("support")).status_code == 422  # one customer at a time
    assert http.get("/v1/audit/events", headers=auth("support")).status_code == 403
    signed_in = ui_sign_in(http, TOKENS["support"], follow_redirects=False)
    assert signed_in.status_code == 303, signed_in.text
    timeline = http.get("/ui/timeline/customer/carol@example.com")
    assert timeline.status_code == 200 and 'data-type="Order.Placed"' in timeline.text
    assert http.get("/ui/events").status_code == 403
