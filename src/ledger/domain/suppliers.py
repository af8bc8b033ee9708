"""Upstream suppliers that fulfil direct recharges and platform grants through their API, and
the prepaid float the merchant keeps with each.

A supplier's secret is sealed before it is recorded (`ledger.vault`); the base URL, timeouts
and concurrency are plain settings. The float is money paid to the supplier in advance: an
attempt holds its cost while it is outstanding, a success turns the hold into a charge (of
what the supplier says it charged), a failure releases it, and a reversal gives the charge
back. Routing never sends an attempt the float cannot cover.
"""

from __future__ import annotations

from decimal import Decimal

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.errors import InvalidInput, InvalidOrderState
from ledger.domain.ids import SUPPLIER_LIST_ID, settlement_id, supplier_id


class Supplier(LedgerAggregate):
    """One upstream supplier: where to reach it, how hard to push it, and its prepaid float."""

    class Registered(LedgerAggregate.Created):
        """An upstream supplier was registered: its API's base URL, sealed secret, limits and float currency."""

        name: str
        base_url: str
        secret_sealed: str
        currency: str
        timeout_ms: int
        concurrency: int

    class Changed(LedgerAggregate.Event):
        """A supplier's connection settings changed (base URL, secret, timeout, concurrency)."""

        base_url: str
        secret_sealed: str
        timeout_ms: int
        concurrency: int

        def apply(self, supplier: Supplier) -> None:
            supplier.base_url = self.base_url
            supplier.secret_sealed = self.secret_sealed
            supplier.timeout_ms = self.timeout_ms
            supplier.concurrency = self.concurrency

    class FloatFunded(LedgerAggregate.Event):
        """Money was prepaid to the supplier: its float grew by the amount."""

        amount: Decimal
        reference: str

        def apply(self, supplier: Supplier) -> None:
            supplier.funded += self.amount
            if supplier.available > supplier.low_float_threshold:
                supplier.low_float = False  # refilled: the next crossing alerts again

    class LowFloatThresholdSet(LedgerAggregate.Event):
        """Below this much available float, an alert fires (once per crossing; 0: never)."""

        threshold: Decimal

        def apply(self, supplier: Supplier) -> None:
            supplier.low_float_threshold = self.threshold
            if supplier.available > self.threshold:
                supplier.low_float = False

    class FloatLow(LedgerAggregate.Event):
        """The available float fell to the threshold: fund the supplier before routing has to skip it."""

        available: Decimal
        threshold: Decimal

        def apply(self, supplier: Supplier) -> None:
            supplier.low_float = True

    class FloatHeld(LedgerAggregate.Event):
        """An attempt was sent: its expected cost is held on the float until it ends."""

        attempt_id: str
        amount: Decimal

        def apply(self, supplier: Supplier) -> None:
            supplier.holds[self.attempt_id] = self.amount

    class FloatReleased(LedgerAggregate.Event):
        """An attempt failed: what it held on the float is free again."""

        attempt_id: str

        def apply(self, supplier: Supplier) -> None:
            supplier.holds.pop(self.attempt_id, None)

    class Charged(LedgerAggregate.Event):
        """An attempt succeeded: the supplier charged the float what it says it charged."""

        attempt_id: str
        amount: Decimal

        def apply(self, supplier: Supplier) -> None:
            supplier.holds.pop(self.attempt_id, None)
            supplier.charged += self.amount

    class ChargeReversed(LedgerAggregate.Event):
        """A success the supplier took back later: its charge went back to the float."""

        attempt_id: str
        amount: Decimal

        def apply(self, supplier: Supplier) -> None:
            supplier.charged -= self.amount

    def __init__(self, name: str, base_url: str, secret_sealed: str, currency: str, timeout_ms: int,
                 concurrency: int) -> None:
        self.name = name
        self.base_url = base_url
        self.secret_sealed = secret_sealed
        self.currency = currency
        self.timeout_ms = timeout_ms
        self.concurrency = concurrency
        self.funded = Decimal(0)
        self.charged = Decimal(0)
        self.low_float_threshold = Decimal(0)
        self.low_float = False  # the alert fired and the float was not refilled above the threshold since
        # Outstanding attempt -> cost held: only open attempts, so the state never grows with use.
        self.holds: dict[str, Decimal] = {}

    @classmethod
    def register(cls, ctx: Context, name: str, base_url: str, secret_sealed: str, currency: str, timeout_ms: int,
                 concurrency: int) -> Supplier:
        return cls._start(cls.Registered, supplier_id(name), ctx, name=name, base_url=base_url,
                          secret_sealed=secret_sealed, currency=currency, timeout_ms=timeout_ms,
                          concurrency=concurrency)

    @property
    def held(self) -> Decimal:
        """What outstanding attempts hold on the float."""
        return sum(self.holds.values(), Decimal(0))

    @property
    def available(self) -> Decimal:
        """What the float can still cover: funded, less charged, less held by outstanding attempts."""
        return self.funded - self.charged - self.held

    def change(self, ctx: Context, base_url: str, secret_sealed: str, timeout_ms: int, concurrency: int) -> None:
        self._emit(self.Changed, ctx, base_url=base_url, secret_sealed=secret_sealed, timeout_ms=timeout_ms,
                   concurrency=concurrency)

    def fund(self, ctx: Context, amount: Decimal, reference: str) -> None:
        if amount <= 0:
            raise InvalidInput("amount", "must be greater than zero")
        self._emit(self.FloatFunded, ctx, amount=amount, reference=reference)

    def hold(self, ctx: Context, attempt_id: str, amount: Decimal) -> None:
        if amount > self.available:
            raise InvalidOrderState(f"supplier {self.name}'s float cannot cover {amount}")
        self._emit(self.FloatHeld, ctx, attempt_id=attempt_id, amount=amount)
        self._check_low(ctx)

    def release(self, ctx: Context, attempt_id: str) -> None:
        if attempt_id in self.holds:
            self._emit(self.FloatReleased, ctx, attempt_id=attempt_id)

    def charge(self, ctx: Context, attempt_id: str, amount: Decimal) -> None:
        self._emit(self.Charged, ctx, attempt_id=attempt_id, amount=amount)
        self._check_low(ctx)

    def set_low_float(self, ctx: Context, threshold: Decimal) -> None:
        """A threshold the float is already under alerts at once."""
        self._emit(self.LowFloatThresholdSet, ctx, threshold=threshold)
        self._check_low(ctx)

    def _check_low(self, ctx: Context) -> None:
        """One alert per downward crossing of the threshold, as low stock alerts."""
        if self.low_float_threshold > 0 and not self.low_float and self.available <= self.low_float_threshold:
            self._emit(self.FloatLow, ctx, available=self.available, threshold=self.low_float_threshold)

    def reverse(self, ctx: Context, attempt_id: str, amount: Decimal) -> None:
        """`amount`: what the attempt was charged (the fulfilment records it)."""
        self._emit(self.ChargeReversed, ctx, attempt_id=attempt_id, amount=amount)


class SupplierList(LedgerAggregate):
    """The names of every upstream supplier, in the order they were registered: for listings."""

    class Opened(LedgerAggregate.Created):
        """The list of upstream suppliers was started (with the first one)."""

    class Listed(LedgerAggregate.Event):
        """An upstream supplier was added to the list."""

        name: str

        def apply(self, suppliers: SupplierList) -> None:
            suppliers.names.append(self.name)

    def __init__(self) -> None:
        self.names: list[str] = []

    @classmethod
    def open(cls, ctx: Context) -> SupplierList:
        return cls._start(cls.Opened, SUPPLIER_LIST_ID, ctx)

    def add(self, ctx: Context, name: str) -> None:
        if name not in self.names:
            self._emit(self.Listed, ctx, name=name)


class Settlement(LedgerAggregate):
    """A payment to a supplier that settles what the merchant owes it (card-key batches bought on
    credit): recorded once, by its payment reference."""

    class Recorded(LedgerAggregate.Created):
        """The merchant paid a supplier: the amount, the payment reference, the statement period it settles."""

        supplier: str
        amount: Decimal
        currency: str
        reference: str
        period: str

    def __init__(self, supplier: str, amount: Decimal, currency: str, reference: str, period: str) -> None:
        self.supplier = supplier
        self.amount = amount
        self.currency = currency
        self.reference = reference
        self.period = period

    @classmethod
    def record(cls, ctx: Context, supplier: str, amount: Decimal, currency: str, reference: str,
               period: str) -> Settlement:
        return cls._start(cls.Recorded, settlement_id(reference), ctx, supplier=supplier, amount=amount,
                          currency=currency, reference=reference, period=period)
