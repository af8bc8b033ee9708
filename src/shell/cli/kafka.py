"""`ledger relay` and `ledger bench relay`: the log to Kafka."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from ledger.collector import tune_for_serving
from shell import logs
from shell.cli.common import fail, load_settings, require_kafka, say, stop_on_signals


def relay_command(
    batch_size: Annotated[int, typer.Option(min=1, help="events read from the log per batch")] = 2000,
    poll: Annotated[float, typer.Option(min=0.001, help="seconds between polls of the log when idle")] = 0.1,
) -> None:
    """Publish every event of the log to Kafka (LEDGER_KAFKA_BOOTSTRAP) in log order, at least once;
    resumes from the last position the broker acknowledged. Ctrl-C / SIGTERM stop it."""
    logs.configure(logging.WARNING, "%(asctime)s %(levelname)s %(message)s")
    from projections.kafka.connection import require_bootstrap
    from shell.composition import compose

    settings = load_settings()
    try:
        require_bootstrap(settings)  # before the store is opened: nothing changes without a cluster
    except ValueError as error:
        raise fail(str(error)) from None
    require_kafka()
    parts = compose(settings)
    try:
        relay = parts.relay(batch_size=batch_size, poll_interval=poll)
    except (ValueError, OSError) as error:
        parts.close()
        raise fail(str(error)) from None
    stop = stop_on_signals()
    say(f"relaying to {relay.topic} at {settings.kafka_bootstrap} from position {relay.position}; Ctrl-C stops")
    tune_for_serving()  # a long-running process (ledger.collector)
    try:
        relay.run_forever(stop)
    finally:
        parts.close()
    say(f"stopped at position {relay.position}")


def bench_relay_command(
    events: Annotated[int, typer.Option(min=1, help="events to seed and publish")] = 50_000,
    batch_size: Annotated[int, typer.Option(min=1, help="events per relay batch")] = 2000,
    rounds: Annotated[int, typer.Option(min=1, help="raw-then-relay rounds; the best of each is compared")] = 2,
) -> None:
    """The relay's events/s against a raw kafka-python producer sending the same bytes (same run,
    throwaway store, fresh topics on LEDGER_KAFKA_BOOTSTRAP)."""
    from shell.bench.relay import bench_relay

    require_kafka()
    try:
        result = bench_relay(load_settings(), events=events, batch_size=batch_size, rounds=rounds)
    except (ValueError, RuntimeError) as error:
        raise fail(str(error)) from None
    say(f"store: {result.store} (dropped); {result.events} events seeded in {result.seed_seconds:.1f} s")
    for n, r in enumerate(result.rounds, 1):
        say(f"round {n}: raw producer {result.rate(r.raw_seconds):.0f} events/s, "
             f"relay {result.rate(r.relay_seconds):.0f} events/s")
    say(f"best raw producer: {result.best_raw:.0f} events/s")
    say(f"best relay: {result.best_relay:.0f} events/s")
    say(f"ratio {result.ratio:.2f}")
