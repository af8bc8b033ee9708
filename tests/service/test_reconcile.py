"""Reconciliation: clean on the demo's history; a planted payment without goods, and read-model rows
changed behind the runner's back, are each found with the positions that prove them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from ledger.domain.fulfilment import Fulfilment
from ledger.domain.ids import fulfilment_id, supplier_id
from ledger.domain.orders import Order
from ledger.domain.suppliers import Supplier
from ledger.domain.supply import Batch, Key
from ledger.service.ledger import Ledger
from projections.engine.as_of import History, LiveReadModels
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from projections.models.reconcile import FLOATS, FOLDS, JOURNAL, KEYS, PAYMENTS, Reconciliation, reconcile
from shell.cli import app as cli_app
from tests import recharge
from tests.api_fixtures import auth, open_services
from tests.conftest import FakeClock
from tests.demo_history import DemoStore
from tests.helpers import all_events, buy, head, place, stocked_product


def _reconciled(ledger: Ledger, views_url: str | None = None, now: datetime | None = None) -> Reconciliation:
    """Bring the read models up to the head, then reconcile."""
    store = ViewStore(ledger.settings, views_url)
    try:
        projections = build_projections(store)
        Runner(ledger.app, store, projections).catch_up()
        return reconcile(History(ledger.app, folds=FOLDS), LiveReadModels(store, {p.name: p for p in projections}),
                         now=now)
    finally:
        store.close()


def _plant_capture(ledger: Ledger, order_id: object, amount: str) -> int:
    """A payment captured straight into the store: no delivery, no refund (the service would never)."""
    order = ledger.app.repository.get(order_id)  # type: ignore[arg-type]
    assert isinstance(order, Order)
    order.capture(ledger.context("psp"), "planted-1", Decimal(amount), "psp")
    ledger.app.save(order)
    return head(ledger)


@pytest.fixture
def planted(ledger: Ledger) -> tuple[Ledger, str, int, int]:
    """A store with one clean sale and one reserved order that got a planted payment."""
    stocked_product(ledger, "GAME-1", 5, price="10.00")
    buy(ledger, "alice", "GAME-1", 1)
    placed = place(ledger, "bob", "GAME-1", 1)
    placed_at = head(ledger)
    return ledger, str(placed.order_id), placed_at, _plant_capture(ledger, placed.order_id, "10.00")


def test_clean_on_the_demo_history(demo_store: DemoStore, tmp_path: Path) -> None:
    result = _reconciled(demo_store.ledger, f"sqlite:///{tmp_path / 'views.sqlite'}")
    assert result.findings == []
    assert result.clean and result.position == head(demo_store.ledger)
    (usd,) = result.totals
    assert usd.balanced and usd.money_in > 0 and usd.refunds_payable == 0
    # Exactly what the orders kept, from their own state rather than the journal's entries.
    ledger = demo_store.ledger
    orders = [ledger.reads.order(e.originator_id) for e in all_events(ledger) if isinstance(e, Order.Placed)]
    assert {o.currency for o in orders} == {"USD"}
    assert usd.money_in == usd.revenue == sum((o.amount_paid - o.amount_refunded for o in orders), Decimal(0))
    assert re.match(r"[\d,]+ orders, [\d,]+ payments", result.examined[PAYMENTS])


def test_a_payment_without_goods_or_refund_is_found(planted: tuple[Ledger, str, int, int]) -> None:
    ledger, order_id, placed_at, capture_at = planted
    result = _reconciled(ledger)
    assert not result.clean
    (finding,) = result.findings
    assert finding.check == PAYMENTS and finding.subject == f"order {order_id}"
    assert "kept without goods" in finding.detail
    assert capture_at in finding.positions and max(finding.positions) == capture_at
    assert min(finding.positions) <= placed_at
    (usd,) = result.totals  # the books still balance: the money sits in customer deposits
    assert usd.balanced and usd.refunds_payable == Decimal("10.00")


def test_read_model_rows_changed_behind_the_runner_are_found(ledger: Ledger) -> None:
    stocked_product(ledger, "GAME-1", 5, price="10.00")
    buy(ledger, "alice", "GAME-1", 2)
    sale_at = head(ledger)
    store = ViewStore(ledger.settings)
    projections = build_projections(store)
    Runner(ledger.app, store, projections).catch_up()
    views = {p.name: p for p in projections}
    with store.transaction() as cursor:
        store.execute(cursor, f"UPDATE {views['inventory'].table('skus')} SET available = available + 1")
        store.execute(cursor, f"UPDATE {views['journal'].table('entries')} SET credit = '25.00' "
                              "WHERE account = 'revenue'")
    result = reconcile(History(ledger.app, folds=FOLDS), LiveReadModels(store, views))
    by_check = {f.check: f for f in result.findings}
    assert set(by_check) == {KEYS, JOURNAL}
    assert by_check[KEYS].subject == "SKU GAME-1" and "inventory read model shows 4" in by_check[KEYS].detail
    journal = [f for f in result.findings if f.check == JOURNAL]
    revenue_at = [f.positions for f in journal if f.subject == "revenue USD"]
    assert revenue_at == [(revenue_at[0][0],)] and revenue_at[0][0] <= sale_at
    assert any(f.subject == f"entries at {revenue_at[0][0]}" for f in journal)
    store.close()


def test_a_key_registered_outside_its_batch_is_found(ledger: Ledger) -> None:
    """The read models take a batch's keys from `Batch.Received`; reconciliation folds the keys'
    own `Key.Registered` events, so a key registered but listed by no batch cannot hide."""
    stocked_product(ledger, "GAME-1", 2, price="10.00")
    batch = next(e for e in all_events(ledger) if isinstance(e, Batch.Received))
    stray = Key.register(ledger.context("planted"), uuid4(), batch.originator_id, "GAME-1", batch.supplier,
                         batch.unit_cost, None, "hmac", "sealed")
    ledger.app.save(stray)
    result = _reconciled(ledger)
    findings = {f.subject: f for f in result.findings}
    assert len(result.findings) == 2
    key, sku = findings[f"key {stray.id}"], findings["SKU GAME-1"]
    assert key.check == KEYS and key.subject == f"key {stray.id}" and key.positions == (head(ledger),)
    assert key.detail == "the events leave it available; the facts read model says nothing"
    assert sku.check == KEYS
    assert sku.detail == "3 keys available by the events, the inventory read model shows 2"


# ---- recharges ----


def test_recharges_reconcile_clean_and_the_one_in_progress_is_listed_apart(ledger: Ledger,
                                                                           clock: FakeClock) -> None:
    orders = recharge.recharge_history(ledger, clock)
    result = _reconciled(ledger, now=clock.now)
    assert result.findings == [] and result.clean
    (usd,) = result.totals
    # 62.00 kept: 51.50 of revenue (62 sold less the reversed one refunded) and pending's 10.50, still a deposit
    assert (usd.money_in, usd.revenue, usd.refunds_payable) == (Decimal("62.00"), Decimal("51.50"), Decimal("10.50"))
    (pending,) = result.in_progress
    assert pending.order_id == str(orders["pending"])
    assert (pending.status, pending.supplier, pending.kept, pending.currency) == ("submitted", "cheap",
                                                                                  Decimal("10.50"), "USD")
    assert pending.overdue and not pending.escalated  # paid on day 1 with 15 minutes to go; this is day 2
    assert pending.positions[0] < pending.positions[-1] <= result.position
    assert result.examined[PAYMENTS].endswith("; 1 fulfilment in progress (1 past the deadline)")
    assert result.examined[FLOATS] == "2 suppliers"
    before = _reconciled(ledger, now=pending.deadline - timedelta(minutes=1))
    assert [p.overdue for p in before.in_progress] == [False]


def test_a_float_charged_for_no_delivery_is_found(ledger: Ledger) -> None:
    recharge.suppliers(ledger, ("cheap",))
    recharge.upstream_product(ledger, "TOPUP-10", {"cheap": "9.60"})
    recharge.deliver(ledger, recharge.paid(ledger).order_id)
    supplier = ledger.app.repository.get(supplier_id("cheap"))
    assert isinstance(supplier, Supplier)
    supplier.charge(ledger.context("planted"), "planted-1", Decimal("5.00"))  # the service never charges alone
    ledger.app.save(supplier)
    result = _reconciled(ledger)
    (finding,) = result.findings
    assert (finding.check, finding.subject) == (FLOATS, "supplier cheap")
    assert finding.detail == ("its events leave its float at 985.40 USD (funded 1000.00, charged 14.60, "
                              "reversed 0.00); the journal's supplier_float:cheap holds 990.40")
    assert finding.positions[-1] == head(ledger)


def test_a_recharge_given_up_without_its_refund_is_found(ledger: Ledger) -> None:
    recharge.suppliers(ledger, ("cheap",))
    recharge.upstream_product(ledger, "TOPUP-10", {"cheap": "9.60"})
    order_id = recharge.paid(ledger).order_id
    fulfilment = ledger.app.repository.get(fulfilment_id(order_id))
    assert isinstance(fulfilment, Fulfilment)
    fulfilment.give_up(ledger.context("planted"), "planted")  # the service refunds in the same transaction
    ledger.app.save(fulfilment)
    result = _reconciled(ledger)
    assert result.in_progress == []
    (finding,) = result.findings
    assert (finding.check, finding.subject) == (PAYMENTS, f"order {order_id}")
    assert finding.detail == "captured 10.50, refunded 0, no goods (its fulfilment failed): 10.50 kept without goods"
    assert finding.positions[-1] == head(ledger)  # the GaveUp that proves it


@pytest.fixture
def cli_env(planted: tuple[Ledger, str, int, int], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    ledger = planted[0]
    for name in [n for n in __import__("os").environ if n.startswith("LEDGER_")]:
        monkeypatch.delenv(name)
    settings = ledger.settings
    return {"LEDGER_DATABASE_URL": settings.database_url, "LEDGER_DATA_DIR": str(settings.data_dir),
            "LEDGER_CIPHER_KEY": settings.cipher_key or "", "COLUMNS": "200"}


def test_cli_lists_the_exception_and_exits_non_zero(planted: tuple[Ledger, str, int, int],
                                                    cli_env: dict[str, str]) -> None:
    _, order_id, _, capture_at = planted
    result = CliRunner().invoke(cli_app, ["reconcile"], env=cli_env)
    assert result.exit_code == 1, result.output
    assert f"order {order_id}" in result.output and str(capture_at) in result.output
    assert re.search(r"payments\s+│[^│]+│\s+1\s", result.output), result.output


@pytest.fixture
def client(planted: tuple[Ledger, str, int, int], tmp_path: Path) -> Iterator[TestClient]:
    svc = open_services(planted[0].settings.database_url, tmp_path, read_wait_s=2.0)
    with TestClient(create_app(svc, background=True), raise_server_exceptions=False) as test_client:
        yield test_client
    svc.close()


def test_http_reconciliation(planted: tuple[Ledger, str, int, int], client: TestClient) -> None:
    _, order_id, _, capture_at = planted
    response = client.get("/v1/reconciliation", params={"min_position": capture_at}, headers=auth("finance"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["position"] == capture_at and body["clean"] is False
    (exception,) = body["exceptions"]
    assert exception["check"] == "payments" and exception["subject"] == f"order {order_id}"
    assert capture_at in exception["positions"]
    (usd,) = body["totals"]
    assert usd["currency"] == "USD" and usd["balanced"] is True
    assert [Decimal(usd[k]) for k in ("money_in", "revenue", "refunds_payable")] == [20, 10, 10]
    assert [usd[k] for k in ("money_in", "revenue", "refunds_payable")] == ["20.00", "10.00", "10.00"]
    assert client.get("/v1/reconciliation", headers=auth("analyst")).status_code == 403
    assert client.get("/v1/reconciliation").status_code == 401
    invalid = client.get("/v1/reconciliation?min_position=-1", headers=auth("finance"))
    assert invalid.status_code == 422 and "query.min_position" in [e["field"] for e in invalid.json()["errors"]]
