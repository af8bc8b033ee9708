"""The FastAPI application: routes thin, everything else in services and the domain."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from api import problems, ui
from api.background import Background
from api.metrics import Metrics
from api.middleware import HttpMiddleware
from api.models import ReadyOut
from api.routes import ROUTERS
from api.security_headers import SecurityHeaders
from api.services import Services
from audit.archive import CheckpointArchive
from ledger.collector import tune_for_serving
from projections.kafka.relay import relay_status

CALLBACKS = "/v1/upstreams/"
# Query parameters that carry personal data or secrets (support's search by recipient account or
# by a card key's code): their values never reach the access log.
_SCRUBBED = re.compile(r"([?&](?:account|key)=)[^&]*")


class ScrubbedAccessLog(logging.Filter):
    """Masks the values of `_SCRUBBED` parameters in uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_SCRUBBED.sub(r"\1***", a) if isinstance(a, str) and "=" in a else a
                                for a in record.args)
        return True


def scrub_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, ScrubbedAccessLog) for f in access.filters):
        access.addFilter(ScrubbedAccessLog())


class BodyLimit(HttpMiddleware):
    """Refuse bodies over LEDGER_MAX_REQUEST_BYTES with 413: at once when Content-Length says
    so, else as the bytes arrive, so a chunked body is never buffered whole first."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith(CALLBACKS):
            # Suppliers' callbacks have a smaller limit of their own, which their route enforces
            # the same way, so that each refusal is counted against its supplier.
            await self.app(scope, receive, send)
            return
        limit = scope["app"].state.services.settings.max_request_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _too_large(limit)(scope, receive, send)
            return
        received, answered = 0, False

        async def counted() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # Answer now, then tell the app the client left: it stops reading, and
                # whatever it tries to send after that is dropped below.
                await _too_large(limit)(scope, receive, send)
                answered = True
                return {"type": "http.disconnect"}
            return message

        async def unless_answered(message: Message) -> None:
            if not answered:
                await send(message)

        await self.app(scope, counted, unless_answered)


def _too_large(limit: int) -> Response:
    return problems.problem(413, "request-too-large", "Request too large", f"at most {limit} bytes")


def create_app(services: Services | None = None, *, open_services: Callable[[], Services] | None = None,
               background: bool = False, tune_collector: bool = False) -> FastAPI:
    """Over `services`, or over those `open_services` opens at startup and the app closes at
    shutdown (a worker process of `ledger serve`: `shell.worker`). `background`: also run the
    projection runner and the sweeper in this process. `tune_collector`: the process is a server
    of its own (`ledger.collector`), not a test's."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is None and open_services is None:
            raise RuntimeError("create_app needs its services, or a way to open them")
        svc = services or open_services()  # type: ignore[misc]
        app.state.services = svc
        worker = Background(svc) if background else None
        # The fulfilment worker's breakers, when it runs in this process: suppliers' health.
        app.state.breakers = worker.fulfilment.breakers if worker and worker.fulfilment else None
        if worker:
            worker.start()
        if tune_collector:
            tune_for_serving()
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
    scrub_access_log()
    metrics = Metrics()
    metrics.install(app)
    app.state.metrics = metrics

    app.add_middleware(BodyLimit)
    app.add_middleware(problems.Unexpected)  # outermost of the app's own middleware but the headers
    app.add_middleware(SecurityHeaders)  # on every answer, a 500 included

    for router in ROUTERS:
        app.include_router(router)
    ui.install(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=ReadyOut,
             responses={503: {"model": ReadyOut, "description": "not ready: lagging, or the store failed"}})
    def readyz(request: Request) -> JSONResponse:
        svc: Services = request.app.state.services
        try:
            lag = svc.reads.lag()
        except Exception as error:
            return JSONResponse({"ready": False, "reason": type(error).__name__}, status_code=503)
        ready = lag.events <= svc.settings.ready_max_lag_events
        body: dict[str, object] = {"ready": ready, "head": lag.head, "lag_events": lag.events}
        refused = CheckpointArchive(svc.settings.checkpoint_dir).refusal()
        if refused is not None:  # reported, not gating: else whoever can write the database could stop the shop
            body["audit_checkpoint_refused"] = refused
        relay = relay_status(svc.ledger.app, svc.settings)
        if relay is not None:  # reported, not gating: a Kafka outage does not take the API out of service
            body["relay"] = {"position": relay.position, "lag_events": relay.lag_events, "error": relay.error,
                             "error_since": relay.error_since}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse,
             responses={200: {"description": "Prometheus text exposition"}})
    def metrics_route(request: Request) -> Response:
        return metrics.render(request.app.state.services)

    return app

