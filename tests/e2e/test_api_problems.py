"""Problem details keep what clients rely on: auth challenges and the field at fault."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.services import Services
from ledger.domain.errors import Contention
from ledger.writer.outcomes import Done
from tests.api_fixtures import auth


def test_401_carries_a_bearer_challenge(client: TestClient) -> None:
    response = client.get("/v1/inventory")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


def test_oversized_bodies_are_refused_before_parsing(client: TestClient) -> None:
    big = {"customer_id": "c", "sku": "S", "quantity": 1, "channel": "x" * 2_000_000}
    response = client.post("/v1/orders", json=big, headers=auth("storefront"))
    assert response.status_code == 413
    assert response.json()["type"].endswith("/request-too-large")


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(client: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65_536  # 2.5 MiB in all, no Content-Length

    headers = auth("storefront") | {"content-type": "application/json"}
    response = client.post("/v1/orders", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.json()["type"].endswith("/request-too-large")


def test_a_temporary_failure_is_not_replayed_under_its_idempotency_key(
    client: TestClient, api_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 (contention) must leave the key free, so that the retry really runs."""
    ledger = api_services.ledger
    admin = ledger.context("admin")
    ledger.define_product(admin, sku="TEMP-1", name="t", face_value="1", currency="USD", price="1.00")
    ledger.import_keys(admin, sku="TEMP-1", supplier="s", unit_cost="0.50", codes=[(1, "TEMP-CODE-1")])
    real = ledger.execute
    calls: list[int] = []

    def busy_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # what the writer answers when it gives up
            return Done(None, Contention("gave up after 40 conflicting attempts; retry the request"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ledger, "execute", busy_once)
    body = {"customer_id": "temp", "sku": "TEMP-1", "quantity": 1}
    headers = auth("storefront") | {"Idempotency-Key": "temp-key"}
    first = client.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == 503 and first.headers["retry-after"] == "1"
    second = client.post("/v1/orders", json=body, headers=headers)
    assert second.status_code == 201 and len(calls) == 2
