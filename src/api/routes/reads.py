"""Shared plumbing of the read routes, and the read models' own status (`GET /v1/projections`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from api.deps import Caller, MinPosition, ServicesDep, read_position, require
from api.models_reads import ProjectionsOut
from api.problems import invalid as invalid  # re-exported: the read routes' 422 naming a field
from ledger.domain.money import format_amount
from projections.as_of import ReadSource
from projections.base import Row
from projections.registry import build_projections
from projections.status import projection_status

router = APIRouter(prefix="/v1/projections", tags=["projections"])
Admin = Annotated[Caller, Depends(require("admin"))]


def select_rows(svc: ReadSource, view: str, table: str, where: str = "", params: Sequence[Any] = (),
                order: str = "", limit: int | None = None) -> list[Row]:
    """Rows of a read model's table (the active version, or a past point's), decoded (money as Decimal)."""
    return svc.view(view).select(table, where, params, order, limit)


def csv_text(columns: Sequence[str], rows: Sequence[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else str(row[c]) for c in columns])
    return out.getvalue()


def shown(row: Row, columns: Sequence[str], money: Collection[str]) -> Row:
    """A row ready for JSON or CSV: `money` columns with exactly the minor units of the row's
    currency, other decimals (ratios) as decimal strings, the rest as is."""
    return {
        c: format_amount(row[c], row["currency"]) if c in money and row[c] is not None
        else str(row[c]) if isinstance(row[c], Decimal) else row[c]
        for c in columns
    }


@router.get("", response_model=ProjectionsOut)
def projections(svc: ServicesDep, caller: Admin, min_position: MinPosition = None) -> ProjectionsOut:
    """Each read model's version, position, the log head and the lag in events and seconds;
    `position` is the lowest of them (where every read model stands)."""
    if min_position is not None:
        read_position(svc, tuple(p.name for p in build_projections(svc.store)), min_position)
    found = projection_status(svc.ledger.app, svc.store)
    return ProjectionsOut(
        position=min((s.position for s in found), default=0),
        projections=found,
    )
