"""RFC 9457 problem details for every error, with a stable `type` per domain error."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ledger.domain.errors import DomainError, ImportRejected, InvalidInput, OrderRejected

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
TYPE_BASE = "https://ledger.example/problems/"


def problem(
    status: int, code: str, title: str, detail: str = "", retry_after: Any = None,
    headers: dict[str, str] | None = None, **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": TYPE_BASE + code, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = dict(headers or {})
    if retry_after:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers or None)


HTTP_CODES = {
    401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed", 409: "conflict",
    413: "request-too-large", 429: "rate-limited", 503: "not-yet-consistent",
}


def _safe(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool | None) else str(value)


def domain_problem(error: DomainError) -> JSONResponse:
    extra: dict[str, Any] = {k: _safe(v) for k, v in error.details.items()
                             if k not in ("type", "title", "status", "detail", "code", "retry_after", "headers")}
    if isinstance(error, InvalidInput):
        extra["errors"] = [{"field": error.field, "message": error.message}]
    if isinstance(error, ImportRejected):
        extra["errors"] = [{"line": e.line, "reason": e.reason} for e in error.errors]
    if isinstance(error, OrderRejected) and error.order_id is not None:
        extra["order_id"] = str(error.order_id)
    if error.code == "contention":
        extra["retry_after"] = 1
    return problem(error.status, error.code, type(error).__name__, error.message, **extra)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, error: DomainError) -> JSONResponse:
        return domain_problem(error)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body", "message": e["msg"]}
            for e in error.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        return problem(422, "invalid-input", "InvalidInput", f"{first['field']}: {first['message']}", errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, error: HTTPException) -> JSONResponse:
        code = HTTP_CODES.get(error.status_code, "http-error")
        return problem(error.status_code, code, code.replace("-", " ").capitalize(), str(error.detail),
                       headers=dict(error.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        # Never echo the exception: it could hold a code. The log gets the type only.
        log.error("unexpected %s while serving a request", type(error).__name__)
        return problem(500, "internal-error", "Internal error", "the request failed; it is safe to retry")
