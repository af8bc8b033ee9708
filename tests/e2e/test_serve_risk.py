"""`ledger serve` arms order-time risk from LEDGER_FRAUD_REJECT_SCORE alone: a real server, over
HTTP, rejects a scalper's burst once its own projection runner has scored him, and a server
without the setting lets the same burst through."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.problems import PROBLEM, TYPE_BASE
from projections.models.fraud import FraudRules
from tests.conftest import TEST_CIPHER_KEY
from tests.served import TOKENS, Served, auth

SCALPER = {"customer_id": "scalper", "client_ip": "203.0.113.66", "device_id": "dev-scalper"}
BURST = FraudRules().velocity_max_orders + 1  # one more than the velocity rule allows in its window
THRESHOLD = FraudRules().velocity_score  # the velocity alert alone reaches it


def _env(data_dir: Path, reject_score: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update({
        "LEDGER_DATABASE_URL": f"sqlite:///{data_dir / 'ledger.sqlite'}",
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_CIPHER_KEY": TEST_CIPHER_KEY,
        "LEDGER_API_TOKENS": ",".join(f"{r}={t}" for r, t in TOKENS.items()),
        "LEDGER_AUDIT_CHECKPOINT_INTERVAL_S": "0",
        # The unpaid caps would stop the burst first: only risk may say no here.
        "LEDGER_MAX_UNPAID_PER_CUSTOMER": "100",
        "LEDGER_MAX_UNPAID_PER_IP": "100",
        "LEDGER_MAX_UNPAID_PER_DEVICE": "100",
    })
    if reject_score is not None:
        env["LEDGER_FRAUD_REJECT_SCORE"] = str(reject_score)
    return env


@pytest.fixture(params=[THRESHOLD, None], ids=["reject-score-set", "reject-score-unset"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[httpx.Client, bool]]:
    server = Served(_env(tmp_path, request.param), tmp_path / "serve.log")
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            yield client, request.param is not None
    finally:
        server.stop()


def _post(client: httpx.Client, path: str, role: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(path, json=body, headers=auth(role))


def _stocked(client: httpx.Client, keys: int) -> str:
    sku = f"RISK-{uuid.uuid4().hex[:8]}"
    r = _post(client, "/v1/products", "admin", {
        "sku": sku, "name": "Game key", "kind": "card_key", "face_value": "10.00", "currency": "USD",
        "price": "10.00", "platform": "pc",
    })
    assert r.status_code == 201, r.text
    codes = [f"RK-{uuid.uuid4().hex[:12].upper()}" for _ in range(keys)]
    r = _post(client, f"/v1/products/{sku}/batches", "admin", {"supplier": "acme", "unit_cost": "6.00", "codes": codes})
    assert r.status_code == 201, r.text
    return sku


def _order(client: httpx.Client, sku: str) -> httpx.Response:
    return _post(client, "/v1/orders", "storefront", {**SCALPER, "sku": sku, "quantity": 1})


def _scored(client: httpx.Client, position: int, timeout: float = 60) -> dict[str, Any]:
    """The scalper's fraud subject once the server's runner has projected up to `position`."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/v1/fraud/subjects/customer/{SCALPER['customer_id']}",
                       params={"min_position": position}, headers=auth("risk"))
        if r.status_code == 200:
            body: dict[str, Any] = r.json()
            return body
        assert r.status_code == 503, r.text  # not caught up yet: the read itself waited a while
        assert time.monotonic() < deadline, f"the fraud read model did not reach position {position}"
        time.sleep(0.05)


def test_serve_rejects_a_scalpers_burst_only_when_the_reject_score_is_set(
    served: tuple[httpx.Client, bool],
) -> None:
    client, armed = served
    sku = _stocked(client, keys=BURST + 5)
    positions = []
    for _ in range(BURST):  # the burst before any alert: nothing to judge it by yet
        r = _order(client, sku)
        assert r.status_code == 201, r.text
        positions.append(r.json()["position"])
    subject = _scored(client, max(positions))
    assert subject["alerted"] and subject["top_rule"] == "velocity" and subject["score"] >= THRESHOLD, subject

    again = _order(client, sku)
    if not armed:
        assert again.status_code == 201, again.text  # the signal is there; nothing acts on it
        return
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith(PROBLEM)
    problem = again.json()
    assert problem["type"] == TYPE_BASE + "risk-rejected", problem
    assert problem["rule"] == "velocity" and problem["order_id"], problem
    # The rejection is on record: the order exists, rejected, and the next try is refused too.
    rejected = client.get(f"/v1/orders/{problem['order_id']}", headers=auth("storefront"))
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected", rejected.text
    assert _order(client, sku).json()["type"] == TYPE_BASE + "risk-rejected"
