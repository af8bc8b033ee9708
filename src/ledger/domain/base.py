"""The aggregate base: every event carries metadata and the command's own time."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger.domain.context import Context

A = TypeVar("A", bound="LedgerAggregate")


class LedgerAggregate(Aggregate):
    class Event(Aggregate.Event):
        meta: dict[str, str]

    class Created(Event, Aggregate.Created):
        pass

    @classmethod
    def _start(cls: type[A], event: type[Created], id: UUID, ctx: Context, **fields: Any) -> A:
        return cls._create(event, id=id, meta=ctx.meta(), timestamp=ctx.now, **fields)

    def _emit(self, event: type[Event], ctx: Context, **fields: Any) -> None:
        self.trigger_event(event, meta=ctx.meta(), timestamp=ctx.now, **fields)
