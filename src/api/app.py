"""The FastAPI application: routes thin, everything else in services and the domain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from api import problems
from api.background import Background
from api.metrics import Metrics
from api.routes import ROUTERS
from api.services import Services


def create_app(services: Services | None = None, *, background: bool = False) -> FastAPI:
    """`background`: also run the projection runner and the sweeper in this process."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services or Services.open()
        app.state.services = svc
        worker = Background(svc) if background else None
        if worker:
            worker.start()
        try:
            yield
        finally:
            if worker:
                worker.close()
            if services is None:
                svc.close()

    app = FastAPI(title="ledger", version="0.1.0", lifespan=lifespan,
                  description="Orders, card keys, payments and read models of the digital-goods ledger.")
    problems.install(app)
    metrics = Metrics()
    metrics.install(app)
    app.state.metrics = metrics

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        limit = request.app.state.services.api.max_request_bytes
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return problems.problem(413, "request-too-large", "Request too large", f"at most {limit} bytes")
        if length is None and request.method in ("POST", "PUT", "PATCH"):
            body = await request.body()  # chunked: read it, bounded by the same limit
            if len(body) > limit:
                return problems.problem(413, "request-too-large", "Request too large", f"at most {limit} bytes")
        return await call_next(request)

    for router in ROUTERS:
        app.include_router(router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> JSONResponse:
        svc: Services = request.app.state.services
        try:
            head = svc.ledger.app.recorder.max_notification_id() or 0
            lag = head - svc.positions(("facts", "inventory", "sales", "profit", "fraud", "journal"))
        except Exception as error:
            return JSONResponse({"ready": False, "reason": type(error).__name__}, status_code=503)
        ready = lag <= svc.api.ready_max_lag_events
        return JSONResponse({"ready": ready, "head": head, "lag_events": lag}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"])
    def metrics_route(request: Request) -> Response:
        return metrics.render(request.app.state.services)

    return app
