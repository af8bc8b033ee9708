"""Reconciliation is a background job: `/v1/reconciliation` and `/ui/finance` answer its stored result
with the position it was computed at, and the job computes it again when the read models move."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from projections.models.reconcile import Finding, reconcile
from projections.models.reconcile_store import ReconciliationStore
from tests.api_fixtures import TOKENS, auth, caught_up, open_services, ui_sign_in
from tests.helpers import buy, stocked_product


def _finance_page(client: TestClient) -> str:
    signed = ui_sign_in(client, TOKENS["finance"], follow_redirects=False)
    assert signed.status_code == 303, signed.text
    page = client.get("/ui/finance")
    assert page.status_code == 200, page.text
    return page.text


def test_the_routes_read_the_stored_result_and_the_job_updates_it(tmp_path: Path) -> None:
    svc = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path, reconcile_interval_s=0.05)
    try:
        stocked_product(svc.ledger, "GAME-1", 5)
        with TestClient(create_app(svc, background=True), raise_server_exceptions=False) as client:
            first = caught_up(svc)
            body = client.get("/v1/reconciliation", params={"min_position": first}, headers=auth("finance")).json()
            assert body["position"] >= first and body["clean"] is True and body["computed_at"]

            # What the route answers is what the job stored, not a reconciliation of its own: a stored
            # result (here one planted with a made-up exception) is answered as it is.
            planted = reconcile(svc.history, svc)
            planted.findings.append(Finding("payments", "order planted", "planted by the test", (1,)))
            ReconciliationStore(svc.store).save(planted)
            shown = client.get("/v1/reconciliation", headers=auth("finance")).json()
            assert shown["position"] == planted.position and shown["clean"] is False
            assert [e["subject"] for e in shown["exceptions"]] == ["order planted"]
            page = _finance_page(client)
            assert "order planted" in page and f"at position {planted.position}" in page

            # The read models move: the job reconciles again, at the new position.
            buy(svc.ledger, "alice", "GAME-1", 1)
            moved = caught_up(svc)
            again = client.get("/v1/reconciliation", params={"min_position": moved}, headers=auth("finance"))
            assert again.status_code == 200, again.text
            assert again.json()["position"] == moved and again.json()["clean"] is True
    finally:
        svc.close()


def test_without_a_stored_result_the_route_answers_503_not_a_fold(tmp_path: Path) -> None:
    svc = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path, reconcile_interval_s=0)
    try:
        stocked_product(svc.ledger, "GAME-1", 5)
        with TestClient(create_app(svc, background=True), raise_server_exceptions=False) as client:
            caught_up(svc)
            response = client.get("/v1/reconciliation", headers=auth("finance"))
            assert response.status_code == 503 and response.headers["Retry-After"]
            assert response.headers["content-type"] == "application/problem+json"
            assert "no reconciliation has run yet" in _finance_page(client)
    finally:
        svc.close()
