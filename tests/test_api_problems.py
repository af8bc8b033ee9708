"""Problem details keep what clients rely on: auth challenges and the field at fault."""

from fastapi.testclient import TestClient

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
