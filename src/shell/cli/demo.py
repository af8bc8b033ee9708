"""`ledger demo`: a realistic store on a simulated clock, and what it adds up to."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shell.cli.common import composed, describe_store, fail, load_settings, out

if TYPE_CHECKING:
    from ledger.config import Settings
    from ledger.service.ledger import Ledger
    from shell.demo import SimClock


def demo(
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same store")] = 7,
    orders: Annotated[int, typer.Option(min=1, help="orders to simulate")] = 2000,
    reset: Annotated[bool, typer.Option(help="delete an existing SQLite demo store (and the checkpoints kept of "
                                               "it) first")] = False,
) -> None:
    """Seed a realistic store on a simulated clock, sell direct recharges through two simulated
    suppliers (one flaky), and print what it adds up to."""
    from audit.archive import CheckpointArchive
    from shell.demo import DEMO_REJECT_SCORE, SimClock, run_demo, store_is_empty, summarize

    settings = load_settings()
    if reset and not settings.is_postgres:
        path = Path(describe_store(settings))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        CheckpointArchive(settings.checkpoint_dir).clear()  # they signed the history just deleted
    clock = SimClock()
    # The demo's risk check: the fraud read model's verdict, armed through the settings.
    settings = settings.model_copy(update={"fraud_reject_score": DEMO_REJECT_SCORE})
    with composed(settings, clock, build=lambda parts: parts.ledger) as parts:
        ledger, generated = parts.ledger, parts.generated_key
        if not store_is_empty(ledger):
            hint = "" if settings.is_postgres else " (or pass --reset to delete it)"
            raise fail(f"the store at {describe_store(settings)} already holds events; the demo needs an empty "
                       f"one: point LEDGER_DATA_DIR or LEDGER_DATABASE_URL elsewhere{hint}")
        fraud = parts.runner(["fraud"])  # what the risk assessor reads: the demo keeps it current

        def refresh_risk() -> None:
            fraud.catch_up()

        started = time.perf_counter()
        with Progress(
            TextColumn("[bold]simulating orders"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=out, transient=False,
        ) as progress:
            task = progress.add_task("orders", total=orders)
            run = run_demo(ledger, clock, seed, orders, lambda n: progress.advance(task, n), refresh_risk)
        out.print("selling direct recharges through two simulated suppliers ...", markup=False, highlight=False)
        reconciled = _recharge(ledger, clock, seed, orders, settings)
        elapsed = time.perf_counter() - started
        fraud.close()
        summary = summarize(ledger, run.scalper_ids)
    _print_summary(summary, seed, orders, elapsed)
    out.print("supplier statements reconciled: " + ", ".join(
        f"{name} {n} difference{'' if n == 1 else 's'}" for name, n in reconciled.items()), markup=False,
        highlight=False)
    out.print(f"data: {describe_store(settings)}", markup=False, highlight=False, soft_wrap=True)
    if generated is not None:
        out.print(
            f"cipher key: generated on this run in {generated.resolve()} (mode 0600); the store is unreadable "
            "without it", markup=False, highlight=False, soft_wrap=True,
        )
    out.print("try: ledger history scalper-01", markup=False, highlight=False)


def _recharge(ledger: Ledger, clock: SimClock, seed: int, orders: int, settings: Settings) -> dict[str, int]:
    """Start the simulated suppliers (real `ledger upstream simulate` processes, seeded), sell
    through them, reconcile each one's statement, and stop them: differences per supplier."""
    import secrets
    from contextlib import ExitStack

    from shell.demo import SIMULATED_SUPPLIERS, reconcile_suppliers, run_upstream
    from shell.simulated import simulated_supplier

    secret = secrets.token_hex(32)  # the demo's suppliers' shared secret: sealed in the store, shown nowhere
    with ExitStack() as running:
        urls = {name: running.enter_context(simulated_supplier(secret, "--seed", str(seed), *options))
                for name, options in SIMULATED_SUPPLIERS}
        try:
            run_upstream(ledger, clock, seed, orders, urls, secret, settings)
        except RuntimeError as error:
            raise fail(f"the simulated suppliers did not settle every recharge: {error}") from None
        return reconcile_suppliers(ledger, urls, secret)


def _money(amount: Decimal) -> str:
    from ledger.domain.money import format_amount
    from shell.demo import CURRENCY  # the demo sells in one currency

    return f"{format_amount(amount, CURRENCY)} {CURRENCY}"


def _print_summary(s: Any, seed: int, orders: int, elapsed: float) -> None:
    table = Table(title=f"demo summary (seed {seed}, {orders} orders, {elapsed:.1f} s)", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("events written", f"{s.events:,}"),
        ("orders", f"{s.orders:,}"),
    ]
    rows += [(f"  {status}", f"{n:,}") for status, n in s.orders_by_status.items()]
    rows += [
        ("units sold", f"{s.units_sold:,}"),
        ("keys delivered", f"{s.keys_delivered:,}"),
        ("distinct keys delivered", f"{s.distinct_keys_delivered:,}"),
        ("keys in two orders", f"{s.keys_in_two_orders:,}"),
        ("keys redeemed", f"{s.keys_redeemed:,}"),
        ("keys revoked (refunds)", f"{s.keys_revoked:,}"),
        ("keys voided (recall)", f"{s.keys_voided:,}"),
        ("payments captured", f"{s.payments_captured:,}"),
        ("revenue (captured)", _money(s.revenue)),
        ("discounts", _money(s.discounts)),
        ("refunds", _money(s.refunds)),
        ("cost of goods sold", _money(s.cost_of_goods_sold)),
        ("gross profit", _money(s.gross_profit)),
    ]
    for what, value in rows:
        table.add_row(what, value)
    out.print(table)
    upstream = Table(title="recharges and access", show_header=False)
    upstream.add_column("what")
    upstream.add_column("value", justify="right")
    upstream_rows = [
        ("recharges sold", s.recharges_sold),
        ("recharges delivered", s.recharges_delivered),
        ("recharges refunded", s.recharges_refunded),
        # These two vary by run: the simulators draw on request ids made from random order ids.
        *((f"attempts at {name}", n) for name, n in s.attempts_by_supplier.items()),
        ("answers lost, then asked for", s.answers_lost),
        ("access granted (no stock)", s.access_granted),
    ]
    for what, n in upstream_rows:
        upstream.add_row(what, f"{n:,}")
    out.print(upstream)
    rejections = Table(title="rejections by reason")
    rejections.add_column("reason")
    rejections.add_column("all", justify="right")
    rejections.add_column("scalper", justify="right")
    for reason, n in s.rejections.items():
        rejections.add_row(reason, f"{n:,}", f"{s.scalper_rejections.get(reason, 0):,}")
    out.print(rejections)
