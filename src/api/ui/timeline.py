"""Timelines of an order, key, SKU or batch (finance and analyst, as the audit feed; analysts see
people by pseudonyms, `api.pseudonyms`; an order's for support too) and of a customer (finance
and support), each event marked covered or not by the last signed checkpoint; and proof bundles
of covered events (finance, as the proof routes) for an auditor's offline verifier."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import MAX_POSITION, ServicesDep
from api.problems import problem
from api.pseudonyms import Pseudonyms, pseudonymous
from api.ui.auth import Viewer, viewer_for
from api.ui.render import page
from audit.proofs import ProofError, bundle
from projections.models import timeline
from projections.models.timeline import Timeline

router = APIRouter()
Auditor = Annotated[Viewer, Depends(viewer_for("finance", "analyst"))]  # as GET /v1/audit/events
Finance = Annotated[Viewer, Depends(viewer_for("finance"))]  # as GET /v1/audit/proofs/*
# An order's timeline is also support's: the trace of its payments and supplier attempts.
OrderReader = Annotated[Viewer, Depends(viewer_for("finance", "analyst", "support"))]
# A customer by who they are: not for analysts, who know customers only by pseudonyms (api.pseudonyms).
OneCustomer = Annotated[Viewer, Depends(viewer_for("finance", "support"))]
PAGE = 100

_TITLES = {"order": "Order", "key": "Card key", "customer": "Customer", "sku": "SKU", "batch": "Batch"}


def _show(request: Request, svc: ServicesDep, viewer: Viewer, kind: str, ident: str,
          found: Timeline | None) -> HTMLResponse:
    checkpoint = svc.audit().latest_checkpoint(svc.audit_keys())
    if found is None:
        return page(request, "timeline_missing.html", viewer, status_code=404, kind=kind, ident=ident,
                    title=_TITLES[kind])
    if pseudonymous(viewer.role):  # analysts: customers by keyed pseudonyms; no IPs, devices, payment references
        found = Pseudonyms(svc.ledger.vault).timeline(found)
    return page(request, "timeline.html", viewer, timeline=found, title=_TITLES[kind], checkpoint=checkpoint,
                covered_to=checkpoint.last_position if checkpoint else 0, proofs=viewer.may("finance"),
                links=_links(), payload=_payload)


def _links() -> dict[str, Callable[[str], str]]:
    """Aggregates that have a timeline of their own, and where it is."""
    return {"Order": lambda i: f"/ui/timeline/order/{i}", "Key": lambda i: f"/ui/timeline/key/{i}",
            "Batch": lambda i: f"/ui/timeline/batch/{i}"}


def _payload(data: object) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True)


@router.get("/timeline/order/{order_id}", response_class=HTMLResponse)
def order_timeline(request: Request, svc: ServicesDep, viewer: OrderReader, order_id: UUID) -> HTMLResponse:
    return _show(request, svc, viewer, "order", str(order_id), timeline.order(svc.reads, order_id))


@router.get("/timeline/key/{key_id}", response_class=HTMLResponse)
def key_timeline(request: Request, svc: ServicesDep, viewer: Auditor, key_id: UUID) -> HTMLResponse:
    return _show(request, svc, viewer, "key", str(key_id), timeline.key(svc.reads, key_id))


@router.get("/timeline/batch/{batch_id}", response_class=HTMLResponse)
def batch_timeline(request: Request, svc: ServicesDep, viewer: Auditor, batch_id: UUID) -> HTMLResponse:
    return _show(request, svc, viewer, "batch", str(batch_id), timeline.batch(svc.reads, batch_id))


@router.get("/timeline/customer/{customer_id}", response_class=HTMLResponse)
def customer_timeline(request: Request, svc: ServicesDep, viewer: OneCustomer,
                      customer_id: Annotated[str, Path(max_length=200)]) -> HTMLResponse:
    return _show(request, svc, viewer, "customer", customer_id, timeline.customer(svc.reads, customer_id))


@router.get("/timeline/sku/{sku}", response_class=HTMLResponse)
def sku_timeline(request: Request, svc: ServicesDep, viewer: Auditor, sku: Annotated[str, Path(max_length=200)],
                 before: Annotated[int | None, Query(ge=1, le=MAX_POSITION,
                                                     description="older than this position")] = None) -> HTMLResponse:
    return _show(request, svc, viewer, "sku", sku, timeline.sku(svc.reads, sku, before, PAGE))


@router.get("/proofs/{position:int}.json", response_model=None)
def proof_bundle(svc: ServicesDep, viewer: Finance, position: int) -> Response:
    """The event at `position` as stored, its inclusion proof and the signed checkpoint, as a file."""
    reader = svc.components.event_reader()
    try:
        found = bundle(svc.audit(), reader, position, svc.audit_keys())
    except ProofError as error:
        return problem(404, "not-found", "Not found", error.message, field=error.field)
    finally:
        reader.close()
    return Response(json.dumps(found, indent=2) + "\n", media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="proof-{position}.json"'})
