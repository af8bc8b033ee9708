"""The way from HTTP worker processes to the one writer in the serving process.

`ledger serve --workers N` keeps the writer (and the runner and sweeper) in its own
process and listens on a local socket; each worker's ledger sends commands there and gets
the answers back. A connection per worker thread; each command is one round trip of a
few hundred bytes, and the writer still gathers commands from every worker into one
transaction. Only this machine can connect (a Unix socket, or 127.0.0.1 with a secret).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from multiprocessing.connection import Client, Connection, Listener
from typing import Any, TypeVar

from ledger.commands import Command
from ledger.writer.outcomes import Done, Idempotency
from ledger.writer.writer import Writer

log = logging.getLogger(__name__)
R = TypeVar("R")


class CommandServer:
    """Serves a local writer to other processes."""

    def __init__(self, writer: Writer, address: str, authkey: bytes) -> None:
        self.writer = writer
        self.address = address
        self._listener = Listener(address, family="AF_UNIX", authkey=authkey)
        self._closed = threading.Event()
        self._connections: list[Connection] = []
        threading.Thread(target=self._accept, name="ledger-command-server", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection = self._listener.accept()
            except (OSError, EOFError):
                if self._closed.is_set():
                    return
                continue  # a client that failed the handshake
            self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), name="ledger-command-client", daemon=True).start()

    def _serve(self, connection: Connection) -> None:
        with connection:
            while True:
                try:
                    command, idempotency = connection.recv()
                except (EOFError, OSError):
                    return
                try:
                    answer: Any = ("done", self.writer.execute(command, idempotency))
                except Exception as error:
                    answer = ("raised", error)
                try:
                    connection.send(answer)
                except (OSError, ValueError):
                    return
                except Exception:  # the error did not pickle: say what it was
                    connection.send(("raised", RuntimeError(f"the writer failed: {type(answer[1]).__name__}")))

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for connection in self._connections:
            try:
                connection.close()
            except OSError:
                pass
        if os.path.exists(self.address):
            os.unlink(self.address)


class RemoteWriter:
    """The writer as a worker process sees it: `execute` sends the command to the serving
    process. The risk check runs there too."""

    risk: Any = None

    def __init__(self, address: str, authkey: bytes) -> None:
        self.address = address
        self.authkey = authkey
        self._local = threading.local()

    def _connection(self) -> Connection:
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = Client(self.address, family="AF_UNIX", authkey=self.authkey)
        return connection

    def execute(self, command: Command[R], idempotency: Idempotency | None = None) -> Done[R]:
        connection = self._connection()
        try:
            connection.send((command, idempotency))
            kind, answer = connection.recv()
        except (EOFError, OSError):
            self._local.connection = None  # the serving process went away: a retry reconnects
            raise
        if kind == "raised":
            raise answer
        assert isinstance(answer, Done)
        return answer

    def execute_all(self, commands: Sequence[Command[R]]) -> list[Done[R]]:
        return [self.execute(command) for command in commands]

    def forget(self, ids: Any) -> None:
        """Nothing held here."""

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
