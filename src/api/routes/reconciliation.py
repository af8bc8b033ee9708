"""Reconciliation for finance: the checks of `projections.models.reconcile`, at the read models' position."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from api.deps import Caller, MinPosition, ServicesDep, read_position, require
from api.models_reads import ReconciliationException, ReconciliationOut, ReconciliationTotal
from api.problems import problem_responses
from projections.models.reconcile import READ_MODELS, NotAligned, reconcile

router = APIRouter(prefix="/v1/reconciliation", tags=["books"])
Finance = Annotated[Caller, Depends(require("finance"))]


@router.get("", response_model=ReconciliationOut, responses=problem_responses(503))  # also when not aligned
def reconciliation(svc: ServicesDep, caller: Finance, min_position: MinPosition = None) -> ReconciliationOut:
    """Every payment ended in goods or a refund; every key is in one state; money in = revenue + refunds
    payable; the journal equals the events. `clean` is false when any exception is listed."""
    read_position(svc, READ_MODELS, min_position)
    try:
        result = reconcile(svc.history, svc)
    except NotAligned as error:
        raise HTTPException(503, str(error), headers={"Retry-After": "1"}) from None
    return ReconciliationOut(
        position=result.position, clean=result.clean, examined=result.examined,
        totals=[ReconciliationTotal(currency=t.currency, money_in=t.money_in, revenue=t.revenue,
                                    refunds_payable=t.refunds_payable, balanced=t.balanced) for t in result.totals],
        exceptions=[ReconciliationException(check=f.check, subject=f.subject, detail=f.detail,
                                            positions=list(f.positions)) for f in result.findings],
    )
