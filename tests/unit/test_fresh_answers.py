"""Kept answers of hot live reads (api.fresh): young enough, and at the position asked for."""

from __future__ import annotations

import json

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
