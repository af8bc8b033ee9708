"""Shared plumbing of the read routes, and the read models' own status (`GET /v1/projections`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError

from api.deps import Caller, MinPosition, ServicesDep, read_position, require
from api.models_reads import ProjectionsOut
from projections.base import Projection, Row
from projections.registry import build_projections
from projections.status import projection_status
from projections.store import ViewStore

router = APIRouter(prefix="/v1/projections", tags=["projections"])
Admin = Annotated[Caller, Depends(require("admin"))]


def invalid(field: str, message: str, where: str = "query") -> RequestValidationError:
    """A 422 naming `field`, shaped like FastAPI's own validation errors."""
    return RequestValidationError([{"loc": (where, field), "msg": message, "type": "value_error"}])


class ReadSource(Protocol):
    """Where a read route reads: the live read models (`Services`) or a past point
    (`projections.as_of.PointInTime`)."""

    @property
    def store(self) -> ViewStore: ...

    def view(self, name: str) -> Projection: ...


def select_rows(svc: ReadSource, view: str, table: str, where: str = "", params: Sequence[Any] = (),
                order: str = "", limit: int | None = None) -> list[Row]:
    """Rows of a read model's table at its active version, decoded (money as Decimal)."""
    projection = svc.view(view)
    spec = next(t for t in projection.tables if t.name == table)
    query = f"SELECT {', '.join(spec.all_columns)} FROM {projection.table(table)}"
    if where:
        query += f" WHERE {where}"
    if order:
        query += f" ORDER BY {order}"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return [spec.decode(values) for values in svc.store.query(query, params)]


def csv_text(columns: Sequence[str], rows: Sequence[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else str(row[c]) for c in columns])
    return out.getvalue()


def plain(value: Any) -> Any:
    """JSON-ready: money as decimal strings, the rest as is."""
    return str(value) if isinstance(value, Decimal) else value


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
