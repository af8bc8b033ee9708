"""The one entry point to the ledger's commands and queries.

Every write becomes a command (`ledger.commands`) and goes to the store's one writer
(`ledger.writer`), which decides it against its memory and group-commits it; the methods
here only build the command and wait for its answer. The state they wrote is read straight
from the store, through one named query object: `Ledger.reads` (`StoreReads`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from ledger import commands as c
from ledger.application import build_app
from ledger.config import Settings
from ledger.domain.catalog import DEFAULT_CHANNEL, Catalog
from ledger.domain.context import Context
from ledger.domain.ids import CATALOG_ID, stock_id
from ledger.domain.risk import RiskAssessor
from ledger.domain.stock import Stock
from ledger.handlers import handle
from ledger.results import Imported, OrderChange, PaymentResult, Placed, Recalled, Redeemed, Written
from ledger.service.store_reads import StoreReads
from ledger.vault import CodeVault
from ledger.writer.model import WriteModel
from ledger.writer.outcomes import Done, Idempotency
from ledger.writer.remote import RemoteWriter
from ledger.writer.session import Session
from ledger.writer.writer import Writer

Clock = Callable[[], datetime]
R = TypeVar("R")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Catalog, supply and orders over one event store; `reads` is its state, read from the store."""

    def __init__(
        self, app: Any, settings: Settings, vault: CodeVault, clock: Clock = utc_now, risk: RiskAssessor | None = None,
    ) -> None:
        self.app = app
        self.vault = vault
        self.reads = StoreReads(app, vault)
        self.settings = settings
        self.clock = clock
        self.writer: Writer | RemoteWriter
        if settings.writer_address:  # an HTTP worker of `ledger serve`: the writer is in the serving process
            self.writer = RemoteWriter(settings.writer_address, settings.writer_authkey.encode())
        else:
            self.writer = Writer(app, settings, vault, risk)
        self._local = threading.local()

    @property
    def risk(self) -> RiskAssessor | None:
        """The order-time risk check, given at construction (`shell.composition` arms it)."""
        return self.writer.risk

    def context(self, actor: str = "system", **kwargs: str | None) -> Context:
        return Context(now=self.clock(), actor=actor, **kwargs)  # type: ignore[arg-type]

    # ---- running commands ----

    def execute(self, command: c.Command[R], idempotency: Idempotency | None = None) -> Done[R]:
        """Run one command: its answer, or its refusal. Under a caller's `idempotency` key the
        writer keeps the answer in the same transaction as the command's events, and gives it
        again to a retry with the same key and request (`Done.replayed`)."""
        if getattr(self._local, "batch", None) is not None:
            if idempotency is not None:
                raise RuntimeError("an idempotency key is answered by the writer: not inside Ledger.batch()")
            return Done(self._in_batch(command))
        return self.writer.execute(command, idempotency)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run this thread's commands in one transaction, all or nothing, beside the writer.

        Each command reads what the earlier ones wrote; all commit together at the end.
        Any exception inside discards the whole batch. Positions returned inside are 0.
        The writer is told to read what the batch wrote again (and the store's version
        check fences the two). For bulk loads; interactive callers use single commands.
        """
        if getattr(self._local, "batch", None) is not None:
            raise RuntimeError("batches do not nest")
        model = WriteModel(self.app, max_size=2**62)
        self._local.batch, self._local.events, self._local.failed = model, [], None
        try:
            yield
            if self._local.failed is not None:
                raise RuntimeError("batch discarded: a command in it failed") from self._local.failed
            dirty = model.dirty()
            for aggregate in dirty:
                aggregate._pending_events.clear()  # saved below, in command order
            if self._local.events:
                self.app.commit(self._local.events, dirty)
                self.writer.forget(a.id for a in dirty)
        finally:
            self._local.batch = self._local.events = None

    def _in_batch(self, command: c.Command[R]) -> R:
        if command.exclusive:
            raise RuntimeError("an import writes its own transaction: run it outside Ledger.batch()")
        session = Session(self._local.batch, self.settings, self.vault, self.risk, trust_misses=False)
        try:
            value = handle(command, session)
        except BaseException as error:
            self._local.failed = error
            if session.kept:  # a refusal's record is written on its own: risk needs to see it
                self.app.commit(session.new_events(), [])
                session.rollback()
            raise
        self._local.events += session.new_events()
        return value

    # ---- catalogue and promotions ----

    def define_product(self, ctx: Context, **fields: Any) -> Written:
        return self.execute(c.DefineProduct(ctx=ctx, **fields)).get()

    def change_price(self, ctx: Context, sku: str, price: object, channel: str = DEFAULT_CHANNEL) -> Written:
        return self.execute(c.ChangePrice(ctx=ctx, sku=sku, price=price, channel=channel)).get()

    def retire_product(self, ctx: Context, sku: str, reason: str = "") -> Written:
        return self.execute(c.RetireProduct(ctx=ctx, sku=sku, reason=reason)).get()

    def create_coupon(self, ctx: Context, **fields: Any) -> Written:
        return self.execute(c.CreateCoupon(ctx=ctx, **fields)).get()

    def create_flash_sale(self, ctx: Context, **fields: Any) -> Written:
        return self.execute(c.CreateFlashSale(ctx=ctx, **fields)).get()

    # ---- orders ----

    def place_order(self, ctx: Context, **fields: Any) -> Placed:
        return self.execute(c.PlaceOrder(ctx=ctx, **fields)).get()

    def capture_payment(
        self, ctx: Context, order_id: UUID, *, payment_reference: str, amount: object, provider: str
    ) -> PaymentResult:
        command = c.CapturePayment(ctx=ctx, order_id=order_id, payment_reference=payment_reference, amount=amount,
                                   provider=provider)
        return self.execute(command).get()

    def cancel_order(self, ctx: Context, order_id: UUID, reason: str = "cancelled_by_customer") -> OrderChange:
        return self.execute(c.CancelOrder(ctx=ctx, order_id=order_id, reason=reason)).get()

    def expire_order(self, ctx: Context, order_id: UUID) -> OrderChange | None:
        return self.execute(c.ExpireOrder(ctx=ctx, order_id=order_id)).get()

    def expire_due(self, ctx: Context) -> list[OrderChange]:
        """Expire every reservation whose deadline has passed (the sweeper's one call): all
        due orders are handed to the writer at once, so they commit together."""
        catalog = self.reads.find(Catalog, CATALOG_ID)
        due = []
        for sku in catalog.skus if catalog else []:
            stock = self.reads.find(Stock, stock_id(sku))
            due += stock.expired_reservations(ctx.now) if stock else []
        expiries = [c.ExpireOrder(ctx=ctx, order_id=o) for o in due]
        if getattr(self._local, "batch", None) is not None:
            answers = [self.execute(command) for command in expiries]
        else:
            answers = self.writer.execute_all(expiries)
        return [v for v in (a.get() for a in answers) if isinstance(v, OrderChange)]

    def expire_validities(self, ctx: Context, limit: int = 500) -> int:
        """End every key, access and grant term due by now (the sweeper's other call): one
        `ExpireValidities` of at most `limit` due entries at a time, until none is left. How
        many ended."""
        ended, more = 0, True
        while more:
            swept = self.execute(c.ExpireValidities(ctx=ctx, limit=limit)).get()
            ended, more = ended + swept.ended, swept.more
        return ended

    def refund_order(self, ctx: Context, order_id: UUID, **fields: Any) -> OrderChange:
        return self.execute(c.RefundOrder(ctx=ctx, order_id=order_id, **fields)).get()

    # ---- supply ----

    def import_keys(self, ctx: Context, **fields: Any) -> Imported:
        return self.execute(c.ImportKeys(ctx=ctx, **fields)).get()

    def recall_batch(self, ctx: Context, batch_id: UUID, reason: str) -> Recalled:
        return self.execute(c.RecallBatch(ctx=ctx, batch_id=batch_id, reason=reason)).get()

    def redeem(self, ctx: Context, **fields: Any) -> Redeemed:
        return self.execute(c.Redeem(ctx=ctx, **fields)).get()

    def close(self) -> None:
        self.writer.close()
        self.app.close()


def open_ledger(settings: Settings | None = None, clock: Clock = utc_now, risk: RiskAssessor | None = None) -> Ledger:
    """A ledger over the store alone (tests, benches); a process is built by `shell.composition`."""
    settings = settings or Settings()
    app, master_key = build_app(settings)
    return Ledger(app, settings, CodeVault(master_key), clock=clock, risk=risk)
