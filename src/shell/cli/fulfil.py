"""`ledger fulfil run`: the fulfilment worker alone (`ledger serve` runs one itself)."""

from __future__ import annotations

import logging

import typer

from shell import logs
from shell.cli.common import composed, load_settings, say, stop_on_signals

fulfil = typer.Typer(help="Upstream fulfilment: direct recharges and platform grants sent to suppliers.",
                     no_args_is_help=True)


@fulfil.command("run")
def run() -> None:
    """Drive every open fulfilment until Ctrl-C / SIGTERM: outstanding attempts are resolved
    first, then new ones sent on the best route. Run it only where `ledger serve` does not
    (LEDGER_SERVE_FULFILMENT=false there), or both will drive the same fulfilments."""
    from ledger.collector import tune_for_serving
    from ledger.fulfilment.worker import FulfilmentWorker

    logs.configure(logging.INFO)
    stop = stop_on_signals()
    with composed(load_settings(), build=lambda parts: parts.ledger) as parts:
        worker = FulfilmentWorker(parts.ledger, parts.settings)
        tune_for_serving()
        say("fulfilment worker running; Ctrl-C to stop")
        try:
            worker.run_forever(stop)
        finally:
            worker.close()
