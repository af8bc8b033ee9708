"""Where read models live: their own tables beside the events (or in another database),
with the positions they reached kept by the library's tracking recorder in the same
transaction as their rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import Tracking

from ledger.config import Settings
from ledger.storage.database import Database, _values

STATUS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_status ("
    " tracking_name TEXT PRIMARY KEY, position BIGINT NOT NULL, events_per_s DOUBLE PRECISION NOT NULL,"
    " updated_at TEXT NOT NULL)"
)
VERSIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_versions ("
    " name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)



class ActiveVersions(dict[str, int]):
    """Read model name -> the version readers use; a read model never rebuilt is at version 1."""

    def __missing__(self, name: str) -> int:
        return 1


class StalePosition(Exception):
    """A batch was computed on rows read at another position than the one stored now: its
    commit is refused. The rows in memory must be reloaded before going on."""


class ViewStore(Database):
    """Read models' tables: the position each reached, kept by the library's tracking recorder in
    the same transaction as its rows, and the version readers use."""

    def __init__(self, settings: Settings, database_url: str | None = None) -> None:
        super().__init__(settings, database_url)
        with self.transaction() as cursor:
            self.execute(cursor, VERSIONS_DDL)
            self.execute(cursor, STATUS_DDL)  # `ledger project status` reads it before any runner ran

    def position(self, tracking_name: str) -> int:
        return self.tracking.max_tracking_id(tracking_name) or 0

    def expect_positions(self, cursor: Any, expected: Mapping[str, int]) -> None:
        """Raise StalePosition unless each tracking name is stored at its expected position,
        read in the caller's transaction (on PostgreSQL the rows stay locked until it ends):
        rows built at another position (memory not reloaded, a commit whose answer was lost,
        a second runner) never commit. One query for all names."""
        if not expected:
            return
        lock = " FOR UPDATE" if self.is_postgres else ""
        marks = ", ".join("?" for _ in expected)
        self.execute(cursor, f"SELECT application_name, notification_id FROM {self._tracking_table}"
                             f" WHERE application_name IN ({marks}){lock}", list(expected))
        stored: dict[str, int] = {}
        for name, position in map(_values, cursor.fetchall()):  # several rows each if multi-row tracking
            stored[name] = max(stored.get(name, 0), position)
        stale = {name: stored.get(name, 0) for name, position in expected.items() if stored.get(name, 0) != position}
        if stale:
            raise StalePosition(f"the store is at {stale}, the rows in memory at {dict(expected)}")

    @property
    def _tracking_table(self) -> str:
        """The library's tracking table, as a statement names it."""
        if self.is_postgres:
            return f'"{self._datastore.schema}"."{self.tracking.tracking_table_name}"'  # type: ignore[attr-defined]
        return "tracking"

    def forget_position(self, cursor: Any, tracking_name: str) -> None:
        """The tables tracked under `tracking_name` were dropped: their position and status go too,
        so that tables made again under the name start from the beginning of the log."""
        self.execute(cursor, f"DELETE FROM {self._tracking_table} WHERE application_name = ?", (tracking_name,))
        self.execute(cursor, "DELETE FROM projection_status WHERE tracking_name = ?", (tracking_name,))

    def record_position(self, cursor: Any, tracking_name: str, position: int) -> None:
        self.tracking._insert_tracking(cursor, Tracking(tracking_name, position))  # type: ignore[attr-defined]

    def record_status(self, cursor: Any, name: str, position: int, rate: float) -> None:
        """Where a read model stands and how fast it went (`projection_status`, made by the runner)."""
        self.execute(
            cursor,
            "INSERT INTO projection_status (tracking_name, position, events_per_s, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tracking_name) DO UPDATE SET position = excluded.position, "
            "events_per_s = excluded.events_per_s, updated_at = excluded.updated_at",
            (name, position, rate, datetime.now(UTC).isoformat()),
        )

    def active_versions(self) -> ActiveVersions:
        """Every read model's active version in one query (`versions[name]`; never swapped: 1).
        The one reader of `projection_versions`; `projections.engine.read_side.ReadSide` caches it."""
        rows = self.query("SELECT name, version FROM projection_versions")
        return ActiveVersions({str(name): int(version) for name, version in rows})

    def set_active_version(self, cursor: Any, name: str, version: int) -> None:
        self.execute(
            cursor,
            "INSERT INTO projection_versions (name, version) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET version = excluded.version",
            (name, version),
        )
