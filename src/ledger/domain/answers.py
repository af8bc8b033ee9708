"""The answer the ledger gave to a request its caller named with an idempotency key.

It is written in the same transaction as the events of the command it answers, so after
a crash at any instant a retry finds both or neither: the stored answer, or a command
that never ran. Nothing stays "in progress". Refusals are answers too.
"""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context

_NAMESPACE = uuid5(NAMESPACE_URL, "https://ledger.example/answers")


def answer_id(scope: str, key: str) -> UUID:
    """Keys are scoped per caller: two callers may use the same key for their own requests."""
    return uuid5(_NAMESPACE, f"{scope}\n{key}")


class Answer(LedgerAggregate):
    class Given(LedgerAggregate.Created):
        """A request named by an idempotency key was answered; a retry gets this answer."""

        scope: str  # who asked: the caller's role and token hash
        key: str
        request: str  # what was asked: a fingerprint of the route and body
        outcome: dict[str, Any]  # the result, or the refusal (see ledger.writer.outcomes)

    def __init__(self, scope: str, key: str, request: str, outcome: dict[str, Any]) -> None:
        self.scope = scope
        self.key = key
        self.request = request
        self.outcome = outcome

    @classmethod
    def give(cls, ctx: Context, scope: str, key: str, request: str, outcome: dict[str, Any]) -> Answer:
        return cls._start(cls.Given, answer_id(scope, key), ctx, scope=scope, key=key, request=request,
                          outcome=outcome)
