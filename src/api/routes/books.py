"""The double-entry books: the trial balance (now or as of a position) and one account's entries."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from api.deps import MAX_POSITION, Caller, MinPosition, ServicesDep, require
from api.models_reads import AccountBalance, AccountOut, CurrencyTotal, JournalEntry, TrialBalanceOut
from api.point_in_time import AsOf, AsOfTime, entries_source, reading
from api.problems import NOT_FOUND
from projections.models import report_queries
from projections.models.journal import ACCOUNTS, TrialBalance, account_info

router = APIRouter(prefix="/v1/ledger", tags=["books"])
Finance = Annotated[Caller, Depends(require("finance"))]
VIEWS = ("journal",)
ZERO = Decimal(0)


def balances(tb: TrialBalance, accounts: list[str] | None = None) -> list[AccountBalance]:
    """Every account of the chart in every currency the books hold (zero where nothing was posted)."""
    found = {(r["account"], r["currency"]): r for r in tb.rows}
    currencies = sorted({c for _, c in found} | set(tb.totals))
    names = accounts or sorted(set(ACCOUNTS) | {a for a, _ in found})
    out = []
    for account in names:
        for currency in currencies:
            row: dict[str, Any] = found.get((account, currency)) or {"debit": ZERO, "credit": ZERO, "balance": ZERO}
            out.append(AccountBalance(account=account, type=(account_info(account) or ("unknown", ""))[0],
                                      currency=currency, debit=row["debit"], credit=row["credit"],
                                      balance=row["balance"]))
    return out


def account_held(tb: TrialBalance, account: str) -> list[AccountBalance]:
    """One account's balance in each currency it was posted in."""
    return [b for b in balances(tb, [account]) if (b.account, b.currency) in tb.by_account()]


@router.get("/trial-balance", response_model=TrialBalanceOut)
def trial(
    svc: ServicesDep, caller: Finance, as_of: AsOf = None, as_of_time: AsOfTime = None,
    min_position: MinPosition = None,
) -> TrialBalanceOut:
    """Every account's debits, credits and balance per currency; `balanced` when debits equal credits."""
    with reading(svc, VIEWS, min_position, as_of, as_of_time) as (source, position):
        tb = report_queries.trial_balance(source)
    return TrialBalanceOut(
        position=position, as_of=None if source is svc else position, balanced=tb.balanced,
        accounts=balances(tb),
        totals=[CurrencyTotal(currency=c, debit=d, credit=k, balanced=d == k)
                for c, (d, k) in sorted(tb.totals.items())],
    )


@router.get("/accounts/{account}", response_model=AccountOut, responses=NOT_FOUND)
def account(
    svc: ServicesDep, caller: Finance,
    account: Annotated[str, Path(max_length=100)],
    after: Annotated[int, Query(ge=0, le=MAX_POSITION, description="entries at positions after this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    min_position: MinPosition = None, as_of: AsOf = None, as_of_time: AsOfTime = None,
) -> AccountOut:
    """The account's journal entries in log order (paged by position) and its balance per currency."""
    info = account_info(account)
    if info is None:
        raise HTTPException(404, f"no account {account}; the chart has {', '.join(ACCOUNTS)} and "
                                 "supplier_float:<supplier>")
    with reading(svc, VIEWS, min_position, as_of, as_of_time) as (source, position):
        tb = report_queries.trial_balance(source)
        rows, more = report_queries.account_entries(entries_source(svc, source, position), account, after,
                                                    position, limit)
    held = account_held(tb, account)
    kind, description = info
    return AccountOut(
        position=position, account=account, type=kind, description=description, balances=held,
        entries=[
            JournalEntry(position=r["position"], entry_no=r["entry_no"], event_type=r["event_type"],
                         occurred_at=r["occurred_at"], currency=r["currency"], debit=r["debit"], credit=r["credit"],
                         order_id=r["order_id"], batch_id=r["batch_id"], key_id=r["key_id"])
            for r in rows
        ],
        next_after=rows[-1]["position"] if more and rows else None,
    )
