"""`ledger project ...` and `ledger replay`: plugged into the `ledger` command through the
`ledger.cli` entry point, so the core package never imports the read models."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ledger.application import LedgerApp, build_app
from ledger.config import Settings
from ledger.relay import relay_status
from projections.as_of import History, LiveReadModels
from projections.rebuild import rebuild
from projections.reconcile import NotAligned, reconcile
from projections.reconcile_view import reconciliation_tables
from projections.registry import build_projections
from projections.replay import load_report, replay, write_csv
from projections.runner import Runner
from projections.status import projection_status
from projections.store import ViewStore

project = typer.Typer(help="Read models: run, status, rebuild.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


@contextmanager
def _opened() -> Iterator[tuple[LedgerApp, ViewStore]]:
    try:
        settings = Settings()
        app, _ = build_app(settings)
        store = ViewStore(settings)
    except (ValueError, OSError) as error:
        raise _fail(str(error)) from None
    try:
        yield app, store
    finally:
        store.close()
        app.close()


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A bar with events/s and ETA; yields the callback the runner calls."""
    columns = (
        TextColumn(label), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(label, total=None, rate="-")

        def update(position: int, head: int) -> None:
            speed = bar.tasks[task].speed
            bar.update(task, completed=position, total=head, rate=f"{speed:,.0f}" if speed else "-")

        yield update


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
    if from_kafka:
        if names:
            raise _fail("--from-kafka builds every read model: the consumer group splits them among its members")
        _run_from_kafka(batch_size)
        return
    with _opened() as (app, store):
        try:
            runner = Runner(app, store, lambda: build_projections(store, names), batch_size=batch_size,
                            poll_interval=poll)
        except ValueError as error:
            raise _fail(str(error)) from None
        stop = _stop_on_signals()
        out.print(f"projecting from position {runner.position} (head {runner.head()}); Ctrl-C stops")
        runner.run_forever(stop)
        runner.close()
        out.print(f"stopped at position {runner.position}")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _run_from_kafka(batch_size: int) -> None:
    from kafka.errors import KafkaError

    from ledger.cli import load_settings
    from ledger.relay import require_bootstrap
    from projections.kafka_source import KafkaViews

    settings = load_settings()
    try:
        require_bootstrap(settings)
        store = ViewStore(settings)
    except (ValueError, OSError) as error:
        raise _fail(str(error)) from None
    try:
        member = KafkaViews(settings, store, batch_size=batch_size,
                            on_assignment=lambda lanes: typer.echo(f"owns lanes: {' '.join(lanes)}"))
    except KafkaError as error:
        store.close()
        raise _fail(f"cannot join the read-model group at {settings.kafka_bootstrap}: {error}") from None
    stop = _stop_on_signals()
    out.print(f"joined consumer group {settings.kafka_group} at {settings.kafka_bootstrap}; Ctrl-C stops")
    try:
        member.run_forever(stop)
    finally:
        member.close()
        store.close()
    out.print("stopped")


@project.command("status")
def status_command() -> None:
    """Each read model's version, position, lag in events and seconds, and events/s."""
    with _opened() as (app, store):
        table = Table("read model", "version", "position", "head", "lag (events)", "lag (s)", "events/s")
        for s in projection_status(app, store):
            table.add_row(s.name, str(s.version), str(s.position), str(s.head), str(s.lag_events),
                          f"{s.lag_seconds:.1f}", f"{s.events_per_s:,.0f}")
        out.print(table)
        relay = relay_status(app, Settings())
        if relay is not None:
            state = f"DOWN since {relay.error_since}: {relay.error}" if relay.error else "ok"
            out.print(f"kafka relay to {relay.topic}: position {relay.position} of {relay.head}, "
                      f"lag {relay.lag_events} events, {relay.events_per_s:,.0f} events/s, {state}",
                      markup=False, highlight=False, soft_wrap=True)


@project.command("rebuild")
def rebuild_command(
    names: Annotated[list[str] | None, typer.Argument(help="read models to rebuild")] = None,
    all_: Annotated[bool, typer.Option("--all", help="rebuild every read model")] = False,
    batch_size: Annotated[int, typer.Option(help="events per transaction")] = 5000,
) -> None:
    """Rebuild from zero into fresh tables while the old ones serve, then swap atomically."""
    if not names and not all_:
        raise _fail("name the read models to rebuild, or pass --all")
    with _opened() as (app, store), _progress("rebuilding") as update:
        try:
            versions = rebuild(app, store, None if all_ else names, progress=update, batch_size=batch_size)
        except ValueError as error:
            raise _fail(str(error)) from None
    out.print("now serving: " + ", ".join(f"{n} v{v}" for n, v in versions.items()))


def replay_command(
    report: Annotated[str, typer.Argument(help="module:Class or path.py:Class (a projections.replay.Report)")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV file to write")],
    until: Annotated[str | None, typer.Option(help="a position (integer) or an ISO time, inclusive")] = None,
) -> None:
    """Replay the history in order into a report and write its rows as CSV."""
    until_position, until_time = _parse_until(until)
    try:
        instance = load_report(report)()
    except (ValueError, ImportError, SyntaxError) as error:
        raise _fail(f"{report}: {error}") from None
    with _opened() as (app, _store), _progress("replaying") as update:
        result = replay(app, instance, until_position=until_position, until_time=until_time, progress=update)
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
        raise _fail(f"--until {until!r} is neither a position nor an ISO date-time") from None
    if moment.tzinfo is None:
        raise _fail("--until needs a time zone, e.g. 2026-03-01T00:00:00+00:00")
    return None, moment


def bench_replay_command(
    events: Annotated[int, typer.Option(min=1, help="events to seed and replay")] = 200_000,
    batch_size: Annotated[int, typer.Option(min=1, help="events per transaction")] = 5000,
    lag_seconds: Annotated[float, typer.Option(min=0, help="seconds of live writes to sample lag (0: skip)")] = 10.0,
) -> None:
    """Rebuild all read models from N events vs a raw read of the same log (throwaway store),
    then the live projection lag while writers keep writing."""
    from projections.bench import bench_replay

    result = bench_replay(Settings(), events=events, batch_size=batch_size, lag_seconds=lag_seconds)
    out.print(f"store: {result.store} (dropped); {result.events} events seeded in {result.seed_seconds:.1f} s",
              markup=False, highlight=False, soft_wrap=True)
    out.print(f"read models: {result.rebuild_rate:,.0f} events/s".replace(",", ""))
    out.print(f"raw read: {result.raw_rate:,.0f} events/s".replace(",", ""))
    out.print(f"ratio {result.ratio:.2f}")
    if result.lag is not None:
        lag = result.lag
        out.print(f"lag under {lag.purchases / lag.seconds:.0f} purchases/s for {lag.seconds:.0f} s: "
                  f"p50 {lag.p50:.3f} s, p99 {lag.p99:.3f} s, worst {lag.worst:.3f} s")


def reconcile_command(
    catch_up: Annotated[bool, typer.Option(help="first bring the read models up to the log's head (leave off "
                                           "while `ledger serve` runs its own runner)")] = True,
) -> None:
    """Check that every payment ended in goods or a refund, every key is in one state, money in =
    revenue + refunds payable, and the journal equals the events; exit 1 on any exception."""
    with _opened() as (app, store):
        live = build_projections(store)
        if catch_up:
            with _progress("catching up") as update:
                Runner(app, store, live).catch_up(progress=update)
        views = {p.name: p for p in live}
        try:
            result = reconcile(History(app), LiveReadModels(store, views))
        except NotAligned as error:
            raise _fail(f"{error}; run `ledger project run` (or wait for the runner) and try again") from None
        head = app.recorder.max_notification_id() or 0
    out.print(reconciliation_tables(result, head))
    if not result.clean:
        raise typer.Exit(1)


def bench_as_of_command(
    orders: Annotated[int, typer.Option(min=1, help="orders the demo simulates (as `ledger demo`)")] = 2000,
    seed: Annotated[int, typer.Option(help="the demo's seed")] = 7,
) -> None:
    """Reports as_of a position (a fold) against the live read and a rebuild up to the position,
    on a throwaway store holding the demo's history."""
    from projections.bench_as_of import bench_as_of

    result = bench_as_of(Settings(), orders=orders, seed=seed,
                         say=lambda line: out.print(line, markup=False, highlight=False, soft_wrap=True))
    table = Table("report", "as of", "live read", "rebuild to there", "as_of cold", "as_of warm",
                  "warm / rebuild", title=f"{result.events} events; seconds")
    for t in result.timings:
        table.add_row(t.report, str(t.position), f"{t.live_s:.3f}", f"{t.rebuild_s:.3f}", f"{t.cold_s:.3f}",
                      f"{t.warm_s:.3f}", f"{t.warm_s / t.rebuild_s:.2f}")
    out.print(table)


def register(app: typer.Typer, groups: dict[str, Any]) -> None:
    """Entry point `ledger.cli`: add our commands to the `ledger` command."""
    app.add_typer(project, name="project")
    app.command("reconcile")(reconcile_command)
    app.command("replay")(replay_command)
    groups["bench"].command("replay")(bench_replay_command)
    groups["bench"].command("as-of")(bench_as_of_command)
    from ledger.demo import DEMO_RISK

    DEMO_RISK.append(FraudDemoRisk)


class FraudDemoRisk:
    """The demo's risk check: the fraud read model, kept current as the demo runs."""

    def __init__(self, threshold: int = 30) -> None:
        self.threshold = threshold
        self.runner: Runner | None = None

    def arm(self, ledger: Any) -> None:
        from projections.risk import FraudRiskAssessor

        store = ViewStore(ledger.settings)
        self.runner = Runner(ledger.app, store, build_projections(store, ["fraud"]))
        self.refresh()
        ledger.risk = FraudRiskAssessor(store, self.threshold)

    def refresh(self) -> None:
        if self.runner is not None:
            self.runner.catch_up()
