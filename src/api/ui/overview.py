"""The overview: stock per SKU (and, by role, sales, fraud alerts and projection lag)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import ServicesDep
from api.ui.auth import AnyViewer
from api.ui.render import page
from projections import queries

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, svc: ServicesDep, viewer: AnyViewer) -> HTMLResponse:
    skus = queries.inventory(svc.reads)[0] if viewer.may("storefront", "analyst") else None
    return page(request, "overview.html", viewer, position=svc.reads.position(("inventory",)), skus=skus)
