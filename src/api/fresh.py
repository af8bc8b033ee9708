"""Answers of the hottest live reads, kept for a few milliseconds.

In a flash sale the storefront asks for one SKU's stock thousands of times a second, and
the answer changes at most as often as the projection runner commits. Each process keeps
the serialised answer of such a read for `LEDGER_LIVE_READ_MAX_AGE_MS` (50 ms by default,
0 turns it off) and serves repeats from memory, without the thread pool or a query. The
answer carries the log position it reflects, so a client still knows what it saw; a read
with `min_position` is served from memory only when the kept answer is at least there.

When the kept answer ages out, one reader per key asks the read models and the readers that
miss meanwhile wait for its answer (`answer`): 64 storefront clients otherwise all missed at
once, every 50 ms, and queued 64 queries in the thread pool, which made the read's p99 ten
times its p50.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from fastapi import Response
from pydantic import BaseModel

MAX_KEPT = 10_000  # distinct reads kept per process; all are forgotten when it overflows


@dataclass(frozen=True)
class _Kept:
    at: float
    position: int
    body: bytes


class FreshAnswers:
    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self._kept: dict[Hashable, _Kept] = {}
        self._asking: dict[Hashable, asyncio.Future[None]] = {}  # key -> the one read under way

    def get(self, key: Hashable, min_position: int | None) -> Response | None:
        """The kept answer, if young enough and at `min_position` or beyond."""
        kept = self._kept.get(key)
        if kept is None or self.clock() - kept.at > self.max_age_s:
            return None
        if min_position is not None and kept.position < min_position:
            return None
        return _json(kept.body)

    async def answer(self, key: Hashable, min_position: int | None,
                     ask: Callable[[], Awaitable[tuple[int, BaseModel]]]) -> Response:
        """The kept answer if it will do; else `ask()` -> (position, answer), kept. One `ask` per
        key at a time: a reader that misses while one runs waits for it and takes its answer if
        that is at its `min_position` (else, or if it failed, asks for itself)."""
        kept = self.get(key, min_position)
        if kept is not None:
            return kept
        under_way = self._asking.get(key)
        if under_way is not None and self.max_age_s > 0:
            await asyncio.shield(under_way)
            kept = self.get(key, min_position)
            if kept is not None:
                return kept
            return await self._ask(key, ask)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._asking[key] = done
        try:
            return await self._ask(key, ask)
        finally:
            if self._asking.get(key) is done:
                del self._asking[key]
            done.set_result(None)

    async def _ask(self, key: Hashable, ask: Callable[[], Awaitable[tuple[int, BaseModel]]]) -> Response:
        position, answer = await ask()
        return self.keep(key, position, answer)

    @staticmethod
    def serialise(answer: BaseModel) -> Response:
        """`answer` as the route's JSON (fields that are None left out), not kept."""
        return _json(answer.model_dump_json(exclude_none=True).encode())

    def keep(self, key: Hashable, position: int, answer: BaseModel) -> Response:
        """Serialise `answer` as `serialise` does, keep it, and return it."""
        body = answer.model_dump_json(exclude_none=True).encode()
        if self.max_age_s > 0:
            if len(self._kept) >= MAX_KEPT:
                self._kept = {}
            self._kept[key] = _Kept(self.clock(), position, body)
        return _json(body)


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")
