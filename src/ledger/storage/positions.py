"""Where an event stands in the global log, asked of the store's own table.

The library hands out notification ids when it records events, but has no call to ask
for the id of an event recorded earlier (a replayed answer needs it), nor to read one
aggregate's events with their positions (a timeline needs them)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from ledger.application import LedgerApp


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


def stream_page(
    app: LedgerApp, originator_id: UUID, *, after: int = 0, before: int | None = None, limit: int = 100
) -> list[Notification]:
    """Up to `limit` stored events of one aggregate at positions after `after` and before
    `before`, newest first, each with its position (`Notification.id`).

    It walks the aggregate's (originator_id, version) key backwards: within one aggregate a later
    version always has a later position, so the newest page of a stream of a million events costs
    `limit` rows, and a page `k` pages back about `k * limit`."""
    recorder: Any = app.recorder
    bound = before if before is not None else 2**63 - 1
    if isinstance(recorder, PostgresApplicationRecorder):
        table = SQL("{}.{}").format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        statement = SQL(
            "SELECT notification_id, originator_version, topic, state FROM {} WHERE originator_id = %s"
            " AND notification_id > %s AND notification_id < %s ORDER BY originator_version DESC LIMIT %s"
        ).format(table)
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, (originator_id, after, bound, limit))
            rows = [(r["notification_id"], r["originator_version"], r["topic"], r["state"]) for r in cursor.fetchall()]
    elif isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT rowid, originator_version, topic, state FROM {recorder.events_table_name}"
                " WHERE originator_id = ? AND rowid > ? AND rowid < ? ORDER BY originator_version DESC LIMIT ?",
                (originator_id.hex, after, bound, limit),
            )
            rows = [tuple(r) for r in cursor.fetchall()]
    else:
        raise TypeError(f"no stream reads for {type(recorder).__name__}")
    return [Notification(id=int(position), originator_id=originator_id, originator_version=int(version),
                         topic=str(topic), state=bytes(state)) for position, version, topic, state in rows]
