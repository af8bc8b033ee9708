"""`ledger serve --workers 2` on PostgreSQL, killed with SIGKILL (the serving process and its
workers at once) at random moments while clients place and pay for orders, then restarted.

Clients do what a storefront does: send each request with its own Idempotency-Key and, when
the connection drops or the answer is a 5xx, send the same request again until it is answered.
Afterwards every request is sent once more: each gets exactly its first answer, replayed; no key
is ever "in progress"; every placed order is reachable; no code is delivered twice."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.config import Settings
from ledger.domain.orders import Order
from ledger.domain.supply import Key
from ledger.service.ledger import open_ledger
from tests.conftest import TEST_CIPHER_KEY
from tests.served import Served, auth, serve_env

pytestmark = pytest.mark.postgres

SKU = "CRASH-1"
KEYS = 40
CUSTOMERS = 60
CLIENTS = 8
KILLS = 3
@pytest.fixture
def served(pg_url: str, tmp_path: Path) -> Iterator[Served]:
    env = serve_env(pg_url, tmp_path, pool_size=6)
    server = Served(env, tmp_path / "serve.log", workers=2)
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Requests:
    """Every request a client sent, under its key, with the first answer it got."""

    def __init__(self, server: Served) -> None:
        self.server = server
        self.answers: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = {}
        self.statuses: Counter[int] = Counter()
        self.dropped = 0  # requests whose connection the kill cut
        self.lock = threading.Lock()
        self.up = threading.Event()
        self.up.set()

    def send(self, path: str, body: dict[str, Any], role: str = "storefront") -> tuple[int, dict[str, Any]]:
        """Until answered: a dropped connection or a 5xx is sent again, with the same key."""
        key = uuid.uuid4().hex
        headers = {**auth(role), "Idempotency-Key": key}
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, f"{path} never answered"
            self.up.wait(timeout=30)
            try:
                response = httpx.post(self.server.base_url + path, json=body, headers=headers, timeout=10)
            except httpx.HTTPError:
                with self.lock:
                    self.dropped += 1
                time.sleep(0.05)
                continue
            with self.lock:
                self.statuses[response.status_code] += 1
            if response.status_code >= 500:
                time.sleep(0.05)
                continue
            assert response.status_code != 409 or "in progress" not in response.text, response.text
            with self.lock:
                self.answers[key] = (path, body, response.status_code, response.json())
            return response.status_code, response.json()


def test_sigkill_during_orders_and_payments_loses_and_repeats_nothing(
    served: Served, pg_url: str, tmp_path: Path
) -> None:
    codes = [f"CR-{uuid.uuid4().hex[:8]}-{i:03d}" for i in range(KEYS)]
    admin = auth("admin")
    assert httpx.post(served.base_url + "/v1/products", headers=admin, json={
        "sku": SKU, "name": "crash", "face_value": "5.00", "currency": "USD", "price": "5.00"}).status_code == 201
    assert httpx.post(served.base_url + f"/v1/products/{SKU}/batches", headers=admin, timeout=30, json={
        "supplier": "acme", "unit_cost": "2.00", "codes": codes}).status_code == 201

    requests = Requests(served)
    done = threading.Event()
    rng = random.Random(7)

    def customer(n: int) -> tuple[str, int, dict[str, Any]]:
        status, placed = requests.send("/v1/orders", {"customer_id": f"c-{n}", "sku": SKU, "quantity": 1})
        if status != 201:
            return "refused", status, placed
        status, paid = requests.send(f"/v1/orders/{placed['order_id']}/payments", {
            "payment_reference": f"crash-pay-{n}", "amount": placed["amount_due"], "provider": "psp"}, "payments")
        return placed["order_id"], status, paid

    def killer() -> None:
        """Kill while requests are in flight: after a growing number of answers, at a random instant."""
        for kill in range(KILLS):
            while len(requests.answers) < (kill + 1) * 2 * CUSTOMERS // (KILLS + 2):
                if done.wait(0.01):
                    return
            if done.wait(rng.uniform(0, 0.2)):
                return
            requests.up.clear()
            served.kill()
            served.start()
            requests.up.set()

    kills = threading.Thread(target=killer)
    kills.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            outcomes = list(pool.map(customer, range(CUSTOMERS)))
    finally:
        done.set()
        kills.join()

    # Each order was placed and paid once: the stock sold out exactly, nothing twice.
    placed = [(o, s, p) for o, s, p in outcomes if o != "refused"]
    assert len(placed) == KEYS, Counter(s for _, s, _ in outcomes)
    assert all(s == 409 and p["type"].endswith("/out-of-stock") for o, s, p in outcomes if o == "refused")
    assert all(s == 200 and p["outcome"] == "delivered" and len(p["key_ids"]) == 1 for _, s, p in placed)
    delivered = [p["key_ids"][0] for _, _, p in placed]
    assert len(set(delivered)) == KEYS

    # A retry of any request, now, gets its first answer again (from the store, not memory).
    served.kill()
    served.start()
    for key, (path, body, status, answer) in requests.answers.items():
        role = "payments" if path.endswith("/payments") else "storefront"
        again = httpx.post(served.base_url + path, json=body, headers={**auth(role), "Idempotency-Key": key})
        assert (again.status_code, again.json()) == (status, answer), path
        assert again.headers["idempotent-replayed"] == "true"
    for order_id, _, _ in placed:
        got = httpx.get(served.base_url + f"/v1/orders/{order_id}", headers=auth("storefront"))
        assert got.status_code == 200 and got.json()["status"] == "delivered"
    served.stop()

    # In the store: every placed (not rejected) order is one a client holds; each key left once.
    ledger = open_ledger(Settings(database_url=pg_url, cipher_key=TEST_CIPHER_KEY, data_dir=tmp_path))
    try:
        orders, deliveries = set(), Counter[Any]()
        for notification in ledger.app.recorder.select_notifications(1, 1_000_000):
            event = ledger.app.mapper.to_domain_event(notification)
            if isinstance(event, Order.KeysReserved):
                orders.add(str(event.originator_id))
            if isinstance(event, Key.Delivered):
                deliveries[event.originator_id] += 1
        assert orders == {o for o, _, _ in placed}, "an order was placed that no client can reach"
        assert len(deliveries) == KEYS and set(deliveries.values()) == {1}
    finally:
        ledger.close()
    print(f"\n{KILLS} kills cut {requests.dropped} requests; answers by status: {dict(requests.statuses)}")
