"""Inventory per SKU (and per batch): counts by key state and the low-stock flag."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from starlette.concurrency import run_in_threadpool

from api.deps import Caller, MinPosition, ServicesDep, require
from api.models_reads import BatchStock, InventoryOut, SkuInventoryOut, SkuStock
from api.point_in_time import AsOf, AsOfTime, reading
from api.problems import NOT_FOUND
from api.services import Services
from projections.engine.base import Row
from projections.models import report_queries
from projections.models.inventory import EXPIRED, STATES

router = APIRouter(prefix="/v1/inventory", tags=["inventory"])
Reader = Annotated[Caller, Depends(require("storefront", "analyst"))]
By = Annotated[Literal["sku", "batch"], Query(description="`batch` adds each SKU's batches")]
VIEWS = ("inventory",)
MAX_LIMIT = 1000


def _counts(row: Row) -> dict[str, int]:
    return {s: int(row.get(s) or 0) for s in (*STATES, EXPIRED)}


def _batch(row: Row, currency: str) -> BatchStock:
    return BatchStock(batch_id=row["batch_id"], supplier=row["supplier"], currency=currency,
                      unit_cost=row["unit_cost"], **_counts(row))


def _currencies(svc: Services, skus: list[str]) -> dict[str, str]:
    """Each SKU's currency, which its batches' unit costs are in (a product's currency never changes)."""
    return {sku: svc.ledger.reads.product(sku).currency for sku in skus}


def _sku(row: Row, batches: list[Row] | None, currencies: dict[str, str]) -> SkuStock:
    return SkuStock(
        sku=row["sku"], low_stock=bool(row["low_stock"]), threshold=int(row["threshold"] or 0),
        batches=None if batches is None else [_batch(b, currencies[row["sku"]]) for b in batches
                                              if b["sku"] == row["sku"]],
        **_counts(row),
    )


@router.get("", response_model=InventoryOut, response_model_exclude_none=True)
def inventory(svc: ServicesDep, caller: Reader, by: By = "sku",
              after: Annotated[str, Query(max_length=100, description="SKUs after this one (in SKU order)")] = "",
              limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
              min_position: MinPosition = None, as_of: AsOf = None, as_of_time: AsOfTime = None) -> InventoryOut:
    """Each SKU's keys by state, a page of SKUs at a time in SKU order (follow `next_after`)."""
    with reading(svc, VIEWS, min_position, as_of, as_of_time) as (source, position):
        skus, batches = report_queries.inventory(source, batches=by == "batch", after=after, limit=limit + 1)
    more, skus = len(skus) > limit, skus[:limit]
    if batches is not None and skus:
        batches = [b for b in batches if b["sku"] <= skus[-1]["sku"]]
    currencies = _currencies(svc, [r["sku"] for r in skus]) if by == "batch" else {}
    return InventoryOut(position=position, items=[_sku(r, batches, currencies) for r in skus],
                        next_after=skus[-1]["sku"] if more and skus else None)


@router.get("/{sku}", response_model=SkuInventoryOut, response_model_exclude_none=True, responses=NOT_FOUND)
async def sku_inventory(sku: str, svc: ServicesDep, caller: Reader, by: By = "sku",
                        min_position: MinPosition = None, as_of: AsOf = None,
                        as_of_time: AsOfTime = None) -> Response:
    """One SKU's keys by state; 404 if the read models have never seen it (by then). The storefront's
    hottest read: a live answer may come from `api.fresh` (at most LEDGER_LIVE_READ_MAX_AGE_MS old)."""
    if as_of is not None or as_of_time is not None:
        return svc.fresh.serialise(
            await run_in_threadpool(_sku_inventory, sku, svc, by, min_position, as_of, as_of_time))

    async def ask() -> tuple[int, SkuInventoryOut]:
        answer = await run_in_threadpool(_sku_inventory, sku, svc, by, min_position, None, None)
        return answer.position, answer

    return await svc.fresh.answer(("inventory", sku, by), min_position, ask)


def _sku_inventory(sku: str, svc: Services, by: str, min_position: int | None, as_of: int | None,
                   as_of_time: datetime | None) -> SkuInventoryOut:
    with reading(svc, VIEWS, min_position, as_of, as_of_time) as (source, position):
        rows, batches = report_queries.inventory(source, sku, batches=by == "batch")
    if not rows:
        raise HTTPException(404, f"no inventory for SKU {sku}")
    currencies = _currencies(svc, [sku]) if by == "batch" else {}
    return SkuInventoryOut(position=position, **_sku(rows[0], batches, currencies).model_dump())
