"""Direct recharge orders over HTTP: the recipient account goes in with the order and never comes
back in clear (only masked); paying answers `accepted` and the order is `fulfilling` until a
supplier delivers it. Bad input (an account that does not fit, none for a recharge, one for a
card key, an unknown product) is refused naming the field, and writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.models import OrderStatusName, PaymentOutcomeName
from api.services import Services
from ledger.domain.orders import OrderStatus, PaymentOutcome
from tests.api_fixtures import auth, open_services
from tests.helpers import head, stocked_product

ACCOUNT = "13812345678"
MASKED = "138****5678"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    # No fulfilment worker here: the order stays `fulfilling`, as it is until a supplier answers.
    services = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path, serve_fulfilment=False)
    ledger = services.ledger
    ledger.define_product(ledger.context("admin"), sku="TOPUP-10", name="Top-up 10", kind="direct_recharge",
                          face_value="10.00", currency="USD", price="10.50")
    stocked_product(ledger, "GAME-1", keys=2)
    yield services
    services.close()


@pytest.fixture
def http(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, background=True), raise_server_exceptions=False) as client:
        yield client


def order(http: TestClient, **fields: Any) -> Any:
    body = {"customer_id": "cust-1", "sku": "TOPUP-10", "quantity": 1, **fields}
    return http.post("/v1/orders", json=body, headers=auth("storefront"))


def test_a_recharge_is_ordered_for_an_account_shown_masked_and_paid_as_accepted(http: TestClient) -> None:
    placed = order(http, recipient_account=ACCOUNT)
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert (body["status"], body["amount_due"], body["recipient_account_masked"]) == ("reserved", "10.50", MASKED)
    paid = http.post(f"/v1/orders/{body['order_id']}/payments", headers=auth("payments"),
                     json={"payment_reference": "psp-1", "amount": "10.50", "provider": "psp"})
    assert paid.status_code == 200, paid.text
    assert (paid.json()["outcome"], paid.json()["key_ids"]) == ("accepted", [])
    view = http.get(f"/v1/orders/{body['order_id']}", headers=auth("storefront"))
    assert view.status_code == 200, view.text
    assert (view.json()["status"], view.json()["recipient_account_masked"]) == ("fulfilling", MASKED)
    for response in (placed, paid, view):
        assert ACCOUNT not in response.text  # personal data: never echoed in clear


def test_a_retry_under_the_same_key_gets_the_same_answer_and_another_account_is_another_request(
    http: TestClient,
) -> None:
    headers = {**auth("storefront"), "Idempotency-Key": "order-acct-1"}
    body = {"customer_id": "cust-2", "sku": "TOPUP-10", "quantity": 1, "recipient_account": ACCOUNT}
    first = http.post("/v1/orders", json=body, headers=headers)
    again = http.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = http.post("/v1/orders", json={**body, "recipient_account": "13900000000"}, headers=headers)
    assert other.status_code == 409  # the key names another request: the account is part of it


def test_a_card_key_order_shows_no_recipient(http: TestClient) -> None:
    placed = order(http, sku="GAME-1")
    assert placed.status_code == 201, placed.text
    assert placed.json()["recipient_account_masked"] is None
    view = http.get(f"/v1/orders/{placed.json()['order_id']}", headers=auth("storefront"))
    assert view.json()["recipient_account_masked"] is None


BAD_ACCOUNTS = {
    "missing for a recharge": {},
    "null for a recharge": {"recipient_account": None},
    "empty": {"recipient_account": ""},
    "letters": {"recipient_account": "call-me-maybe"},
    "too short": {"recipient_account": "12345"},
    "too long for the product": {"recipient_account": "1" * 16},
    "too long for the API": {"recipient_account": "1" * 201},
    "a number, not text": {"recipient_account": 13812345678},
    "surrounding spaces": {"recipient_account": " 13812345678"},
    "a control character": {"recipient_account": "138123\n45678"},
    "a list": {"recipient_account": [ACCOUNT]},
    "for a card key": {"sku": "GAME-1", "recipient_account": ACCOUNT},
}


@pytest.mark.parametrize("fields", BAD_ACCOUNTS.values(), ids=BAD_ACCOUNTS.keys())
def test_a_bad_recipient_account_is_refused_naming_it_and_writes_nothing(
    http: TestClient, services: Services, fields: dict[str, Any]
) -> None:
    before = head(services.ledger)
    refused = order(http, **fields)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/invalid-input")
    assert [e["field"] for e in problem["errors"]] == ["recipient_account"], problem
    assert ACCOUNT not in refused.text
    assert head(services.ledger) == before


def test_an_unknown_product_is_not_found_and_writes_nothing(http: TestClient, services: Services) -> None:
    before = head(services.ledger)
    refused = order(http, sku="NO-SUCH-TOPUP", recipient_account=ACCOUNT)
    assert refused.status_code == 404, refused.text
    assert refused.json()["type"].endswith("/unknown-product")
    assert head(services.ledger) == before


def test_the_response_models_allow_every_status_and_outcome_the_ledger_has() -> None:
    assert set(get_args(OrderStatusName)) == {s.value for s in OrderStatus}
    assert set(get_args(PaymentOutcomeName)) == {o.value for o in PaymentOutcome}


def test_an_admin_refund_of_a_fulfilling_recharge_is_a_conflict_and_writes_nothing(
    http: TestClient, services: Services
) -> None:
    placed = order(http, recipient_account=ACCOUNT).json()
    paid = http.post(f"/v1/orders/{placed['order_id']}/payments", headers=auth("payments"),
                     json={"payment_reference": "psp-2", "amount": "10.50", "provider": "psp"})
    assert paid.json()["outcome"] == "accepted"
    before = head(services.ledger)
    refused = http.post(f"/v1/orders/{placed['order_id']}/refunds", headers=auth("admin"),
                        json={"amount": "10.50", "reason": "asked"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/invalid-order-state")
    assert head(services.ledger) == before
