"""A real `ledger serve` in a subprocess of its own (a new session, so that a test can kill
the whole process group: the serving process and its workers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from ledger.config import ROLES

TOKENS = {role: f"{role}-{uuid.uuid4().hex}" for role in ROLES}  # one per role, for every served test


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def serve_env(pg_url: str, data_dir: Path, pool_size: int) -> dict[str, str]:
    """The environment of a `ledger serve` on a test database, with `TOKENS`. The per-token rate
    limit is off: these servers take a storefront's whole load from one token (the limit has its
    own tests)."""
    from tests.conftest import TEST_CIPHER_KEY

    return {
        **os.environ,
        "LEDGER_DATABASE_URL": pg_url,
        "LEDGER_CIPHER_KEY": TEST_CIPHER_KEY,
        "LEDGER_API_TOKENS": ",".join(f"{r}={t}" for r, t in TOKENS.items()),
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_POSTGRES_POOL_SIZE": str(pool_size),
        "LEDGER_RATE_LIMIT_PER_MINUTE": "0",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    def __init__(self, env: dict[str, str], log: Path, port: int | None = None, workers: int = 1) -> None:
        self.env, self.log, self.workers = env, log, workers
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from shell.cli import main; main()", "serve", "--port", str(self.port),
                 "--workers", str(self.workers), "--log-level", "warning"],
                env=self.env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"ledger serve exited with {self.process.returncode}:\n{self.output()}"
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"no /healthz within {timeout} s:\n{self.output()}"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL to the serving process and every worker: nothing gets to clean up."""
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]
