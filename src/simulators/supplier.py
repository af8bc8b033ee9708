"""The simulated supplier's side of a recharge: receive it once per request_id, decide it
(now, or after the callback delay), take some successes back later, and call back on every
final state. The HTTP layer (`simulators.upstream`) only carries requests to it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from simulators.behaviour import INVALID_ACCOUNT_PREFIX, Behaviour
from simulators.book import Book, Recharge
from simulators.callbacks import Callbacks
from simulators.protocol import PENDING, RETRYABLE, SUCCEEDED, RechargeRequest, Refused, charge_for

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Supplier:
    """Decisions are plain synchronous code on the event loop: between a check (a known
    request_id, the balance) and the change it leads to, no other request can run."""

    def __init__(self, behaviour: Behaviour, book: Book, callbacks: Callbacks | None, clock: Clock = utc_now) -> None:
        self.behaviour, self.book, self.callbacks, self.clock = behaviour, book, callbacks, clock
        self._timers: set[asyncio.TimerHandle] = set()

    def submit(self, request: RechargeRequest) -> Recharge:
        """The recharge of this request_id: new, or the one first received under it (never a
        second charge). Refused 409 when the request_id was received for another recharge."""
        known = self.book.get(request.request_id)
        if known is not None:
            if not known.request.same_order(request):
                raise Refused(409, "request_id_conflict",
                              "this request_id was received with another product, account, amount or currency")
            return known
        recharge = self.book.receive(request, self.behaviour.supplier_ref(request.request_id), self.clock())
        if self.behaviour.callback_delay_ms:
            self._later(self.behaviour.callback_delay_ms / 1000, self._decide, request.request_id)
        else:
            self._decide(request.request_id)
        return recharge

    def resume(self) -> None:
        """After a restart: decide what was left pending, reverse what was due to be."""
        now = self.clock()
        for recharge in list(self.book.unfinished()):
            request_id = recharge.request.request_id
            if recharge.status == PENDING:
                self._later(self.behaviour.callback_delay_ms / 1000, self._decide, request_id)
            elif recharge.reversal_due is not None:
                self._later(max(0.0, (recharge.reversal_due - now).total_seconds()), self._reverse, request_id)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _decide(self, request_id: str) -> None:
        recharge = self.book.recharges[request_id]
        if recharge.status != PENDING:
            return
        now = self.clock()
        reason = self._failure(recharge)
        if reason is not None:
            self.book.fail(recharge, reason, RETRYABLE[reason], now)
        else:
            self.book.succeed(recharge, charge_for(recharge.request.amount, self.behaviour.cost_rate), now)
            if self.behaviour.reverses(request_id):
                delay = self.behaviour.reverse_delay_ms / 1000
                self.book.schedule_reversal(recharge, now + timedelta(seconds=delay), now)
                self._later(delay, self._reverse, request_id)
        self._call_back(recharge)

    def _failure(self, recharge: Recharge) -> str | None:
        request, behaviour = recharge.request, self.behaviour
        if behaviour.products is not None and request.product not in behaviour.products:
            return "product_unknown"
        if request.account.startswith(INVALID_ACCOUNT_PREFIX):
            return "account_invalid"
        if behaviour.fails(request.request_id):
            return "supplier_error"
        charged = charge_for(request.amount, behaviour.cost_rate)
        if behaviour.balance is not None and self.book.spent() + charged > behaviour.balance:
            return "insufficient_balance"
        return None

    def _reverse(self, request_id: str) -> None:
        recharge = self.book.recharges[request_id]
        if recharge.status == SUCCEEDED and recharge.reversal_due is not None:
            self.book.reverse(recharge, self.clock())
            self._call_back(recharge)

    def _call_back(self, recharge: Recharge) -> None:
        if self.callbacks is not None and recharge.request.callback_url:
            self.callbacks.send(recharge.request.callback_url, recharge.answer())

    def _later(self, delay_s: float, action: Callable[[str], None], request_id: str) -> None:
        def run() -> None:
            self._timers.discard(timer)
            action(request_id)

        timer = asyncio.get_running_loop().call_later(delay_s, run)
        self._timers.add(timer)
