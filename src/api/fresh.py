"""Answers of the hottest live reads, kept for a few milliseconds.

In a flash sale the storefront asks for one SKU's stock thousands of times a second, and
the answer changes at most as often as the projection runner commits. Each process keeps
the serialised answer of such a read for `LEDGER_LIVE_READ_MAX_AGE_MS` (50 ms by default,
0 turns it off) and serves repeats from memory, without the thread pool or a query. The
answer carries the log position it reflects, so a client still knows what it saw; a read
with `min_position` is served from memory only when the kept answer is at least there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
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

    def get(self, key: Hashable, min_position: int | None) -> Response | None:
        """The kept answer, if young enough and at `min_position` or beyond."""
        kept = self._kept.get(key)
        if kept is None or self.clock() - kept.at > self.max_age_s:
            return None
        if min_position is not None and kept.position < min_position:
            return None
        return _json(kept.body)

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
