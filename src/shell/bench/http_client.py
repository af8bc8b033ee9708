"""The load generator of `ledger bench api`: keep-alive HTTP/1.1 connections driven by one
asyncio loop (uvloop), a closed loop per connection.

It replaced 64 threads of `httpx.Client`, which took about half a core of the two this
benchmark runs on: the servers measured were starved by their own client, and a request's
latency included the wait of its client thread for the GIL. A request here costs the client a
few tens of microseconds: it is written as bytes and its answer is read by `Content-Length`.
It speaks only what the two servers answer (uvicorn: a status line, headers, a body of
`Content-Length` bytes); anything else is an error, not a guess.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec
import uvloop

_JSON = msgspec.json.Encoder()
_decode = msgspec.json.Decoder().decode
_HEAD_END = b"\r\n\r\n"


class ProtocolError(RuntimeError):
    """A reply this client does not read (no Content-Length, a closed connection)."""


@dataclass(frozen=True)
class Reply:
    """An HTTP reply: its status and its body."""

    status: int
    body: bytes

    def json(self) -> Any:
        return _decode(self.body)

    def problem(self) -> str:
        """`<status> <problem type's last segment>`, or the status alone."""
        try:
            kind = self.json().get("type", "")
        except (msgspec.DecodeError, AttributeError):
            return str(self.status)
        return f"{self.status} {str(kind).rsplit('/', 1)[-1]}"


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self._common = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def get(self, path: str) -> Reply:
        return await self._send(f"GET {path} HTTP/1.1\r\n{self._common}\r\n".encode())

    async def post(self, path: str, body: Any, authorization: str | None = None) -> Reply:
        """POST `body` as JSON; `authorization`: this request's Authorization instead of the common one."""
        data = _JSON.encode(body)
        common = self._common if authorization is None else "".join(
            line + "\r\n" for line in self._common.split("\r\n")
            if line and not line.lower().startswith("authorization:")) + f"Authorization: {authorization}\r\n"
        head = (f"POST {path} HTTP/1.1\r\n{common}Content-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n")
        return await self._send(head.encode() + data)

    async def _send(self, request: bytes) -> Reply:
        if self._reader is None or self._writer is None:
            raise ProtocolError("the connection is not open")
        self._writer.write(request)
        try:
            head = await self._reader.readuntil(_HEAD_END)
        except asyncio.IncompleteReadError as error:
            raise ProtocolError("the server closed the connection") from error
        lines = head[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
                break
        if length is None:
            raise ProtocolError(f"a reply without Content-Length: {lines[0]!r}")
        body = await self._reader.readexactly(length) if length else b""
        return Reply(status, body)


Attempt = Callable[[Connection, int, Counter[str]], Awaitable[None]]


@dataclass
class Phase:
    name: str
    attempts: int
    seconds: float
    latencies: list[float]
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.attempts / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def line(self) -> str:
        return (f"{self.name}: {self.attempts:,} attempts in {self.seconds:.2f} s, {self.rate:,.0f} attempts/s, "
                f"p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms")


def drive(name: str, base_url: str, headers: dict[str, str], attempts: int, clients: int, attempt: Attempt) -> Phase:
    """Run `attempt(connection, n, statuses)` for n in range(attempts) over `clients` connections,
    each taking the next n when its last attempt is answered."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80

    async def run() -> Phase:
        connections = [Connection(host, port, headers) for _ in range(clients)]
        await asyncio.gather(*(c.open() for c in connections))  # connected before the clock starts
        counter = itertools.count()
        latencies: list[float] = []
        statuses: Counter[str] = Counter()

        async def work(connection: Connection) -> None:
            while (n := next(counter)) < attempts:
                began = time.perf_counter()
                await attempt(connection, n, statuses)
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        try:
            await asyncio.gather(*(work(c) for c in connections))
        except Exception as error:
            raise RuntimeError(f"{name}: a client failed: {error!r}") from error
        finally:
            seconds = time.perf_counter() - began
            await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
        return Phase(name, attempts, seconds, latencies, statuses)

    return uvloop.run(run())
