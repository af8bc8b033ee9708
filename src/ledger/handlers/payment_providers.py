"""Payment providers: the one command that registers one or changes its signing secret."""

from __future__ import annotations

from ledger.commands import SetPaymentProvider
from ledger.domain.errors import InvalidInput
from ledger.domain.ids import payment_provider_id
from ledger.domain.payment_providers import PaymentProvider
from ledger.handlers import inputs
from ledger.results import Written
from ledger.writer.session import Session


def set_payment_provider(cmd: SetPaymentProvider, uow: Session) -> Written:
    inputs.sku(cmd.name, "name")  # it names a route: /v1/payment-providers/{name}/webhooks
    inputs.sku(cmd.scheme, "scheme")
    secret = inputs.text(cmd.secret, "secret")
    if len(secret) < 16:
        raise InvalidInput("secret", "at least 16 characters")
    sealed = uow.vault.provider_secrets.seal(secret)
    provider = uow.find(PaymentProvider, payment_provider_id(cmd.name))
    if provider is None:
        provider = PaymentProvider.register(cmd.ctx, cmd.name, cmd.scheme, sealed)
        uow.add(provider)
    else:
        provider.change(cmd.ctx, cmd.scheme, sealed)
    return Written(provider.id, 0)
