"""The worker that drives open fulfilments: it asks the writer what to send (`StartAttempt`),
calls the supplier, and records what it said (`RecordAttempt`).

Order of work for one fulfilment, every time it is picked up (after a restart too):
1. an outstanding attempt is resolved first: its status is asked; "never received" (404)
   sends the same request again, same id;
2. otherwise the writer starts a new attempt on the best route, recorded before the call;
3. a stated failure goes straight on to the next route; pending, or an answer lost, is asked
   about again after `LEDGER_FULFILMENT_POLL_S` (callbacks are welcome, never relied on).

Requests in flight are bounded per supplier (its `concurrency`). The worker holds nothing the
log does not: killed at any moment, the next one finds every open fulfilment in
`OpenFulfilments` and every attempt that may have reached a supplier in its fulfilment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ledger import commands as c
from ledger.config import Settings
from ledger.domain.errors import DomainError
from ledger.domain.fulfilment import Fulfilment, OpenFulfilments
from ledger.domain.ids import OPEN_FULFILMENTS_ID, supplier_id
from ledger.domain.suppliers import Supplier
from ledger.fulfilment.breaker import Breakers
from ledger.fulfilment.connector import Answer, Connector, HttpConnector, LostAnswer, Request
from ledger.fulfilment.health import recent_outcomes
from ledger.results import AttemptPlan, FulfilmentState
from ledger.service.ledger import Ledger

log = logging.getLogger(__name__)
LINK_CHECK_S = 2.0  # how often a supplier's connection settings are read again
HEALTH_WINDOW = 20_000  # the last events of the log a starting worker reads its breakers' state from


@dataclass
class SupplierLink:
    """A supplier as the worker reaches it: its connector and its bound on requests in flight."""

    settings: tuple[str, str, int, int]  # base URL, sealed secret, timeout, concurrency
    connector: Connector
    slots: threading.BoundedSemaphore
    checked_at: float


ConnectorFactory = Callable[[Supplier, str], Connector]  # (supplier, its secret in clear)


def http_connector(supplier: Supplier, secret: str) -> Connector:
    return HttpConnector(supplier.base_url, secret, supplier.timeout_ms, supplier.concurrency)


class FulfilmentWorker:
    def __init__(self, ledger: Ledger, settings: Settings, *, connector: ConnectorFactory = http_connector,
                 threads: int = 32, clock: Callable[[], float] = time.monotonic,
                 on_settled: Callable[[UUID], None] | None = None) -> None:
        """`on_settled(fulfilment_id)`: told each time this worker ends a fulfilment (delivered or refunded)."""
        self.ledger = ledger
        self._on_settled = on_settled
        self._wake = threading.Event()
        self._following: tuple[Any, Callable[[list[Any]], None]] | None = None
        self.settings = settings
        self.breakers = Breakers(settings.fulfilment_breaker_failures, settings.fulfilment_breaker_open_s, clock)
        self.breakers.replay(recent_outcomes(ledger.app, ledger.clock(), HEALTH_WINDOW))
        self._make_connector = connector
        self._clock = clock
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="ledger-fulfil")
        self._links: dict[str, SupplierLink] = {}
        self._links_lock = threading.Lock()
        self._busy: set[UUID] = set()
        self._due: dict[UUID, float] = {}  # fulfilment -> when to look at it again
        self._lock = threading.Lock()

    # ---- the loop ----

    def run_forever(self, stop: threading.Event) -> None:
        """Drive open fulfilments until `stop` is set; a failing tick is logged and tried again."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception as error:  # the store may be down for a moment: the next tick tries again
                log.warning("fulfilment tick failed (%s)", type(error).__name__)
            self._wake.wait(self.settings.fulfilment_poll_s)
            self._wake.clear()
        self._wake.set()

    def wake(self) -> None:
        """Look for work now: a payment just opened a fulfilment."""
        self._wake.set()

    def follow(self, writer: Any) -> None:
        """Take up each fulfilment `writer` (this process's `ledger.writer.Writer`) opens as soon as
        it is committed, without waiting for the next look at the index. Payments then start the
        first attempt themselves (routed with this worker's breakers), and it is sent at once: one
        commit fewer between a payment and its delivery."""

        def opened(events: list[Any]) -> None:  # on the writer's thread: quick, and never raising
            added = [e.fulfilment_id for e in events if isinstance(e, OpenFulfilments.Added)]
            if added:
                self.take_up(added, _first_attempts(events))

        listeners = getattr(writer, "committed", None)  # a RemoteWriter's commits happen elsewhere
        if listeners is not None:
            listeners.append(opened)
            self._following = (writer, opened)
            writer.route_at_payment = self.breakers.unhealthy

    def tick(self) -> int:
        """Pick up every open fulfilment that is due and not in hand; how many were picked up."""
        index = self.ledger.reads.find(OpenFulfilments, OPEN_FULFILMENTS_ID)
        return self.take_up(list(index.ids) if index else [])

    def take_up(self, fulfilment_ids: list[UUID], first: dict[UUID, AttemptPlan] | None = None) -> int:
        """Drive each of these that is due and not already in hand; how many were taken up.
        `first`: attempts just committed and never sent, which are sent without asking first."""
        now, picked = self._clock(), 0
        with self._lock:
            for fulfilment_id in fulfilment_ids:
                if fulfilment_id in self._busy or self._due.get(fulfilment_id, 0.0) > now:
                    continue
                self._busy.add(fulfilment_id)  # before it runs: its end takes it out again
                try:
                    self._pool.submit(self._drive, fulfilment_id, (first or {}).get(fulfilment_id))
                except RuntimeError:  # closed: the next worker takes it up
                    self._busy.discard(fulfilment_id)
                    break
                picked += 1
        return picked

    def close(self) -> None:
        if self._following is not None:
            writer, opened = self._following
            writer.committed.remove(opened)
            writer.route_at_payment = None
            self._following = None
        self._pool.shutdown(wait=True, cancel_futures=True)
        for link in self._links.values():
            link.connector.close()

    # ---- one fulfilment ----

    def _drive(self, fulfilment_id: UUID, first: AttemptPlan | None = None) -> None:
        retry_in: float | None = self.settings.fulfilment_poll_s
        try:
            retry_in = self.drive(fulfilment_id, first)
        except Exception as error:  # never let one fulfilment stop the others: it is tried again
            log.warning("fulfilment %s: %s (%s)", fulfilment_id, type(error).__name__, error)
        finally:
            with self._lock:
                self._busy.discard(fulfilment_id)
                if retry_in is None:
                    self._due.pop(fulfilment_id, None)
                else:
                    self._due[fulfilment_id] = self._clock() + retry_in
            if retry_in is None and self._on_settled is not None:
                self._on_settled(fulfilment_id)

    def drive(self, fulfilment_id: UUID, first: AttemptPlan | None = None) -> float | None:
        """Take one fulfilment as far as it goes now: None when it ended, else seconds until it is
        to be looked at again (pending, an answer lost, or waiting for a route). `first`: its
        attempt the payment started, committed and never sent."""
        while True:
            step = first or self._execute(c.StartAttempt, fulfilment_id=fulfilment_id,
                                          unhealthy=self.breakers.unhealthy())
            first = None
            if isinstance(step, FulfilmentState):
                return self.settings.fulfilment_poll_s if step.status in ("requested", "submitted") else None
            assert isinstance(step, AttemptPlan)
            link = self._link(step.supplier)
            try:
                with link.slots:
                    answer = self._ask(link.connector, step)
            except LostAnswer as lost:
                self.breakers.failed(step.supplier)
                self._record(step, "unknown", reason=str(lost)[:200])
                return self.settings.fulfilment_poll_s
            if answer.status == "pending":
                self._record(step, "pending")  # escalates it past the deadline; changes nothing else
                return self.settings.fulfilment_poll_s
            if answer.status == "failed":
                self.breakers.failed(step.supplier)
            else:
                self.breakers.succeeded(step.supplier)
            charged = str(answer.charged) if answer.charged is not None else None
            if answer.status == "reversed":  # it succeeded and was taken back before we heard: both happened
                self._record(step, "succeeded", supplier_ref=answer.supplier_ref, charged=charged)
            self._record(step, answer.status, supplier_ref=answer.supplier_ref, reason=answer.reason,
                         retryable=answer.retryable, charged=charged)
            if answer.status != "failed":
                return None  # succeeded (or reversed, which a later pick-up handles if it refulfils)

    def _ask(self, connector: Connector, plan: AttemptPlan) -> Answer:
        """The outstanding attempt's status first; a new one (or one never received) is sent."""
        if plan.resolve:
            known = connector.status(plan.attempt_id)
            if known is not None:
                return known
            self._record(plan, "resent")
        account = self.ledger.vault.accounts.unseal(plan.account_sealed)
        callback = (f"{self.settings.public_url.rstrip('/')}/v1/upstreams/{plan.supplier}/callbacks"
                    if self.settings.public_url else None)
        return connector.submit(Request(plan.attempt_id, plan.supplier_product, account, plan.amount, plan.currency,
                                        callback))

    def _record(self, plan: AttemptPlan, outcome: str, **fields: Any) -> None:
        self._execute(c.RecordAttempt, fulfilment_id=plan.fulfilment_id, attempt_id=plan.attempt_id, outcome=outcome,
                      **fields)

    def _execute(self, command: type[c.Command[Any]], **fields: Any) -> Any:
        ctx = self.ledger.context("fulfilment")
        try:
            return self.ledger.execute(command(ctx=ctx, **fields)).get()
        except DomainError as error:
            log.warning("fulfilment: %s refused: %s", command.__name__, error.message)
            raise

    # ---- suppliers ----

    def _link(self, name: str) -> SupplierLink:
        """The supplier's connector; its settings are read again every few seconds, and a new
        connector made when they changed."""
        now = self._clock()
        with self._links_lock:
            link = self._links.get(name)
            if link is not None and now - link.checked_at < LINK_CHECK_S:
                return link
            supplier = self.ledger.reads.find(Supplier, supplier_id(name))
            if supplier is None:
                raise LookupError(f"no supplier {name}")
            wanted = (supplier.base_url, supplier.secret_sealed, supplier.timeout_ms, supplier.concurrency)
            if link is not None and link.settings == wanted:
                link.checked_at = now
                return link
            if link is not None:
                link.connector.close()
            secret = self.ledger.vault.supplier_secrets.unseal(supplier.secret_sealed)
            link = SupplierLink(wanted, self._make_connector(supplier, secret),
                                threading.BoundedSemaphore(supplier.concurrency), now)
            self._links[name] = link
            return link


def _first_attempts(events: list[Any]) -> dict[UUID, AttemptPlan]:
    """The attempts committed together with their fulfilment's request: started by the payment,
    so sent by nobody yet."""
    requested = {e.originator_id: e for e in events if isinstance(e, Fulfilment.Requested)}
    return {
        e.originator_id: AttemptPlan(e.originator_id, e.attempt_id, e.supplier, e.supplier_product, r.amount,
                                     r.currency, r.account_sealed, False, 0)
        for e in events
        if isinstance(e, Fulfilment.AttemptStarted) and (r := requested.get(e.originator_id)) is not None
    }
