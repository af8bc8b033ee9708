"""One command's view of the store: loads each aggregate once and saves all it touched
in one transaction, so multi-aggregate rules commit together or not at all."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ledger.application import LedgerApp
from ledger.domain.base import LedgerAggregate
from ledger.domain.errors import NotFound

T = TypeVar("T", bound=LedgerAggregate)


class UnitOfWork:
    def __init__(self, app: LedgerApp, *, deferred: bool = False) -> None:
        """`deferred`: commit() only marks a command done; `flush()` writes them all."""
        self._app = app
        self._seen: dict[UUID, LedgerAggregate] = {}
        self._read: dict[UUID, int | None] = {}  # the version each aggregate was read at; None: absent
        self.deferred = deferred
        self.flushed = False

    def find(self, cls: type[T], aggregate_id: UUID) -> T | None:
        if aggregate_id in self._seen:
            found = self._seen[aggregate_id]
        else:
            try:
                found = self._app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                self._read[aggregate_id] = None
                return None
            self._seen[aggregate_id] = found
            self._read[aggregate_id] = found.version
        if not isinstance(found, cls):
            return None
        return found

    def load(self, cls: type[T], aggregate_id: UUID, missing: NotFound) -> T:
        found = self.find(cls, aggregate_id)
        if found is None:
            raise missing
        return found

    def add(self, *aggregates: LedgerAggregate | None) -> None:
        for aggregate in aggregates:
            if aggregate is not None:
                self._seen[aggregate.id] = aggregate

    def commit(self) -> int:
        """Save every touched aggregate with pending events; return the last log position.

        Deferred (inside a batch): nothing is written yet and the position is unknown (0).
        """
        if self.deferred:
            return 0
        return self.flush()

    def flush(self) -> int:
        dirty = [a for a in self._seen.values() if a.pending_events]
        if not dirty:
            return self._app.recorder.max_notification_id() or 0
        recordings = self._app.save(*dirty)
        self.flushed = True
        return max(r.notification.id for r in recordings)

    def stale(self) -> bool:
        """Whether another writer has changed anything this unit read, before it wrote anything.

        Reads of different aggregates are not one snapshot: a rule can see an order still
        reserved and its stock already delivered, and say no where fresh state says replay.
        """
        if self.flushed:
            return False
        recorder = self._app.recorder
        return any(recorder.select_events(i, gt=v, limit=1) for i, v in self._read.items())
