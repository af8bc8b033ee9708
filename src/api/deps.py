"""Per-request plumbing: who is calling, idempotent retries, read-your-writes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, HTTPException, Query, Request, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.problems import domain_problem, invalid
from api.services import Services
from api.tokens import Identity, TooManyFailures
from ledger.domain.context import Context
from ledger.writer.outcomes import Done, Idempotency, IdempotencyKeyReused

R = TypeVar("R")


@dataclass(frozen=True)
class Caller:
    role: str
    token_id: str  # the token's id (api.tokens): recorded as the actor, never the token nor a hash of it

    def context(self, services: Services, request: Request) -> Context:
        correlation = request.headers.get("x-correlation-id", "")[:100]
        return Context(
            now=services.ledger.clock(), actor=f"{self.role}:{self.token_id}", correlation_id=correlation,
            client_ip=None, device_id=None,
        )


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its
# thread pool, a hand-over to another thread and back per dependency and request (with the
# route itself, three per read: ~15 % of the event loop's time under load).
async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]
# Declares the scheme in the OpenAPI document; `require` reads and checks the header itself.
bearer = HTTPBearer(auto_error=False, description="a token of LEDGER_API_TOKENS or `ledger tokens create`; "
                    "its role decides the routes")


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header (the scheme in any case), or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def too_many_failures(svc: Services) -> HTTPException:
    return HTTPException(429, f"more than {svc.settings.auth_failures_per_minute} unknown tokens a minute from "
                         "this address (LEDGER_AUTH_FAILURES_PER_MINUTE)", headers={"Retry-After": "60"})


async def identify(request: Request, svc: Services, token: str) -> Identity | None:
    """The token's identity: at once if this process holds it valid, else looked up (a query,
    in the thread pool). 429 when the client's address sent too many unknown tokens."""
    identity = svc.tokens.known(token)
    if identity is None:
        try:
            identity = await run_in_threadpool(svc.tokens.authenticate, token, client_address(request))
        except TooManyFailures:
            raise too_many_failures(svc) from None
    return identity


def permits(role: str, roles: Iterable[str]) -> bool:
    """Whether `role` may use what `roles` may: admin may use everything. The API and the UI both ask this."""
    return role == "admin" or role in roles


def require(*roles: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency that lets only `roles` (and admin) through: 401 without a token or with an
    unknown or revoked one, 403 with the wrong one, 429 after too many unknown ones from an address."""

    async def check(request: Request, svc: ServicesDep,
                    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Caller:
        token = bearer_token(request)
        if token is None:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        identity = await identify(request, svc, token)
        if identity is None:
            raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        if not permits(identity.role, roles):
            raise HTTPException(403, f"role {identity.role} may not call this route")
        return Caller(identity.role, identity.token_id)

    return check


# The largest log position (or tree size, or cursor) a parameter may name: PostgreSQL's bigint,
# which SQLite's integers share. A larger number is refused with 422 naming the parameter, before
# any query would fail on it.
MAX_POSITION = 2**63 - 1
MinPosition = Annotated[int | None, Query(
    ge=0, le=MAX_POSITION, description="a position a write returned: wait (bounded) until the read models reached it; "
    "422 if it is beyond the log's head")]


def log_head(svc: Services, min_position: int | None = None) -> int:
    """The log's head. A `min_position` beyond it was never returned by a write and no wait
    could reach it: 422 naming the field, at once."""
    head = svc.reads.head()
    if min_position is not None and min_position > head:
        raise invalid("min_position", f"position {min_position} is beyond the log's head ({head})")
    return head


def read_position(svc: Services, names: tuple[str, ...], min_position: int | None) -> int:
    """Wait (bounded) for the read models to reach `min_position` (at most the log's head, else
    422); 503 with Retry-After if they do not reach it in time."""
    if min_position is None:
        # A position at most LEDGER_LIVE_READ_MAX_AGE_MS old: a lower bound of what the rows
        # read after it reflect. Under a flash sale's reads it saves a query on most requests.
        return svc.reads.position(names, svc.settings.live_read_max_age_ms / 1000)
    log_head(svc, min_position)
    reached = svc.wait_for(names, min_position)
    if reached is None:
        raise HTTPException(503, f"read models have not reached position {min_position} yet",
                            headers={"Retry-After": "1"})
    return reached


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def idempotency(caller: Caller, key: str | None, route: str, body: Any) -> Idempotency | None:
    """What an `Idempotency-Key` names, handed to the ledger beside the command: the key, scoped
    to the caller, and a fingerprint of the route and body (a retry must send the same ones).
    The route is the route's own text, not the URL as sent, so that a fingerprint never changes."""
    if not key:
        return None
    fingerprint = hashlib.sha256(json.dumps([route, body], sort_keys=True, default=str).encode()).hexdigest()
    return Idempotency(f"{caller.role}:{caller.token_id}", key, fingerprint)


def respond(done: Done[R], render: Callable[[R], Response]) -> Response:
    """The HTTP answer to a command: its result `render`ed, or its refusal as a problem; either
    marked `Idempotent-Replayed: true` when it is the answer stored under the key, given again.

    The writer stores the answer in the same transaction as the command's events, so a crash
    at any moment leaves either both or neither: never a key "in progress". Refusals are
    answers too; a temporary failure (503) is not. A key reused with another request is a 409."""
    if isinstance(done.error, IdempotencyKeyReused):
        raise HTTPException(409, done.error.message)
    response = domain_problem(done.error) if done.error is not None else render(done.value)
    if done.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def rate_limited(request: Request, svc: ServicesDep) -> None:
    """At most LEDGER_RATE_LIMIT_PER_MINUTE requests a minute per token (by its id: however the
    header is written), or per client address for a token this process has not found valid yet
    (no look-up here: `require` looks the token up and counts it if it is unknown); per process."""
    per_minute = svc.settings.rate_limit_per_minute
    if not per_minute:
        return
    token = bearer_token(request)
    identity = svc.tokens.held(token) if token else None
    key = f"token:{identity.token_id}" if identity else f"address:{client_address(request)}"
    if not svc.requests.allow(key, per_minute):
        raise HTTPException(429, f"more than {per_minute} requests a minute", headers={"Retry-After": "60"})
