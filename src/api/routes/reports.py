"""Sales and profit reports: rows of the daily read models summed over the chosen dimensions.

Money is summed in Python on Decimal (SQLite keeps it as exact text). Rows are always kept
apart by currency, so no two currencies are ever added together. JSON by default; CSV when
the Accept header asks for text/csv."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from api.dates import IsoDate
from api.deps import Caller, MinPosition, ServicesDep, require
from api.models_reads import ReportOut
from api.point_in_time import AsOf, AsOfTime, reading
from api.routes.reads import csv_text, invalid, shown
from projections.models import report_queries
from projections.models.report_queries import DailyReport

router = APIRouter(prefix="/v1/reports", tags=["reports"])
Reader = Annotated[Caller, Depends(require("finance", "analyst"))]
SALES, PROFIT = report_queries.SALES, report_queries.PROFIT

From = Annotated[IsoDate | None, Query(alias="from", description="first day, inclusive (ISO date, UTC)")]
To = Annotated[IsoDate | None, Query(alias="to", description="last day, inclusive (ISO date, UTC)")]


def _report(report: DailyReport, request: Request, svc: ServicesDep, date_from: date | None, date_to: date | None,
            group_by: str | None, min_position: int | None, as_of: int | None,
            as_of_time: datetime | None) -> Response:
    if date_from and date_to and date_from > date_to:
        raise invalid("to", "must not be before from")
    chosen = list(dict.fromkeys((group_by or ",".join(report.dimensions)).split(",")))
    with reading(svc, (report.name,), min_position, as_of, as_of_time) as (source, position):
        rows = report_queries.daily_report(source, report, chosen, date_from, date_to)
    columns = report.columns(chosen)
    headers = {"X-Read-Position": str(position)}
    rows = [shown(r, columns, report.money) for r in rows]
    if "text/csv" in request.headers.get("accept", ""):
        return Response(csv_text(columns, rows), media_type="text/csv; charset=utf-8", headers={
            **headers, "Content-Disposition": f'attachment; filename="{report.name}.csv"',
        })
    body = ReportOut(position=position, report=report.name, date_from=date_from, date_to=date_to, group_by=chosen,
                     rows=rows)
    return JSONResponse(body.model_dump(mode="json", by_alias=True), headers=headers)


@router.get("/sales", response_model=ReportOut, responses={200: {"content": {"text/csv": {}}}})
def sales(
    request: Request, svc: ServicesDep, caller: Reader, date_from: From = None, date_to: To = None,
    group_by: Annotated[str | None, Query(pattern=SALES.pattern, description="comma list of day, sku, channel, "
                                          "promotion; all four by default")] = None,
    min_position: MinPosition = None, as_of: AsOf = None, as_of_time: AsOfTime = None,
) -> Response:
    """Orders, units, gross, discounts, refunds, net and returned payments per group and currency."""
    return _report(SALES, request, svc, date_from, date_to, group_by, min_position, as_of, as_of_time)


@router.get("/profit", response_model=ReportOut, responses={200: {"content": {"text/csv": {}}}})
def profit(
    request: Request, svc: ServicesDep, caller: Reader, date_from: From = None, date_to: To = None,
    group_by: Annotated[str | None, Query(pattern=PROFIT.pattern, description="comma list of day, sku, supplier, "
                                          "batch; all four by default")] = None,
    min_position: MinPosition = None, as_of: AsOf = None, as_of_time: AsOfTime = None,
) -> Response:
    """Keys sold and written off, revenue, discounts, refunds, cost of goods, write-offs, profit and margin
    (recomputed from the group's sums) per group and currency."""
    return _report(PROFIT, request, svc, date_from, date_to, group_by, min_position, as_of, as_of_time)
