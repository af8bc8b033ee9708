"""Products, key batches and promotions: admin commands, and the catalogue read straight from the ledger."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from api.deps import Caller, IdempotencyKey, ServicesDep, idempotency, require, respond
from api.models_catalog import (
    BatchFormIn,
    BatchIn,
    BatchOut,
    CouponIn,
    CouponOut,
    FlashSaleWindow,
    ProductFields,
    ProductIn,
    ProductOut,
    ProductsOut,
    PromotionIn,
    PromotionOut,
    SkuOut,
)
from api.problems import NOT_FOUND
from ledger import commands as c
from ledger.domain.catalog import DEFAULT_CHANNEL, Product
from ledger.domain.errors import LineError
from ledger.domain.ids import normalise_coupon_code
from ledger.supplier_import.files import parse_codes

products_router = APIRouter(prefix="/v1/products", tags=["catalog"])
promotions_router = APIRouter(prefix="/v1/promotions", tags=["promotions"])
Admin = Annotated[Caller, Depends(require("admin"))]
Reader = Annotated[Caller, Depends(require("storefront", "analyst", "finance"))]
MAX_LIMIT = 1000  # products a page lists at most
Storefront = Annotated[Caller, Depends(require("storefront"))]
SkuPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
CouponPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


def _json(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", exclude_none=isinstance(model, PromotionOut)),
                        status_code=status)


def _head(svc: ServicesDep) -> int:
    return svc.reads.head()


def _fields(product: Product) -> dict[str, Any]:
    return {
        "sku": product.sku, "name": product.name, "kind": product.kind.value, "face_value": product.face_value,
        "currency": product.currency, "price": product.prices[DEFAULT_CHANNEL],
        "channel_prices": {c: p for c, p in product.prices.items() if c != DEFAULT_CHANNEL},
        "validity_days": product.validity_days, "platform": product.platform,
        "per_customer_limit": product.per_customer_limit, "low_stock_threshold": product.low_stock_threshold,
        "reservation_timeout_s": product.reservation_timeout_s, "retired": product.retired,
        "flash_sales": [FlashSaleWindow(sale_id=s, starts_at=w[0], ends_at=w[1])
                        for s, w in product.flash_sales.items()],
    }


# ---- products ----


@products_router.post("", status_code=201, response_model=SkuOut)
def define_product(body: ProductIn, request: Request, svc: ServicesDep, caller: Admin,
                   idempotency_key: IdempotencyKey = None) -> Response:
    command = c.DefineProduct(ctx=caller.context(svc, request), **body.model_dump())
    key = idempotency(caller, idempotency_key, "POST /v1/products", body.model_dump())
    return respond(svc.ledger.execute(command, key),
                   lambda written: _json(SkuOut(sku=body.sku, position=written.position), 201))


@products_router.get("", response_model=ProductsOut)
def list_products(
    svc: ServicesDep, caller: Reader,
    after: Annotated[str, Query(max_length=100, description="products after this SKU (in SKU order)")] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> ProductsOut:
    """The catalogue, a page of products at a time in SKU order (follow `next_after`)."""
    position = _head(svc)
    found = svc.ledger.reads.products(after=after, limit=limit + 1)
    shown = found[:limit]
    return ProductsOut(products=[ProductFields(**_fields(p)) for p in shown], position=position,
                       next_after=shown[-1].sku if len(found) > limit and shown else None)


@products_router.get("/{sku}", response_model=ProductOut, responses=NOT_FOUND)
def get_product(sku: SkuPath, svc: ServicesDep, caller: Reader) -> ProductOut:
    position = _head(svc)
    return ProductOut(**_fields(svc.ledger.reads.product(sku)), position=position)


# ---- batches: a JSON list of codes, or a multipart file upload ----

_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": BatchIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["supplier", "unit_cost", "file"],
                    "properties": {
                        "supplier": {"type": "string", "maxLength": 200},
                        "unit_cost": {"type": "string", "pattern": r"^\d{1,12}(\.\d{1,4})?$"},
                        "file": {"type": "string", "format": "binary",
                                 "description": "CSV with a `code` column, or one code per line"},
                    },
                }
            },
        },
    }
}


def _invalid(error: ValidationError) -> RequestValidationError:
    """Pydantic's errors as a request validation error (422 naming the field), without the input values."""
    return RequestValidationError([{"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
                                   for e in error.errors(include_input=False)])


def _field_error(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


async def _batch_from_request(request: Request) -> tuple[str, str, list[tuple[int, str]], list[LineError], str]:
    """(supplier, unit_cost, numbered codes, bad lines, a digest of the request for idempotency)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        fields = {k: v for k, v in form.items() if k != "file"}
        errors: list[dict[str, Any]] = []
        try:
            meta = BatchFormIn.model_validate(fields)
        except ValidationError as error:
            errors += _invalid(error).errors()
        if not isinstance(upload, UploadFile):
            errors += _field_error("file", "a file of codes is required").errors()
        if errors or not isinstance(upload, UploadFile):
            raise RequestValidationError(errors)
        raw = await upload.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _field_error("file", "must be UTF-8 text") from None
        codes, line_errors = parse_codes(text)
        digest = hashlib.sha256(raw).hexdigest()
        return meta.supplier, meta.unit_cost, codes, line_errors, digest
    try:
        body = BatchIn.model_validate_json(await request.body())
    except ValidationError as error:
        raise _invalid(error) from None
    codes = [(line, code.strip()) for line, code in enumerate(body.codes, start=1)]
    digest = hashlib.sha256("\n".join(body.codes).encode()).hexdigest()
    return body.supplier, body.unit_cost, codes, [], digest


@products_router.post("/{sku}/batches", status_code=201, response_model=BatchOut, openapi_extra=_BATCH_BODY,
                      responses=NOT_FOUND)
async def import_batch(sku: SkuPath, request: Request, svc: ServicesDep, caller: Admin,
                       idempotency_key: IdempotencyKey = None) -> Response:
    """All or nothing: a rejection lists every bad line (`errors: [{line, reason}]`) and imports nothing."""
    supplier, unit_cost, codes, line_errors, digest = await _batch_from_request(request)
    command = c.ImportKeys(ctx=caller.context(svc, request), sku=sku, supplier=supplier, unit_cost=unit_cost,
                           codes=codes, line_errors=line_errors)
    # Only a digest of the codes goes into the idempotency record, never the codes.
    fingerprint = {"supplier": supplier, "unit_cost": unit_cost, "codes_sha256": digest}
    key = idempotency(caller, idempotency_key, f"POST /v1/products/{sku}/batches", fingerprint)
    done = await run_in_threadpool(svc.ledger.execute, command, key)
    return respond(done, lambda imported: _json(
        BatchOut(batch_id=imported.batch_id, keys=len(imported.key_ids), position=imported.position), 201))


# ---- promotions ----


@promotions_router.post("", status_code=201, response_model=PromotionOut, responses=NOT_FOUND)
def create_promotion(body: Annotated[PromotionIn, Body()], request: Request, svc: ServicesDep, caller: Admin,
                     idempotency_key: IdempotencyKey = None) -> Response:
    """A coupon (`"type": "coupon"`) or a flash sale (`"type": "flash_sale"`)."""
    ctx = caller.context(svc, request)
    fields = body.model_dump(exclude={"type"})
    key = idempotency(caller, idempotency_key, "POST /v1/promotions", body.model_dump(mode="json"))
    if isinstance(body, CouponIn):
        code = normalise_coupon_code(body.code)
        return respond(svc.ledger.execute(c.CreateCoupon(ctx=ctx, **fields), key), lambda written: _json(
            PromotionOut(type="coupon", code=code, position=written.position), 201))
    sale_id = body.sale_id
    return respond(svc.ledger.execute(c.CreateFlashSale(ctx=ctx, **fields), key), lambda written: _json(
        PromotionOut(type="flash_sale", sale_id=sale_id, position=written.position), 201))


@promotions_router.get("/{code}", response_model=CouponOut, responses=NOT_FOUND)
def get_coupon(code: CouponPath, svc: ServicesDep, caller: Storefront) -> CouponOut:
    position = _head(svc)
    coupon = svc.ledger.reads.coupon(code)
    return CouponOut(
        code=coupon.code, kind=coupon.kind.value, value=coupon.value, currency=coupon.currency,
        min_spend=coupon.min_spend, skus=coupon.skus, starts_at=coupon.starts_at, ends_at=coupon.ends_at,
        total_cap=coupon.total_cap, per_customer_cap=coupon.per_customer_cap, uses_left=coupon.uses_left,
        position=position,
    )
