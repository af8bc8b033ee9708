"""Upstream suppliers (connection settings, float, settlements), each product's offers, and the
suppliers' signed callbacks. The supplier's secret goes in and never comes out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api import upstream_callbacks
from api.deps import Caller, IdempotencyKey, ServicesDep, idempotency, rate_limited, require, respond
from api.models import NFC, TEXT_PATTERN, TEXT_RULE
from api.models_upstream import (
    CALLBACK_BODY,
    SUPPLIER_NAME,
    FloatIn,
    FloatState,
    Health,
    LowFloatIn,
    OfferIn,
    OfferOut,
    SettlementIn,
    SettlementOut,
    StatementDifference,
    StatementReconciliation,
    SupplierIn,
    SupplierOffer,
    SupplierOut,
    SuppliersOut,
    SupplierWritten,
)
from api.problems import NOT_FOUND, invalid, problem_responses
from api.services import Services
from ledger import commands as c
from ledger.domain.ids import supplier_id
from ledger.domain.suppliers import Supplier
from ledger.fulfilment.breaker import Breakers, health
from projections.models.supplier_statement import StatementError, attempts_with, differences, read_statement

suppliers_router = APIRouter(prefix="/v1/suppliers", tags=["suppliers"])
offers_router = APIRouter(prefix="/v1/products", tags=["suppliers"], responses=NOT_FOUND)  # product, supplier
callbacks_router = APIRouter(prefix="/v1/upstreams", tags=["suppliers"])
Admin = Annotated[Caller, Depends(require("admin"))]
Finance = Annotated[Caller, Depends(require("finance"))]  # and admin, as every route
NamePath = Annotated[str, Path(pattern=SUPPLIER_NAME)]
SkuPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
# A settlement may be for a card-key supplier too ("Keystone Wholesale"): any name the books know.
PayeePath = Annotated[str, NFC, Path(min_length=1, max_length=200, json_schema_extra={"pattern": TEXT_PATTERN}),
                      TEXT_RULE]


def _json(model: SupplierWritten | SettlementOut | OfferOut, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


# ---- suppliers ----


@suppliers_router.put("/{name}", response_model=SupplierWritten)
def set_supplier(name: NamePath, body: SupplierIn, request: Request, svc: ServicesDep, caller: Admin,
                 idempotency_key: IdempotencyKey = None) -> Response:
    """Register a supplier, or change its connection settings. The secret is sealed at once; no
    response, log or event shows it (its currency cannot change once registered)."""
    command = c.SetSupplier(ctx=caller.context(svc, request), name=name, **body.model_dump())
    # The secret stays out of the idempotency record, even hashed.
    key = idempotency(caller, idempotency_key, f"PUT /v1/suppliers/{name}", body.model_dump(exclude={"secret"}))
    return respond(svc.ledger.execute(command, key),
                   lambda written: _json(SupplierWritten(name=name, position=written.position)))


def _supplier(supplier: Supplier, offers: list[SupplierOffer], breakers: Breakers | None) -> SupplierOut:
    return SupplierOut(
        name=supplier.name, base_url=supplier.base_url, currency=supplier.currency, timeout_ms=supplier.timeout_ms,
        concurrency=supplier.concurrency,
        float=FloatState(currency=supplier.currency, funded=supplier.funded, charged=supplier.charged,
                         held=supplier.held, available=supplier.available, low_threshold=supplier.low_float_threshold,
                         low=supplier.low_float),
        health=Health(breaker=health(breakers, supplier.name), outstanding=len(supplier.holds)),
        offers=offers,
    )


@suppliers_router.get("", response_model=SuppliersOut)
def list_suppliers(request: Request, svc: ServicesDep, caller: Finance) -> SuppliersOut:
    """Every supplier with its float, its health and its offers; never its secret."""
    position = svc.reads.head()
    offers: dict[str, list[SupplierOffer]] = {}
    for product in svc.ledger.reads.products():
        for name, offer in product.offers.items():
            offers.setdefault(name, []).append(SupplierOffer(
                sku=product.sku, supplier_product=offer["supplier_product"], currency=product.currency,
                cost=offer["cost"], priority=offer["priority"]))
    breakers: Breakers | None = getattr(request.app.state, "breakers", None)
    suppliers = [_supplier(s, offers.get(s.name, []), breakers) for s in svc.ledger.reads.suppliers()]
    return SuppliersOut(suppliers=suppliers, position=position)


@suppliers_router.post("/{name}/float", response_model=SupplierWritten, responses=NOT_FOUND)
def fund_supplier(name: NamePath, body: FloatIn, request: Request, svc: ServicesDep, caller: Admin,
                  idempotency_key: IdempotencyKey = None) -> Response:
    """Money prepaid to the supplier: its float grows by `amount`."""
    command = c.FundSupplier(ctx=caller.context(svc, request), name=name, **body.model_dump())
    key = idempotency(caller, idempotency_key, f"POST /v1/suppliers/{name}/float", body.model_dump())
    return respond(svc.ledger.execute(command, key),
                   lambda written: _json(SupplierWritten(name=name, position=written.position)))


@suppliers_router.put("/{name}/low-float", response_model=SupplierWritten, responses=NOT_FOUND)
def set_low_float(name: NamePath, body: LowFloatIn, request: Request, svc: ServicesDep, caller: Admin,
                  idempotency_key: IdempotencyKey = None) -> Response:
    """The supplier's low-float alert: it fires once each time the available float falls to
    `threshold` (at once if it is under it already), again after a refill above it."""
    command = c.SetLowFloat(ctx=caller.context(svc, request), name=name, threshold=body.threshold)
    key = idempotency(caller, idempotency_key, f"PUT /v1/suppliers/{name}/low-float", body.model_dump())
    return respond(svc.ledger.execute(command, key),
                   lambda written: _json(SupplierWritten(name=name, position=written.position)))


@suppliers_router.post("/{name}/settlements", status_code=201, response_model=SettlementOut)
def settle_supplier(name: PayeePath, body: SettlementIn, request: Request, svc: ServicesDep, caller: Finance,
                    idempotency_key: IdempotencyKey = None) -> Response:
    """A payment to a supplier against what the merchant owes it: recorded once per `reference`
    (the same settlement again is answered as before; other figures under a used reference: 409)."""
    command = c.SettleSupplier(ctx=caller.context(svc, request), supplier=name, amount=body.amount,
                               currency=body.currency, reference=body.reference, period=body.period or "")
    key = idempotency(caller, idempotency_key, f"POST /v1/suppliers/{name}/settlements", body.model_dump())
    return respond(svc.ledger.execute(command, key), lambda written: _json(
        SettlementOut(supplier=name, reference=body.reference, position=written.position), 201))


# ---- offers ----


@offers_router.put("/{sku}/offers/{supplier}", response_model=OfferOut)
def set_offer(sku: SkuPath, supplier: NamePath, body: OfferIn, request: Request, svc: ServicesDep, caller: Admin,
              idempotency_key: IdempotencyKey = None) -> Response:
    """A supplier's offer for an upstream product (direct_recharge, platform_grant): set or replaced."""
    command = c.SetOffer(ctx=caller.context(svc, request), sku=sku, supplier=supplier, **body.model_dump())
    key = idempotency(caller, idempotency_key, f"PUT /v1/products/{sku}/offers/{supplier}", body.model_dump())
    return respond(svc.ledger.execute(command, key),
                   lambda written: _json(OfferOut(sku=sku, supplier=supplier, position=written.position)))


@offers_router.delete("/{sku}/offers/{supplier}", response_model=OfferOut)
def remove_offer(sku: SkuPath, supplier: NamePath, request: Request, svc: ServicesDep, caller: Admin,
                 idempotency_key: IdempotencyKey = None) -> Response:
    """Routing stops sending the product to this supplier (an attempt already sent there is still resolved)."""
    command = c.RemoveOffer(ctx=caller.context(svc, request), sku=sku, supplier=supplier)
    key = idempotency(caller, idempotency_key, f"DELETE /v1/products/{sku}/offers/{supplier}", {})
    return respond(svc.ledger.execute(command, key),
                   lambda written: _json(OfferOut(sku=sku, supplier=supplier, position=written.position)))


# ---- a supplier's statement ----

MAX_STATEMENT_BYTES = 16 * 1024 * 1024


@suppliers_router.post(
    "/{name}/reconciliation", response_model=StatementReconciliation,
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {
        "type": "string", "description": "the supplier's statement: request_id,status,charged,currency,completed_at",
    }}}}},
    responses={**NOT_FOUND, **problem_responses(413, 422)},
)
async def reconcile_statement(name: NamePath, request: Request, svc: ServicesDep,
                              caller: Finance) -> StatementReconciliation:
    """Hold the supplier's statement (CSV, as docs/upstream.md says) against the attempts recorded
    with it: each difference (money lost, claim, ...) with its log positions. Reads the whole
    history of fulfilments: for finance, not for a page that reloads."""
    body = await request.body()
    if len(body) > MAX_STATEMENT_BYTES:
        raise HTTPException(413, f"a statement of at most {MAX_STATEMENT_BYTES} bytes")
    return await run_in_threadpool(_reconcile_statement, svc, name, body)


def _reconcile_statement(svc: Services, name: str, body: bytes) -> StatementReconciliation:
    if svc.ledger.reads.find(Supplier, supplier_id(name)) is None:
        raise HTTPException(404, f"no supplier {name}")
    try:
        lines = read_statement(body.decode(), "statement")
    except (StatementError, UnicodeDecodeError) as error:
        raise invalid("statement", str(error), "body") from None
    position = svc.reads.head()
    found = differences(attempts_with(svc.ledger.app, name), lines)
    return StatementReconciliation(supplier=name, lines=len(lines), position=position, differences=[
        StatementDifference(kind=d.kind, request_id=d.request_id, here=d.here, there=d.there,  # type: ignore[arg-type]
                            positions=list(d.positions)) for d in found])


# ---- callbacks ----

_CALLBACK_DOC = {
    "parameters": [{
        "name": "X-Signature", "in": "header", "required": True,
        "description": "`sha256=` and the lowercase hex HMAC-SHA256 of the raw body, keyed with the supplier's "
                       "secret (docs/upstream.md)",
        "schema": {"type": "string"},
    }],
    "requestBody": {"required": True, "content": {"application/json": {"schema": CALLBACK_BODY}}},
}


@callbacks_router.post(
    "/{supplier}/callbacks", status_code=204, response_class=Response, openapi_extra=_CALLBACK_DOC,
    dependencies=[Depends(rate_limited)],
    responses={
        202: {"description": "a `pending` callback: nothing changes"},
        204: {"description": "applied: the attempt's outcome is recorded"},
        **problem_responses(400, 401, 404, 409, 413),
    },
)
async def supplier_callback(supplier: NamePath, request: Request, svc: ServicesDep) -> Response:
    """A supplier's answer about one attempt, pushed (docs/upstream.md, Callbacks). No bearer token:
    the body is signed with the supplier's secret. 401 bad or missing signature; 404 unknown supplier,
    or a request id this supplier was never sent; 409 a replay or a contradiction; 400 not the
    protocol's body; 413 over 64 KB. Anything not applied changes nothing and is counted in /metrics
    (`ledger_upstream_callbacks_total`)."""
    return await upstream_callbacks.receive(request, svc, supplier)
