"""`ledger serve`, `ledger tokens`, `ledger bench api`: joined to the `ledger` command
through the `ledger.cli` entry point."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from api.settings import ROLES, ApiSettings

if TYPE_CHECKING:  # fastapi and uvicorn (the `api` extra) load only when a command needs them
    import uvicorn
    from fastapi import FastAPI

    from api.services import Services
    from ledger.writer.remote import CommandServer

out = Console()
err = Console(stderr=True)
log = logging.getLogger(__name__)

tokens = typer.Typer(help="API tokens: stored hashed, shown once.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _api_settings() -> ApiSettings:
    try:
        api = ApiSettings()
        api.token_roles()  # a malformed LEDGER_API_TOKENS fails here, not in every worker
    except (ValidationError, ValueError) as error:
        raise _fail(str(error).splitlines()[0]) from None
    return api


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


def worker_app() -> FastAPI:
    """The app of one `ledger serve --workers N` worker process: requests only; the parent runs
    the projection runner and the sweeper once for the whole deployment."""
    from api.app import create_app

    return create_app(background=False)


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
    from api.services import Services
    from ledger.cli import describe_store, load_settings, note_generated_key
    from ledger.config import resolve_cipher_key

    settings = load_settings()
    api = _api_settings()
    if relay and not settings.kafka_bootstrap:
        raise _fail("--relay needs LEDGER_KAFKA_BOOTSTRAP (host:port of the Kafka cluster)")
    api = api.model_copy(update={"serve_relay": relay or api.serve_relay,
                                 "serve_projections": projections and api.serve_projections})
    try:
        _, generated = resolve_cipher_key(settings)  # before any worker: one key, generated once
        services = Services.open(settings, api)
    except (ValueError, OSError) as error:
        raise _fail(f"cannot open the store at {describe_store(settings)}: {error}") from None
    note_generated_key(generated)
    try:
        if demo:
            _print_demo_tokens({role: services.create_token(role) for role in ROLES}, host, port)
        if workers == 1:
            config = uvicorn.Config(create_app(services, background=True), host=host, port=port,
                                    log_level=log_level)
            server = _quiet_server(config)
            server.run()  # the app's lifespan stops the runner and the sweeper
            if not server.started:
                raise typer.Exit(3)  # uvicorn's own code for a failed startup (port in use, ...)
            return
        background = Background(services)
        background.start()
        commands = _serve_writer(services)
        try:
            uvicorn.run("api.cli:worker_app", factory=True, host=host, port=port, workers=workers,
                        log_level=log_level)
        finally:
            commands.close()
            background.close()
    finally:
        services.close()


@tokens.command("create")
def create_token(
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}", callback=_check_role)],
) -> None:
    """Create a token for ROLE; it is stored hashed and printed only this once."""
    from api.services import Services
    from ledger.cli import describe_store, load_settings, note_generated_key
    from ledger.config import resolve_cipher_key

    settings = load_settings()
    api = _api_settings()
    try:
        _, generated = resolve_cipher_key(settings)
        services = Services.open(settings, api)
    except (ValueError, OSError) as error:
        raise _fail(f"cannot open the store at {describe_store(settings)}: {error}") from None
    note_generated_key(generated)
    try:
        token = services.create_token(role)
    finally:
        services.close()
    err.print(f"created a {role} token (stored hashed; it cannot be shown again):", markup=False, highlight=False)
    out.print(token, markup=False, highlight=False, soft_wrap=True)


def bench_api(
    clients: Annotated[int, typer.Option(min=1, help="concurrent HTTP clients")] = 64,
    keys: Annotated[int, typer.Option(min=1, help="keys on sale (one SKU)")] = 1000,
    attempts: Annotated[int, typer.Option(min=1, help="order attempts in the flash sale")] = 5_000,
    reads: Annotated[int | None, typer.Option(min=1, help="inventory reads (default: as many as attempts)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes of both servers")] = 1,
) -> None:
    """A flash sale over HTTP against a real `ledger serve` on a throwaway store, beside a bare
    FastAPI route doing one database round trip, served the same way."""
    from api.bench import run_bench_api
    from ledger.cli import load_settings

    settings = load_settings()
    try:
        ok = run_bench_api(settings, clients=clients, keys=keys, attempts=attempts,
                           reads=attempts if reads is None else reads, say=_say, workers=workers)
    except RuntimeError as error:
        raise _fail(str(error)) from None
    if not ok:
        raise typer.Exit(1)


def _say(line: str) -> None:
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer, groups: dict[str, Any]) -> None:
    """Entry point `ledger.cli`."""
    app.command("serve")(serve)
    app.add_typer(tokens, name="tokens")
    groups["bench"].command("api")(bench_api)
