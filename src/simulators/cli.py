"""`upstream simulate`: run a simulated recharge supplier (docs/upstream.md).

`upstream_app` is a typer app the ledger's CLI mounts as `ledger upstream`; on its own:
`python -m simulators.cli simulate --port 0 --secret S`. The one line on stdout is
`listening on http://HOST:PORT`; the request log goes to stderr."""

from __future__ import annotations

import logging
import secrets
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

SECRET_ENV = "UPSTREAM_SIM_SECRET"

upstream_app = typer.Typer(help="A simulated recharge supplier (docs/upstream.md).", no_args_is_help=True,
                           add_completion=False, pretty_exceptions_enable=False)


@upstream_app.callback()
def upstream() -> None:
    """Direct recharge suppliers: the protocol of docs/upstream.md."""


def _decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise typer.BadParameter("must be a number, 0 or more")
    return value



@upstream_app.command()
def simulate(
    secret: Annotated[str, typer.Option(envvar=SECRET_ENV, show_envvar=True,
                                        help="the shared HMAC secret (prefer the environment variable)")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on; 0: a free one (printed)")] = 0,
    fail_rate: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="fraction of requests that end failed (supplier_error, retryable)")] = 0.0,
    timeout_rate: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="fraction of answers lost: handled and recorded, connection held unanswered")] = 0.0,
    drop_rate: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="fraction of requests not received: connection closed, nothing recorded")] = 0.0,
    latency_ms: Annotated[int, typer.Option(min=0, help="delay before answering a recharge POST or GET")] = 0,
    callback_delay_ms: Annotated[int, typer.Option(
        min=0, help="> 0: answer 202 pending and decide after this; 0: decide at once, answer 200")] = 0,
    reverse_rate: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="fraction of successes taken back later (reversed, with a callback)")] = 0.0,
    reverse_delay_ms: Annotated[int, typer.Option(min=0, help="how long after the success a reversal comes")] = 1000,
    balance: Annotated[str | None, typer.Option(
        help="prepaid balance; a charge that would exceed it fails insufficient_balance (default: none)")] = None,
    cost_rate: Annotated[str, typer.Option(help="charged = amount x this, rounded half-up to the cent")] = "1.0",
    products: Annotated[str | None, typer.Option(
        help="comma-separated products sold; others fail product_unknown (default: every product)")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of every random decision (default: a random one, logged)")]
    = None,
    record: Annotated[Path | None, typer.Option(
        help="JSON-lines file of every state change: appended to, and folded back on start")] = None,
) -> None:
    """Serve the supplier's API until Ctrl-C / SIGTERM."""
    from simulators.behaviour import Behaviour
    from simulators.upstream import serve

    if not secret:
        raise typer.BadParameter("must not be empty", param_hint="--secret")
    rate = _decimal(cost_rate)
    if rate is None or rate == 0:
        raise typer.BadParameter("must be more than 0", param_hint="--cost-rate")
    sold = frozenset(p.strip() for p in products.split(",") if p.strip()) if products is not None else None
    behaviour = Behaviour(
        seed=seed if seed is not None else secrets.randbits(63), fail_rate=fail_rate, timeout_rate=timeout_rate,
        drop_rate=drop_rate, latency_ms=latency_ms, callback_delay_ms=callback_delay_ms, reverse_rate=reverse_rate,
        reverse_delay_ms=reverse_delay_ms, balance=_decimal(balance), cost_rate=rate, products=sold,
    )
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for chatty in ("httpx", "httpcore"):  # their INFO lines would show every callback URL
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        serve(behaviour, secret, host, port, record)
    except (RuntimeError, ValueError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


if __name__ == "__main__":
    upstream_app()
