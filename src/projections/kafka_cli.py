"""`ledger relay` and `ledger bench relay`: joined to the `ledger` command through the `ledger.cli`
entry point (the bench seeds with the read-model bench's history, hence its place here)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated, Any

import typer
from rich.console import Console

from ledger.application import build_app
from ledger.cli import load_settings
from ledger.relay import Relay, require_bootstrap

out = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _say(line: str) -> None:
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def relay_command(
    batch_size: Annotated[int, typer.Option(min=1, help="events read from the log per batch")] = 2000,
    poll: Annotated[float, typer.Option(min=0.001, help="seconds between polls of the log when idle")] = 0.1,
) -> None:
    """Publish every event of the log to Kafka (LEDGER_KAFKA_BOOTSTRAP) in log order, at least once;
    resumes from the last position the broker acknowledged. Ctrl-C / SIGTERM stop it."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings()
    try:
        require_bootstrap(settings)
        app, _ = build_app(settings)
        relay = Relay(app, settings, batch_size=batch_size, poll_interval=poll)
    except (ValueError, OSError) as error:
        raise _fail(str(error)) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    _say(f"relaying to {relay.topic} at {settings.kafka_bootstrap} from position {relay.position}; Ctrl-C stops")
    try:
        relay.run_forever(stop)
    finally:
        app.close()
    _say(f"stopped at position {relay.position}")


def bench_relay_command(
    events: Annotated[int, typer.Option(min=1, help="events to seed and publish")] = 50_000,
    batch_size: Annotated[int, typer.Option(min=1, help="events per relay batch")] = 2000,
    rounds: Annotated[int, typer.Option(min=1, help="raw-then-relay rounds; the best of each is compared")] = 2,
) -> None:
    """The relay's events/s against a raw kafka-python producer sending the same bytes (same run,
    throwaway store, fresh topics on LEDGER_KAFKA_BOOTSTRAP)."""
    from projections.kafka_bench import bench_relay

    try:
        result = bench_relay(load_settings(), events=events, batch_size=batch_size, rounds=rounds)
    except (ValueError, RuntimeError) as error:
        raise _fail(str(error)) from None
    _say(f"store: {result.store} (dropped); {result.events} events seeded in {result.seed_seconds:.1f} s")
    for n, r in enumerate(result.rounds, 1):
        _say(f"round {n}: raw producer {result.rate(r.raw_seconds):.0f} events/s, "
             f"relay {result.rate(r.relay_seconds):.0f} events/s")
    _say(f"best raw producer: {result.best_raw:.0f} events/s")
    _say(f"best relay: {result.best_relay:.0f} events/s")
    _say(f"ratio {result.ratio:.2f}")


def register(app: typer.Typer, groups: dict[str, Any]) -> None:
    """Entry point `ledger.cli`."""
    app.command("relay")(relay_command)
    groups["bench"].command("relay")(bench_relay_command)
