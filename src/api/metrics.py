"""Prometheus metrics: requests and their latency, events written, projection lag."""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.services import Services
from audit.archive import CheckpointArchive
from projections.engine.registry import PROJECTION_NAMES
from projections.kafka.relay import relay_status


class Measured:
    """Counts each request and times it, by route template. A plain ASGI middleware: Starlette's
    `BaseHTTPMiddleware` (`@app.middleware("http")`) runs the rest of the app in a task of its own
    and streams the body through a queue, which cost ~15 % of a small read's time."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app answers: an exception that escapes it

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.latency.labels(method, path).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, path, str(status)).inc()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ledger_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("ledger_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.events = Gauge("ledger_events_written", "position of the newest event in the store",
                            registry=self.registry)
        self.lag = Gauge("ledger_projection_lag_events", "events a read model has still to process",
                         ["projection"], registry=self.registry)
        self.relay_position = Gauge("ledger_relay_position", "log position the Kafka relay has published up to",
                                    registry=self.registry)
        self.relay_lag = Gauge("ledger_relay_lag_events", "events the Kafka relay has still to publish",
                               registry=self.registry)
        self.callbacks = Counter("ledger_upstream_callbacks_total", "suppliers' callbacks by supplier and result "
                                 "(applied, pending, replayed, conflict, bad_signature, unknown_supplier, "
                                 "unknown_request, malformed, too_large, ...)", ["supplier", "result"],
                                 registry=self.registry)
        self.relay_up = Gauge("ledger_relay_up", "0 while the Kafka relay reports an outage, else 1",
                              registry=self.registry)
        self.audit_refused = Gauge("ledger_audit_checkpoint_refused", "1 while the signer refuses to sign the "
                                   "audit tree (it does not extend the last checkpoint signed; see the log), else 0",
                                   registry=self.registry)

    def install(self, app: FastAPI) -> None:
        app.add_middleware(Measured, metrics=self)

    def render(self, services: Services) -> Response:
        head = services.reads.head()
        self.events.set(head)
        for name in PROJECTION_NAMES:
            self.lag.labels(name).set(services.reads.lag((name,), head).events)
        relay = relay_status(services.ledger.app, services.settings)
        if relay is not None:
            self.relay_position.set(relay.position)
            self.relay_lag.set(relay.lag_events)
            self.relay_up.set(0 if relay.error else 1)
        self.audit_refused.set(CheckpointArchive(services.settings.checkpoint_dir).refusal() is not None)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
