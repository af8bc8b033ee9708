"""`ledger payments ...`: the payment providers whose signed callbacks confirm payments.

A provider's secret is read from an environment variable (`--secret-env VAR`) or typed at a
hidden prompt: never an argument, which would land in the shell's history and in `ps`. It is
checked against its scheme, sealed, and never printed."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from shell.cli.common import composed, fail, load_settings, note_generated_key, say

payments = typer.Typer(help="Payment providers: who may confirm a payment by a signed callback.",
                       no_args_is_help=True)


@payments.command("set-provider")
def set_provider(
    name: Annotated[str, typer.Argument(help="the provider's name, as in /v1/payment-providers/{name}/webhooks")],
    scheme: Annotated[str, typer.Option(help="how its callbacks are signed")] = "standard-webhooks",
    secret_env: Annotated[str | None, typer.Option(
        help="the environment variable holding its signing secret (whsec_...); without it, a hidden prompt asks")]
    = None,
) -> None:
    """Register a payment provider, or change its signing secret: its callbacks confirm payments."""
    from api.payment_providers import adapter
    from ledger.commands import SetPaymentProvider

    secret = str(typer.prompt("secret", hide_input=True)) if secret_env is None else os.environ.get(secret_env, "")
    if not secret:
        raise fail(f"secret: the environment variable {secret_env} is not set (or empty)")
    try:
        adapter(scheme, secret)
    except ValueError as error:
        raise fail(f"secret: {error}") from None
    with composed(load_settings(), build=lambda parts: parts.ledger) as parts:
        note_generated_key(parts.generated_key)
        ledger = parts.ledger
        written = ledger.execute(SetPaymentProvider(ctx=ledger.context("cli"), name=name, scheme=scheme,
                                                    secret=secret)).get()
    say(f"payment provider {name} set (log position {written.position}); its secret is sealed and never shown")
