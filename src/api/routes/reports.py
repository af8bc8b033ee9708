"""Sales and profit reports: rows of the daily read models summed over the chosen dimensions.

Money is summed in Python on Decimal (SQLite keeps it as exact text). Rows are always kept
apart by currency, so no two currencies are ever added together. JSON by default; CSV when
the Accept header asks for text/csv."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from api.deps import Caller, MinPosition, ServicesDep, require
from api.models_reads import PROFIT_MONEY, SALES_MONEY, ReportOut
from api.point_in_time import AsOf, AsOfTime, reading
from api.routes.reads import csv_text, invalid, select_rows, shown
from projections.base import Row

router = APIRouter(prefix="/v1/reports", tags=["reports"])
Reader = Annotated[Caller, Depends(require("finance", "analyst"))]
ZERO = Decimal(0)
MARGIN_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class Report:
    name: str
    dimensions: dict[str, str]  # query name -> column
    counts: tuple[str, ...]
    money: tuple[str, ...]

    @property
    def pattern(self) -> str:
        names = "|".join(self.dimensions)
        return rf"^({names})(,({names}))*$"


SALES = Report(
    "sales", {"day": "day", "sku": "sku", "channel": "channel", "promotion": "promotion"},
    ("orders", "units"), SALES_MONEY,
)
PROFIT = Report(
    "profit", {"day": "day", "sku": "sku", "supplier": "supplier", "batch": "batch_id"},
    ("keys_sold", "keys_written_off"), PROFIT_MONEY,
)

From = Annotated[date | None, Query(alias="from", description="first day, inclusive (ISO date, UTC)")]
To = Annotated[date | None, Query(alias="to", description="last day, inclusive (ISO date, UTC)")]


def _margin(row: Row) -> Decimal | None:
    net_revenue = row["revenue"] - row["discounts"] - row["refunds"]
    return None if net_revenue == 0 else (row["profit"] / net_revenue).quantize(MARGIN_PLACES, ROUND_HALF_UP)


def _summed(report: Report, rows: Sequence[Row], group_by: list[str]) -> list[Row]:
    columns = [report.dimensions[g] for g in group_by]
    groups: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        key = (*(row[c] for c in columns), row["currency"])
        total = groups.get(key)
        if total is None:
            total = groups[key] = {
                **{g: row[c] for g, c in zip(group_by, columns, strict=True)}, "currency": row["currency"],
                **{c: 0 for c in report.counts}, **{m: ZERO for m in report.money},
            }
        for c in report.counts:
            total[c] += int(row[c] or 0)
        for m in report.money:
            total[m] += row[m] if row[m] is not None else ZERO
    out = [groups[k] for k in sorted(groups, key=lambda k: tuple(str(v) for v in k))]
    if report.name == "profit":
        for total in out:
            total["margin"] = _margin(total)
    return out


def _report(report: Report, request: Request, svc: ServicesDep, date_from: date | None, date_to: date | None,
            group_by: str | None, min_position: int | None, as_of: int | None,
            as_of_time: datetime | None) -> Response:
    if date_from and date_to and date_from > date_to:
        raise invalid("to", "must not be before from")
    chosen = list(dict.fromkeys((group_by or ",".join(report.dimensions)).split(",")))
    where, params = [], []
    if date_from:
        where.append("day >= ?")
        params.append(date_from.isoformat())
    if date_to:
        where.append("day <= ?")
        params.append(date_to.isoformat())
    with reading(svc, (report.name,), min_position, as_of, as_of_time) as (source, position):
        rows = _summed(report, select_rows(source, report.name, "daily", " AND ".join(where), params), chosen)
    columns = [*chosen, "currency", *report.counts, *report.money, *(("margin",) if report.name == "profit" else ())]
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
