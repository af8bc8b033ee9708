"""`ledger project run|status|rebuild`, `ledger replay`, `ledger reconcile` and `ledger bench
replay|as-of`: the read models."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ledger.collector import tune_for_serving
from projections.engine.sizes import REBUILD_BATCH_SIZE
from shell import logs
from shell.cli.common import (
    composed,
    fail,
    load_settings,
    out,
    progress_bar,
    require_kafka,
    stop_on_signals,
    store_and_views,
)

project = typer.Typer(help="Read models: run, status, rebuild.", no_args_is_help=True)


@project.command("run")
def run_command(
    names: Annotated[list[str] | None, typer.Argument(help="read models to run (default: all)")] = None,
    batch_size: Annotated[int, typer.Option(help="events per transaction")] = 5000,
    poll: Annotated[float, typer.Option(help="seconds between polls when idle")] = 0.25,
    from_kafka: Annotated[bool, typer.Option(
        "--from-kafka", help="build from the Kafka topic as a member of the read-model consumer group "
                             "(LEDGER_KAFKA_*); the group splits the read models among its members")] = False,
) -> None:
    """Keep read models up to date until stopped (Ctrl-C / SIGTERM); resumes where it stopped."""
    logs.configure(logging.WARNING)  # the runner's and the consumer's warnings, one line each
    if from_kafka:
        if names:
            raise fail("--from-kafka builds every read model: the consumer group splits them among its members")
        _run_from_kafka(batch_size)
        return
    with composed(load_settings(), build=store_and_views) as parts:
        try:
            runner = parts.runner(names, batch_size=batch_size, poll_interval=poll)
        except ValueError as error:
            raise fail(str(error)) from None
        stop = stop_on_signals()
        out.print(f"projecting from position {runner.position} (head {runner.head()}); Ctrl-C stops")
        tune_for_serving()  # a long-running process (ledger.collector)
        runner.run_forever(stop)
        runner.close()
        out.print(f"stopped at position {runner.position}")


def _run_from_kafka(batch_size: int) -> None:
    from projections.kafka.connection import require_bootstrap
    from shell.composition import compose

    settings = load_settings()
    try:
        require_bootstrap(settings)
    except ValueError as error:
        raise fail(str(error)) from None
    require_kafka()
    from projections.kafka.signing import MessageVerifier

    try:
        MessageVerifier.from_settings(settings)  # a key that cannot be read stops it here, not in a lane
    except ValueError as error:
        raise fail(str(error)) from None
    from kafka.errors import KafkaError

    from projections.kafka.source import KafkaViews

    parts = compose(settings)
    try:
        store = parts.views
    except (ValueError, OSError) as error:
        parts.close()
        raise fail(str(error)) from None
    try:
        member = KafkaViews(settings, store, batch_size=batch_size,
                            on_assignment=lambda lanes: typer.echo(f"owns lanes: {' '.join(lanes)}"))
    except KafkaError as error:
        parts.close()
        raise fail(f"cannot join the read-model group at {settings.kafka_bootstrap}: {error}") from None
    stop = stop_on_signals()
    out.print(f"joined consumer group {settings.kafka_group} at {settings.kafka_bootstrap}; Ctrl-C stops")
    tune_for_serving()  # a long-running process (ledger.collector)
    try:
        member.run_forever(stop)
    finally:
        member.close()
        parts.close()
    out.print("stopped")


@project.command("status")
def status_command() -> None:
    """Each read model's version, position, lag in events and seconds, and events/s."""
    from projections.engine.read_side import projection_status
    from projections.kafka.relay import relay_status

    with composed(load_settings(), build=store_and_views) as parts:
        app, store = parts.app, parts.views
        table = Table("read model", "version", "position", "head", "lag (events)", "lag (s)", "events/s")
        for s in projection_status(app, store):
            table.add_row(s.name, str(s.version), str(s.position), str(s.head), str(s.lag_events),
                          f"{s.lag_seconds:.1f}", f"{s.events_per_s:,.0f}")
        out.print(table)
        relay = relay_status(app, parts.settings)
        if relay is not None:
            state = f"DOWN since {relay.error_since}: {relay.error}" if relay.error else "ok"
            out.print(f"kafka relay to {relay.topic}: position {relay.position} of {relay.head}, "
                      f"lag {relay.lag_events} events, {relay.events_per_s:,.0f} events/s, {state}",
                      markup=False, highlight=False, soft_wrap=True)


@project.command("rebuild")
def rebuild_command(
    names: Annotated[list[str] | None, typer.Argument(help="read models to rebuild")] = None,
    all_: Annotated[bool, typer.Option("--all", help="rebuild every read model")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="events per transaction")] = REBUILD_BATCH_SIZE,
) -> None:
    """Rebuild from zero into fresh tables while the old ones serve, then swap atomically."""
    from projections.engine.rebuild import rebuild

    if not names and not all_:
        raise fail("name the read models to rebuild, or pass --all")
    with composed(load_settings(), build=store_and_views) as parts, progress_bar("rebuilding") as update:
        try:
            versions = rebuild(parts.app, parts.views, None if all_ else names, progress=update, batch_size=batch_size)
        except ValueError as error:
            raise fail(str(error)) from None
    out.print("now serving: " + ", ".join(f"{n} v{v}" for n, v in versions.items()))


def replay_command(
    report: Annotated[str, typer.Argument(help="module:Class or path.py:Class (a projections.engine.replay.Report)")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV file to write")],
    until: Annotated[str | None, typer.Option(help="a position (integer) or an ISO time, inclusive")] = None,
) -> None:
    """Replay the history in order into a report and write its rows as CSV."""
    from projections.engine.replay import load_report, replay, write_csv

    until_position, until_time = _parse_until(until)
    try:
        instance = load_report(report)()
    except (ValueError, ImportError, SyntaxError) as error:
        raise fail(f"{report}: {error}") from None
    with composed(load_settings()) as parts, progress_bar("replaying") as update:
        result = replay(parts.app, instance, until_position=until_position, until_time=until_time, progress=update)
    rows = write_csv(instance.rows(), out_file)
    out.print(f"{result.events_read} events read up to position {result.last_position}, "
              f"{result.events_handled} handled, {rows} rows written to {out_file}")
    out.print(f"{result.events_per_s:,.0f} events/s")


def _parse_until(until: str | None) -> tuple[int | None, datetime | None]:
    if until is None:
        return None, None
    if until.isdigit():
        return int(until), None
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        raise fail(f"--until {until!r} is neither a position nor an ISO date-time") from None
    if moment.tzinfo is None:
        raise fail("--until needs a time zone, e.g. 2026-03-01T00:00:00+00:00")
    return None, moment


def bench_replay_command(
    events: Annotated[int, typer.Option(min=1, help="events to seed and replay")] = 200_000,
    batch_size: Annotated[int, typer.Option(min=1, help="events per transaction")] = REBUILD_BATCH_SIZE,
    lag_seconds: Annotated[float, typer.Option(min=0, help="seconds of live writes to sample lag (0: skip)")] = 10.0,
    read_models: Annotated[str | None, typer.Option(
        help="rebuild only these, comma-separated (and the facts they look things up in); no lag sample")] = None,
) -> None:
    """Rebuild all read models from N events vs a raw read of the same log (throwaway store),
    then the live projection lag while writers keep writing."""
    from projections.engine.registry import PROJECTION_NAMES
    from shell.bench.replay import bench_replay

    names = [n.strip() for n in read_models.split(",") if n.strip()] if read_models is not None else None
    unknown = sorted(set(names or ()) - set(PROJECTION_NAMES))
    if names is not None and (unknown or not names):
        given = ", ".join(unknown) or "(none given)"
        raise fail(f"--read-models: unknown {given}; known: {', '.join(PROJECTION_NAMES)}")
    result = bench_replay(load_settings(), events=events, batch_size=batch_size, lag_seconds=lag_seconds,
                          read_models=names)
    out.print(f"store: {result.store} (dropped); {result.events} events seeded in {result.seed_seconds:.1f} s",
              markup=False, highlight=False, soft_wrap=True)
    which = "" if names is None else f" ({', '.join(result.read_models)})"
    out.print(f"read models{which}: {result.rebuild_rate:.0f} events/s")
    out.print(f"raw read: {result.raw_rate:.0f} events/s")
    out.print(f"read and decode, no read model: {result.decode_rate:.0f} events/s "
              f"({result.decode_rate / result.raw_rate:.2f} of the raw read)")
    out.print(f"ratio {result.ratio:.2f}")
    if result.lag is not None:
        lag = result.lag
        out.print(f"lag under {lag.purchases / lag.seconds:.0f} purchases/s for {lag.seconds:.0f} s: "
                  f"p50 {lag.p50:.3f} s, p99 {lag.p99:.3f} s, worst {lag.worst:.3f} s")


reconcile = typer.Typer(invoke_without_command=True)


@reconcile.callback()
def reconcile_command(
    context: typer.Context,
    catch_up: Annotated[bool, typer.Option(help="first bring the read models up to the log's head (leave off "
                                           "while `ledger serve` runs its own runner)")] = True,
) -> None:
    """Check that every payment ended in goods or a refund, every key is in one state, money in =
    revenue + refunds payable, and the journal equals the events; exit 1 on any exception."""
    if context.invoked_subcommand is not None:
        return
    from ledger.storage import event_log
    from projections.engine.as_of import History, LiveReadModels
    from projections.engine.registry import build_projections
    from projections.models.reconcile import FOLDS, NotAligned
    from projections.models.reconcile import reconcile as check
    from shell.cli.reconcile_view import reconciliation_tables

    with composed(load_settings(), build=store_and_views) as parts:
        app, store = parts.app, parts.views
        live = build_projections(store)
        if catch_up:
            with progress_bar("catching up") as update:
                parts.runner(projections=live).catch_up(progress=update)
        views = {p.name: p for p in live}
        try:
            result = check(History(app, folds=FOLDS), LiveReadModels(store, views))
        except NotAligned as error:
            raise fail(f"{error}; run `ledger project run` (or wait for the runner) and try again") from None
        head = event_log.head(app)
    out.print(reconciliation_tables(result, head))
    if not result.clean:
        raise typer.Exit(1)


@reconcile.command("supplier")
def reconcile_supplier(
    name: Annotated[str, typer.Argument(help="the supplier, as registered")],
    statement: Annotated[Path | None, typer.Option(help="its statement, CSV as docs/upstream.md says")] = None,
    fetch: Annotated[bool, typer.Option(help="ask the supplier for its statement (GET /v1/statement)")] = False,
    start: Annotated[datetime | None, typer.Option("--from", help="the period's start (UTC)")] = None,
    end: Annotated[datetime | None, typer.Option("--to", help="the period's end, excluded (UTC)")] = None,
    apply_reversals: Annotated[bool, typer.Option(
        help="record each reversal the statement shows and the ledger has not heard of (its callback was "
             "lost), as the callback would have: the order is refunded or fulfilled again")] = False,
) -> None:
    """Hold a supplier's statement against the attempts recorded with it: every charge matches one
    success here with the same amount, every success here one charge; each difference is listed
    with its log positions. Exit 1 on any."""
    from ledger.domain.ids import supplier_id
    from ledger.domain.suppliers import Supplier
    from ledger.fulfilment.connector import LostAnswer
    from projections.models.supplier_statement import StatementError, attempts_with, differences
    from shell.statements import fetch_statement, held_against_log

    if (statement is None) == (not fetch):
        raise fail("give the statement: --statement FILE, or --fetch to ask the supplier")
    start, end = (d.replace(tzinfo=d.tzinfo or UTC) if d else None for d in (start, end))
    with composed(load_settings(), build=lambda parts: parts.ledger) as parts:
        supplier = parts.ledger.reads.find(Supplier, supplier_id(name))
        if supplier is None:
            raise fail(f"no supplier {name}")
        if statement is not None:
            try:
                text, source = statement.read_text(), str(statement)
            except OSError as error:
                raise fail(f"cannot read {statement}: {error.strerror}") from None
        else:
            try:
                text, source = fetch_statement(supplier.base_url,
                                               parts.vault.supplier_secrets.unseal(supplier.secret_sealed),
                                               supplier.timeout_ms, start, end)
            except LostAnswer as error:
                raise fail(f"the supplier's statement could not be had: {error}") from None
        period = (start, end) if start and end else None
        try:
            lines, found = held_against_log(parts.app, name, text, source, period)
        except StatementError as error:
            raise fail(str(error)) from None
        if apply_reversals:
            applied = _apply_reversals(parts.ledger, name, found, attempts_with(parts.app, name))
            found = differences(attempts_with(parts.app, name), lines, period)
            out.print(f"{applied} reversal(s) recorded from the statement", markup=False, highlight=False)
    table = Table("difference", "request", "here", "there", "positions", title=f"{name}: {len(lines)} lines")
    for d in found:
        table.add_row(d.kind, d.request_id, d.here, d.there, ", ".join(map(str, d.positions)))
    out.print(table)
    out.print(f"{len(found)} difference(s)" if found else "no differences", markup=False, highlight=False)
    if found:
        raise typer.Exit(1)


def _apply_reversals(ledger: Any, supplier: str, found: list[Any], attempts: dict[str, Any]) -> int:
    """Each `reversed_there_succeeded_here` recorded as the supplier's callback would have done."""
    from ledger import commands as c
    from ledger.domain.ids import fulfilment_id

    applied = 0
    for difference in found:
        if difference.kind != "reversed_there_succeeded_here":
            continue
        record = attempts[difference.request_id]
        state = ledger.execute(c.RecordAttempt(
            ctx=ledger.context("cli"), fulfilment_id=fulfilment_id(record.order_id), attempt_id=record.attempt_id,
            outcome="reversed", supplier=supplier, reason="reversed_on_statement")).get()
        applied += int(state.changed)
    return applied


def bench_as_of_command(
    orders: Annotated[int, typer.Option(min=1, help="orders the demo simulates (as `ledger demo`)")] = 2000,
    seed: Annotated[int, typer.Option(help="the demo's seed")] = 7,
) -> None:
    """Reports as_of a position (a fold) against the live read and a rebuild up to the position,
    on a throwaway store holding the demo's history."""
    from shell.bench.as_of import bench_as_of

    result = bench_as_of(load_settings(), orders=orders, seed=seed,
                         say=lambda line: out.print(line, markup=False, highlight=False, soft_wrap=True))
    table = Table("report", "as of", "live read", "rebuild to there", "as_of cold", "as_of warm",
                  "warm / rebuild", title=f"{result.events} events; seconds")
    for t in result.timings:
        table.add_row(t.report, str(t.position), f"{t.live_s:.3f}", f"{t.rebuild_s:.3f}", f"{t.cold_s:.3f}",
                      f"{t.warm_s:.3f}", f"{t.warm_s / t.rebuild_s:.2f}")
    out.print(table)
