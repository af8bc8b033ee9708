"""Appending a very large number of new events in ONE transaction, streamed.

`Application.save()` holds every stored event in memory (and the library's own PostgreSQL
recorder sends them as one array parameter in pipeline mode, which hangs once it passes
some megabytes; docs/performance.md has the reproduction). Here events are mapped one by
one with the application's own mapper (transcoder and cipher included) and streamed into
the library's own events table:

* PostgreSQL: the recorder's own locked binary COPY (`ledger.storage.recorders`), fed from the
  stream; the last notification id is read under the lock.
* SQLite: one write transaction, `executemany` over the stream.

All or nothing: any exception from the event stream, a duplicate (aggregate id, version)
or a database error rolls back everything. A duplicate raises the library's
`IntegrityError`, as `save()` does, so the optimistic version check still fences
aggregates that already exist (their next version collides). Snapshots and the
aggregate cache are not touched: the repository fast-forwards cached aggregates.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from ledger.storage.recorders import CopyingPostgresRecorder

Progress = Callable[[int], None]
"""Called with the number of events written since the last call."""

PROGRESS_EVERY = 2_000
LOOKUP_CHUNK_PG = 10_000
LOOKUP_CHUNK_SQLITE = 500  # SQLite builds before 3.32 allow 999 variables per statement


def append_new_events(
    app: Application[UUID], events: Iterable[DomainEventProtocol[UUID] | StoredEvent], progress: Progress | None = None
) -> int:
    """Write every event of `events` in one transaction (domain events, or events the caller
    stored already: `imports.stored_registrations`); return the last notification id.

    The iterable is consumed once, lazily: memory holds one event (and a COPY buffer) at
    a time, however many there are. An empty iterable writes nothing and returns the
    current last notification id.
    """
    to_stored = app.mapper.to_stored_event
    stored = (event if isinstance(event, StoredEvent) else to_stored(event) for event in events)
    counted = _counted(stored, progress) if progress is not None else stored
    recorder = app.recorder
    if isinstance(recorder, CopyingPostgresRecorder):
        return _append_postgres(recorder, counted)
    if isinstance(recorder, SQLiteApplicationRecorder):
        return _append_sqlite(recorder, counted)
    raise TypeError(f"bulk append supports PostgreSQL and SQLite, not {type(recorder).__name__}")


def stored_ids(app: Application[UUID], ids: Iterable[UUID]) -> set[UUID]:
    """Which of `ids` have at least one event stored: one query per few thousand ids."""
    recorder = app.recorder
    found: set[UUID] = set()
    if isinstance(recorder, PostgresApplicationRecorder):
        statement = SQL("SELECT DISTINCT originator_id FROM {0}.{1} WHERE originator_id = ANY(%b)").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
        )
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            for chunk in _chunks(ids, LOOKUP_CHUNK_PG):
                curs.execute(statement, (chunk,))
                found.update(row["originator_id"] for row in curs.fetchall())
        return found
    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as curs:
            for chunk in _chunks(ids, LOOKUP_CHUNK_SQLITE):
                marks = ",".join("?" * len(chunk))
                curs.execute(
                    f"SELECT DISTINCT originator_id FROM {recorder.events_table_name} "
                    f"WHERE originator_id IN ({marks})",
                    [i.hex for i in chunk],
                )
                found.update(UUID(row["originator_id"]) for row in curs.fetchall())
        return found
    raise TypeError(f"bulk lookup supports PostgreSQL and SQLite, not {type(recorder).__name__}")


def _append_postgres(recorder: CopyingPostgresRecorder, stored: Iterator[StoredEvent]) -> int:
    with recorder.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
        recorder.copy_locked(curs, stored)
        curs.execute(recorder.max_notification_id_statement)
        row: Any = curs.fetchone()
        return int(row["max"] or 0)


def _append_sqlite(recorder: SQLiteApplicationRecorder, stored: Iterator[StoredEvent]) -> int:
    rows = (
        (_hex(event.originator_id), event.originator_version, event.topic, event.state)
        for event in stored
    )
    try:
        with recorder.datastore.transaction(commit=True) as curs:
            curs.executemany(recorder.insert_events_statement, rows)
            return int(recorder._max_notification_id(curs) or 0)
    except sqlite3.IntegrityError as e:  # raised inside the transaction, so not converted by the library
        raise IntegrityError(e) from e


def _hex(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


def _counted(stored: Iterator[StoredEvent], progress: Progress) -> Iterator[StoredEvent]:
    pending = 0
    for event in stored:
        yield event
        pending += 1
        if pending == PROGRESS_EVERY:
            progress(pending)
            pending = 0
    if pending:
        progress(pending)


def _chunks(ids: Iterable[UUID], size: int) -> Iterator[list[UUID]]:
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk
