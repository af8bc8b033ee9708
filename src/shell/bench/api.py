"""`ledger bench api`: a flash sale over HTTP against a real `ledger serve`, beside a bare
FastAPI app doing one database round trip per request, served by uvicorn the same way.

Both servers run as subprocesses on a free 127.0.0.1 port over the same throwaway store
(a temporary SQLite file, or a fresh PostgreSQL database when LEDGER_DATABASE_URL is one)
and are driven by the same client: keep-alive connections on one asyncio loop, each a closed
loop of attempts (`shell.bench.http_client`).

Phases and what a request does:

* flash sale: `attempts` order attempts (POST /v1/orders, quantity 1, each by a distinct
  customer) on one SKU holding `keys` keys; an attempt that reserves a key pays at once
  (POST /v1/orders/{id}/payments, with the `payments` role's token: the storefront's may not).
  The baseline repeats the same request mix (two POSTs for the first `keys` attempts, one for
  the rest), each POST one `INSERT ... RETURNING`.
  A 503 `contention` answer is retried after a short pause (counted; the attempt's latency
  includes the retries).
* reads: GET /v1/inventory/{sku} (storefront token) against GET /read/{id}, one
  primary-key `SELECT` on the same store.

The run fails (exit 1) unless exactly `keys` keys were sold: `keys` payments delivered
distinct keys, and the inventory read model shows delivered == keys and available == 0.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, Field

from ledger.config import Settings
from ledger.service.ledger import open_ledger
from shell.bench.http_client import Attempt, Connection, Phase, Reply, drive
from shell.bench.stores import throwaway_store

SKU = "FLASH-1"
PRICE = "9.00"
BASELINE_URL_ENV = "LEDGER_BENCH_BASELINE_URL"
BASELINE_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_baseline (id {pk}, customer_id TEXT NOT NULL, sku TEXT NOT NULL,"
    " payload TEXT NOT NULL)"
)
CONTENTION_RETRIES = 50
POOL_SIZE = 16  # per pool on PostgreSQL: the ledger's recorder and view store each get this (and as much overflow)


# ---- the bare baseline app (served by `uvicorn shell.bench.api:baseline_app --factory`) ----


class BaselineIn(BaseModel):
    customer_id: str = Field(min_length=1, max_length=200)
    sku: str = Field(min_length=1, max_length=200)


class BaselineDb:
    """One statement per call: a thread-local sqlite3 connection or a psycopg pool."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_postgres = url.startswith(("postgresql://", "postgres://"))
        self.local = threading.local()
        self.pool: Any = None
        if self.is_postgres:
            from psycopg_pool import ConnectionPool

            self.pool = ConnectionPool(url, min_size=4, max_size=2 * POOL_SIZE, open=True)
        self.create()

    def create(self) -> None:
        if self.is_postgres:
            self.run(BASELINE_DDL.format(pk="BIGSERIAL PRIMARY KEY"), ())
        else:
            self.run(BASELINE_DDL.format(pk="INTEGER PRIMARY KEY AUTOINCREMENT"), ())

    def _sqlite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            path = self.url.removeprefix("sqlite:///")
            conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            self.local.conn = conn
        return conn

    def run(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self.is_postgres:
            with self.pool.connection() as conn:
                cursor = conn.execute(statement.replace("?", "%s"), params)
                return list(cursor.fetchall()) if cursor.description else []
        cursor = self._sqlite().execute(statement, params)
        return cursor.fetchall()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def baseline_app() -> FastAPI:
    """A bare FastAPI app: each route one round trip to the store named by LEDGER_BENCH_BASELINE_URL."""
    db = BaselineDb(os.environ[BASELINE_URL_ENV])
    app = FastAPI(title="bench baseline")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/write", status_code=201)
    def write(body: BaselineIn) -> dict[str, int]:
        rows = db.run("INSERT INTO bench_baseline (customer_id, sku, payload) VALUES (?, ?, ?) RETURNING id",
                      (body.customer_id, body.sku, "x" * 64))
        return {"id": int(rows[0][0])}

    @app.get("/read/{row_id}")
    def read(row_id: int) -> dict[str, Any]:
        rows = db.run("SELECT id, customer_id, sku FROM bench_baseline WHERE id = ?", (row_id,))
        return {"id": rows[0][0], "customer_id": rows[0][1], "sku": rows[0][2]} if rows else {"id": None}

    return app


# ---- servers ----


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def wait_healthy(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}:\n{server.tail()}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"the server did not answer /healthz within {timeout:.0f} s:\n{server.tail()}")


@contextmanager
def serving(command: list[str], env: dict[str, str], port: int, log_dir: Path, name: str) -> Iterator[Server]:
    """A uvicorn server in a subprocess, healthy on 127.0.0.1:`port`; SIGTERM afterwards."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_healthy(server)
        yield server
    finally:
        server.stop()


def ledger_serve_command(port: int, workers: int = 1) -> list[str]:
    return [sys.executable, "-c", "from shell.cli import main; main()", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--log-level", "warning"]


def baseline_command(port: int, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "shell.bench.api:baseline_app", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--log-level", "warning"]


# ---- the client side (shell.bench.http_client drives it) ----


@dataclass
class Sale:
    payments: str = ""  # the Authorization of the trusted back end that confirms payments (not the storefront)
    sold: list[tuple[str, list[str]]] = field(default_factory=list)  # (order id, key ids)
    position: int = 0

    @staticmethod
    async def post(client: Connection, path: str, body: dict[str, Any], statuses: Counter[str],
                   authorization: str | None = None) -> Reply:
        """POST, retrying the 503 `contention` answer (nothing was written) after a short random pause, as a
        client honouring Retry-After would (without an Idempotency-Key: the API would replay the 503)."""
        for _ in range(CONTENTION_RETRIES):
            reply = await client.post(path, body, authorization)
            if reply.status != 503:
                break
            statuses["retried 503 contention"] += 1
            await asyncio.sleep(random.uniform(0.005, 0.05))
        return reply

    async def attempt(self, client: Connection, n: int, statuses: Counter[str]) -> None:
        placed = await self.post(client, "/v1/orders", {"customer_id": f"fan-{n}", "sku": SKU, "quantity": 1},
                                 statuses)
        if placed.status != 201:
            statuses[f"order {placed.problem()}"] += 1
            return
        order = placed.json()
        paid = await self.post(client, f"/v1/orders/{order['order_id']}/payments", {
            "payment_reference": f"pay-{n}", "amount": order["amount_due"], "provider": "bench"}, statuses,
            self.payments)
        if paid.status != 200:
            statuses[f"payment {paid.problem()}"] += 1
            return
        body = paid.json()
        statuses[f"paid {body['outcome']}"] += 1
        if body["outcome"] == "delivered":
            self.sold.append((order["order_id"], body["key_ids"]))
        self.position = max(self.position, int(body["position"]))


def _baseline_writes(keys: int) -> Attempt:
    async def attempt(client: Connection, n: int, statuses: Counter[str]) -> None:
        for _ in range(2 if n < keys else 1):  # the ledger's mix: place + pay while stock lasts, then place
            reply = await client.post("/write", {"customer_id": f"fan-{n}", "sku": SKU})
            statuses[str(reply.status)] += 1

    return attempt


def _baseline_reads(rows: int) -> Attempt:
    async def attempt(client: Connection, n: int, statuses: Counter[str]) -> None:
        statuses[str((await client.get(f"/read/{n % rows + 1}")).status)] += 1

    return attempt


async def _inventory_reads(client: Connection, n: int, statuses: Counter[str]) -> None:
    statuses[str((await client.get(f"/v1/inventory/{SKU}")).status)] += 1


def _seed(url: str, data_dir: Path, cipher_key: str, keys: int) -> list[str]:
    ledger = open_ledger(Settings(database_url=url, data_dir=data_dir, cipher_key=cipher_key))
    try:
        ctx = ledger.context("bench")
        ledger.define_product(ctx, sku=SKU, name="Flash sale key", face_value="10.00", currency="USD", price=PRICE)
        run = uuid.uuid4().hex[:8]
        codes = [f"FLASH-{run}-{i:08d}" for i in range(keys)]
        for start in range(0, keys, 2000):
            chunk = codes[start:start + 2000]
            ledger.import_keys(ctx, sku=SKU, supplier="bench", unit_cost="5.00",
                               codes=[(start + i + 1, c) for i, c in enumerate(chunk)])
        return codes
    finally:
        ledger.close()


def _ratio(say: Callable[[str], None], ledger: Phase, bare: Phase) -> None:
    ratio = ledger.rate / bare.rate if bare.rate else 0.0
    say(f"  ratio {ratio:.2f} (ledger attempts/s / bare attempts/s); p50 {ledger.percentile(50):.1f} ms vs "
        f"{bare.percentile(50):.1f} ms, p99 {ledger.percentile(99):.1f} ms vs {bare.percentile(99):.1f} ms")


def _statuses(phase: Phase) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in sorted(phase.statuses.items()))


def run_bench_api(settings: Settings, *, clients: int, keys: int, attempts: int, reads: int,
                  say: Callable[[str], None], workers: int = 1) -> bool:
    """Run the benchmark, print the figures; True if exactly `keys` keys were sold."""
    with throwaway_store(settings) as (url, description), tempfile.TemporaryDirectory(prefix="ledger-api-") as tmp:
        data_dir = Path(tmp)
        cipher_key = base64.b64encode(secrets.token_bytes(32)).decode()
        storefront, payments = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        say(f"store: {description}; {clients} clients, {keys:,} keys, {attempts:,} attempts, {reads:,} reads, "
            f"{workers} worker process(es) for both servers")
        began = time.perf_counter()
        _seed(url, data_dir, cipher_key, keys)
        say(f"seeded {SKU} with {keys:,} keys in {time.perf_counter() - began:.1f} s")
        env = {
            "LEDGER_DATABASE_URL": url, "LEDGER_DATA_DIR": str(data_dir), "LEDGER_CIPHER_KEY": cipher_key,
            "LEDGER_API_TOKENS": f"storefront={storefront},payments={payments}",
            "LEDGER_POSTGRES_POOL_SIZE": str(POOL_SIZE),
            "LEDGER_RATE_LIMIT_PER_MINUTE": "0",
        }
        auth = {"Authorization": f"Bearer {storefront}"}
        port = free_port()
        sale = Sale(payments=f"Bearer {payments}")
        with serving(ledger_serve_command(port, workers), env, port, data_dir, "ledger-serve") as server:
            try:
                flash = drive("flash sale, ledger API (place + pay)", server.base_url, auth, attempts, clients,
                              sale.attempt)
            except RuntimeError as error:
                raise RuntimeError(f"{error}\n`ledger serve` said (exit {server.process.poll()}):\n"
                                   f"{server.tail(40)}") from None
            say(flash.line())
            say(f"  outcomes: {_statuses(flash)}")
            inventory = httpx.get(f"{server.base_url}/v1/inventory/{SKU}", headers=auth,
                                  params={"min_position": sale.position}, timeout=60)
            stock = inventory.json() if inventory.status_code == 200 else {}
            ledger_reads = drive(f"inventory reads, ledger API (GET /v1/inventory/{SKU})", server.base_url, auth,
                                 reads, clients, _inventory_reads)
            code = server.stop()
        if code != 0:
            say(f"warning: `ledger serve` exited with {code} on SIGTERM:\n{server.tail()}")
        port = free_port()
        with serving(baseline_command(port, workers), {BASELINE_URL_ENV: url}, port, data_dir, "baseline") as server:
            bare_writes = drive("flash sale, bare FastAPI (INSERT ... RETURNING)", server.base_url, {}, attempts,
                                clients, _baseline_writes(keys))
            written = sum(int(v) for k, v in bare_writes.statuses.items() if k == "201")
            bare_reads = drive("reads, bare FastAPI (SELECT by primary key)", server.base_url, {}, reads, clients,
                               _baseline_reads(max(1, written)))
        say(bare_writes.line())
        _ratio(say, flash, bare_writes)
        say(ledger_reads.line())
        say(bare_reads.line())
        _ratio(say, ledger_reads, bare_reads)
        bad = [p.name for p in (ledger_reads, bare_writes, bare_reads)
               if any(not k.startswith("2") for k in p.statuses)]
        if bad:
            say(f"warning: non-2xx answers in {', '.join(bad)}: "
                + "; ".join(_statuses(p) for p in (ledger_reads, bare_writes, bare_reads)))
        delivered_keys = [k for _, ks in sale.sold for k in ks]
        ok = (len(sale.sold) == keys and len(set(delivered_keys)) == keys and inventory.status_code == 200
              and stock.get("delivered") == keys and stock.get("available") == 0 and stock.get("reserved") == 0)
        say(f"check: {len(sale.sold):,} orders paid, {len(set(delivered_keys)):,} distinct keys delivered; inventory "
            f"delivered {stock.get('delivered')}, available {stock.get('available')}, reserved "
            f"{stock.get('reserved')} (want {keys:,} sold, 0 available): {'OK' if ok else 'FAILED'}")
        return ok
