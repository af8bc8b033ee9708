"""The UI's support page: a customer's recharge found by what the customer says (the account,
the payment reference, the order id), with every attempt and the supplier's answers, the account
in clear for support only; the order's timeline open to support; other roles turned away."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import commands as c
from ledger.domain.ids import fulfilment_id
from ledger.results import AttemptPlan, Placed
from tests.api_fixtures import open_services
from tests.e2e.test_ui_finance_risk import Node, cells, one, parse, sign_in
from tests.service.test_fulfilment import paid_recharge, recharge_product, run

ACCOUNT = "13812345678"


@dataclass
class World:
    client: TestClient
    stuck: Placed  # failed at the cheap supplier, answer lost at the dear one
    delivered: Placed


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("ui-support")
    svc = open_services(f"sqlite:///{tmp / 'ledger.sqlite'}", tmp, audit_checkpoint_interval_s=0)
    ledger = svc.ledger
    recharge_product(ledger)
    stuck = paid_recharge(ledger, ACCOUNT)
    plan = run(ledger, c.StartAttempt, fulfilment_id=fulfilment_id(stuck.order_id))
    assert isinstance(plan, AttemptPlan)
    run(ledger, c.RecordAttempt, fulfilment_id=plan.fulfilment_id, attempt_id=plan.attempt_id, outcome="failed",
        reason="out_of_stock", supplier_ref="CHEAP-REF-1")
    plan = run(ledger, c.StartAttempt, fulfilment_id=fulfilment_id(stuck.order_id))
    run(ledger, c.RecordAttempt, fulfilment_id=plan.fulfilment_id, attempt_id=plan.attempt_id, outcome="unknown",
        reason="ReadTimeout")
    delivered = paid_recharge(ledger, "13900001111")
    plan = run(ledger, c.StartAttempt, fulfilment_id=fulfilment_id(delivered.order_id))
    run(ledger, c.RecordAttempt, fulfilment_id=plan.fulfilment_id, attempt_id=plan.attempt_id, outcome="succeeded",
        supplier_ref="CHEAP-REF-2", charged="9.55")
    with TestClient(create_app(svc), raise_server_exceptions=False) as client:
        yield World(client, stuck, delivered)
    svc.close()


def find(world: World, status: int = 200, role: str = "support", **params: str) -> Node:
    sign_in(world, role)  # type: ignore[arg-type]
    response = world.client.get("/ui/support", params=params)
    assert response.status_code == status, response.text
    return parse(response.text)


def test_support_finds_a_stuck_recharge_by_the_account_and_sees_why(world: World) -> None:
    found = find(world, by="account", q=ACCOUNT)
    order = one(found.find_all("section", class_="support-order"))
    assert order.attrs["id"] == f"order-{world.stuck.order_id}" and order.attrs["data-status"] == "fulfilling"
    assert ACCOUNT in order.text()  # support reads the account in clear
    attempts = [cells(row) for row in order.find_all("tr", class_="attempt")]
    assert [(a["supplier"], a["status"], a["reason"], a["lost"]) for a in attempts] == [
        ("cheap", "failed", "out_of_stock", ""), ("dear", "submitted", "", "ReadTimeout")]
    assert f"/ui/timeline/order/{world.stuck.order_id}" in order.links()


@pytest.mark.parametrize("by", ["payment_reference", "order_id"])
def test_support_finds_an_order_by_its_payment_or_its_id(world: World, by: str) -> None:
    q = f"pay-{world.delivered.order_id}" if by == "payment_reference" else str(world.delivered.order_id)
    order = one(find(world, by=by, q=q).find_all("section", class_="support-order"))
    assert order.attrs["data-status"] == "delivered"
    assert [cells(row)["status"] for row in order.find_all("tr", class_="attempt")] == ["succeeded"]


def test_the_order_timeline_is_open_to_support_with_every_attempt(world: World) -> None:
    sign_in(world, "support")  # type: ignore[arg-type]
    response = world.client.get(f"/ui/timeline/order/{world.stuck.order_id}")
    assert response.status_code == 200, response.text
    assert "AttemptStarted" in response.text and "AttemptFailed" in response.text
    assert ACCOUNT not in response.text  # the timeline shows the account masked, as to every role


def test_bad_search_input_names_the_field_and_nothing_is_found(world: World) -> None:
    bad = one(find(world, 422, by="order_id", q="not-a-uuid").find_all("p", class_="bad-input"))
    assert bad.attrs["data-field"] == "q"
    bad = one(find(world, 422, by="email", q="x").find_all("p", class_="bad-input"))
    assert bad.attrs["data-field"] == "by"
    assert one(find(world, by="account", q="13800000000").find_all("section", id="no-orders"))


@pytest.mark.parametrize("role", ["analyst", "storefront", "finance", "risk"])
def test_other_roles_may_not_open_the_support_page(world: World, role: str) -> None:
    page = find(world, 403, role=role, by="account", q=ACCOUNT)
    assert ACCOUNT not in page.text()
