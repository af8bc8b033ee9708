"""Recipient accounts of upstream products: masked for every role but support, and indexed by
their keyed hash so that support finds an account's orders without the account in clear."""

from __future__ import annotations

from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.ids import recipient_id


def mask(account: str) -> str:
    """Enough to recognise, not enough to use: `13812345678` -> `138****5678`,
    `ann@example.com` -> `ann****.com`; short accounts keep only their first and last character."""
    if len(account) >= 8:
        return f"{account[:3]}****{account[-4:]}"
    if len(account) >= 3:
        return f"{account[0]}****{account[-1]}"
    return "****"


class Recipient(LedgerAggregate):
    """The orders placed for one recipient account, known only by the account's keyed hash:
    support's search by account. Written with the order, in the same transaction."""

    class Opened(LedgerAggregate.Created):
        """An order first named this recipient account (kept as its keyed hash only)."""

        account_hmac: str

    class OrderNamed(LedgerAggregate.Event):
        """An order was placed for this recipient account."""

        order_id: UUID

        def apply(self, recipient: Recipient) -> None:
            recipient.order_ids.append(self.order_id)

    def __init__(self, account_hmac: str) -> None:
        self.account_hmac = account_hmac
        self.order_ids: list[UUID] = []

    @classmethod
    def open(cls, ctx: Context, account_hmac: str) -> Recipient:
        return cls._start(cls.Opened, recipient_id(account_hmac), ctx, account_hmac=account_hmac)

    def name(self, ctx: Context, order_id: UUID) -> None:
        self._emit(self.OrderNamed, ctx, order_id=order_id)
