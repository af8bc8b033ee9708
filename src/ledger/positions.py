"""Where an event stands in the global log, asked of the store's own table.

The library hands out notification ids when it records events, but has no call to ask
for the id of an event recorded earlier; a replayed answer needs it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

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
