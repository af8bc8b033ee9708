"""The simulated supplier's HTTP server: the endpoints of docs/upstream.md over Starlette and
uvicorn, with the transport's misbehaviour (dropped requests, lost answers, latency).

A dropped request is read, then its connection is closed without an answer and without
recording anything. A lost answer is recorded and decided like any other, then the connection
is held open without an answer until the caller gives up (or `HOLD_S` passes). Both need the
connection's transport, which uvicorn does not put in the ASGI scope: `_with_transport` takes
it from uvicorn's `send`, the bound method of the request's cycle."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from simulators.behaviour import Behaviour
from simulators.book import Book, Recharge
from simulators.callbacks import Callbacks
from simulators.protocol import FINAL, MAX_BODY_BYTES, Refused, money, parse_request, parse_time, timestamp
from simulators.signing import HEADER, request_target, verify
from simulators.supplier import Supplier

log = logging.getLogger("simulators.upstream")

HOLD_S = 300.0  # a lost answer's connection is closed after this, if the caller has not gone
DRAIN_LIMIT = 16 * 1024 * 1024  # an oversized body is read (and thrown away) up to this, then cut
TRANSPORT = "simulators.transport"
STATEMENT_COLUMNS = ("request_id", "status", "charged", "currency", "completed_at")


def mask(account: str) -> str:
    """An account as the log shows it: 13812345678 -> 138****5678."""
    if len(account) >= 8:
        return f"{account[:3]}****{account[-4:]}"
    return f"{account[0]}****{account[-1]}" if len(account) >= 3 else "****"


class NoAnswer(Response):
    """No HTTP answer at all: `held` None cuts the connection at once (a dropped request);
    otherwise it is held open, its transport in `held`, until the caller goes away (a lost
    answer) or the server shuts down."""

    def __init__(self, held: set[asyncio.BaseTransport] | None) -> None:
        super().__init__()
        self.held = held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport: asyncio.BaseTransport | None = scope.get(TRANSPORT)
        if transport is not None and self.held is None:
            _abort(transport)
        elif transport is not None and self.held is not None:
            self.held.add(transport)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HOLD_S):
                    while (await receive())["type"] != "http.disconnect":
                        pass
        finally:
            if transport is not None:
                if self.held is not None:
                    self.held.discard(transport)
                _abort(transport)


def _abort(transport: asyncio.BaseTransport) -> None:
    abort = getattr(transport, "abort", None)  # asyncio's and uvloop's stream transports have it
    if callable(abort) and not transport.is_closing():
        abort()


class Upstream:
    """The endpoints, over one supplier and its book."""

    def __init__(self, supplier: Supplier, secret: str) -> None:
        self.supplier, self.secret = supplier, secret
        self.behaviour: Behaviour = supplier.behaviour
        self.arrivals: dict[str, int] = {}  # POSTs seen per request_id: the attempt of each draw
        self.held: set[asyncio.BaseTransport] = set()  # connections of lost answers, still open

    def release_held(self) -> None:
        """Close the connections held for lost answers (at shutdown: they would never end)."""
        for transport in list(self.held):
            _abort(transport)

    def app(self, callbacks: Callbacks | None = None) -> ASGIApp:
        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            self.supplier.resume()
            try:
                yield
            finally:
                self.supplier.close()
                if callbacks is not None:
                    await callbacks.close()

        app = Starlette(
            routes=[
                Route("/v1/recharges", self.post_recharge, methods=["POST"]),
                Route("/v1/recharges/{request_id}", self.get_recharge, methods=["GET"]),
                Route("/v1/statement", self.get_statement, methods=["GET"]),
                Route("/v1/charges", self.get_charges, methods=["GET"]),
            ],
            exception_handlers={HTTPException: _http_error, Exception: _internal_error},
            lifespan=lifespan,
        )
        return _with_transport(app)

    async def post_recharge(self, request: Request) -> Response:
        try:
            body = await _read_body(request)
            if not verify(self.secret, body, request.headers.get(HEADER)):
                raise _unsigned(request)
            order = parse_request(body)
        except Refused as refused:
            return _refuse(refused, "POST /v1/recharges")
        except ClientDisconnect:  # e.g. a caller killed while sending: the request never arrived
            log.info("POST /v1/recharges -> the caller went away before its body arrived (nothing recorded)")
            return NoAnswer(held=None)
        request_id = order.request_id
        attempt = self.arrivals[request_id] = self.arrivals.get(request_id, 0) + 1
        said = f"POST /v1/recharges {request_id} account={mask(order.account)} product={order.product} " \
               f"amount={money(order.amount)} {order.currency}"
        if self.behaviour.drops(request_id, attempt):
            log.info("%s -> dropped (connection closed, nothing recorded)", said)
            return NoAnswer(held=None)
        try:
            recharge = self.supplier.submit(order)
        except Refused as refused:
            return _refuse(refused, said, request_id)
        if self.behaviour.loses_answer(request_id, attempt):
            log.info("%s -> %s, answer lost (connection held)", said, recharge.status)
            return NoAnswer(held=self.held)
        await self._latency()
        return self._answer(recharge, said)

    async def get_recharge(self, request: Request) -> Response:
        request_id = request.path_params["request_id"]
        said = f"GET /v1/recharges/{request_id}"
        try:
            self._check_get(request)
        except Refused as refused:
            return _refuse(refused, said)
        recharge = self.supplier.book.get(request_id)
        if recharge is None:
            return _refuse(Refused(404, "not_found", "no request was received under this request_id"), said,
                           request_id)
        await self._latency()
        return self._answer(recharge, said, final_only=False)

    async def get_statement(self, request: Request) -> Response:
        said = "GET /v1/statement"
        try:
            self._check_get(request)
            start, end = (_query_time(request, name) for name in ("from", "to"))
        except Refused as refused:
            return _refuse(refused, said)
        rows = self.supplier.book.statement(start, end)
        sink = io.StringIO()
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(STATEMENT_COLUMNS)
        for r in rows:
            assert r.charged is not None and r.completed_at is not None
            writer.writerow((r.request.request_id, r.status, money(r.charged), r.request.currency,
                             timestamp(r.completed_at)))
        log.info("%s -> 200 (%d rows)", said, len(rows))
        return Response(sink.getvalue(), media_type="text/csv; charset=utf-8")

    async def get_charges(self, request: Request) -> Response:
        try:
            self._check_get(request)
        except Refused as refused:
            return _refuse(refused, "GET /v1/charges")
        listing = [r.listing() for r in self.supplier.book.recharges.values()]
        log.info("GET /v1/charges -> 200 (%d requests)", len(listing))
        return JSONResponse(listing)

    def _check_get(self, request: Request) -> None:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        if not verify(self.secret, request_target(raw_path, request.scope["query_string"]),
                      request.headers.get(HEADER)):
            raise _unsigned(request)

    def _answer(self, recharge: Recharge, said: str, final_only: bool = True) -> Response:
        body = recharge.answer()
        status = 200 if recharge.status in FINAL or not final_only else 202
        log.info("%s -> %d %s%s", said, status, recharge.status, f" {recharge.reason}" if recharge.reason else "")
        return JSONResponse(body, status_code=status)

    async def _latency(self) -> None:
        if self.behaviour.latency_ms:
            await asyncio.sleep(self.behaviour.latency_ms / 1000)


def _with_transport(app: ASGIApp) -> ASGIApp:
    async def with_transport(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[TRANSPORT] = getattr(getattr(send, "__self__", None), "transport", None)
        await app(scope, receive, send)

    return with_transport


async def _read_body(request: Request) -> bytes:
    """The body, or Refused 413 past MAX_BODY_BYTES (read to its end, up to DRAIN_LIMIT, so
    that the caller, still sending, gets to read the answer)."""
    declared = request.headers.get("content-length", "")
    too_big = declared.isdigit() and int(declared) > MAX_BODY_BYTES
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        too_big = too_big or size > MAX_BODY_BYTES
        if not too_big:
            chunks.append(chunk)
        elif size > DRAIN_LIMIT:
            break
    if too_big:
        raise Refused(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    return b"".join(chunks)


def _unsigned(request: Request) -> Refused:
    if HEADER not in request.headers:
        return Refused(401, "signature_missing", f"no {HEADER} header")
    return Refused(401, "signature_invalid", f"{HEADER} is not the signature of this request")


def _query_time(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        return parse_time(text)
    except ValueError:
        detail = f"{name}: not an ISO 8601 date or date-time ('+' must be sent as %2B)"
        raise Refused(400, "invalid_query", detail) from None


def _refuse(refused: Refused, said: str, request_id: str | None = None) -> Response:
    log.info("%s -> %d %s", said, refused.status, refused.reason)
    body: dict[str, Any] = {"request_id": request_id} if request_id is not None else {}
    return JSONResponse({**body, **refused.body()}, status_code=refused.status)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    reason = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    log.info("%s %s -> %d %s", request.method, request.url.path, error.status_code, reason)
    return JSONResponse({"reason": reason, "detail": error.detail}, status_code=error.status_code)


async def _internal_error(request: Request, error: Exception) -> Response:
    log.exception("%s %s -> 500", request.method, request.url.path, exc_info=error)
    return JSONResponse({"reason": "internal_error", "detail": "the simulator failed"}, status_code=500)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _QuietServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT once it has shut down, which kills the process before
    the record file is closed; this one returns, and the process exits 0. It also closes the
    connections held for lost answers first, which graceful shutdown would wait for."""

    def __init__(self, config: uvicorn.Config, upstream: Upstream) -> None:
        super().__init__(config)
        self.upstream = upstream

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.upstream.release_held()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list):
                    captured.clear()


def serve(behaviour: Behaviour, secret: str, host: str, port: int, record: Path | None = None) -> None:
    """Run the simulator until SIGINT/SIGTERM; prints `listening on http://HOST:PORT` on stdout
    once the socket listens (requests sent from then on wait for the server to start)."""
    book = Book()
    if record is not None:
        book.open_record(record)
    callbacks = Callbacks(secret)
    upstream = Upstream(Supplier(behaviour, book, callbacks), secret)
    sock = listen(host, port)
    print(f"listening on {url_of(sock)}", flush=True)
    log.info("seed %d, %d requests on record", behaviour.seed, len(book.recharges))
    config = uvicorn.Config(upstream.app(callbacks), log_config=None, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2, lifespan="on")
    try:
        _QuietServer(config, upstream).run(sockets=[sock])
    finally:
        sock.close()
        book.close()

