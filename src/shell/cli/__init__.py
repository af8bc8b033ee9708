"""The `ledger` command: every command of the product, in one place.

Settings come from the environment (LEDGER_DATABASE_URL, LEDGER_DATA_DIR, ...; `ledger.config`);
each command builds what it needs through `shell.composition`. Domain errors print
`error: <message>` on stderr and exit 1. Card-key codes are never printed.

The modules beside this one hold the commands by part (`store`, `demo`, `projections`, `api`,
`audit`, `keys`, `kafka`, `bench`, `fulfil`, `suppliers`, `payments`) and `common` what they
share. They import the heavy packages (the read models, FastAPI, uvicorn, Kafka, the database
drivers) inside the commands, so that `ledger --help` stays fast.
"""

from __future__ import annotations

import typer

from shell.cli import api, audit, bench, demo, fulfil, kafka, keys, payments, projections, store, suppliers
from shell.cli.common import describe_store, fail, load_settings, note_generated_key
from simulators.cli import upstream_app

__all__ = ["app", "bench_app", "describe_store", "fail", "load_settings", "main", "note_generated_key"]

app = typer.Typer(
    name="ledger",
    help="Event-sourced order and entitlement ledger for digital goods and card keys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Throughput measurements on a throwaway store.", no_args_is_help=True)

app.command()(demo.demo)
app.command("import-keys")(store.import_keys)
app.command()(store.history)
app.command()(store.expire)
app.add_typer(bench_app, name="bench")
app.add_typer(projections.project, name="project")
app.add_typer(projections.reconcile, name="reconcile")
app.command("replay")(projections.replay_command)
app.command("serve")(api.serve)
app.add_typer(api.tokens, name="tokens")
app.add_typer(audit.audit, name="audit")
app.add_typer(keys.keys, name="keys")
app.add_typer(fulfil.fulfil, name="fulfil")
app.add_typer(suppliers.suppliers, name="suppliers")
app.add_typer(suppliers.offers, name="offers")
app.add_typer(payments.payments, name="payments")
app.add_typer(upstream_app, name="upstream")
app.command("relay")(kafka.relay_command)

bench_app.command("write")(bench.bench_write)
bench_app.command("growth")(bench.bench_growth)
bench_app.command("import")(bench.bench_import)
bench_app.command("codec")(bench.bench_codec)
bench_app.command("recharge")(bench.bench_recharge)
bench_app.command("scale")(bench.bench_scale)
bench_app.command("replay")(projections.bench_replay_command)
bench_app.command("as-of")(projections.bench_as_of_command)
bench_app.command("api")(api.bench_api)
bench_app.command("audit")(audit.bench_audit_command)
bench_app.command("relay")(kafka.bench_relay_command)


def main() -> None:
    app()
