"""Per-request plumbing: who is calling, idempotent retries, read-your-writes."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from api.problems import PROBLEM, domain_problem
from api.services import Services, token_hash
from ledger.domain.context import Context
from ledger.domain.errors import DomainError


@dataclass(frozen=True)
class Caller:
    role: str
    token_id: str  # a short hash: recorded as the actor, never the token itself

    def context(self, services: Services, request: Request) -> Context:
        correlation = request.headers.get("x-correlation-id", "")[:100]
        return Context(
            now=services.ledger.clock(), actor=f"{self.role}:{self.token_id}", correlation_id=correlation,
            client_ip=None, device_id=None,
        )


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def require(*roles: str) -> Callable[..., Caller]:
    """A dependency that lets only `roles` (and admin) through: 401 without a token, 403 with the wrong one."""
    allowed = {*roles, "admin"}

    def check(request: Request, svc: ServicesDep) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        token = token.strip()
        role = svc.role_of(token)
        if role is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        if role not in allowed:
            raise HTTPException(403, f"role {role} may not call this route")
        return Caller(role, token_hash(token)[:12])

    return check


MinPosition = Annotated[int | None, Query(ge=0, description="wait until the read models reached this position")]


def read_position(svc: Services, names: tuple[str, ...], min_position: int | None) -> int:
    """Wait (bounded) for the read models to reach `min_position`; 503 with Retry-After if not."""
    if min_position is None:
        return svc.positions(names)
    reached = svc.wait_for(names, min_position)
    if reached is None:
        raise HTTPException(503, f"read models have not reached position {min_position} yet",
                            headers={"Retry-After": "1"})
    return reached


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def idempotent(
    svc: Services, caller: Caller, key: str | None, route: str, body: Any, run: Callable[[], Response]
) -> Response:
    """A retry with the same key and body returns the stored response; another body is a 409."""
    if not key:
        return run()
    body_hash = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    principal = f"{caller.role}:{caller.token_id}"
    store = svc.store
    with store.transaction() as cursor:
        store.execute(
            cursor,
            "INSERT INTO api_idempotency (principal, idem_key, route, body_hash, status, response) "
            "VALUES (?, ?, ?, ?, 0, NULL) ON CONFLICT (principal, idem_key) DO NOTHING RETURNING idem_key",
            (principal, key, route, body_hash),
        )
        claimed = cursor.fetchone() is not None
    if not claimed:
        return _stored(svc, principal, key, route, body_hash)
    try:
        try:
            response = run()
        except DomainError as error:  # a refusal is an answer too: a retry gets the same one
            response = domain_problem(error)
    except BaseException:
        _release(svc, principal, key)  # let a retry run it again
        raise
    if response.status_code >= 500 or response.status_code == 429:
        _release(svc, principal, key)  # "try again" is not an answer to keep
        return response
    with store.transaction() as cursor:
        store.execute(
            cursor, "UPDATE api_idempotency SET status = ?, response = ? WHERE principal = ? AND idem_key = ?",
            (response.status_code, bytes(response.body).decode(), principal, key),
        )
    return response


class _Temporary(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _release(svc: Services, principal: str, key: str) -> None:
    with svc.store.transaction() as cursor:
        svc.store.execute(cursor, "DELETE FROM api_idempotency WHERE principal = ? AND idem_key = ?", (principal, key))


def _stored(svc: Services, principal: str, key: str, route: str, body_hash: str) -> Response:
    deadline = time.monotonic() + 10
    while True:
        rows = svc.store.query(
            "SELECT route, body_hash, status, response FROM api_idempotency WHERE principal = ? AND idem_key = ?",
            (principal, key),
        )
        if rows and (rows[0][0] != route or rows[0][1] != body_hash):
            raise HTTPException(409, "this Idempotency-Key was used with another request")
        if rows and rows[0][2]:
            status = int(rows[0][2])
            return JSONResponse(json.loads(rows[0][3]), status_code=status, headers={"Idempotent-Replayed": "true"},
                                media_type=PROBLEM if status >= 400 else None)
        if not rows or time.monotonic() > deadline:
            raise HTTPException(409, "a request with this Idempotency-Key is still in progress")
        time.sleep(0.02)


class RateLimiter:
    """A fixed one-minute window per caller (token, else client address), per process."""

    def __init__(self) -> None:
        self.windows: dict[str, tuple[int, int]] = {}

    def allow(self, client: str, per_minute: int) -> bool:
        minute = int(time.time() // 60)
        window, count = self.windows.get(client, (minute, 0))
        if window != minute:
            window, count = minute, 0
        self.windows[client] = (window, count + 1)
        if len(self.windows) > 100_000:
            self.windows = {k: v for k, v in self.windows.items() if v[0] == minute}
        return count < per_minute


_limiter = RateLimiter()


def rate_limited(request: Request, svc: ServicesDep) -> None:
    per_minute = svc.api.rate_limit_per_minute
    if not per_minute:
        return
    client = request.headers.get("authorization") or (request.client.host if request.client else "unknown")
    if not _limiter.allow(hashlib.sha256(client.encode()).hexdigest(), per_minute):
        raise HTTPException(429, f"more than {per_minute} requests a minute", headers={"Retry-After": "60"})
