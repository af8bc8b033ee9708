"""The stored events as they lie in the table, read in log order without the library's
mapper or cipher (verification needs no key), and the canonical bytes of a leaf.

What a leaf covers, in this order (big-endian):

    u8   format (1)
    i64  position            the notification id: the event's place in the global log
    16   originator id       the aggregate's UUID
    i64  originator version
    u32  len(topic), topic   UTF-8
    u32  len(state), state   the stored bytes exactly as stored (compressed/encrypted)

The event's timestamp and metadata live inside `state` (eventsourcing 9.5 keeps no separate
timestamp column), so they are covered as ciphertext."""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections.abc import Sequence
from typing import Any

import psycopg

from ledger.application import LedgerApp
from ledger.config import Settings

Row = tuple[int, bytes, int, bytes, bytes]  # position, originator id (16 bytes), version, topic (UTF-8), state
LEAF_FORMAT = 1
_HEAD = struct.Struct(">BBq16sqI")  # the RFC 9162 leaf prefix 0x00, then the leaf bytes
_LEN = struct.Struct(">I")


def leaf_hashes(rows: Sequence[Row]) -> list[bytes]:
    """RFC 9162 leaf hashes of the rows, in order: SHA-256(0x00 || the leaf bytes above).
    The hot loop of verification."""
    sha, head, length = hashlib.sha256, _HEAD.pack, _LEN.pack
    return [sha(head(0, LEAF_FORMAT, position, originator_id, version, len(topic)) + topic + length(len(state))
                + state).digest() for position, originator_id, version, topic, state in rows]


def leaf_bytes(row: Row) -> bytes:
    """The leaf bytes of one row (the layout above), as `leaf_hashes` hashes them: what a proof
    bundle hands an auditor, who recomputes its leaf hash with `audit.offline_verifier.leaf_hash`."""
    position, originator_id, version, topic, state = row
    return _HEAD.pack(0, LEAF_FORMAT, position, originator_id, version, len(topic))[1:] + topic + \
        _LEN.pack(len(state)) + state


def _uuid_bytes(text: bytes) -> bytes:
    """SQLite keeps the id as 32 hex digits. Anything else was written by hand: it gets 16
    bytes no genuine id hashes to, so verification reports the row instead of failing."""
    try:
        if len(text) == 32:
            return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        pass
    return hashlib.sha256(b"malformed id " + text).digest()[:16]


class EventReader:
    """Bulk reads of the events table: PostgreSQL in binary over one autocommit connection,
    SQLite over its own connection to the file."""

    def __init__(self, settings: Settings) -> None:
        self.env = settings.eventsourcing_env()
        self.is_postgres = settings.is_postgres
        if self.is_postgres:
            table = f'"{LedgerApp.name.lower()}_events"'
            self._select = (
                "SELECT notification_id, uuid_send(originator_id), originator_version, convert_to(topic, 'UTF8'),"
                f" state FROM {table} "
                "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id LIMIT %s"
            )
            self._max = f"SELECT max(notification_id) FROM {table}"
        else:
            self._select = (
                "SELECT rowid, CAST(originator_id AS BLOB), CAST(originator_version AS INTEGER), CAST(topic AS BLOB),"
                " CAST(state AS BLOB) FROM stored_events "
                "WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?"
            )
            self._max = "SELECT max(rowid) FROM stored_events"
        self._conn = self._connect()

    def _connect(self) -> Any:
        env = self.env
        if self.is_postgres:
            return psycopg.connect(
                dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
                user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, autocommit=True,
                connect_timeout=5,
            )
        conn = sqlite3.connect(env["SQLITE_DBNAME"], check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def reconnect(self) -> None:
        try:
            self._conn.close()
        finally:
            self._conn = self._connect()

    def max_position(self) -> int:
        try:
            row = self._conn.execute(self._max).fetchone()
        except sqlite3.OperationalError as error:  # no events table yet: an empty log
            if "no such table" in str(error):
                return 0
            raise
        except psycopg.errors.UndefinedTable:
            return 0
        return int(row[0] or 0)

    def read(self, after: int, limit: int, stop: int | None = None) -> list[Row]:
        """Up to `limit` events after position `after` (and not past `stop`), in log order."""
        bound = stop if stop is not None else 2**63 - 1
        if self.is_postgres:
            with self._conn.cursor(binary=True) as cursor:
                cursor.execute(self._select, (after, bound, limit))
                return cursor.fetchall()  # type: ignore[no-any-return]
        rows = self._conn.execute(self._select, (after, bound, limit)).fetchall()
        return [(p, _uuid_bytes(o), v, t, s) for p, o, v, t, s in rows]

    def row(self, position: int) -> Row | None:
        """The event at `position` as stored (None if there is none)."""
        found = self.read(position - 1, 1, stop=position)
        return found[0] if found else None

    def close(self) -> None:
        self._conn.close()
