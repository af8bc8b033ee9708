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

    def __deepcopy__(self, memo: dict[int, Any]) -> LedgerAggregate:
        """The repository copies cached aggregates before every command. State here is
        only dicts and lists of immutable values (UUID, str, int, Decimal, datetime, enums,
        frozen events), so copying the containers and sharing the leaves is a full copy,
        and on a SKU's stock of thousands of keys it is many times cheaper than deepcopy."""
        clone = object.__new__(type(self))
        clone.__dict__.update({name: _copy_state(value) for name, value in self.__dict__.items()})
        return clone


def _copy_state(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_state(v) for k, v in value.items()}
    if isinstance(value, list):
        # Lists are homogeneous: of containers (copy each) or of immutable values (share them).
        if value and isinstance(value[0], dict | list):
            return [_copy_state(v) for v in value]
        return list(value)
    return value
