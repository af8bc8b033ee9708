"""What suppliers deliver: batches of card keys at a unit cost, and each key's life."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.errors import (
    AlreadyRedeemed,
    BatchAlreadyRecalled,
    InvalidOrderState,
    KeyExpired,
    KeyNotDelivered,
    KeyRevoked,
    KeyVoided,
    RedeemedKeyRefund,
    WrongPlatform,
)
from ledger.domain.ids import redeemer_id


class Batch(LedgerAggregate):
    """A supplier batch: keys bought for one SKU at one unit cost."""

    class Received(LedgerAggregate.Created):
        """A supplier batch arrived for a SKU at a unit cost, with the ids of its keys."""

        sku: str
        supplier: str
        unit_cost: Decimal
        currency: str
        key_ids: list[UUID]

    class Recalled(LedgerAggregate.Event):
        """The supplier recalled the batch; its undelivered keys were voided."""

        reason: str
        voided_key_ids: list[UUID]

        def apply(self, batch: Batch) -> None:
            batch.recalled = True

    def __init__(self, sku: str, supplier: str, unit_cost: Decimal, currency: str, key_ids: list[UUID]) -> None:
        self.sku = sku
        self.supplier = supplier
        self.unit_cost = unit_cost
        self.currency = currency
        self.key_ids = list(key_ids)
        self.recalled = False

    @classmethod
    def receive(
        cls, ctx: Context, batch_id: UUID, sku: str, supplier: str, unit_cost: Decimal, currency: str,
        key_ids: list[UUID],
    ) -> Batch:
        return cls._start(
            cls.Received, batch_id, ctx, sku=sku, supplier=supplier, unit_cost=unit_cost,
            currency=currency, key_ids=key_ids,
        )

    def recall(self, ctx: Context, reason: str, voided_key_ids: list[UUID]) -> None:
        if self.recalled:
            raise BatchAlreadyRecalled(f"batch {self.id} was already recalled", batch_id=str(self.id))
        self._emit(self.Recalled, ctx, reason=reason, voided_key_ids=voided_key_ids)


class KeyStatus(StrEnum):
    IN_STOCK = "in_stock"  # available or reserved: the SKU's Stock knows which
    DELIVERED = "delivered"
    REDEEMED = "redeemed"
    REVOKED = "revoked"
    VOIDED = "voided"
    EXPIRED = "expired"  # delivered, never redeemed, past its product's validity


class Key(LedgerAggregate):
    """One card key. Its id is derived from the keyed hash of its code; the code itself
    is only ever held here as ciphertext, sealed by the application layer."""

    class Registered(LedgerAggregate.Created):
        """A key entered the ledger: its code sealed, its keyed hash kept for lookup."""

        batch_id: UUID
        sku: str
        supplier: str
        unit_cost: Decimal
        platform: str | None
        code_hmac: str
        sealed_code: str

    class Delivered(LedgerAggregate.Event):
        """The key was handed to the order that paid for it. Once, ever."""

        order_id: UUID

        def apply(self, key: Key) -> None:
            key.status = KeyStatus.DELIVERED
            key.order_id = self.order_id

    class Redeemed(LedgerAggregate.Event):
        """The buyer's account redeemed the key on a platform."""

        account_id: str
        platform: str | None

        def apply(self, key: Key) -> None:
            key.status = KeyStatus.REDEEMED
            key.redeemed_by = self.account_id

    class Revoked(LedgerAggregate.Event):
        """A refund revoked the key; it never returns to stock."""

        order_id: UUID
        reason: str
        was_redeemed: bool
        override: bool

        def apply(self, key: Key) -> None:
            key.status = KeyStatus.REVOKED

    class Voided(LedgerAggregate.Event):
        """A supplier recall voided the key before it was sold."""

        reason: str

        def apply(self, key: Key) -> None:
            key.status = KeyStatus.VOIDED

    class Expired(LedgerAggregate.Event):
        """The delivered key was not redeemed within its product's validity: it can no longer be.
        `value`: what the buyer paid for it (a unit of the order), the breakage finance reports."""

        order_id: UUID
        due: datetime
        value: Decimal
        currency: str

        def apply(self, key: Key) -> None:
            key.status = KeyStatus.EXPIRED

    def __init__(
        self, batch_id: UUID, sku: str, supplier: str, unit_cost: Decimal, platform: str | None,
        code_hmac: str, sealed_code: str,
    ) -> None:
        self.batch_id = batch_id
        self.sku = sku
        self.supplier = supplier
        self.unit_cost = unit_cost
        self.platform = platform
        self.code_hmac = code_hmac
        self.sealed_code = sealed_code
        self.status = KeyStatus.IN_STOCK
        self.order_id: UUID | None = None
        self.redeemed_by: str | None = None

    @classmethod
    def register(
        cls, ctx: Context, key_id: UUID, batch_id: UUID, sku: str, supplier: str, unit_cost: Decimal,
        platform: str | None, code_hmac: str, sealed_code: str,
    ) -> Key:
        return cls._start(
            cls.Registered, key_id, ctx, batch_id=batch_id, sku=sku, supplier=supplier,
            unit_cost=unit_cost, platform=platform, code_hmac=code_hmac, sealed_code=sealed_code,
        )

    @classmethod
    def delivery(cls, ctx: Context, key_id: UUID, order_id: UUID) -> Key.Delivered:
        """The delivery of a key that is not loaded. A key in stock has one event, its
        registration (reserving and releasing it are the Stock's events), so delivery is its
        second; the store's version check refuses it if that was ever not so. The writer
        then need not read a million keys to sell them."""
        return cls.Delivered(  # type: ignore[call-arg]
            originator_id=key_id, originator_version=2, timestamp=ctx.now, meta=ctx.meta(), order_id=order_id,
        )

    def deliver(self, ctx: Context, order_id: UUID) -> None:
        # A key leaves stock once, ever: delivery to a second order is a bug upstream.
        if self.status != KeyStatus.IN_STOCK:
            raise InvalidOrderState(f"key {self.id} is {self.status}, cannot be delivered")
        self._emit(self.Delivered, ctx, order_id=order_id)

    def redeem(self, ctx: Context, account_id: str, platform: str | None) -> None:
        if self.status == KeyStatus.IN_STOCK:
            raise KeyNotDelivered("this code has not been sold yet")
        if self.status == KeyStatus.REDEEMED:
            raise AlreadyRedeemed("this code was already redeemed")
        if self.status == KeyStatus.REVOKED:
            raise KeyRevoked("this code was revoked")
        if self.status == KeyStatus.VOIDED:
            raise KeyVoided("this code was voided by its supplier")
        if self.status == KeyStatus.EXPIRED:
            raise KeyExpired("this code has expired")
        if self.platform and platform and platform != self.platform:
            raise WrongPlatform(f"this code is for {self.platform}", platform=self.platform)
        self._emit(self.Redeemed, ctx, account_id=account_id, platform=platform or self.platform)

    def revoke(self, ctx: Context, order_id: UUID, reason: str, override: bool) -> None:
        if self.status not in (KeyStatus.DELIVERED, KeyStatus.REDEEMED) or self.order_id != order_id:
            raise InvalidOrderState(f"key {self.id} was not delivered to order {order_id}")
        was_redeemed = self.status == KeyStatus.REDEEMED
        if was_redeemed and not override:
            raise RedeemedKeyRefund(
                f"key {self.id} was already redeemed; refunding it needs an explicit override",
                key_id=str(self.id),
            )
        self._emit(self.Revoked, ctx, order_id=order_id, reason=reason, was_redeemed=was_redeemed, override=override)

    def expire(self, ctx: Context, due: datetime, value: Decimal, currency: str) -> bool:
        """Only a delivered key that was never redeemed expires, and only once its time has come;
        a redeemed, revoked or voided one never does (False: nothing to do)."""
        if self.status != KeyStatus.DELIVERED or ctx.now < due:
            return False
        assert self.order_id is not None
        self._emit(self.Expired, ctx, order_id=self.order_id, due=due, value=value, currency=currency)
        return True

    def void(self, ctx: Context, reason: str) -> None:
        if self.status != KeyStatus.IN_STOCK:
            raise InvalidOrderState(f"key {self.id} is {self.status}, only keys in stock can be voided")
        self._emit(self.Voided, ctx, reason=reason)


class Redeemer(LedgerAggregate):
    """An account that redeems codes: its refused attempts are recorded (the rule that refused,
    never the code), so that support and risk can see code guessing."""

    class Opened(LedgerAggregate.Created):
        """An account was first refused a redemption."""

        account_id: str

    class Refused(LedgerAggregate.Event):
        """A redemption by this account was refused, and by which rule (the code itself is not kept)."""

        rule: str
        platform: str | None

        def apply(self, redeemer: Redeemer) -> None:
            redeemer.refused += 1

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.refused = 0

    @classmethod
    def open(cls, ctx: Context, account_id: str) -> Redeemer:
        return cls._start(cls.Opened, redeemer_id(account_id), ctx, account_id=account_id)

    def refuse(self, ctx: Context, rule: str, platform: str | None) -> None:
        self._emit(self.Refused, ctx, rule=rule, platform=platform)
