"""Where an event stands in the global log, asked of the store's own table.

The library hands out notification ids when it records events, but has no call to ask
for the id of an event recorded earlier (a replayed answer needs it), nor to read one
aggregate's events with their positions (a timeline, the audit streams and the event browser
need them: `stream_range`, on an index of our own by aggregate and position)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from ledger.application import LedgerApp

log = logging.getLogger(__name__)


def position_of(app: LedgerApp, originator_id: UUID, version: int) -> int:
    """The notification id of one stored event (0 if it is not stored)."""
    recorder: Any = app.recorder
    if isinstance(recorder, PostgresApplicationRecorder):
        table = SQL("{}.{}").format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        where = "WHERE originator_id = %s AND originator_version = %s"
        statement = SQL("SELECT notification_id FROM {} " + where).format(table)
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, (originator_id, version))
            row = cursor.fetchone()
            return int(row["notification_id"]) if row else 0
    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT rowid FROM {recorder.events_table_name} WHERE originator_id = ? AND originator_version = ?",
                (originator_id.hex, version),
            )
            row = cursor.fetchone()
            return int(row[0]) if row else 0
    raise TypeError(f"no position lookup for {type(recorder).__name__}")


def events_through(app: LedgerApp, position: int) -> int:
    """How many events the log holds at positions up to `position`: the leaf index of the event
    after it in the audit log's Merkle tree, whose leaves are every event in log order."""
    recorder: Any = app.recorder
    if position <= 0:
        return 0
    if isinstance(recorder, PostgresApplicationRecorder):
        table = SQL("{}.{}").format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        statement = SQL("SELECT count(*) AS n FROM {} WHERE notification_id <= %s").format(table)
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, (position,))
            row = cursor.fetchone()
            return int(row["n"]) if row else 0
    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT count(*) FROM {recorder.events_table_name} WHERE rowid <= ?", (position,))
            return int(cursor.fetchone()[0])
    raise TypeError(f"no event count for {type(recorder).__name__}")


def ensure_stream_index(app: LedgerApp) -> None:
    """An index of the events by aggregate and position, so that one aggregate's events after a
    position are found without reading the log (`stream_range`). Made once; a concurrent maker
    (another worker starting) may win the race, which is fine."""
    recorder: Any = app.recorder
    try:
        if isinstance(recorder, PostgresApplicationRecorder):
            table = SQL("{}.{}").format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
            index = Identifier(f"{recorder.events_table_name}_by_stream_position")
            with recorder.datastore.transaction(commit=True) as cursor:
                cursor.execute(SQL("CREATE INDEX IF NOT EXISTS {} ON {} (originator_id, notification_id)")
                               .format(index, table))
        elif isinstance(recorder, SQLiteApplicationRecorder):  # an index ends with the rowid: the position
            with recorder.datastore.transaction(commit=True) as cursor:
                cursor.execute(f"CREATE INDEX IF NOT EXISTS {recorder.events_table_name}_by_stream_position "
                               f"ON {recorder.events_table_name} (originator_id)")
    except Exception as error:  # made by another process meanwhile, or a read-only user: reads still work
        log.info("stream index not made here (%s)", type(error).__name__)


def stream_range(
    app: LedgerApp, originator_id: UUID, *, after: int = 0, stop: int | None = None, limit: int = 100,
    topics: Sequence[str] = (), newest_first: bool = False,
) -> list[Notification]:
    """Up to `limit` stored events of one aggregate at positions after `after` and at most `stop`,
    of `topics` if given, in log order (or newest first), each with its position: one query on the
    index of `ensure_stream_index`, whatever the length of the log or of the stream."""
    recorder: Any = app.recorder
    bound = stop if stop is not None else 2**63 - 1
    order = "DESC" if newest_first else "ASC"
    if isinstance(recorder, PostgresApplicationRecorder):
        table = SQL("{}.{}").format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        only = " AND topic = ANY(%s)" if topics else ""
        statement = SQL(
            "SELECT notification_id, originator_version, topic, state FROM {} WHERE originator_id = %s"
            " AND notification_id > %s AND notification_id <= %s" + only + " ORDER BY notification_id " + order
            + " LIMIT %s"
        ).format(table)
        params: tuple[Any, ...] = (originator_id, after, bound, *((list(topics),) if topics else ()), limit)
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, params)
            rows = [(r["notification_id"], r["originator_version"], r["topic"], r["state"]) for r in cursor.fetchall()]
    elif isinstance(recorder, SQLiteApplicationRecorder):
        only = f" AND topic IN ({', '.join('?' for _ in topics)})" if topics else ""
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT rowid, originator_version, topic, state FROM {recorder.events_table_name}"
                f" WHERE originator_id = ? AND rowid > ? AND rowid <= ?{only} ORDER BY rowid {order} LIMIT ?",
                (originator_id.hex, after, bound, *topics, limit),
            )
            rows = [tuple(r) for r in cursor.fetchall()]
    else:
        raise TypeError(f"no stream reads for {type(recorder).__name__}")
    return [Notification(id=int(position), originator_id=originator_id, originator_version=int(version),
                         topic=str(topic), state=bytes(state)) for position, version, topic, state in rows]
