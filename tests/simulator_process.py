"""The supplier simulator (`ledger upstream simulate`) as a real process for tests: started on a
free port in a session of its own (so a test can SIGKILL it), and asked over HTTP with
signatures computed from docs/upstream.md, not with its code."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

SRC = Path(__file__).resolve().parents[1] / "src"
SECRET = f"e2e-{uuid.uuid4().hex}"


def sign(message: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class Simulator:
    """One `simulate` process in a session of its own, so that a test can SIGKILL it."""

    def __init__(self, log: Path, *options: str) -> None:
        self.log, self.options = log, options
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 20) -> Simulator:
        env = {**os.environ, "UPSTREAM_SIM_SECRET": SECRET,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "simulators.cli", "simulate", "--port", "0", *self.options],
                env=env, stdout=subprocess.PIPE, stderr=sink, start_new_session=True,
            )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().decode() if ready else ""
        assert line.startswith("listening on http://127.0.0.1:"), f"no listening line: {line!r}\n{self.output()}"
        self.url = line.split()[-1]
        return self

    def kill(self) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def assert_no_errors(self) -> None:
        log = self.log.read_text(errors="replace")
        first = min((i for i in (log.find("Traceback"), log.find(" ERROR ")) if i >= 0), default=-1)
        assert first < 0, log[max(0, first - 1000):first + 3000]  # the first error, with what led to it

    def post(self, body: dict[str, Any] | bytes, timeout: float = 10, signature: str | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-Signature": signature or sign(raw)}
        return httpx.post(f"{self.url}/v1/recharges", content=raw, headers=headers, timeout=timeout)

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        with httpx.Client(timeout=10) as client:
            request = client.build_request("GET", self.url + path, params=params)
            request.headers["X-Signature"] = sign(request.url.raw_path)  # path and query as sent
            return client.send(request)

    def charges(self) -> list[dict[str, Any]]:
        answer = self.get("/v1/charges")
        assert answer.status_code == 200
        listing: list[dict[str, Any]] = answer.json()
        return listing

    def charges_of(self, request_id: str) -> list[dict[str, Any]]:
        return [c for c in self.charges() if c["request_id"] == request_id]

    def wait_for(self, request_id: str, status: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.get(f"/v1/recharges/{request_id}")
            if answer.status_code == 200 and answer.json()["status"] == status:
                body: dict[str, Any] = answer.json()
                return body
            assert time.monotonic() < deadline, f"{request_id} not {status}: {answer.status_code} {answer.text}"
            time.sleep(0.05)
