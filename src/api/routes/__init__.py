"""Every router the app serves, each route's problem responses documented from what it depends on."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.deps import bearer, rate_limited
from api.problems import problem_responses
from api.routes import (
    audit,
    books,
    catalog,
    fraud,
    inventory,
    orders,
    payments,
    proofs,
    reads,
    reconciliation,
    redemptions,
    reports,
    support,
    tokens,
    upstream,
)

ROUTERS: list[APIRouter] = [orders.router, catalog.products_router, catalog.promotions_router, redemptions.router]
ROUTERS += [inventory.router, reports.router, books.router, fraud.router, audit.router, reads.router]
ROUTERS += [reconciliation.router, proofs.router]
ROUTERS += [upstream.suppliers_router, upstream.offers_router, upstream.callbacks_router, support.router]
ROUTERS += [payments.router, tokens.router]


def _calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def problem_statuses(route: APIRoute) -> set[int]:
    """The problems a route can answer, read off its dependencies and parameters:
    401/403/429 behind a bearer token (429: too many unknown tokens from one address), 429 when
    rate limited, 422 for any parameter or body,
    400/409/413/503 for a command (a body: unreadable, refused, too large, contention),
    503 for a read that waits for `min_position`. A route's own 404 is declared on it."""
    dependant, calls = route.dependant, set(_calls(route.dependant))
    has_body = bool(dependant.body_params) or "requestBody" in (route.openapi_extra or {})
    params = [*dependant.path_params, *dependant.query_params, *dependant.header_params, *dependant.cookie_params]
    for sub in dependant.dependencies:
        params += [*sub.query_params, *sub.header_params]
    statuses: set[int] = set()
    if bearer in calls:
        statuses |= {401, 403, 429}
    if rate_limited in calls:
        statuses.add(429)
    if params or has_body:
        statuses.add(422)
    if has_body:
        statuses |= {400, 409, 413, 503}
    if any(p.name == "min_position" for p in params):
        statuses.add(503)
    return statuses


def document_problems(routers: list[APIRouter]) -> None:
    """Add each route's problem responses (its own declarations win)."""
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                route.responses = {**problem_responses(*problem_statuses(route)), **route.responses}


document_problems(ROUTERS)
