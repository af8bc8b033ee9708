"""A circuit breaker per supplier, from the outcomes of its recent attempts.

Closed, it lets every attempt through. After `failures` consecutive failures or lost
answers it opens: routing skips the supplier while another route remains. After `open_s`
it lets one probe through (half-open): a success closes it, a failure opens it again.

A worker starts from the outcomes of the attempts recorded in the log's recent past
(`replay`), so a restart does not send a burst of requests to a supplier it had stopped
trusting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal


@dataclass
class _State:
    failures: int = 0
    opened_at: float | None = None  # when it opened, or when it last let a probe through


def health(breakers: Breakers | None, supplier: str) -> Literal["closed", "open", "unknown"]:
    """A supplier's breaker as the API and the UI show it: unknown where no worker runs in this process."""
    return "unknown" if breakers is None else breakers.state(supplier)


class Breakers:
    def __init__(self, failures: int, open_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.open_s = open_s
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def unhealthy(self) -> tuple[str, ...]:
        """Suppliers routing should skip now. One whose wait is over is left out of the list once
        (a probe may go there), and waits again from now unless a success closes it."""
        now = self._clock()
        with self._lock:
            skipped = []
            for name, state in self._states.items():
                if state.opened_at is None:
                    continue
                if now - state.opened_at >= self.open_s:
                    state.opened_at = now
                    continue
                skipped.append(name)
            return tuple(sorted(skipped))

    def replay(self, outcomes: Iterable[tuple[str, bool, float]]) -> None:
        """Outcomes recorded before this process started, oldest first: (supplier, failed, how many
        seconds ago). A breaker they opened stays open for what remains of its wait."""
        now = self._clock()
        with self._lock:
            for supplier, failed, age_s in outcomes:
                state = self._states.setdefault(supplier, _State())
                if not failed:
                    state.failures, state.opened_at = 0, None
                    continue
                state.failures += 1
                if state.failures >= self.failures:
                    state.opened_at = now - age_s

    def succeeded(self, supplier: str) -> None:
        with self._lock:
            self._states[supplier] = _State()

    def failed(self, supplier: str) -> None:
        """A stated failure or a lost answer."""
        with self._lock:
            state = self._states.setdefault(supplier, _State())
            state.failures += 1
            if state.failures >= self.failures:
                state.opened_at = self._clock()

    def state(self, supplier: str) -> Literal["closed", "open"]:
        return "open" if self.is_open(supplier) else "closed"

    def is_open(self, supplier: str) -> bool:
        with self._lock:
            state = self._states.get(supplier)
            return state is not None and state.opened_at is not None
