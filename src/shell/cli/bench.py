"""`ledger bench write|growth|import|codec|recharge|scale`: measurements on throwaway stores.
(The other `ledger bench` commands are beside the commands of their part.)"""

from __future__ import annotations

from typing import Annotated

import typer

from shell.cli.common import fail, load_settings, out


def bench_write(
    workers: Annotated[int, typer.Option(min=1, help="client threads handing purchases to the writer")] = 8,
    purchases: Annotated[int, typer.Option(min=1, help="purchases to time (place + pay)")] = 2000,
    skus: Annotated[int, typer.Option(min=1, help="products the purchases spread over (1 = one hot SKU)")] = 8,
    in_flight: Annotated[int, typer.Option(min=1, help="purchases each client keeps going at once")] = 1,
    alone: Annotated[bool, typer.Option(help="then as many purchases handed to the writer 200 at a time by one "
                                        "thread: its own capacity and CPU per purchase")] = False,
) -> None:
    """Purchases per second through the ledger vs a plain-SQL baseline writing the same rows."""
    from ledger.domain.errors import DomainError
    from shell.bench.write import bench_write as run

    settings = load_settings()
    try:
        result = run(settings, workers=workers, purchases=purchases, skus=skus, in_flight=in_flight, alone=alone)
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
    if result.alone is not None:
        out.print(f"writer alone: {result.alone.rate:.0f} purchases/s, {result.alone.cpu_per_purchase_us:,.0f} us of "
                  "this process's CPU per purchase", markup=False, highlight=False)


def bench_growth(
    keys: Annotated[int, typer.Option(min=1, help="keys in stock for the large case")] = 1_000_000,
    small: Annotated[int, typer.Option(min=1, help="keys in stock for the small case")] = 1_000,
    purchases: Annotated[int, typer.Option(min=1, help="purchases to time in each case")] = 1_000,
    workers: Annotated[int, typer.Option(min=1, help="client threads")] = 8,
) -> None:
    """Purchases per second from a SKU of SMALL keys and of KEYS keys (one event stored per key)."""
    from shell.bench.write import bench_growth as run

    def say(line: str) -> None:
        out.print(line, markup=False, highlight=False, soft_wrap=True)

    result = run(load_settings(), sizes=(small, keys), purchases=purchases, workers=workers, say=say)
    for size, rate in result.rates.items():
        sizes = sorted(result.batch_sizes[size]) or [0]
        say(f"{result.store}, {size:,} keys, {result.events[size]:,} events stored: {rate:.0f} purchases/s "
            f"(commands per commit p50 {sizes[len(sizes) // 2]}, max {sizes[-1]})")
    say(f"ratio {result.ratio:.2f} (large / small)")


def bench_import(
    codes: Annotated[int, typer.Option(min=1, help="codes in the supplier file")] = 100_000,
) -> None:
    """Keys per second of a supplier-file import vs a plain bulk insert of the same rows."""
    from shell.bench.supplier_import import bench_import as run

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


def bench_codec(
    purchases: Annotated[int, typer.Option(min=1, help="purchases whose events are timed")] = 1500,
    repeats: Annotated[int, typer.Option(min=1, help="timed runs per side; the best counts")] = 5,
) -> None:
    """Encode and decode cost per event: the ledger's transcoder vs the library's JSON, same events."""
    from shell.bench.codec import bench_codec as run

    result = run(purchases=purchases, repeats=repeats)
    out.print(f"{result.events} events; bytes per event before encryption: JSON {result.json_bytes:.0f}, "
              f"ledger {result.ledger_bytes:.0f}", markup=False, highlight=False, soft_wrap=True)
    for t in result.timings:
        out.print(f"{t.what}: JSON {t.json_s * 1e6:.1f} us, ledger {t.ledger_s * 1e6:.1f} us per event, "
                  f"{t.speedup:.1f}x", markup=False, highlight=False, soft_wrap=True)


def bench_recharge(
    fulfilments: Annotated[int, typer.Option(min=1, help="recharges per timed run of each side")] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, help="requests in flight to the supplier")] = 16,
    latency_ms: Annotated[int, typer.Option(min=0, help="the simulated supplier's own latency")] = 20,
    latency_orders: Annotated[int, typer.Option(min=1, help="orders paid one by one per client for latency")] = 400,
    repeat: Annotated[int, typer.Option(min=1, help="raw/ledger pairs; the median ratio counts")] = 3,
) -> None:
    """Direct-recharge fulfilments per second through the ledger against a raw client calling the
    same simulated supplier the same way, and the time from payment to delivery against the
    supplier's own p99, same run."""
    from shell.bench.recharge import bench_recharge as run

    result = run(load_settings(), fulfilments=fulfilments, concurrency=concurrency, latency_ms=latency_ms,
                 latency_orders=latency_orders, repeat=repeat, say=lambda line: out.print(
                     line, markup=False, highlight=False, soft_wrap=True))
    rate, p99 = result.rate_ratio, result.p99_ratio
    out.print(f"store: {result.store}; {result.fulfilments} recharges per run, {result.concurrency} in flight, "
              f"supplier latency {result.latency_ms} ms", markup=False, highlight=False, soft_wrap=True)
    out.print(f"throughput ratio (ledger / raw): median {rate[0]:.2f} (min {rate[1]:.2f}, max {rate[2]:.2f})",
              markup=False, highlight=False, soft_wrap=True)
    out.print(f"p99 ratio (payment to delivered / raw request): median {p99[0]:.2f} (min {p99[1]:.2f}, "
              f"max {p99[2]:.2f})", markup=False, highlight=False, soft_wrap=True)


def bench_scale(
    small: Annotated[int, typer.Option(min=1000, help="events in the small store")] = 20_000,
    large: Annotated[int, typer.Option(min=1000, help="events in the large store (200000: a quick look)")] = 2_000_000,
    requests: Annotated[int, typer.Option(min=10, help="timed requests per route, store and round")] = 200,
    rounds: Annotated[int, typer.Option(min=1, help="rounds over every route; the median round's ratio counts")] = 3,
) -> None:
    """p99 of every read route and UI page on a store of LARGE events against one of SMALL events, same run;
    the goal is at most 1.25 times on every route (the median of the rounds' ratios; a measurement: it
    says whether the goal was met)."""
    from shell.bench.scale import GOAL, run_bench_scale

    def say(line: str) -> None:
        out.print(line, markup=False, highlight=False, soft_wrap=True)

    result = run_bench_scale(load_settings(), small=small, large=large, requests=requests, rounds=rounds, say=say)
    worst = result.worst
    say(f"{result.small.events:,} against {result.large.events:,} events, {requests} requests per route and store, "
        f"{rounds} rounds (medians): "
        f"worst p99 ratio {worst.ratio:.2f} ({worst.route}); goal at most {GOAL}: "
        f"{'met' if result.met else 'MISSED'}")
