"""Risk: fraud alerts grouped by rule, and each subject (customer, IP, device) with its score, its
counters and the events its alerts cite. The same queries as GET /v1/fraud/* (`projections.engine.read_side`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from api.deps import ServicesDep
from api.routes.fraud import VIEWS
from api.services import Services
from api.ui import inputs
from api.ui.auth import Viewer, viewer_for
from api.ui.inputs import BadInput
from api.ui.render import page
from ledger.domain.orders import Order
from projections.engine.base import Row
from projections.models import report_queries
from projections.models.fraud import RULES

router = APIRouter(prefix="/risk")
RiskViewer = Annotated[Viewer, Depends(viewer_for("risk"))]  # as GET /v1/fraud/*
KINDS = ("customer", "ip", "device", "account")
LATEST = 10  # alerts shown per rule on the overview of every rule
FILTERED = 200  # alerts shown for one rule
EVIDENCE = 200  # evidence events shown on a subject's page (the latest ones)


@dataclass(frozen=True)
class RuleAlerts:
    rule: str
    count: int  # alerts raised
    subjects: int  # distinct subjects alerted
    latest: list[Row]  # newest first


def by_rule(svc: Services, rules: tuple[str, ...], shown: int, until: int) -> list[RuleAlerts]:
    """Each of `rules` with its alert and subject counts and its `shown` newest alerts: a count and
    a LIMIT query per rule, never every alert."""
    counts = report_queries.fraud_alert_counts(svc, until=until)
    return [RuleAlerts(rule, *counts.get(rule, (0, 0)),
                       report_queries.latest_fraud_alerts(svc, rule=rule, until=until, limit=shown))
            for rule in rules]


@router.get("", response_class=HTMLResponse)
def risk(request: Request, svc: ServicesDep, viewer: RiskViewer, rule: str = "") -> HTMLResponse:
    try:
        chosen = inputs.text("rule", rule)
        if chosen is not None and chosen not in RULES:
            raise BadInput("rule", f"no rule {chosen!r}; the rules are {', '.join(RULES)}")
    except BadInput as error:
        return page(request, "risk.html", viewer, status_code=error.status, error=error, rules=RULES, chosen=None)
    position = svc.reads.position(VIEWS)
    groups = by_rule(svc, RULES if chosen is None else (chosen,), LATEST if chosen is None else FILTERED, position)
    return page(request, "risk.html", viewer, rules=RULES, chosen=chosen, position=position, groups=groups,
                total=sum(g.count for g in groups))


@dataclass(frozen=True)
class Evidence:
    """An event an alert cites: what it was and, for an order's event, which order."""

    position: int
    type: str
    timestamp: datetime
    order_id: str | None
    customer_id: str | None
    rules: list[str]


def evidence(svc: Services, alerts: list[Row], limit: int = EVIDENCE) -> tuple[list[Evidence], int]:
    """The events `alerts` cite, in log order (the latest `limit` of them), and how many were left out."""
    cited: dict[int, list[str]] = {}
    for alert in alerts:
        for position in alert["positions"]:
            rules = cited.setdefault(int(position), [])
            if alert["rule"] not in rules:
                rules.append(alert["rule"])
    positions = sorted(cited)
    kept = positions[-limit:]
    found = []
    for position in kept:
        for at, event in svc.reads.log_page(position - 1, 1, stop=position):
            found.append(_evidence(at, event, cited[position]))
    return found, len(positions) - len(kept)


def _evidence(position: int, event: Any, rules: list[str]) -> Evidence:
    order = event.originator_id if isinstance(event, Order.Event) else getattr(event, "order_id", None)
    customer = getattr(event, "customer_id", None)
    return Evidence(position, type(event).__qualname__, event.timestamp, None if order is None else str(order),
                    None if customer is None else str(customer), rules)


@router.get("/subjects/{kind}/{ident}", response_class=HTMLResponse)
def subject(request: Request, svc: ServicesDep, viewer: RiskViewer, kind: str, ident: str) -> HTMLResponse:
    try:
        if kind not in KINDS:
            raise BadInput("kind", f"no subject kind {kind[:50]!r}; the kinds are {', '.join(KINDS)}", 404)
        inputs.text("ident", ident)
    except BadInput as error:
        return page(request, "risk_subject.html", viewer, status_code=error.status, error=error, kind=kind,
                    ident=ident[:inputs.MAX_TEXT])
    position = svc.reads.position(VIEWS)
    found, recent = report_queries.fraud_subject(svc, kind, ident)
    events, left_out = evidence(svc, recent)
    return page(
        request, "risk_subject.html", viewer, kind=kind, ident=ident, position=position, found=found,
        counters=report_queries.fraud_counters(svc, kind, ident), alerts=recent[::-1], events=events, left_out=left_out,
    )
