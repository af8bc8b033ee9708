"""What every service shares: the app, the clock, the code vault and bounded retries."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from ledger.application import LedgerApp
from ledger.config import Settings
from ledger.domain.context import Context
from ledger.domain.errors import Contention, DomainError
from ledger.domain.risk import RiskAssessor
from ledger.service.unit_of_work import UnitOfWork
from ledger.vault import CodeVault

R = TypeVar("R")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ServiceCore:
    def __init__(
        self,
        app: LedgerApp,
        settings: Settings,
        vault: CodeVault,
        clock: Clock = utc_now,
        risk: RiskAssessor | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.vault = vault
        self.clock = clock
        self.risk = risk
        self._batch = threading.local()
        self._sku_locks: dict[str, threading.RLock] = {}
        self._order_skus: dict[UUID, str] = {}
        self._sku_locks_guard = threading.Lock()

    def sku_lock(self, sku: str) -> threading.RLock:
        """Commands that change one SKU's stock queue here within this process: on a hot
        SKU (a flash sale) that beats colliding on the Stock version and retrying. Across
        processes the version check still decides."""
        with self._sku_locks_guard:
            lock = self._sku_locks.get(sku)
            if lock is None:
                lock = self._sku_locks[sku] = threading.RLock()
            return lock

    def context(self, actor: str = "system", **kwargs: str | None) -> Context:
        return Context(now=self.clock(), actor=actor, **kwargs)  # type: ignore[arg-type]

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run this thread's commands in one transaction: each reads what the earlier ones
        wrote (no round trips), and all commit together at the end, under one table lock.

        All or nothing: any exception inside the batch, or a conflicting writer at the
        commit, discards the whole batch. Positions returned inside are 0 (not yet known).
        For bulk loads and the write benchmark; interactive callers use single commands.
        """
        if getattr(self._batch, "uow", None) is not None:
            raise RuntimeError("batches do not nest")
        self._batch.uow = UnitOfWork(self.app, deferred=True)
        self._batch.failed = None
        try:
            yield
            if self._batch.failed is not None:
                # A command failed half-way: its changes may sit in the shared unit of work.
                raise RuntimeError("batch discarded: a command in it failed") from self._batch.failed
            self._batch.uow.flush()
        finally:
            self._batch.uow = None

    def _run(self, command: Callable[[UnitOfWork], R]) -> R:
        """Run a command against fresh state, retrying when another writer got there first.

        The command is a function of a new unit of work each attempt, so a retry
        re-reads everything and re-checks every rule; it never replays stale decisions.
        """
        batched = getattr(self._batch, "uow", None)
        if batched is not None:
            try:
                return command(batched)
            except BaseException as error:
                self._batch.failed = error
                raise
        attempts = self.settings.command_attempts
        for attempt in range(attempts):
            uow = UnitOfWork(self.app)
            try:
                return command(uow)
            except IntegrityError:
                if attempt + 1 == attempts:
                    break
            except DomainError:
                # A refusal read from state another writer has since moved on is a conflict too.
                if attempt + 1 == attempts or not uow.stale():
                    raise
            # Full jitter keeps racing writers from colliding in lockstep.
            time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise Contention(f"gave up after {attempts} conflicting attempts; retry the request")
