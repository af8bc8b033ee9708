"""Payment providers whose signed callbacks confirm payments (`POST /v1/payment-providers/{name}/webhooks`).

A provider's signing secret is sealed before it is recorded (`ledger.vault`), like a supplier's;
`scheme` names the adapter that checks its callbacks (`api.payment_providers`)."""

from __future__ import annotations

from ledger.domain.base import LedgerAggregate
from ledger.domain.context import Context
from ledger.domain.ids import payment_provider_id


class PaymentProvider(LedgerAggregate):
    """One payment provider: the scheme its callbacks are signed by, and its sealed secret."""

    class Registered(LedgerAggregate.Created):
        """A payment provider was registered: the scheme of its signed callbacks and its sealed secret."""

        name: str
        scheme: str
        secret_sealed: str

    class SecretChanged(LedgerAggregate.Event):
        """A payment provider's signing secret (or its scheme) changed: callbacks signed otherwise are refused."""

        scheme: str
        secret_sealed: str

        def apply(self, provider: PaymentProvider) -> None:
            provider.scheme = self.scheme
            provider.secret_sealed = self.secret_sealed

    def __init__(self, name: str, scheme: str, secret_sealed: str) -> None:
        self.name = name
        self.scheme = scheme
        self.secret_sealed = secret_sealed

    @classmethod
    def register(cls, ctx: Context, name: str, scheme: str, secret_sealed: str) -> PaymentProvider:
        return cls._start(cls.Registered, payment_provider_id(name), ctx, name=name, scheme=scheme,
                          secret_sealed=secret_sealed)

    def change(self, ctx: Context, scheme: str, secret_sealed: str) -> None:
        self._emit(self.SecretChanged, ctx, scheme=scheme, secret_sealed=secret_sealed)
