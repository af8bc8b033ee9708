"""Templates, the navigation each role sees, and the filters pages share."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.ui.auth import Viewer
from ledger.domain.money import format_amount

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")  # autoescapes every .html template

# (title, path, roles that may open it): a role sees only the pages whose API routes it may call.
NAV: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Overview", "/ui/", ()),
    ("Events", "/ui/events", ("finance", "analyst")),
    ("Finance", "/ui/finance", ("finance",)),
    ("Risk", "/ui/risk", ("risk",)),
    ("Support", "/ui/support", ("support",)),
)


def money(amount: Decimal | str | int | None, currency: str) -> str:
    return "" if amount is None else format_amount(Decimal(str(amount)), currency)


def when(moment: datetime | str | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, str):
        return moment
    return moment.strftime("%Y-%m-%d %H:%M:%S")


TEMPLATES.env.filters["money"] = money
TEMPLATES.env.filters["when"] = when


def page(request: Request, template: str, viewer: Viewer | None, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    """A full page (or, for htmx requests of a `*_panel.html`, a fragment) rendered with the
    viewer's navigation."""
    nav = [(title, path) for title, path, roles in NAV if viewer is not None and (not roles or viewer.may(*roles))]
    return TEMPLATES.TemplateResponse(
        request, template, {"viewer": viewer, "nav": nav, "path": request.url.path, **context},
        status_code=status_code,
    )
