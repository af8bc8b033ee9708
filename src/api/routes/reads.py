"""Shared plumbing of the read routes, and the read models' own status (`GET /v1/projections`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import Caller, MinPosition, ServicesDep, read_position, require
from api.models_reads import ProjectionsOut
from api.problems import invalid as invalid  # re-exported: the read routes' 422 naming a field
from ledger.csv_cells import cell
from ledger.domain.money import format_amount
from projections.engine.base import Row
from projections.engine.registry import PROJECTION_NAMES

router = APIRouter(prefix="/v1/projections", tags=["projections"])
Admin = Annotated[Caller, Depends(require("admin"))]




def csv_text(columns: Sequence[str], rows: Sequence[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])  # no cell a spreadsheet would run
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
        read_position(svc, PROJECTION_NAMES, min_position)
    found = svc.reads.status()
    return ProjectionsOut(
        position=min((s.position for s in found), default=0),
        projections=found,
    )
