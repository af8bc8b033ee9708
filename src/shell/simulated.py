"""Simulated suppliers as real processes (`ledger upstream simulate`), for the demo and the
benchmarks: started on a free port, stopped with the caller."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def simulated_supplier(secret: str, *options: str, log: Path | None = None,
                       timeout: float = 30) -> Iterator[str]:
    """The base URL of a simulator process started with `options` (see `ledger upstream simulate
    --help`); its log goes to `log` (default: nowhere). It is killed when the block ends."""
    sink = log.open("ab") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.cli", "simulate", "--port", "0", *options],
        env={**os.environ, "UPSTREAM_SIM_SECRET": secret}, stdout=subprocess.PIPE, stderr=sink,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            raise RuntimeError(f"the supplier simulator did not start: {line!r}")
        yield line.split()[-1]
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if log is not None and not isinstance(sink, int):
            sink.close()
