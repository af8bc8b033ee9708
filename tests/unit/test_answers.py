"""The answer kept for a request named by an idempotency key, on its own."""

from __future__ import annotations

from ledger.domain.answers import Answer, answer_id
from tests.unit.domain import CTX


def test_answers_are_keyed_per_caller() -> None:
    assert answer_id("admin:abc", "k1") == answer_id("admin:abc", "k1")
    assert answer_id("admin:abc", "k1") != answer_id("psp:def", "k1")
    answer = Answer.give(CTX, "admin:abc", "k1", "POST /orders {..}", {"result": {"order_id": "x"}})
    assert answer.id == answer_id("admin:abc", "k1") and answer.outcome == {"result": {"order_id": "x"}}
