"""Reconciliation for finance: the last result of the background job (`api.background`), which runs
the checks of `projections.models.reconcile` at the read models' position and stores it with that
position (`projections.models.reconcile_store`). A request never folds the history itself."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from api.deps import Caller, MinPosition, ServicesDep, log_head, require
from api.models_reads import ReconciliationException, ReconciliationOut, ReconciliationTotal
from api.problems import problem_responses

router = APIRouter(prefix="/v1/reconciliation", tags=["books"])
Finance = Annotated[Caller, Depends(require("finance"))]


@router.get("", response_model=ReconciliationOut, responses=problem_responses(503))
def reconciliation(svc: ServicesDep, caller: Finance, min_position: MinPosition = None) -> ReconciliationOut:
    """The last reconciliation and the position it was computed at: every payment ended in goods or a
    refund; every key is in one state; money in = revenue + refunds payable; the journal equals the
    events. `clean` is false when any exception is listed. 503 with Retry-After while none is stored
    yet, or (with `min_position`) none at or after that position (after waiting LEDGER_READ_WAIT_S)."""
    store = svc.reconciliations
    log_head(svc, min_position)
    wanted = min_position or 0
    deadline = time.monotonic() + svc.settings.read_wait_s
    while (stored_at := store.position()) is None or stored_at < wanted:
        if time.monotonic() >= deadline:
            after = "" if min_position is None else f" at or after position {wanted}"
            raise HTTPException(503, f"no reconciliation stored yet{after}; the background job runs one when the "
                                     "read models move", headers={"Retry-After": "5"})
        time.sleep(0.05)
    stored = store.latest()
    assert stored is not None
    result = stored.result
    return ReconciliationOut(
        position=result.position, computed_at=stored.computed_at, clean=result.clean, examined=result.examined,
        totals=[ReconciliationTotal(currency=t.currency, money_in=t.money_in, revenue=t.revenue,
                                    refunds_payable=t.refunds_payable, balanced=t.balanced) for t in result.totals],
        exceptions=[ReconciliationException(check=f.check, subject=f.subject, detail=f.detail,
                                            positions=list(f.positions)) for f in result.findings],
    )
