"""Callbacks: the signed POST of a request's final state to its callback_url, retried a few
times with backoff, then given up (callers also poll; docs/upstream.md)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx

from simulators.signing import HEADER, signature

log = logging.getLogger("simulators.upstream")

BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 4.0)  # before each attempt: five attempts over 7.5 s
ATTEMPT_TIMEOUT_S = 5.0


class Callbacks:
    """Sends callbacks in the background; `close` stops those still trying."""

    def __init__(self, secret: str, backoff_s: tuple[float, ...] = BACKOFF_S) -> None:
        self.secret, self.backoff_s = secret, backoff_s
        self._client = httpx.AsyncClient(timeout=ATTEMPT_TIMEOUT_S, limits=httpx.Limits(max_connections=64),
                                         trust_env=False)
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, url: str, body: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, body: dict[str, Any]) -> None:
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", HEADER: signature(self.secret, raw)}
        outcome = ""
        for attempt, pause in enumerate(self.backoff_s, start=1):
            await asyncio.sleep(pause)
            try:
                answer = await self._client.post(url, content=raw, headers=headers)
            except Exception as error:  # httpx's errors, and its transport's when the peer is
                # killed mid-request (seen: AttributeError from a socket already gone): tried again either way
                outcome = type(error).__name__
                continue
            if answer.is_success:
                log.info("callback %s %s -> %d (attempt %d)", body["request_id"], body["status"],
                         answer.status_code, attempt)
                return
            outcome = str(answer.status_code)
        log.warning("callback %s %s given up after %d attempts (last: %s)", body["request_id"], body["status"],
                    len(self.backoff_s), outcome)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()
