"""Kept answers of hot live reads (api.fresh): young enough, at the position asked for, and asked
for once by readers that miss together."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import Response
from pydantic import BaseModel

from api.fresh import MAX_KEPT, FreshAnswers


class Stock(BaseModel):
    position: int
    available: int
    note: str | None = None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_repeat_within_the_age_gets_the_kept_answer_then_not() -> None:
    clock = Clock()
    fresh = FreshAnswers(0.05, clock)
    sent = fresh.keep("sku", 7, Stock(position=7, available=3))
    assert json.loads(sent.body) == {"position": 7, "available": 3}  # None fields left out
    clock.now += 0.05
    kept = fresh.get("sku", None)
    assert kept is not None and kept.body == sent.body and kept.media_type == "application/json"
    assert fresh.get("other", None) is None
    clock.now += 0.001
    assert fresh.get("sku", None) is None


def test_min_position_beyond_the_kept_answer_is_not_served_from_memory() -> None:
    fresh = FreshAnswers(10, Clock())
    fresh.keep("sku", 7, Stock(position=7, available=3))
    assert fresh.get("sku", 7) is not None
    assert fresh.get("sku", 8) is None


def test_age_zero_keeps_nothing() -> None:
    fresh = FreshAnswers(0, Clock())
    assert json.loads(fresh.keep("sku", 1, Stock(position=1, available=1)).body)["available"] == 1
    assert fresh.get("sku", None) is None


def test_an_overflow_forgets_everything_kept() -> None:
    fresh = FreshAnswers(10, Clock())
    for n in range(MAX_KEPT):
        fresh.keep(n, n, Stock(position=n, available=n))
    assert fresh.get(0, None) is not None
    fresh.keep("one more", 1, Stock(position=1, available=1))
    assert fresh.get(0, None) is None and fresh.get("one more", None) is not None


def test_readers_that_miss_together_share_one_read() -> None:
    """When the kept answer has aged out, 50 readers arriving together ask the read models once."""
    fresh = FreshAnswers(0.05, Clock())
    asked: list[int] = []

    async def ask() -> tuple[int, BaseModel]:
        asked.append(1)
        await asyncio.sleep(0.01)  # the query, in the thread pool
        return 9, Stock(position=9, available=len(asked))

    async def main() -> list[bytes]:
        answers = await asyncio.gather(*(fresh.answer("sku", None, ask) for _ in range(50)))
        return [a.body for a in answers]

    bodies = asyncio.run(main())
    assert len(asked) == 1
    assert {json.loads(b)["available"] for b in bodies} == {1}


def test_a_reader_beyond_the_shared_answer_or_after_a_failure_asks_for_itself() -> None:
    fresh = FreshAnswers(0.05, Clock())
    calls: list[str] = []

    def asking(position: int, fail: bool = False) -> Any:
        async def ask() -> tuple[int, BaseModel]:
            calls.append(f"{position}{'!' if fail else ''}")
            await asyncio.sleep(0.01)
            if fail:
                raise LookupError("no such SKU")
            return position, Stock(position=position, available=position)

        return ask

    async def beyond() -> tuple[bytes, bytes]:
        first = asyncio.ensure_future(fresh.answer("sku", None, asking(5)))
        await asyncio.sleep(0)  # the first read is under way
        later = await fresh.answer("sku", 7, asking(7))  # needs position 7: 5 will not do
        return (await first).body, later.body

    first, later = asyncio.run(beyond())
    assert json.loads(first)["position"] == 5 and json.loads(later)["position"] == 7
    assert calls == ["5", "7"]

    calls.clear()
    failing = FreshAnswers(0.05, Clock())

    async def after_failure() -> tuple[BaseException | Response, BaseException | Response]:
        return tuple(await asyncio.gather(  # type: ignore[return-value]
            failing.answer("sku", None, asking(3, fail=True)), failing.answer("sku", None, asking(4)),
            return_exceptions=True))

    led, waited = asyncio.run(after_failure())
    assert isinstance(led, LookupError)
    assert isinstance(waited, Response) and json.loads(waited.body)["position"] == 4
    assert calls == ["3!", "4"]
