"""Finance: the trial balance and each account's entries (now, or as of a log position or a time),
the reconciliation's exceptions, the last signed checkpoint and the last verification.

The numbers come from what the API's routes use: `api.point_in_time.reading`, the books' queries
(`projections.engine.read_side.trial_balance`, `account_entries`) and `api.routes.books.balances`,
the last reconciliation the background job stored (`Services.reconciliations`), and the audit
tables (`Services.audit`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from api.deps import ServicesDep
from api.point_in_time import entries_source, reading
from api.routes import books
from api.services import Services
from api.ui import inputs
from api.ui.auth import Viewer, viewer_for
from api.ui.inputs import BadInput
from api.ui.render import page
from audit.checkpoint import Checkpoint
from audit.store import VerificationRecord
from projections.engine.as_of import ReadSource
from projections.models import report_queries
from projections.models.journal import ACCOUNTS, account_info
from projections.models.reconcile_store import Stored

router = APIRouter(prefix="/finance")
FinanceViewer = Annotated[Viewer, Depends(viewer_for("finance"))]  # as GET /v1/ledger/*, /v1/reconciliation
ENTRIES = 100  # an account page's entries (an event's entries are never split over two pages)
SHOWN_FINDINGS = 50  # the reconciliation's exceptions shown (all of them: GET /v1/reconciliation)


@dataclass(frozen=True)
class Moment:
    """Which point the page shows: the form's values as typed, kept on every link."""

    as_of: str = ""
    as_of_time: str = ""

    def query(self, **more: object) -> str:
        values = {"as_of": self.as_of.strip(), "as_of_time": self.as_of_time.strip(), **more}
        found = urlencode({k: v for k, v in values.items() if v not in ("", None)})
        return f"?{found}" if found else ""


@contextmanager
def _reading(svc: Services, moment: Moment) -> Iterator[tuple[ReadSource, int]]:
    """The books' source and position, as the books routes read them; bad input as `BadInput`."""
    as_of, as_of_time = inputs.as_of(moment.as_of, moment.as_of_time)
    try:
        with reading(svc, books.VIEWS, None, as_of, as_of_time) as found:
            yield found
    except RequestValidationError as error:  # both given, or a position beyond the log's head
        raise inputs.named(error) from None


@dataclass(frozen=True)
class Audit:
    tree_size: int
    tree_position: int
    checkpoint: Checkpoint | None
    signature: str  # Checkpoint.key_status under the pinned keys: valid, unpinned-key, bad-signature
    verification: VerificationRecord | None


def _audit(svc: Services) -> Audit:
    store = svc.audit()
    size, position = store.head()
    checkpoint = store.latest_checkpoint()  # the newest row, whoever wrote it: its key is checked
    return Audit(size, position, checkpoint, "none" if checkpoint is None else checkpoint.key_status(svc.audit_keys()),
                 store.latest_verification())


def _reconciliation(svc: Services) -> tuple[Stored | None, str | None]:
    """What GET /v1/reconciliation answers: the background job's last result, or why there is none."""
    stored = svc.reconciliations.latest()
    if stored is None:
        return None, "no reconciliation has run yet (ledger serve runs one in the background); reload in a moment"
    return stored, None


@router.get("", response_class=HTMLResponse)
def finance(request: Request, svc: ServicesDep, viewer: FinanceViewer, as_of: str = "",
            as_of_time: str = "") -> HTMLResponse:
    moment = Moment(as_of, as_of_time)
    try:
        with _reading(svc, moment) as (source, position):
            tb = report_queries.trial_balance(source)
            live = source is svc
    except BadInput as error:
        return page(request, "finance.html", viewer, status_code=error.status, error=error, moment=moment)
    stored, recon_note = _reconciliation(svc)
    return page(
        request, "finance.html", viewer, moment=moment, position=position, live=live, balanced=tb.balanced,
        accounts=books.balances(tb), totals=sorted(tb.totals.items()), recon=stored and stored.result,
        recon_at=stored and stored.computed_at, recon_note=recon_note, shown_findings=SHOWN_FINDINGS,
        audit=_audit(svc),
    )


@router.get("/accounts/{account}", response_class=HTMLResponse)
def account(request: Request, svc: ServicesDep, viewer: FinanceViewer, account: str, after: str = "",
            as_of: str = "", as_of_time: str = "") -> HTMLResponse:
    moment = Moment(as_of, as_of_time)
    try:
        info = account_info(account)
        if info is None:
            raise BadInput("account", f"no account {account[:100]}; the chart has {', '.join(ACCOUNTS)} and "
                                      "supplier_float:<supplier>", 404)
        start = inputs.position("after", after) or 0
        with _reading(svc, moment) as (source, position):
            tb = report_queries.trial_balance(source)
            rows, more = report_queries.account_entries(entries_source(svc, source, position), account, start,
                                                        position, ENTRIES)
            live = source is svc
    except BadInput as error:
        return page(request, "finance_account.html", viewer, status_code=error.status, error=error, moment=moment,
                    account=account)
    kind, description = info
    return page(
        request, "finance_account.html", viewer, moment=moment, account=account, kind=kind,
        description=description, position=position, live=live, balances=books.account_held(tb, account),
        entries=rows, after=start, next_after=rows[-1]["position"] if more and rows else None,
    )
