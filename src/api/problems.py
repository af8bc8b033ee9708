"""RFC 9457 problem details for every error, with a stable `type` per domain error."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

from api.middleware import HttpMiddleware
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
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
    409: "conflict", 413: "request-too-large", 429: "rate-limited", 503: "not-yet-consistent",
}


class ProblemItem(BaseModel):
    """One reason: a field and its message (invalid input), or a line and its reason (a key file)."""

    model_config = ConfigDict(extra="allow")
    field: str | None = Field(default=None, examples=["query.min_position"])
    message: str | None = None
    line: int | None = None
    reason: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details. `type` is stable per refusal; further members carry its details."""

    model_config = ConfigDict(extra="allow", title="Problem")
    type: str = Field(examples=[TYPE_BASE + "invalid-input"])
    title: str = Field(examples=["InvalidInput"])
    status: int = Field(ge=400, le=599, examples=[422])
    detail: str | None = Field(default=None, examples=["quantity: at most 100 per order"])
    errors: list[ProblemItem] | None = Field(default=None, description="every bad field or line")


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
_STATUSES: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("the body could not be read (e.g. not UTF-8)", {}),
    401: ("no bearer token, or an unknown or revoked one", {"WWW-Authenticate": {"schema": {"type": "string"}}}),
    403: ("the token's role may not call this route", {}),
    404: ("what the request names does not exist", {}),
    409: ("a rule of the ledger refused the command, or the Idempotency-Key was used with another request", {}),
    413: ("the body is larger than LEDGER_MAX_REQUEST_BYTES", {}),
    422: ("invalid input; `errors` names every bad field (or line)", {}),
    429: ("more requests a minute than LEDGER_RATE_LIMIT_PER_MINUTE, or more unknown tokens from the address "
          "than LEDGER_AUTH_FAILURES_PER_MINUTE", _RETRY_AFTER),
    503: ("not yet: contention, or the read models have not reached `min_position` in time", _RETRY_AFTER),
}


def invalid(field: str, message: str, where: str = "query") -> RequestValidationError:
    """A 422 naming `field`, shaped like FastAPI's own validation errors."""
    return RequestValidationError([{"loc": (where, field), "msg": message, "type": "value_error"}])


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses: each an RFC 9457 problem as application/problem+json."""
    return {
        status: {"description": _STATUSES[status][0], "content": {PROBLEM: {"schema": PROBLEM_REF}},
                 **({"headers": _STATUSES[status][1]} if _STATUSES[status][1] else {})}
        for status in sorted(statuses)
    }


NOT_FOUND = problem_responses(404)  # a route's own: what it names may not exist


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The app's schema with the Problem component, and FastAPI's own 422s (which the
    handler below answers as problems) documented as what they really are."""
    schema = app.openapi_schema
    if schema is None:
        schema = FastAPI.openapi(app)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(problem_schema.pop("$defs", {}), Problem=problem_schema)
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if "HTTPValidationError" in str(operation.get("responses", {}).get("422", "")):
                    operation["responses"]["422"] = problem_responses(422)[422]
    return schema


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


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on the request's path. Starlette's own 405 names only the
    methods of the first route that matched the path, and `GET /v1/products` and `POST
    /v1/products` are two routes."""
    return [method for method in METHODS
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                   for route in request.app.router.routes)]


def install(app: FastAPI) -> None:
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

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
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        code = HTTP_CODES.get(error.status_code, "http-error")
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem(error.status_code, code, code.replace("-", " ").capitalize(), str(error.detail),
                       headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        return internal_error(error)  # only for an error outside `Unexpected` (create_app adds it last)


def internal_error(error: Exception) -> JSONResponse:
    # Never echo the exception: it could hold a code. The log gets the type only.
    log.error("unexpected %s while serving a request", type(error).__name__)
    return problem(500, "internal-error", "Internal error", "the request failed; it is safe to retry")


class Unexpected(HttpMiddleware):
    """An exception no handler took answers 500 (a problem) here, and goes no further. Starlette's
    own catch-all answers too, but then re-raises for the server, and uvicorn logs the traceback
    ("Exception in ASGI application") at the default level."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as error:
            answer = internal_error(error)
            if not started:  # else the client sees the response cut short, and the log one line
                await answer(scope, receive, send)
