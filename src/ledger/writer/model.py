"""The writer's memory: the aggregates it has loaded, kept as the truth between commands.

Only the writer thread touches it. An aggregate here is its committed state plus the
pending events of the batch being built; between batches nothing is pending. The
database's version check at commit is the fence against another writer: when it fails,
the writer forgets what it held (`evict`) and reads the store again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ledger.application import LedgerApp
from ledger.domain.base import LedgerAggregate

_ABSENT = object()


class WriteModel:
    def __init__(self, app: LedgerApp, max_size: int) -> None:
        self.app = app
        self.max_size = max_size
        self._held: OrderedDict[UUID, Any] = OrderedDict()  # an aggregate, or _ABSENT: known not to exist

    def get(self, aggregate_id: UUID, *, read_misses: bool = True) -> LedgerAggregate | None:
        """The aggregate as this writer knows it, reading the store on a miss. With
        `read_misses` false a miss counts as absent, for ids whose creation is also their
        claim: if one existed after all, the commit's version check says so."""
        held = self._held.get(aggregate_id)
        if held is None:
            if not read_misses:
                return None
            try:
                held = self.app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                held = _ABSENT
            self._held[aggregate_id] = held
        else:
            self._held.move_to_end(aggregate_id)
        return None if held is _ABSENT else held  # type: ignore[return-value]

    def offer(self, aggregate_id: UUID, aggregate: LedgerAggregate | None) -> None:
        """What a caller read ahead (`None`: not in the store), unless this writer holds newer.
        If it was stale after all, the commit's version check says so."""
        if aggregate_id not in self._held:
            self._held[aggregate_id] = _ABSENT if aggregate is None else aggregate

    def holds(self, aggregate_id: UUID) -> bool:
        """Whether it knows this aggregate, or knows it does not exist."""
        return aggregate_id in self._held

    def cached(self, aggregate_id: UUID) -> LedgerAggregate | None:
        held = self._held.get(aggregate_id)
        return None if held is None or held is _ABSENT else held  # type: ignore[no-any-return]

    def put(self, aggregate: LedgerAggregate) -> None:
        self._held[aggregate.id] = aggregate
        self._held.move_to_end(aggregate.id)

    def drop(self, aggregate_id: UUID) -> None:
        self._held.pop(aggregate_id, None)

    def restore(self, aggregate_id: UUID, kept: list[Any], committed_version: int) -> None:
        """Put an aggregate back to its committed state plus the pending events `kept`
        (what earlier commands of this batch did), undoing a failed command's events."""
        aggregate: Any = self.app.repository.get(aggregate_id, version=committed_version) if committed_version else None
        for event in kept:
            aggregate = event.mutate(aggregate)
        if aggregate is None:
            self.drop(aggregate_id)
            return
        aggregate._pending_events = list(kept)
        self._held[aggregate_id] = aggregate

    def evict(self, ids: Iterable[UUID]) -> None:
        for aggregate_id in ids:
            self._held.pop(aggregate_id, None)

    def dirty(self, among: Iterable[UUID] | None = None) -> list[LedgerAggregate]:
        """Held aggregates with pending events: of `among` (the ids a batch touched) when
        given, instead of scanning everything held."""
        if among is None:
            return [a for a in self._held.values() if a is not _ABSENT and a._pending_events]
        found = (self._held.get(i) for i in among)
        return [a for a in found if a is not None and a is not _ABSENT and a._pending_events]

    def trim(self) -> None:
        """Forget the least recently used aggregates beyond the bound (between batches only)."""
        while len(self._held) > self.max_size:
            self._held.popitem(last=False)

    def __len__(self) -> int:
        return len(self._held)
