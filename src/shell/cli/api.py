"""`ledger serve`, `ledger tokens`, `ledger bench api`: the HTTP API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from ledger.config import ROLES, Settings
from shell.cli.common import describe_store, err, fail, load_settings, note_generated_key, out, require_kafka, say

if TYPE_CHECKING:  # fastapi and uvicorn load only when a command needs them
    import uvicorn

    from api.services import Services
    from api.token_store import TokenStore
    from ledger.writer.remote import CommandServer

tokens = typer.Typer(help="API tokens: stored hashed in the events' database, shown once; listed and revoked by id.",
                     no_args_is_help=True)


def _api_settings() -> Settings:
    settings = load_settings()
    try:
        settings.token_roles()  # a malformed LEDGER_API_TOKENS fails here, not in every worker
    except ValueError as error:
        raise fail(str(error)) from None
    return settings


def _open_services(settings: Settings) -> Services:
    """The API's services over the process's parts (`shell.composition`): the cipher key is
    resolved here, once, before any worker starts."""
    from api.services import Services
    from shell.composition import compose

    parts = compose(settings)
    try:
        services = Services.open(parts)
    except (ValueError, OSError) as error:
        parts.close()
        raise fail(f"cannot open the store at {describe_store(settings)}: {error}") from None
    note_generated_key(parts.generated_key)
    return services


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLES)}")
    return role


def _quiet_server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn re-raises SIGTERM/SIGINT once it has shut down, which kills the process before
    `serve` closes the store; this server's graceful shutdown returns, and the process exits 0."""
    import uvicorn

    class QuietServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    captured = getattr(self, "_captured_signals", None)
                    if isinstance(captured, list):
                        captured.clear()

    return QuietServer(config)


def _serve_writer(services: Services) -> CommandServer:
    """The one writer stays in this process; the workers reach it over a local socket whose
    address and secret they inherit through the environment."""
    import os
    import secrets
    import tempfile

    from ledger.writer.remote import CommandServer
    from ledger.writer.writer import Writer

    writer = services.ledger.writer
    assert isinstance(writer, Writer)
    address = os.path.join(tempfile.mkdtemp(prefix="ledger-"), "writer.sock")
    authkey = secrets.token_hex(32)
    server = CommandServer(writer, address, authkey.encode())
    os.environ["LEDGER_WRITER_ADDRESS"], os.environ["LEDGER_WRITER_AUTHKEY"] = address, authkey
    return server


def _print_demo_tokens(created: dict[str, str], host: str, port: int) -> None:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    out.print("demo tokens (stored hashed; shown only now):", markup=False, highlight=False)
    for role, token in created.items():
        out.print(f"export TOKEN_{role.upper()}={token}", markup=False, highlight=False, soft_wrap=True)
    out.print("try:", markup=False, highlight=False)
    out.print(f'curl -s -H "Authorization: Bearer $TOKEN_STOREFRONT" {base}/v1/inventory', markup=False,
              highlight=False, soft_wrap=True)
    out.print(f"docs: {base}/docs", markup=False, highlight=False, soft_wrap=True)
    out.print(f"web UI: {base}/ui/ (sign in with one of the tokens above)", markup=False, highlight=False,
              soft_wrap=True)


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes serving requests")] = 1,
    demo: Annotated[bool, typer.Option(help="create one token per role and print them")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    relay: Annotated[bool, typer.Option("--relay", help="also publish the log to Kafka (LEDGER_KAFKA_*)")] = False,
    projections: Annotated[bool, typer.Option(
        help="run the projection runner here; --no-projections when `project run --from-kafka` builds them")] = True,
) -> None:
    """Serve the HTTP API with uvicorn; the read models and the reservation sweeper run once here.

    With --workers 1 they run inside the serving process; with more, uvicorn starts that many
    worker processes for requests and this process keeps the read models up to date and
    expires unpaid reservations. Ctrl-C / SIGTERM shut down gracefully.
    """
    import uvicorn

    from api.app import create_app
    from api.background import Background
    from ledger.collector import tune_for_serving
    from shell import logs

    settings = _api_settings()
    if log_level.lower() not in ("debug", "trace"):
        logs.quiet_thread_deaths()
    if relay and not settings.kafka_bootstrap:
        raise fail("--relay needs LEDGER_KAFKA_BOOTSTRAP (host:port of the Kafka cluster)")
    if relay or settings.serve_relay:
        from projections.kafka.connection import require_bootstrap
        from projections.kafka.relay import events_topic
        from projections.kafka.signing import MessageSigner

        try:
            require_bootstrap(settings)  # TLS and SASL settings too, before the store is opened
            MessageSigner.from_settings(settings, events_topic(settings))
        except ValueError as error:
            raise fail(str(error)) from None
        require_kafka()
    settings = settings.model_copy(update={"serve_relay": relay or settings.serve_relay,
                                           "serve_projections": projections and settings.serve_projections})
    _check_signing_key(settings)
    services = _open_services(settings)
    try:
        if demo:
            _print_demo_tokens({role: services.tokens.store.create(role)[1] for role in ROLES}, host, port)
        if workers == 1:
            config = uvicorn.Config(create_app(services, background=True, tune_collector=True), host=host,
                                    port=port, log_level=log_level, log_config=logs.uvicorn_config(log_level))
            server = _quiet_server(config)
            server.run()  # the app's lifespan stops the runner and the sweeper
            if not server.started:
                raise typer.Exit(3)  # uvicorn's own code for a failed startup (port in use, ...)
            return
        background = Background(services)
        background.start()
        commands = _serve_writer(services)
        tune_for_serving()  # this process runs the writer, the runner and the sweeper
        try:
            uvicorn.run("shell.worker:worker_app", factory=True, host=host, port=port, workers=workers,
                        log_level=log_level, log_config=logs.uvicorn_config(log_level))
        finally:
            commands.close()
            background.close()
    finally:
        services.close()


def _check_signing_key(settings: Settings) -> None:
    """Refuse to start with a checkpoint signing key inside the data directory or readable by
    others (audit.keys), before anything is opened."""
    from audit.keys import RefusedKey, load_signer

    try:
        load_signer(settings)
    except (RefusedKey, OSError) as error:
        raise fail(str(error)) from None


@contextlib.contextmanager
def _token_store() -> Iterator[tuple[TokenStore, dict[str, str]]]:
    """The token table (in the events' database) and the ids -> roles of LEDGER_API_TOKENS: no
    read model is opened."""
    from api.tokens import env_token_ids
    from shell.composition import compose

    settings = _api_settings()
    parts = compose(settings)
    try:
        try:
            store = parts.token_store
            env = settings.token_roles()
            ids = {i.token_id: i.role for i in env_token_ids(parts.master_key, env).values()} if env else {}
        except (ValueError, OSError) as error:
            raise fail(f"cannot open the store at {describe_store(settings)}: {error}") from None
        note_generated_key(parts.generated_key)
        yield store, ids
    finally:
        parts.close()


@tokens.command("create")
def create_token(
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}", callback=_check_role)],
) -> None:
    """Create a token for ROLE; it is stored hashed and printed only this once (its id on stderr)."""
    with _token_store() as (store, _):
        token_id, token = store.create(role)
    say(f"created {role} token {token_id} (stored hashed; it cannot be shown again):", err)
    out.print(token, markup=False, highlight=False, soft_wrap=True)


@tokens.command("list")
def list_tokens() -> None:
    """Every token: id, role, where it comes from, created, last used, revoked. Never a secret."""
    from rich.table import Table

    with _token_store() as (store, env):
        rows = store.rows(env)
    table = Table("id", "role", "source", "created", "last used", "revoked")
    for row in rows:
        table.add_row(row.token_id, row.role, row.source, row.created_at or "", row.last_used_at or "",
                      row.revoked_at or "")
    out.print(table)


@tokens.command("revoke")
def revoke_token(token_id: Annotated[str, typer.Argument(help="the id `tokens list` shows")]) -> None:
    """Revoke a token by its id: every serving process refuses it within about a second."""
    with _token_store() as (store, env):
        row = store.revoke(token_id, env)
    if row is None:
        raise fail(f"no token {token_id} (see `ledger tokens list`)")
    say(f"revoked {row.role} token {row.token_id} at {row.revoked_at}")


def bench_api(
    clients: Annotated[int, typer.Option(min=1, help="concurrent HTTP clients")] = 64,
    keys: Annotated[int, typer.Option(min=1, help="keys on sale (one SKU)")] = 1000,
    attempts: Annotated[int, typer.Option(min=1, help="order attempts in the flash sale")] = 5_000,
    reads: Annotated[int | None, typer.Option(min=1, help="inventory reads (default: as many as attempts)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes of both servers")] = 1,
) -> None:
    """A flash sale over HTTP against a real `ledger serve` on a throwaway store, beside a bare
    FastAPI route doing one database round trip, served the same way."""
    from shell.bench.api import run_bench_api

    settings = load_settings()
    try:
        ok = run_bench_api(settings, clients=clients, keys=keys, attempts=attempts,
                           reads=attempts if reads is None else reads, say=say, workers=workers)
    except RuntimeError as error:
        raise fail(str(error)) from None
    if not ok:
        raise typer.Exit(1)
