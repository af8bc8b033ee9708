"""The one writer of a store: runs every command against its memory and group-commits.

Callers on any thread `submit` a command and wait on a future. One thread takes what
has queued (up to `max_batch`; under light load that is one command), runs each command
in turn against the aggregates it keeps in memory — no database reads for what it holds,
no version conflicts among its own commands — and commits all their events, refusals and
idempotency answers in ONE transaction. Then it answers each caller with its own result
and log position. While that transaction commits, the next commands queue.

* A command refused by a rule answers its caller with the error; its changes are undone
  in memory (`Session.rollback`) and the rest of the batch is untouched. A refusal that is
  recorded (a rejected order) is kept and committed with the batch.
* A command that raises unexpectedly is undone the same way; its caller gets the error.
* A command handed over with an idempotency key (`execute(command, idempotency)`, the only
  way a key reaches the ledger) is not run if an answer is stored under the key: its caller
  gets that answer again (`Done.replayed`), or `IdempotencyKeyReused` if the key named
  another request. Otherwise its answer is written as its last event, refusals too.
* The fence: the store's version check still runs on every commit. If another writer
  changed an aggregate this one holds, the commit fails, this writer forgets what it held
  for the batch, and re-runs each command alone against fresh reads (bounded retries).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from ledger.application import LedgerApp
from ledger.commands import Command
from ledger.config import Settings
from ledger.domain.answers import Answer
from ledger.domain.errors import Contention, DomainError
from ledger.domain.risk import RiskAssessor
from ledger.handlers import handle, read_ahead
from ledger.results import Result
from ledger.storage.positions import position_of
from ledger.supplier_import.bulk import stored_ids
from ledger.vault import CodeVault
from ledger.writer.model import WriteModel
from ledger.writer.outcomes import Done, Idempotency, answer_for, replay
from ledger.writer.session import Session

log = logging.getLogger(__name__)
R = TypeVar("R")


@dataclass
class _Item:
    command: Command[Any]
    idempotency: Idempotency | None
    future: Future[Done[Any]] = field(default_factory=Future)


@dataclass
class _Staged:
    """A command that ran, waiting for its batch to commit."""

    item: _Item
    value: Result = None
    error: Exception | None = None
    events: list[Any] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    kept: bool = False  # a recorded refusal: its events are committed, and it says at which position
    replay_of: Answer | None = None  # an answer given earlier (or earlier in this batch)


class _Conflict(Exception):
    """Another writer changed what this one holds: the batch is re-run command by command."""


_STOP = object()


class Writer:
    def __init__(
        self, app: LedgerApp, settings: Settings, vault: CodeVault, risk: RiskAssessor | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.vault = vault
        self.risk = risk
        self.model = WriteModel(app, settings.writer_memory)
        self.max_batch = settings.writer_max_batch
        self.head = app.recorder.max_notification_id() or 0
        self.batch_sizes: deque[int] = deque(maxlen=100_000)  # for `ledger bench write`
        # Told each committed batch's events, on the writer thread (so: quick, and never raising):
        # the fulfilment worker in this process wakes when a payment opened a fulfilment.
        self.committed: list[Callable[[list[Any]], None]] = []
        # Set by that worker: the suppliers routing skips now. Payments then start their first attempt.
        self.route_at_payment: Callable[[], Collection[str]] | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._held: _Item | None = None  # an exclusive command that ended the last batch
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="ledger-writer", daemon=True)
        self._thread.start()

    # ---- callers ----

    def submit(self, command: Command[Any], idempotency: Idempotency | None = None) -> Future[Done[Any]]:
        if self._closed:
            raise RuntimeError("the writer is closed")
        if idempotency is not None:  # stored and compared keyed only (`Idempotency.keyed`)
            idempotency = idempotency.keyed(self.vault.request_fingerprint)
        item = _Item(command, idempotency)
        self._queue.put(item)
        return item.future

    def execute(self, command: Command[R], idempotency: Idempotency | None = None) -> Done[R]:
        done: Done[R] = self.submit(command, idempotency).result()
        return done

    def execute_all(self, commands: Sequence[Command[R]]) -> list[Done[R]]:
        """Hand all to the writer at once (they commit together), then wait for every answer."""
        return [f.result() for f in [self.submit(c) for c in commands]]

    def forget(self, ids: Iterable[UUID]) -> None:
        """Aggregates written by another path (a `Ledger.batch`): read them again."""
        self._queue.put(("forget", list(ids)))

    def close(self) -> None:
        """Finish every queued command, then stop."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()

    # ---- the writer thread ----

    def _loop(self) -> None:
        while True:
            batch, stop = self._gather()
            if batch:
                try:
                    self._run(batch)
                except Exception as error:  # a bug here must not leave callers waiting forever
                    log.exception("the writer failed a batch")
                    self.model.evict([a.id for a in self.model.dirty()])
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(error)
                self.model.trim()
            if stop:
                return

    def _gather(self) -> tuple[list[_Item], bool]:
        """Everything queued, up to the bound, without waiting for more. An exclusive
        command runs alone."""
        if self._held is not None:
            held, self._held = self._held, None
            return [held], False
        items: list[_Item] = []
        block = True
        while len(items) < self.max_batch:
            try:
                got = self._queue.get(block=block)
            except queue.Empty:
                break
            block = False
            if got is _STOP:
                return items, True
            if isinstance(got, tuple):
                self.model.evict(got[1])
                block = not items
                continue
            if got.command.exclusive:
                if items:
                    self._held = got
                    break
                return [got], False
            items.append(got)
        return items, False

    def _read_ahead(self, items: list[_Item]) -> None:
        """What the batch's commands will read that this writer does not hold (a first-time
        customer's holder, the answer under a caller's idempotency key: mostly absent): one
        query for which exist, then a read of each that does. Instead of a query per command
        on each caller's thread.

        So an answer stored under a key is known before its command could run again: a retry
        after a restart, or after this writer forgot the answer, is replayed, rather than run
        until the commit's version check refuses the answer's id and the batch is re-run (a
        re-run after a conflict reads everything again, answers too)."""
        ids = (i for item in items for i in self._wanted(item))
        wanted = {i for i in ids if not self.model.holds(i)}
        if not wanted:
            return
        stored = stored_ids(self.app, wanted)
        for aggregate_id in wanted:
            aggregate: Any = None
            if aggregate_id in stored:
                try:
                    aggregate = self.app.repository.get(aggregate_id)
                except AggregateNotFoundError:
                    pass
            self.model.offer(aggregate_id, aggregate)

    @staticmethod
    def _wanted(item: _Item) -> list[UUID]:
        """What its handler will read (`ledger.handlers.READ_AHEAD`), and the answer under its key."""
        claimed = [item.idempotency.answer_id] if item.idempotency is not None else []
        return read_ahead(item.command) + claimed

    def _run(self, items: list[_Item]) -> None:
        try:
            self._read_ahead(items)
            staged = self._attempt(items, trust_misses=True)
        except _Conflict:
            for item in items:
                self._run_alone(item)
            return
        if staged is not None:
            self._answer(staged)

    def _run_alone(self, item: _Item) -> None:
        attempts = self.settings.command_attempts
        for attempt in range(attempts):
            try:
                staged = self._attempt([item], trust_misses=False)
            except _Conflict:
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))  # full jitter
                continue
            if staged is not None:
                self._answer(staged)
            return
        item.future.set_result(Done(None, Contention(f"gave up after {attempts} conflicting attempts; retry")))

    def _attempt(self, items: list[_Item], *, trust_misses: bool) -> list[_Staged] | None:
        """Run the commands and commit them together; None if the commit failed (callers told)."""
        staged: list[_Staged] = []
        touched: set[UUID] = set()
        try:
            for item in items:
                session = Session(self.model, self.settings, self.vault, self.risk, trust_misses=trust_misses,
                                  route_at_payment=self.route_at_payment)
                staged.append(self._decide(item, session))
                touched |= session.seen
        except Exception:  # undoing a command failed: start again from the store
            self._forget_batch(touched)
            raise _Conflict() from None
        events = [e for s in staged for e in s.events]
        positions: dict[int, int] = {}
        if events:
            dirty = self.model.dirty(touched)
            try:
                for aggregate in dirty:
                    aggregate._pending_events.clear()  # saved below, in command order
                recordings = self.app.commit(events, dirty)
            except IntegrityError:
                self._forget_batch(touched)
                raise _Conflict() from None
            except Exception as error:  # the store failed: nothing was written
                self._forget_batch(touched)
                log.error("a batch of %d commands failed to commit: %s", len(items), type(error).__name__)
                for s in staged:
                    s.item.future.set_exception(error)
                return None
            positions = {id(r.domain_event): r.notification.id for r in recordings}
            self.head = max(self.head, max(positions.values()))
            for listener in self.committed:
                try:
                    listener(events)
                except Exception as error:  # a listener never stops the writer: it is only told
                    log.warning("a commit listener failed (%s)", type(error).__name__)
        self.batch_sizes.append(len(items))
        for s in staged:
            s.positions = [positions[id(e)] for e in s.events]
        return staged

    def _forget_batch(self, touched: set[UUID]) -> None:
        self.model.evict(touched | {a.id for a in self.model.dirty()})

    def _decide(self, item: _Item, session: Session) -> _Staged:
        idempotency = item.idempotency
        staged = _Staged(item)
        if idempotency is not None:
            given = session.find(Answer, idempotency.answer_id)  # read ahead with the batch
            if given is not None:
                staged.replay_of = given
                return staged
        session.idempotency = idempotency
        try:
            staged.value = handle(item.command, session)
        except DomainError as error:
            if not session.kept:
                session.rollback()
            staged.error, staged.kept = error, session.kept
        except Exception as error:
            session.rollback()
            staged.error = error
            return staged  # not an answer: nothing of it is written, nothing kept
        staged.events = session.new_events()
        if idempotency is not None and not session.answered and not isinstance(staged.error, Contention):
            # The answer is the command's last event: a replay's position is its position.
            refusal = staged.error if isinstance(staged.error, DomainError) else None
            answer = answer_for(item.command.ctx, idempotency, staged.value, refusal)
            session.add(answer)
            staged.events += answer.pending_events
        return staged

    def _answer(self, staged: list[_Staged]) -> None:
        for s in staged:
            position = max(s.positions) if s.positions else self.head
            item = s.item
            try:
                if s.replay_of is not None:
                    assert item.idempotency is not None
                    answered_at = position_of(self.app, s.replay_of.id, 1)
                    item.future.set_result(replay(s.replay_of, item.idempotency, answered_at))
                    continue
            except DomainError as error:
                item.future.set_result(Done(None, error))
                continue
            if isinstance(s.error, DomainError):
                if s.kept:
                    s.error.details["position"] = position
                item.future.set_result(Done(None, s.error))
            elif s.error is not None:
                item.future.set_exception(s.error)
            else:
                value = s.value
                if value is not None and value.position:  # written by the handler itself (an import)
                    self.head = max(self.head, value.position)
                elif value is not None:
                    value = replace(value, position=position)
                item.future.set_result(Done(value))
