"""The PostgreSQL events recorder: the library's own, writing its rows by binary COPY in
four round trips.

The library inserts a transaction's events as one `INSERT ... SELECT FROM unnest(arrays)`
whose array parameters psycopg builds in Python, in text form: ~20 % of the writer's time
when it group-commits hundreds of events (py-spy, `ledger bench write --in-flight 32`).
It also hangs once the parameter passes some megabytes (`ledger.supplier_import.bulk`). Here the same
rows go through one binary COPY, which psycopg's C extension formats, under the library's
own EXCLUSIVE table lock and NOTIFY, so the log's order is still its commit order.

Under light load a commit carries a few commands, and its time went on round trips (BEGIN,
SET LOCAL, LOCK, NOTIFY, COPY, the ids, COMMIT: eight, each a wait for the GIL back):
here the statements before the COPY go as one simple query, and so do the ids and COMMIT.

The notification ids come back without a second scan: while this transaction holds the
lock nobody else can insert, so the newest `n` rows it can see are its own.

Reading the log (`select_notifications`, every page of `ledger.storage.event_log`) is the library's
query too, read as tuples: the pool's dict rows and the look-ups by name were two thirds of a
page's CPU, which a rebuild's reading thread spent holding the GIL its decoding thread needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, Notification, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, TupleRow, tuple_row
from psycopg.sql import SQL, Composed, Identifier, Literal

_new = object.__new__


class CopyingPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        table = SQL("{0}.{1}").format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        self._copy = SQL("COPY {0} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
                         ).format(table)
        # The library's own lock statements (same lock, same timeout) and its NOTIFY, as one.
        self._lock_and_notify = SQL("; ").join(
            [*self.lock_table_statements, SQL("NOTIFY {0}").format(Identifier(self.channel_name))])
        self._table = table
        self._selects: dict[tuple[bool, bool, bool, bool], Composed] = {}

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        newest = SQL("SELECT notification_id FROM {0} ORDER BY notification_id DESC LIMIT {1}; COMMIT").format(
            self._table, Literal(len(stored_events)))
        # get_connection() turns psycopg's errors into the library's (a duplicate: IntegrityError).
        # Its connections are in autocommit mode: BEGIN and COMMIT ride with other statements.
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            try:
                curs.execute(SQL("BEGIN; ") + self._lock_and_notify)
                self._copy_rows(curs, stored_events)
                curs.execute(newest)  # no parameters: the simple protocol, several statements
                ids = [row[0] for row in curs.fetchall()]  # tuples, not the pool's dict rows
            except BaseException:
                if conn.info.transaction_status != TransactionStatus.IDLE and not conn.closed:
                    conn.execute("ROLLBACK")
                raise
            ids.reverse()
            return ids

    def copy_locked(self, curs: Cursor[DictRow], stored_events: Iterable[StoredEvent]) -> None:
        """Inside the caller's transaction: lock the events table, NOTIFY, COPY `stored_events`
        in (a stream is consumed once)."""
        curs.execute(self._lock_and_notify)
        self._copy_rows(curs, stored_events)

    def _copy_rows(self, curs: Cursor[DictRow] | Cursor[TupleRow], stored_events: Iterable[StoredEvent]) -> None:
        with curs.copy(self._copy) as rows:
            rows.set_types(["uuid", "int8", "text", "bytea"])
            for event in stored_events:
                rows.write_row((event.originator_id, event.originator_version, event.topic, event.state))


    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = (), *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """The library's page of the log (same conditions, same order), read as tuples.

        Without topics, `stop` is applied here, not sent: `id >= start AND id <= stop ... LIMIT n`
        made PostgreSQL, whenever its statistics were behind the table (a store that just grew),
        scan every row up to `stop` and sort them for the first n (a bitmap scan: 54 ms where the
        index gives the page in 3; a rebuild read the log at half speed). The rows past `stop`
        this reads instead are at most one page, once."""
        bounded = stop is not None and bool(topics)
        shape = (start is not None, inclusive_of_start, bounded, bool(topics))
        statement = self._selects.get(shape) or self._select(*shape)
        params: list[Any] = []
        if start is not None:
            params.append(start)
        if bounded:
            params.append(stop)
        if topics:
            params.append(list(topics))
        params.append(limit)
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, params, prepare=True)
            rows = curs.fetchall()
        # The frozen dataclass's __init__ sets each field through object.__setattr__: a third of
        # the cost of filling the same instance's __dict__ (equal by the dataclass's __eq__).
        page = []
        for i, originator, version, topic, state in rows:
            if stop is not None and i > stop:
                break
            notification = _new(Notification)
            notification.__dict__.update(originator_id=originator, originator_version=version, topic=topic,
                                         state=state, id=i)
            page.append(notification)
        return page

    def _select(self, after: bool, inclusive: bool, before: bool, topics: bool) -> Composed:
        conditions = []
        if after:
            conditions.append(SQL("notification_id >= %s" if inclusive else "notification_id > %s"))
        if before:
            conditions.append(SQL("notification_id <= %s"))
        if topics:
            conditions.append(SQL("topic = ANY(%s)"))
        where: Composed | SQL = SQL(" WHERE ") + SQL(" AND ").join(conditions) if conditions else SQL("")
        statement = SQL("SELECT notification_id, originator_id, originator_version, topic, state FROM {0}{1} "
                        "ORDER BY notification_id LIMIT %s").format(self._table, where)
        self._selects[(after, inclusive, before, topics)] = statement
        return statement
