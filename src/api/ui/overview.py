"""The overview: stock per SKU, sales, refunds and gross margin per day, the upstream suppliers'
float and health, the latest fraud alerts and the read models' lag, each panel shown only to the
roles whose API may read it (stock: GET /v1/inventory; charts: /v1/reports; suppliers:
/v1/suppliers; alerts: /v1/fraud; lag: everyone, as /readyz).

The page polls `/ui/overview/panels` every 2 s with htmx and swaps the panels in place, so
stock and sales move during a flash sale without a reload; the page and the fragment render
the same template (`overview_panel.html`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from api.deps import ServicesDep
from api.services import Services
from api.ui.auth import AnyViewer, LoginRequired, Viewer, login_url, viewer_for
from api.ui.charts import Series, chart, days_between
from api.ui.render import money, page
from ledger.fulfilment.breaker import health
from projections.engine.base import Row
from projections.models import report_queries

router = APIRouter()
DAYS = 31  # the charts show the last month that has any rows
LATEST_ALERTS = 10
SKUS = 100  # SKUs the stock panel shows (in SKU order; all of them: GET /v1/inventory, paged)
STOCK, REPORTS, FRAUD = ("storefront", "analyst"), ("finance", "analyst"), ("risk",)
SUPPLIERS = ("finance",)  # as GET /v1/suppliers: the float and health of each upstream supplier


@dataclass(frozen=True)
class CurrencyChart:
    currency: str
    svg: Markup


def _window(rows: Sequence[Row]) -> list[str]:
    """The days the charts show: up to DAYS, ending at the last day with a row."""
    if not rows:
        return []
    last = max(str(r["day"]) for r in rows)
    first = max(min(str(r["day"]) for r in rows), (date.fromisoformat(last) - timedelta(days=DAYS - 1)).isoformat())
    return days_between(first, last)


def _last_days(svc: Services, report: report_queries.DailyReport) -> list[Row]:
    """The report per day over the DAYS up to its last day with a row: only those rows are read."""
    last = report_queries.last_day(svc.reads, report)
    if last is None:
        return []
    return report_queries.daily_report(svc.reads, report, ["day"], last - timedelta(days=DAYS - 1), last)


def _by_currency(rows: Sequence[Row]) -> dict[str, list[Row]]:
    found: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        found[row["currency"]].append(row)
    return dict(sorted(found.items()))


def _money(currency: str, amount: Decimal) -> str:
    return money(amount, currency)


def sales_charts(svc: Services) -> list[CurrencyChart]:
    """Per currency: sales (gross less discounts) on each day with deliveries, and refunds."""
    charts = []
    for currency, rows in _by_currency(_last_days(svc, report_queries.SALES)).items():
        days = _window(rows)
        shown = [r for r in rows if r["day"] in days]
        sales = Series("sales", {r["day"]: r["gross"] - r["discounts"] for r in shown if r["orders"]})
        refunds = Series("refunds", {r["day"]: r["refunds"] for r in shown if r["refunds"]})
        charts.append(CurrencyChart(currency, chart(
            f"Sales and refunds per day, {currency}", days, [sales, refunds], partial(_money, currency),
        )))
    return charts


def margin_chart(svc: Services) -> Markup | None:
    """Gross margin (profit over net revenue, in %) per day: one line per currency."""
    rows = _last_days(svc, report_queries.PROFIT)
    days = _window(rows)
    if not days:
        return None
    lines = [
        Series(f"margin {currency}", {r["day"]: r["margin"] * 100 for r in found
                                      if r["day"] in days and r["margin"] is not None}, kind="line")
        for currency, found in _by_currency(rows).items()
    ]
    return chart("Gross margin per day, %", days, lines, lambda ratio: f"{ratio.quantize(Decimal('0.1'))} %")


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def panels(svc: Services, viewer: Viewer, request_state: Any = None) -> dict[str, Any]:
    """What the overview's panels show this viewer (None: a panel its role may not read).
    `request_state`: the app's state, where the fulfilment worker's breakers are when it runs here."""
    views: list[str] = []
    context: dict[str, Any] = {"skus": None, "sales_charts": None, "margin": None, "alerts": None, "suppliers": None}
    if viewer.may(*STOCK):
        views.append("inventory")
        context["skus"] = report_queries.inventory(svc.reads, limit=SKUS)[0]
    if viewer.may(*REPORTS):
        views += ["sales", "profit"]
        context["sales_charts"] = sales_charts(svc)
        context["margin"] = margin_chart(svc)
    if viewer.may(*SUPPLIERS):
        breakers = getattr(request_state, "breakers", None)
        context["suppliers"] = [{
            "name": s.name, "currency": s.currency, "available": s.available, "charged": s.charged,
            "held": s.held, "outstanding": len(s.holds), "low": s.low_float, "breaker": health(breakers, s.name),
        } for s in svc.ledger.reads.suppliers()]
    if viewer.may(*FRAUD):
        views.append("fraud")
        position = svc.reads.position(("fraud",))
        latest = report_queries.latest_fraud_alerts(svc.reads, until=position, limit=LATEST_ALERTS)
        context["alerts"] = [{**row, "occurred_at": _moment(row["occurred_at"])} for row in latest]
    lag = svc.reads.lag()
    return {
        **context,
        "position": svc.reads.position(views) if views else lag.position,
        "lag": lag,
        "lag_seconds": lag.seconds(svc.reads.app, datetime.now(UTC)),
        "status": svc.reads.status(),
        "links_to_events": viewer.may("finance", "analyst"),
        "chart_days": DAYS,
    }


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, svc: ServicesDep, viewer: AnyViewer) -> HTMLResponse:
    return page(request, "overview.html", viewer, **panels(svc, viewer, request.app.state))


@router.get("/overview/panels", response_class=HTMLResponse)
def overview_panels(request: Request, svc: ServicesDep) -> HTMLResponse:
    """The panels alone, for the page's htmx polling. Signed out meanwhile: htmx is told to load
    the sign-in page (HX-Redirect) rather than swap it into the panels."""
    try:
        viewer = viewer_for()(request, svc)
    except LoginRequired:
        if request.headers.get("hx-request") != "true":
            raise
        return HTMLResponse("", status_code=401, headers={"HX-Redirect": login_url("/ui/")})
    return page(request, "overview_panel.html", viewer, **panels(svc, viewer, request.app.state))
