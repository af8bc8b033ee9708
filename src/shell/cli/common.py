"""What every `ledger` command shares: consoles, errors, settings, opening the store.

Only typer, rich and the settings load here: each command imports what it needs itself,
so that `ledger --help` stays fast.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError
from rich.console import Console

from ledger.config import Settings

if TYPE_CHECKING:
    from ledger.service.ledger import Clock
    from shell.composition import Components

out = Console()
if not out.is_terminal:
    out = Console(width=160)  # piped or captured: do not squeeze tables into 80 columns
err = Console(stderr=True)


def say(line: str, console: Console = out) -> None:
    """One line as it is: no markup, no highlighting, no wrapping."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print `error: <message>` on stderr; raise what this returns to exit 1."""
    say(f"error: {message}", err)
    return typer.Exit(1)


def load_settings() -> Settings:
    """The settings from the environment; a bad value exits 1 naming its LEDGER_X."""
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(f"LEDGER_{'.'.join(map(str, x['loc'])).upper()}: {x['msg']}" for x in e.errors())
        raise fail(problems) from None


def describe_store(settings: Settings) -> str:
    if settings.is_postgres:
        url = settings.effective_database_url
        return url.split("@")[-1] if "@" in url else url
    name = settings.eventsourcing_env()["SQLITE_DBNAME"]
    return name if name == ":memory:" else str(Path(name).resolve())


def note_generated_key(path: Path | None) -> None:
    if path is not None:
        say(f"note: generated a new master cipher key in {path.resolve()} (mode 0600); keep it safe, the store is "
            "unreadable without it", err)


@contextmanager
def composed(settings: Settings, clock: Clock | None = None,
                 build: Callable[[Components], object] = lambda c: c.app) -> Iterator[Components]:
    """The process's parts (`shell.composition`), with `build` (default: the event store) built at
    once so that a store that cannot be opened exits 1 naming it; domain errors exit 1 too."""
    from ledger.domain.errors import DomainError
    from shell.composition import compose

    components = compose(settings, clock)
    try:
        try:
            build(components)
        except (ValueError, OSError) as e:
            raise fail(f"cannot open the store at {describe_store(settings)}: {e}") from None
        yield components
    except DomainError as e:
        raise fail(e.message) from None
    finally:
        components.close()


def store_and_views(parts: Components) -> object:
    """`composed`'s `build` for commands over the events and the read models: the store first, so
    that a cipher key that does not open it is refused before a read-model table is made."""
    return parts.app, parts.views


def require_kafka() -> None:
    """Exit 1 saying how to install it when the optional `kafka` extra is missing."""
    try:
        import kafka  # noqa: F401
    except ImportError:
        raise fail("Kafka support is the optional `kafka` extra: pip install 'ledger[kafka]'") from None


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A bar on stderr with events/s and ETA; yields the callback (position, head) to call."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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


def stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM: a long-running command stops cleanly on it.

    The handler sets it from a thread of its own. A signal handler runs in the main thread between
    two of its bytecodes, and the main thread of such a command spends its idle time in
    `stop.wait(poll)`, which holds the event's (non-reentrant) lock for a moment on each call: a
    handler calling `stop.set()` then would wait for that lock forever. The relay, polling every
    20 ms in a test, now and then never exited on SIGTERM."""
    stop = threading.Event()

    def handler(*_: object) -> None:
        threading.Thread(target=stop.set, name="stop-on-signal", daemon=True).start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop
