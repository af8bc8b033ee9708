"""Where read models live: their own tables beside the events (or in another database),
with the positions they reached kept by the library's tracking recorder in the same
transaction as their rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, Tracking, TrackingRecorder
from eventsourcing.utils import Environment

from ledger.application import with_startup_retries
from ledger.config import Settings

# Money stays exact in SQLite as decimal text; PostgreSQL stores it as NUMERIC.
sqlite3.register_adapter(Decimal, str)

VERSIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_versions ("
    " name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


class StalePosition(Exception):
    """A batch was computed on rows read at another position than the one stored now: its
    commit is refused. The rows in memory must be reloaded before going on."""


class ViewStore:
    """A thin, dialect-aware wrapper: SQL is written with `?` placeholders and `{name}`
    table names; upserts use `ON CONFLICT`, which SQLite and PostgreSQL both speak."""

    def __init__(self, settings: Settings, database_url: str | None = None) -> None:
        url = database_url or settings.views_database_url or settings.database_url
        view_settings = settings.model_copy(update={"database_url": url})
        env = view_settings.eventsourcing_env()
        self.is_postgres = view_settings.is_postgres
        factory = InfrastructureFactory.construct(Environment("Projections", env))
        self.tracking: TrackingRecorder = with_startup_retries(factory.tracking_recorder)
        self._datastore: Any = getattr(self.tracking, "datastore")  # noqa: B009
        with self.transaction() as cursor:
            self.execute(cursor, VERSIONS_DDL)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._datastore.transaction(commit=True) as cursor:
            yield cursor

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.is_postgres else statement

    def execute(self, cursor: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        cursor.execute(self.sql(statement), tuple(params))
        return cursor

    def executemany(self, cursor: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cursor.executemany(self.sql(statement), [tuple(r) for r in rows])

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One read statement. On PostgreSQL the pool's connections are autocommit, so a single
        SELECT needs no BEGIN/COMMIT: one round trip instead of three."""
        with self._read_cursor() as cursor:
            self.execute(cursor, statement, params)
            return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in cursor.fetchall()]

    @contextmanager
    def _read_cursor(self) -> Iterator[Any]:
        if self.is_postgres:
            with self._datastore.cursor() as cursor:
                yield cursor
        else:
            with self._datastore.transaction(commit=False) as cursor:
                yield cursor

    def position(self, tracking_name: str) -> int:
        return self.tracking.max_tracking_id(tracking_name) or 0

    def record_position(self, cursor: Any, tracking_name: str, position: int, previous: int) -> None:
        """Move `tracking_name` from `previous` to `position` in the caller's transaction, or
        raise StalePosition if the store is not at `previous`: a batch built on rows of another
        position (memory not reloaded, a commit whose answer was lost, a second runner) never
        commits. On PostgreSQL the row stays locked until the transaction ends."""
        if self.is_postgres:
            table = f'"{self._datastore.schema}"."{self.tracking.tracking_table_name}"'  # type: ignore[attr-defined]
            self.execute(cursor, f"SELECT max(notification_id) AS max FROM (SELECT notification_id FROM {table}"
                                 " WHERE application_name = ? FOR UPDATE) AS locked", (tracking_name,))
            stored = cursor.fetchone()["max"]
        else:  # SQLite: one writer at a time
            stored = self.tracking._max_tracking_id(tracking_name, cursor)  # type: ignore[attr-defined]
        if (stored or 0) != previous:
            raise StalePosition(f"{tracking_name} is at {stored or 0} in the store, not at {previous}")
        self.tracking._insert_tracking(cursor, Tracking(tracking_name, position))  # type: ignore[attr-defined]

    def drop_dead_connections(self) -> None:
        """After a lost connection: test the pooled ones and replace those the server closed,
        so that recovery costs one retry, not one per dead connection (PostgreSQL)."""
        if self.is_postgres:
            self._datastore.pool.check()

    def active_version(self, name: str) -> int:
        rows = self.query("SELECT version FROM projection_versions WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 1

    def active_versions(self) -> dict[str, int]:
        """Every read model's active version in one query (absent: version 1)."""
        rows = self.query("SELECT name, version FROM projection_versions")
        return {str(name): int(version) for name, version in rows}

    def set_active_version(self, cursor: Any, name: str, version: int) -> None:
        self.execute(
            cursor,
            "INSERT INTO projection_versions (name, version) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET version = excluded.version",
            (name, version),
        )

    def close(self) -> None:
        self._datastore.close()
