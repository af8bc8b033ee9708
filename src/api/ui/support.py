"""Support: a customer's orders found by what the customer tells you (order id, customer id,
recipient account, payment reference, card key), each with its money and every attempt at every
supplier, with the supplier's answers and why the order failed or waits. The same search as
GET /v1/support/orders (`api.support_search`), for the same role; the recipient account is in
clear here because only support (and admin) may open the page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from api.deps import ServicesDep
from api.support_search import SEARCH_KEYS, find_orders
from api.ui import inputs
from api.ui.auth import Viewer, viewer_for
from api.ui.inputs import BadInput
from api.ui.render import page

router = APIRouter(prefix="/support")
SupportViewer = Annotated[Viewer, Depends(viewer_for("support"))]  # as GET /v1/support/orders
LABELS = {"order_id": "order id", "customer_id": "customer id", "account": "recipient account",
          "payment_reference": "payment reference", "key": "card key (code or key id)"}


@router.get("", response_class=HTMLResponse)
def support(request: Request, svc: ServicesDep, viewer: SupportViewer, by: str = "account",
            q: str = "") -> HTMLResponse:
    shown: dict[str, Any] = {"labels": LABELS, "by": by if by in SEARCH_KEYS else "account", "q": q}
    try:
        if by not in SEARCH_KEYS:
            raise BadInput("by", f"one of {', '.join(SEARCH_KEYS)}")
        wanted = inputs.aggregate_id("q", q) if by == "order_id" else inputs.text("q", q)
    except BadInput as error:
        return page(request, "support.html", viewer, status_code=error.status, error=error, **shown)
    if wanted is None:
        return page(request, "support.html", viewer, orders=None, **shown)
    orders = find_orders(svc, by, wanted, in_clear=True)
    return page(request, "support.html", viewer, orders=orders, **shown)
