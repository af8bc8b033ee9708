"""`ledger suppliers ...` and `ledger offers ...`: upstream suppliers, their floats and settlements,
and which supplier fulfils which product at what cost.

A supplier's secret is read from an environment variable (`--secret-env VAR`) or typed at a
hidden prompt: never an argument, which would land in the shell's history and in `ps`."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from shell.cli.common import composed, fail, load_settings, note_generated_key, out, say

suppliers = typer.Typer(help="Upstream suppliers of direct recharges and platform grants: connection, float, "
                             "settlements.", no_args_is_help=True)
offers = typer.Typer(help="Which supplier fulfils an upstream product, under what code, at what cost.",
                     no_args_is_help=True)


def _run(command_class: Any, **fields: Any) -> Any:
    """Run one command on the store of the environment's settings; a refusal exits 1 naming the field."""
    with composed(load_settings(), build=lambda parts: parts.ledger) as parts:
        note_generated_key(parts.generated_key)
        ledger = parts.ledger
        return ledger.execute(command_class(ctx=ledger.context("cli"), **fields)).get()


def _secret(env: str | None) -> str:
    if env is None:
        return str(typer.prompt("secret", hide_input=True))
    value = os.environ.get(env)
    if not value:
        raise fail(f"secret: the environment variable {env} is not set (or empty)")
    return value


@suppliers.command("set")
def set_supplier(
    name: Annotated[str, typer.Argument(help="the supplier's name: letters, digits, '.', '_', '-'")],
    base_url: Annotated[str, typer.Option(help="its API's base URL, e.g. https://supplier.example/api")],
    currency: Annotated[str, typer.Option(help="the float's currency (ISO 4217); fixed once registered")],
    secret_env: Annotated[str | None, typer.Option(
        help="the environment variable holding the shared secret; without it, a hidden prompt asks")] = None,
    timeout_ms: Annotated[int, typer.Option(help="how long to wait for an answer")] = 5000,
    concurrency: Annotated[int, typer.Option(help="requests in flight at most")] = 8,
) -> None:
    """Register a supplier, or change its connection settings (its float stays)."""
    from ledger.commands import SetSupplier

    secret = _secret(secret_env)
    written = _run(SetSupplier, name=name, base_url=base_url, secret=secret, currency=currency,
                   timeout_ms=timeout_ms, concurrency=concurrency)
    say(f"supplier {name} set (log position {written.position}); its secret is sealed and never shown")


@suppliers.command("fund")
def fund_supplier(
    name: Annotated[str, typer.Argument(help="the supplier")],
    amount: Annotated[str, typer.Argument(help="money prepaid to it, e.g. 5000.00, in its float's currency")],
    reference: Annotated[str, typer.Option(help="the transfer's reference")],
) -> None:
    """Record money prepaid to a supplier: its float grows."""
    from ledger.commands import FundSupplier

    written = _run(FundSupplier, name=name, amount=amount, reference=reference)
    say(f"supplier {name} funded with {amount} (log position {written.position})")


@suppliers.command("low-float")
def low_float(
    name: Annotated[str, typer.Argument(help="the supplier")],
    threshold: Annotated[str, typer.Argument(help="alert when its available float falls to this; 0: never")],
) -> None:
    """Set the supplier's low-float alert: one alert per crossing, again after a refill above it."""
    from ledger.commands import SetLowFloat

    written = _run(SetLowFloat, name=name, threshold=threshold)
    say(f"supplier {name}: low-float alert at {threshold} (log position {written.position})")


@suppliers.command("settle")
def settle_supplier(
    name: Annotated[str, typer.Argument(help="the supplier paid (an upstream or a card-key supplier)")],
    amount: Annotated[str, typer.Argument(help="the amount paid, e.g. 1200.00")],
    currency: Annotated[str, typer.Option(help="its currency (ISO 4217)")],
    reference: Annotated[str, typer.Option(help="the payment's reference: recorded once")],
    period: Annotated[str, typer.Option(help="the statement it settles, e.g. 2026-11")] = "",
) -> None:
    """Record a payment to a supplier against what is owed to it (once per reference)."""
    from ledger.commands import SettleSupplier

    written = _run(SettleSupplier, supplier=name, amount=amount, currency=currency, reference=reference,
                   period=period)
    say(f"settlement {reference} to {name} recorded (log position {written.position})")


@suppliers.command("list")
def list_suppliers() -> None:
    """Every supplier: where it is, its float, attempts outstanding and offers. Never its secret."""
    from ledger.domain.money import format_amount

    with composed(load_settings(), build=lambda parts: parts.ledger) as parts:
        reads = parts.ledger.reads
        found = reads.suppliers()
        offered: dict[str, list[str]] = {}
        for product in reads.products():
            for name, offer in product.offers.items():
                offered.setdefault(name, []).append(
                    f"{product.sku} as {offer['supplier_product']} at {format_amount(offer['cost'], product.currency)}")
    if not found:
        say("no suppliers yet: ledger suppliers set NAME --base-url URL --currency CUR --secret-env VAR")
        return
    table = Table(title="suppliers")
    for column in ("name", "base url", "currency", "funded", "charged", "held", "available", "outstanding",
                   "timeout ms", "concurrency", "offers"):
        table.add_column(column, justify="right" if column in ("funded", "charged", "held", "available",
                                                               "outstanding", "timeout ms", "concurrency") else "left")
    for s in found:
        held = sum(s.holds.values(), Decimal(0))
        money = [format_amount(v, s.currency) for v in (s.funded, s.charged, held, s.available)]
        table.add_row(s.name, s.base_url, s.currency, *money, str(len(s.holds)), str(s.timeout_ms),
                      str(s.concurrency), "; ".join(offered.get(s.name, [])) or "-")
    out.print(table)


@offers.command("set")
def set_offer(
    sku: Annotated[str, typer.Argument(help="an upstream product (direct_recharge, platform_grant)")],
    supplier: Annotated[str, typer.Argument(help="the supplier")],
    product: Annotated[str, typer.Option(help="the supplier's own code for the product")],
    cost: Annotated[str, typer.Option(help="what one unit costs there, in the product's currency")],
    priority: Annotated[int, typer.Option(help="among equal costs, lower goes first")] = 0,
) -> None:
    """Offer SKU through SUPPLIER (or change its offer): routing sends to the cheapest healthy one."""
    from ledger.commands import SetOffer

    written = _run(SetOffer, sku=sku, supplier=supplier, supplier_product=product, cost=cost, priority=priority)
    say(f"{supplier} offers {sku} as {product} at {cost} (log position {written.position})")


@offers.command("remove")
def remove_offer(
    sku: Annotated[str, typer.Argument(help="the product")],
    supplier: Annotated[str, typer.Argument(help="the supplier whose offer ends")],
) -> None:
    """Stop sending SKU to SUPPLIER (an attempt already sent there is still resolved)."""
    from ledger.commands import RemoveOffer

    written = _run(RemoveOffer, sku=sku, supplier=supplier)
    say(f"{supplier} no longer offers {sku} (log position {written.position})")
