"""The `ledger` command: demo, import-keys, history, expire and bench.

Settings come from the environment (LEDGER_DATABASE_URL, LEDGER_DATA_DIR, ...). Domain
errors print `error: <message>` on stderr and exit 1. Card-key codes are never printed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, ClassVar
from uuid import UUID

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledger.config import Settings, resolve_cipher_key
from ledger.domain.errors import DomainError, ImportRejected
from ledger.domain.money import format_amount
from ledger.keyfile import read_codes, read_lines
from ledger.service.ledger import Clock, Ledger, open_ledger, utc_now

app = typer.Typer(
    name="ledger",
    help="Event-sourced order and entitlement ledger for digital goods and card keys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
if not out.is_terminal:
    out = Console(width=160)  # piped or captured: do not squeeze tables into 80 columns
err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(f"LEDGER_{'.'.join(map(str, x['loc'])).upper()}: {x['msg']}" for x in e.errors())
        raise fail(problems) from None


@contextmanager
def opened(settings: Settings, clock: Clock = utc_now) -> Iterator[tuple[Ledger, Path | None]]:
    """The ledger, and where its master key was generated if that happened just now."""
    try:
        _, generated = resolve_cipher_key(settings)
        ledger = open_ledger(settings, clock=clock)
    except (ValueError, OSError) as e:
        raise fail(f"cannot open the store at {describe_store(settings)}: {e}") from None
    try:
        yield ledger, generated
    except DomainError as e:
        raise fail(e.message) from None
    finally:
        ledger.close()


def describe_store(settings: Settings) -> str:
    if settings.is_postgres:
        url = settings.effective_database_url
        return url.split("@")[-1] if "@" in url else url
    name = settings.eventsourcing_env()["SQLITE_DBNAME"]
    return name if name == ":memory:" else str(Path(name).resolve())


def note_generated_key(path: Path | None) -> None:
    if path is not None:
        err.print(
            f"note: generated a new master cipher key in {path.resolve()} (mode 0600); keep it safe, the store is "
            "unreadable without it",
            markup=False, highlight=False, soft_wrap=True,
        )


# ---- demo ----


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same store")] = 7,
    orders: Annotated[int, typer.Option(min=1, help="orders to simulate")] = 2000,
    reset: Annotated[bool, typer.Option(help="delete an existing SQLite demo store first")] = False,
) -> None:
    """Seed a realistic store on a simulated clock and print what it adds up to."""
    from ledger.demo import DEMO_RISK, SimClock, run_demo, store_is_empty, summarize

    settings = load_settings()
    if reset and not settings.is_postgres:
        path = Path(describe_store(settings))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    clock = SimClock()
    with opened(settings, clock) as (ledger, generated):
        if not store_is_empty(ledger):
            hint = "" if settings.is_postgres else " (or pass --reset to delete it)"
            raise fail(f"the store at {describe_store(settings)} already holds events; the demo needs an empty "
                       f"one: point LEDGER_DATA_DIR or LEDGER_DATABASE_URL elsewhere{hint}")
        started = time.perf_counter()
        with Progress(
            TextColumn("[bold]simulating orders"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=out, transient=False,
        ) as progress:
            task = progress.add_task("orders", total=orders)
            risk = DEMO_RISK[0]() if DEMO_RISK else None
            run = run_demo(ledger, clock, seed, orders, lambda n: progress.advance(task, n), risk)
        elapsed = time.perf_counter() - started
        summary = summarize(ledger, run.scalper_ids)
    _print_summary(summary, seed, orders, elapsed)
    out.print(f"data: {describe_store(settings)}", markup=False, highlight=False, soft_wrap=True)
    if generated is not None:
        out.print(
            f"cipher key: generated on this run in {generated.resolve()} (mode 0600); the store is unreadable "
            "without it", markup=False, highlight=False, soft_wrap=True,
        )
    out.print("try: ledger history scalper-01", markup=False, highlight=False)


def _money(amount: Decimal) -> str:
    from ledger.demo import CURRENCY  # the demo sells in one currency

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
    rejections = Table(title="rejections by reason")
    rejections.add_column("reason")
    rejections.add_column("all", justify="right")
    rejections.add_column("scalper", justify="right")
    for reason, n in s.rejections.items():
        rejections.add_row(reason, f"{n:,}", f"{s.scalper_rejections.get(reason, 0):,}")
    out.print(rejections)


# ---- import-keys ----


@app.command("import-keys")
def import_keys(
    file: Annotated[Path, typer.Argument(help="CSV with a 'code' column, or one code per line")],
    sku: Annotated[str, typer.Option(help="the product the keys are for")],
    supplier: Annotated[str, typer.Option(help="who supplied the batch")],
    unit_cost: Annotated[str, typer.Option(help="cost of one key, e.g. 1.23")],
) -> None:
    """Import a batch of card keys: all lines or none, any number in one transaction."""
    try:
        file.open("rb").close()
    except OSError as e:
        raise fail(f"cannot read {file}: {e}") from None
    settings = load_settings()
    with opened(settings) as (ledger, generated):
        note_generated_key(generated)
        try:
            with _ImportProgress() as progress:  # ends before anything else is printed
                codes, line_errors = read_codes(read_lines(file, progress.phase("read", file.stat().st_size)))
                result = ledger.import_keys(
                    ledger.context("cli"), sku=sku, supplier=supplier, unit_cost=unit_cost, codes=codes,
                    line_errors=line_errors, progress=progress,
                )
        except OSError as e:
            raise fail(f"cannot read {file}: {e}") from None
        except ImportRejected as e:
            for line_error in e.errors:
                err.print(f"{file}:{line_error.line}: {line_error.reason}", markup=False, highlight=False,
                          soft_wrap=True)
            raise fail(f"nothing imported: {len(e.errors)} bad line(s) in {file}") from None
    out.print(f"imported {len(result.key_ids)} keys into batch {result.batch_id} (log position {result.position})",
              markup=False, highlight=False)


class _ImportProgress(Progress):
    """`ledger.imports.ImportProgress` as rich bars on stderr, one per phase."""

    LABELS: ClassVar[dict[str, str]] = {"read": "reading file", "check": "checking codes", "write": "writing keys"}

    def __init__(self) -> None:
        super().__init__(
            TextColumn("{task.description:<15}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
        )

    def phase(self, name: str, total: int) -> Callable[[int], None]:
        task = self.add_task(self.LABELS.get(name, name), total=total)
        return lambda n: self.advance(task, n)


# ---- history ----

_HIDDEN = frozenset({"meta", "sealed_code", "code_hmac"})


def _show(value: Any) -> str:
    if isinstance(value, list) and (len(value) > 3 or any(isinstance(v, dict) for v in value)):
        return f"[{len(value)} items]"
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":"))[:120]
    return str(value)


@app.command()
def history(
    ident: Annotated[str, typer.Argument(metavar="ID", help="order, key or batch id; a SKU; or a customer id")],
) -> None:
    """The event timeline of an order, key, batch, product or customer."""
    settings = load_settings()
    with opened(settings) as (ledger, generated):
        note_generated_key(generated)
        entries = ledger.history(ident)
    if not entries:
        raise fail(f"nothing recorded for {ident}")
    table = Table(title=f"history of {ident}")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("stream", no_wrap=True)
    table.add_column("v", justify="right")
    table.add_column("event", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=1)
    for e in entries:
        details = ", ".join(
            f"{k}={_show(v)}" for k, v in e.data.items() if k not in _HIDDEN and v not in (None, "", [], {})
        )
        actor = e.data.get("meta", {}).get("actor")
        if actor:
            details = f"by {actor}; {details}" if details else f"by {actor}"
        table.add_row(
            e.timestamp.strftime("%Y-%m-%d %H:%M:%S"), f"{e.stream} {str(e.stream_id)[:8]}", str(e.version),
            e.event, details,
        )
    out.print(table)


# ---- expire ----


@app.command()
def expire() -> None:
    """Run the reservation sweeper once: expire every unpaid order past its deadline."""
    settings = load_settings()
    with opened(settings) as (ledger, generated):
        note_generated_key(generated)
        changes = ledger.expire_due(ledger.context("sweeper"))
    out.print(f"expired {len(changes)} order(s)", markup=False, highlight=False)


# ---- bench ----

bench_app = typer.Typer(help="Throughput measurements on a throwaway store.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("write")
def bench_write(
    workers: Annotated[int, typer.Option(min=1, help="client threads handing purchases to the writer")] = 8,
    purchases: Annotated[int, typer.Option(min=1, help="purchases to time (place + pay)")] = 2000,
    skus: Annotated[int, typer.Option(min=1, help="products the purchases spread over (1 = one hot SKU)")] = 8,
    in_flight: Annotated[int, typer.Option(min=1, help="purchases each client keeps going at once")] = 1,
) -> None:
    """Purchases per second through the ledger vs a plain-SQL baseline writing the same rows."""
    from ledger.bench import bench_write as run

    settings = load_settings()
    try:
        result = run(settings, workers=workers, purchases=purchases, skus=skus, in_flight=in_flight)
    except DomainError as e:
        raise fail(e.message) from None
    save, sizes = result.save, sorted(result.batch_sizes) or [0]
    info = (
        f"store: {result.store} (dropped); {result.workers} client threads with {result.in_flight} purchase(s) in "
        f"flight each, {result.purchases} purchases over "
        f"{result.skus} SKU(s); {result.rows_per_purchase} rows per purchase (~{result.avg_row_bytes} bytes each)\n"
        f"ledger: {result.ledger_seconds:.2f} s wall, {result.failed} failed; {save.calls} commits "
        f"({save.seconds:.2f} s, {100 * save.seconds / max(result.ledger_seconds, 1e-9):.0f}% of wall time); "
        f"commands per commit: p50 {sizes[len(sizes) // 2]}, max {sizes[-1]}\n"
        f"baseline: plain driver, {result.transactions_per_purchase} transactions per purchase"
    )
    out.print(info, markup=False, highlight=False, soft_wrap=True)
    out.print(f"ledger: {result.ledger_rate:.0f} purchases/s", markup=False, highlight=False)
    out.print(f"baseline: {result.baseline_rate:.0f} purchases/s", markup=False, highlight=False)
    out.print(f"ratio {result.ratio:.2f}", markup=False, highlight=False)


@bench_app.command("growth")
def bench_growth(
    keys: Annotated[int, typer.Option(min=1, help="keys in stock for the large case")] = 1_000_000,
    small: Annotated[int, typer.Option(min=1, help="keys in stock for the small case")] = 1_000,
    purchases: Annotated[int, typer.Option(min=1, help="purchases to time in each case")] = 1_000,
    workers: Annotated[int, typer.Option(min=1, help="client threads")] = 8,
) -> None:
    """Purchases per second from a SKU of SMALL keys and of KEYS keys (one event stored per key)."""
    from ledger.bench import bench_growth as run

    def say(line: str) -> None:
        out.print(line, markup=False, highlight=False, soft_wrap=True)

    result = run(load_settings(), sizes=(small, keys), purchases=purchases, workers=workers, say=say)
    for size, rate in result.rates.items():
        sizes = sorted(result.batch_sizes[size]) or [0]
        say(f"{result.store}, {size:,} keys, {result.events[size]:,} events stored: {rate:.0f} purchases/s "
            f"(commands per commit p50 {sizes[len(sizes) // 2]}, max {sizes[-1]})")
    say(f"ratio {result.ratio:.2f} (large / small)")


@bench_app.command("import")
def bench_import(
    codes: Annotated[int, typer.Option(min=1, help="codes in the supplier file")] = 100_000,
) -> None:
    """Keys per second of a supplier-file import vs a plain bulk insert of the same rows."""
    from ledger.bench_import import bench_import as run

    result = run(load_settings(), codes=codes)
    out.print(
        f"store: {result.store} (dropped); {result.codes:,} codes, one file, one transaction; "
        f"~{result.avg_row_bytes} bytes per stored event; peak RSS of this process {result.peak_rss_mib:.0f} MiB",
        markup=False, highlight=False, soft_wrap=True,
    )
    out.print(
        f"ledger: {result.ledger_rate:,.0f} keys/s ({result.ledger_seconds:.2f} s: read, check, write; "
        f"{result.ledger_cpu_seconds:.2f} s of this process's CPU = {result.codes / result.ledger_cpu_seconds:,.0f} "
        "keys per CPU second)", markup=False, highlight=False, soft_wrap=True,
    )
    out.print(f"baseline: {result.baseline_rate:,.0f} rows/s ({result.baseline_seconds:.2f} s: one bulk insert)",
              markup=False, highlight=False)
    out.print(f"ratio {result.ratio:.2f}", markup=False, highlight=False)


@bench_app.command("codec")
def bench_codec(
    purchases: Annotated[int, typer.Option(min=1, help="purchases whose events are timed")] = 1500,
    repeats: Annotated[int, typer.Option(min=1, help="timed runs per side; the best counts")] = 5,
) -> None:
    """Encode and decode cost per event: the ledger's transcoder vs the library's JSON, same events."""
    from ledger.bench_codec import bench_codec as run

    result = run(purchases=purchases, repeats=repeats)
    out.print(f"{result.events} events; bytes per event before encryption: JSON {result.json_bytes:.0f}, "
              f"ledger {result.ledger_bytes:.0f}", markup=False, highlight=False, soft_wrap=True)
    for t in result.timings:
        out.print(f"{t.what}: JSON {t.json_s * 1e6:.1f} us, ledger {t.ledger_s * 1e6:.1f} us per event, "
                  f"{t.speedup:.1f}x", markup=False, highlight=False, soft_wrap=True)


def load_plugins() -> None:
    """Commands of the other packages (read models, API) join through the `ledger.cli`
    entry point group, so this package never imports them."""
    for entry in entry_points(group="ledger.cli"):
        entry.load()(app, {"bench": bench_app})


def main() -> None:
    load_plugins()
    app()


if __name__ == "__main__":
    main()
