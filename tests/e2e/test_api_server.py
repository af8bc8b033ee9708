"""A real `ledger serve` (uvicorn in a subprocess) on PostgreSQL: a flash sale over HTTP from
concurrent clients sells every key exactly once, the read models agree, and SIGTERM stops it cleanly."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_CIPHER_KEY
from tests.served import Served, auth, serve_env

pytestmark = pytest.mark.postgres

N_KEYS = 40
CLIENTS = 16
ATTEMPTS = 150
SKU = "FLASH-T1"
@pytest.fixture
def server(pg_url: str, tmp_path: Path) -> Iterator[Served]:
    env = serve_env(pg_url, tmp_path, pool_size=12)
    served = Served(env, tmp_path / "serve.log")
    try:
        served.start()
        yield served
    finally:
        served.stop()


def routes(client: httpx.Client) -> set[str]:
    spec = client.get("/openapi.json").json()
    return {f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item}


def seed(client: httpx.Client, pg_url: str, tmp_path: Path, codes: list[str]) -> None:
    """Through the API when the catalogue routes exist, else through the ledger service directly."""
    known = routes(client)
    if {"POST /v1/products", "POST /v1/products/{sku}/batches"} <= known:
        made = client.post("/v1/products", headers=auth("admin"), json={
            "sku": SKU, "name": "Flash sale key", "face_value": "10.00", "currency": "USD", "price": "9.00"})
        assert made.status_code == 201, made.text
        batch = client.post(f"/v1/products/{SKU}/batches", headers=auth("admin"),
                            json={"supplier": "acme", "unit_cost": "5.00", "codes": codes})
        assert batch.status_code in (200, 201), batch.text
        return
    from ledger.config import Settings
    from ledger.service.ledger import open_ledger

    ledger = open_ledger(Settings(database_url=pg_url, cipher_key=TEST_CIPHER_KEY, data_dir=tmp_path))
    try:
        ctx = ledger.context("test")
        ledger.define_product(ctx, sku=SKU, name="Flash sale key", face_value="10.00", currency="USD", price="9.00")
        ledger.import_keys(ctx, sku=SKU, supplier="acme", unit_cost="5.00",
                           codes=[(i + 1, c) for i, c in enumerate(codes)])
    finally:
        ledger.close()


def test_flash_sale_over_http_sells_each_key_once(server: Served, pg_url: str, tmp_path: Path) -> None:
    codes = [f"SRV-{uuid.uuid4().hex[:6]}-{i:04d}" for i in range(N_KEYS)]
    with httpx.Client(base_url=server.base_url, timeout=60) as admin:
        seed(admin, pg_url, tmp_path, codes)
        known = routes(admin)

    sold: list[tuple[str, list[str]]] = []
    refusals: list[str] = []
    lock = threading.Lock()
    local = threading.local()
    clients: list[httpx.Client] = []

    contention: list[str] = []

    def post(client: httpx.Client, path: str, body: dict[str, Any], role: str = "storefront") -> httpx.Response:
        """A client that honours the 503 `contention` answer (nothing was written, and nothing is kept under an
        Idempotency-Key): retry after a short random pause."""
        for _ in range(50):
            response = client.post(path, json=body, headers=auth(role))
            if response.status_code != 503:
                return response
            assert response.json()["type"].endswith("/contention"), response.text
            assert response.headers.get("retry-after")
            with lock:
                contention.append(path)
            time.sleep(random.uniform(0.01, 0.1))
        return response

    def attempt(n: int) -> None:
        client: httpx.Client | None = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=server.base_url, headers=auth("storefront"), timeout=60)
            with lock:
                clients.append(client)
        placed = post(client, "/v1/orders", {"customer_id": f"fan-{n}", "sku": SKU, "quantity": 1})
        if placed.status_code != 201:
            assert placed.status_code == 409, placed.text
            with lock:
                refusals.append(placed.json()["type"].rsplit("/", 1)[-1])
            return
        order = placed.json()
        paid = post(client, f"/v1/orders/{order['order_id']}/payments", {
            "payment_reference": f"pay-{n}", "amount": order["amount_due"], "provider": "test"}, "payments")
        assert paid.status_code == 200, paid.text
        body = paid.json()
        assert body["outcome"] == "delivered", body
        with lock:
            sold.append((order["order_id"], body["key_ids"]))

    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(attempt, n) for n in range(ATTEMPTS)]:
            future.result()
    for client in clients:
        client.close()

    assert len(sold) == N_KEYS
    assert set(refusals) == {"out-of-stock"} and len(refusals) == ATTEMPTS - N_KEYS

    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        delivered: list[str] = []
        key_ids: list[str] = []
        for order_id, ids in sold:
            keys = client.get(f"/v1/orders/{order_id}/keys", headers=auth("storefront"))
            assert keys.status_code == 200, keys.text
            got = keys.json()["keys"]
            assert [k["key_id"] for k in got] == ids and len(got) == 1
            delivered += [k["code"] for k in got]
            key_ids += ids
        assert len(set(key_ids)) == N_KEYS
        assert len(delivered) == len(set(delivered)) == N_KEYS
        assert set(delivered) == set(codes)

        position = client.get("/readyz").json()["head"]
        read_facts = _facts_over_http if {"GET /v1/inventory/{sku}", "GET /v1/reports/sales",
                                          "GET /v1/ledger/trial-balance"} <= known else _facts_from_read_models
        stock, units, balanced = read_facts(client, position, pg_url, tmp_path)
    assert stock["available"] == 0 and stock["reserved"] == 0
    assert stock["delivered"] == N_KEYS
    assert units == N_KEYS
    assert balanced

    began = time.monotonic()
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ledger serve did not stop within 10 s of SIGTERM:\n{server.output()}")
    assert code == 0, server.output()
    assert time.monotonic() - began < 10
    assert "Traceback" not in server.output(), server.output()


def _facts_over_http(client: httpx.Client, position: int, pg_url: str, tmp_path: Path) -> tuple[dict[str, Any], int,
                                                                                                   bool]:
    inventory = client.get(f"/v1/inventory/{SKU}", params={"min_position": position}, headers=auth("storefront"))
    assert inventory.status_code == 200, inventory.text
    sales = client.get("/v1/reports/sales", params={"min_position": position, "group_by": "sku"},
                       headers=auth("finance"))
    assert sales.status_code == 200, sales.text
    units = sum(int(r["units"]) for r in sales.json()["rows"] if r["sku"] == SKU)
    trial = client.get("/v1/ledger/trial-balance", params={"min_position": position}, headers=auth("finance"))
    assert trial.status_code == 200, trial.text
    body = trial.json()
    assert body["totals"] and all(Decimal(t["debit"]) == Decimal(t["credit"]) for t in body["totals"])
    return inventory.json(), units, bool(body["balanced"])


def _facts_from_read_models(client: httpx.Client, position: int, pg_url: str, tmp_path: Path) -> tuple[
        dict[str, Any], int, bool]:
    """The same facts straight from the read models, for a checkout whose read routes are not there yet."""
    from api.services import Services
    from ledger.config import Settings
    from projections.models.journal import trial_balance
    from shell.composition import compose

    services = Services.open(compose(Settings(database_url=pg_url, cipher_key=TEST_CIPHER_KEY, data_dir=tmp_path)))
    try:
        assert services.wait_for(("inventory", "sales", "journal"), position) is not None
        inventory = services.view("inventory")
        row = services.store.query(f"SELECT available, reserved, delivered FROM {inventory.table('skus')} "
                                   "WHERE sku = ?", (SKU,))[0]
        sales = services.view("sales")
        units = services.store.query(f"SELECT SUM(units) FROM {sales.table('daily')} WHERE sku = ?", (SKU,))[0][0]
        tb = trial_balance(services.store, services.view("journal"))  # type: ignore[arg-type]
        return {"available": row[0], "reserved": row[1], "delivered": row[2]}, int(units or 0), bool(tb.balanced)
    finally:
        services.close()
