"""Fraud signals for the risk team: alerts (filtered, paged by position) and one subject's scores."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from api.deps import MAX_POSITION, Caller, MinPosition, ServicesDep, read_position, require
from api.models_reads import AlertsOut, FraudAlert, SubjectOut
from projections.engine.base import Row
from projections.models import fraud, report_queries

router = APIRouter(prefix="/v1/fraud", tags=["fraud"])
Risk = Annotated[Caller, Depends(require("risk"))]
VIEWS = ("fraud",)
Kind = Literal["customer", "ip", "device", "account"]
RulePattern = "^(" + "|".join(fraud.RULES) + ")$"


def _alert(row: Row) -> FraudAlert:
    return FraudAlert.model_validate(row)


@router.get("/alerts", response_model=AlertsOut)
def alerts(
    svc: ServicesDep, caller: Risk,
    rule: Annotated[str | None, Query(pattern=RulePattern, description=", ".join(fraud.RULES))] = None,
    subject_kind: Annotated[Kind | None, Query()] = None,
    since: Annotated[int, Query(ge=0, le=MAX_POSITION, description="alerts raised at positions after this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    min_position: MinPosition = None,
) -> AlertsOut:
    """Alerts in log order."""
    position = read_position(svc, VIEWS, min_position)
    rows = report_queries.fraud_alerts(svc, rule=rule, subject_kind=subject_kind, since=since, until=position,
                                       limit=limit)
    return AlertsOut(position=position, alerts=[_alert(r) for r in rows],
                     next_since=rows[-1]["position"] if len(rows) == limit else None)


@router.get("/subjects/{kind}/{ident}", response_model=SubjectOut)
def subject(
    svc: ServicesDep, caller: Risk, kind: Kind, ident: Annotated[str, Path(min_length=1, max_length=200)],
    min_position: MinPosition = None,
) -> SubjectOut:
    """A customer's, IP's or device's total score, alert count, top rule, score per rule and its latest alerts.
    A subject never alerted has score 0 (`alerted: false`)."""
    position = read_position(svc, VIEWS, min_position)
    found, recent = report_queries.fraud_subject(svc, kind, ident)
    if found is None:
        return SubjectOut(position=position, subject_kind=kind, subject_id=ident, alerted=False, score=0, alerts=0,
                          top_rule=None, rule_scores={}, last_position=None, updated_at=None, recent_alerts=[])
    return SubjectOut(
        position=position, subject_kind=kind, subject_id=ident, alerted=True, score=int(found["score"] or 0),
        alerts=int(found["alerts"] or 0), top_rule=found["top_rule"],
        rule_scores={str(k): int(v) for k, v in found["rule_scores"].items()},
        last_position=found["last_position"], updated_at=found["updated_at"] or None,
        recent_alerts=[_alert(r) for r in recent],
    )
