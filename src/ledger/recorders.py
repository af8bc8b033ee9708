"""The PostgreSQL events recorder: the library's own, writing its rows by binary COPY.

The library inserts a transaction's events as one `INSERT ... SELECT FROM unnest(arrays)`
whose array parameters psycopg builds in Python, in text form: ~20 % of the writer's time
when it group-commits hundreds of events (py-spy, `ledger bench write --in-flight 32`).
It also hangs once the parameter passes some megabytes (`ledger.bulk`). Here the same
rows go through one binary COPY, which psycopg's C extension formats, under the library's
own EXCLUSIVE table lock and NOTIFY, so the log's order is still its commit order.

The notification ids come back without a second scan: while this transaction holds the
lock nobody else can insert, so the newest `n` rows it can see are its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Identifier


class CopyingPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        table = SQL("{0}.{1}").format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        self._copy = SQL("COPY {0} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
                         ).format(table)
        self._newest_ids = SQL("SELECT notification_id FROM {0} ORDER BY notification_id DESC LIMIT %s").format(table)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        # get_connection() turns psycopg's errors into the library's (a duplicate: IntegrityError).
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self.copy_locked(curs, stored_events)
            curs.execute(self._newest_ids, (len(stored_events),), prepare=True)
            curs.row_factory = tuple_row  # type: ignore[assignment]  # not dict rows: one int per event
            return [row[0] for row in reversed(curs.fetchall())]

    def copy_locked(self, curs: Cursor[DictRow], stored_events: Iterable[StoredEvent]) -> None:
        """Lock the events table, NOTIFY, COPY `stored_events` in (a stream is consumed once)."""
        self._lock_table(curs)  # the library's own lock statements: same lock, same timeout
        self._notify_channel(curs)
        with curs.copy(self._copy) as rows:
            rows.set_types(["uuid", "int8", "text", "bytea"])
            for event in stored_events:
                rows.write_row((event.originator_id, event.originator_version, event.topic, event.state))
