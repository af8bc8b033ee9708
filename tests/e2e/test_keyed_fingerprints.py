"""Idempotency fingerprints are keyed (issue 21): an analyst or a finance token reading the
answers kept under idempotency keys cannot test a guessed code against them offline."""

from __future__ import annotations

import hashlib
import json

from fastapi.testclient import TestClient

from tests.api_fixtures import auth

ROUTE = "POST /v1/redemptions"


def plain_fingerprint(body: dict[str, object]) -> str:
    """What the fingerprint was before: sha256 of the route and body, which anyone can compute."""
    return hashlib.sha256(json.dumps([ROUTE, body], sort_keys=True, default=str).encode()).hexdigest()


def test_a_redemptions_stored_fingerprint_is_not_a_hash_of_its_body(client: TestClient) -> None:
    body = {"code": "VIDX-7Q2K-9M4P", "account_id": "acct-1", "platform": None}
    headers = {**auth("storefront"), "Idempotency-Key": "redeem-1"}
    first = client.post("/v1/redemptions", json=body, headers=headers)
    assert first.status_code == 404  # an unknown code: a refusal, kept as the key's answer
    again = client.post("/v1/redemptions", json=body, headers=headers)
    assert again.status_code == 404 and again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/v1/redemptions", json={**body, "code": "VIDX-0000-0000"}, headers=headers)
    assert other.status_code == 409  # the key with another body: still told apart

    # The attacker: a finance token reads the kept answers and hashes each guessed code.
    feed = client.get("/v1/audit/events", params={"type": "Answer.Given"}, headers=auth("finance"))
    assert feed.status_code == 200
    stored = [e["data"]["request"] for e in feed.json()["events"]]
    assert len(stored) == 1 and stored[0].startswith("hmac-sha256:")
    guesses = [plain_fingerprint({**body, "code": guess}) for guess in ("VIDX-0000-0000", body["code"])]
    text = feed.text
    assert not any(guess in text for guess in guesses)
    assert hashlib.sha256(str(body["code"]).encode()).hexdigest() not in text
    assert str(body["code"]) not in text


def test_a_batchs_stored_fingerprint_is_not_a_hash_of_its_codes(client: TestClient) -> None:
    product = {"sku": "VID-1M", "name": "Video", "face_value": "10.00", "currency": "USD", "price": "9.00"}
    assert client.post("/v1/products", json=product, headers=auth("admin")).status_code == 201
    codes = ["VIDX-AAAA-1111", "VIDX-BBBB-2222"]
    batch = {"supplier": "Keystone", "unit_cost": "6.50", "codes": codes}
    imported = client.post("/v1/products/VID-1M/batches", json=batch,
                           headers={**auth("admin"), "Idempotency-Key": "batch-1"})
    assert imported.status_code == 201

    feed = client.get("/v1/audit/events", params={"type": "Answer.Given"}, headers=auth("finance")).text
    digest = hashlib.sha256("\n".join(codes).encode()).hexdigest()  # the batch digest, from guessed codes
    route = "POST /v1/products/VID-1M/batches"
    fingerprint = {"supplier": "Keystone", "unit_cost": "6.50", "codes_sha256": digest}
    plain = hashlib.sha256(json.dumps([route, fingerprint], sort_keys=True, default=str).encode()).hexdigest()
    assert "hmac-sha256:" in feed
    assert digest not in feed and plain not in feed and not any(code in feed for code in codes)
