"""One command's view of the writer's memory, and how its changes are undone.

A handler loads and creates aggregates through its session and calls domain methods on
them; the events stay pending in the writer's memory until the batch commits. If the
command fails, `rollback()` puts every aggregate it touched back as it was before the
command — the other commands of the batch keep what they did.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, TypeVar
from uuid import UUID

from ledger.config import Settings
from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.errors import NotFound
from ledger.domain.risk import RiskAssessor
from ledger.results import Result
from ledger.vault import CodeVault
from ledger.writer.model import WriteModel
from ledger.writer.outcomes import Idempotency, answer_for

T = TypeVar("T", bound=LedgerAggregate)
_CREATED = -1


class Session:
    def __init__(
        self, model: WriteModel, settings: Settings, vault: CodeVault, risk: RiskAssessor | None,
        *, trust_misses: bool = True, route_at_payment: Callable[[], Collection[str]] | None = None,
    ) -> None:
        """`route_at_payment`: set where a fulfilment worker follows this writer's commits; it
        names the suppliers to skip, and a payment then starts its fulfilment's first attempt in
        its own transaction (the worker sends it as soon as that commits)."""
        self.model = model
        self.settings = settings
        self.vault = vault
        self.risk = risk
        self.trust_misses = trust_misses
        self.route_at_payment = route_at_payment
        self.kept = False  # the command's refusal is recorded: commit its events though it raises
        self._before: dict[UUID, int] = {}  # pending events of each touched aggregate before this command
        self._versions: dict[UUID, int] = {}  # and the version committed in the store
        self.events: list[Any] = []  # events without a loaded aggregate (see `record`)
        self.seen: set[UUID] = set()  # every aggregate it touched, even if undone since
        self.idempotency: Idempotency | None = None  # the key the command's caller named, if any
        self.answered = False  # the handler wrote the answer itself (see `answer_events`)

    @property
    def recorder(self) -> Any:
        return self.model.app.recorder

    # ---- reading ----

    def find(self, cls: type[T], aggregate_id: UUID) -> T | None:
        return self._found(cls, self.model.get(aggregate_id))

    def find_claim(self, cls: type[T], aggregate_id: UUID) -> T | None:
        """Like `find`, for ids whose creation is their claim (a payment reference): a miss
        in memory is not read from the store unless the writer is re-running a batch that a
        conflict stopped."""
        return self._found(cls, self.model.get(aggregate_id, read_misses=not self.trust_misses))

    def load(self, cls: type[T], aggregate_id: UUID, missing: NotFound) -> T:
        found = self.find(cls, aggregate_id)
        if found is None:
            raise missing
        return found

    def cached(self, cls: type[T], aggregate_id: UUID) -> T | None:
        return self._found(cls, self.model.cached(aggregate_id))

    def _found(self, cls: type[T], aggregate: LedgerAggregate | None) -> T | None:
        if aggregate is None:
            return None
        self._touch(aggregate)
        return aggregate if isinstance(aggregate, cls) else None

    def _touch(self, aggregate: LedgerAggregate) -> None:
        self.seen.add(aggregate.id)
        if aggregate.id not in self._before:
            pending = len(aggregate.pending_events)
            self._before[aggregate.id] = pending
            self._versions[aggregate.id] = aggregate.version - pending

    # ---- writing ----

    def add(self, *aggregates: LedgerAggregate | None) -> None:
        """New aggregates this command created."""
        for aggregate in aggregates:
            if aggregate is None:
                continue
            self.seen.add(aggregate.id)
            if aggregate.id not in self._before:
                self._before[aggregate.id] = _CREATED
                self._versions[aggregate.id] = 0
            self.model.put(aggregate)

    def record(self, event: Any) -> None:
        """An event for an aggregate this writer need not load (see `Key.delivery`)."""
        self.events.append(event)

    def answer_events(self, ctx: Context, value: Result) -> list[Any]:
        """For a handler that writes its own transaction (an import): the idempotency answer's
        events, to commit with its own. Empty when the caller named no key."""
        if self.idempotency is None:
            return []
        self.answered = True
        return list(answer_for(ctx, self.idempotency, value, None).collect_events())

    def keep(self) -> None:
        self.kept = True

    def new_events(self) -> list[Any]:
        """What this command wrote: each aggregate's events in the order it first touched
        them (as a unit of work has always saved them), then the stand-alone events."""
        found: list[Any] = []
        for aggregate_id, before in self._before.items():
            aggregate = self.model.cached(aggregate_id)
            if aggregate is not None:
                found += aggregate.pending_events[max(before, 0):]
        return found + self.events

    def rollback(self) -> None:
        """Undo every change this command made to the writer's memory."""
        for aggregate_id, before in self._before.items():
            if before == _CREATED:
                self.model.drop(aggregate_id)
                continue
            aggregate = self.model.cached(aggregate_id)
            if aggregate is not None and len(aggregate.pending_events) != before:
                self.model.restore(aggregate_id, aggregate.pending_events[:before], self._versions[aggregate_id])
        self._before.clear()
        self._versions.clear()
        self.events.clear()
