"""The store's own key, and the cipher key that opens it.

Every key the ledger uses (the event cipher, the code and account seals, the keyed hashes
aggregate ids are made of, the request fingerprints) is derived from one *store key*. The
store keeps that key in its event database, in the table `ledger_store_key`, sealed (AES-GCM)
under a key derived from LEDGER_CIPHER_KEY (or DATA_DIR/cipher.key), beside the *key id* of
the cipher key that sealed it: a keyed hash of a fixed label, which names a key without
revealing it.

Every process that opens the store unlocks the store key first (`unlock_store`) and refuses,
naming LEDGER_CIPHER_KEY or the key file, when its key is not the one the store was sealed
with, or when it has none at all for a store that holds data; a cipher key is generated only
for an empty store. A store created before the table existed was sealed with its cipher key
itself: that key is checked against one stored event and then recorded as its store key, so
everything already written stays readable.

Rotation (`rotate_cipher_key`, `ledger keys rotate`) seals the same store key under a new
cipher key, in one statement: events are never rewritten, since the audit tree signs them as
stored and aggregate ids are keyed hashes under the store key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.utils import Environment

from ledger.config import Settings, write_new_secret
from ledger.encoding.cipher import KeptKeyAESCipher
from ledger.vault import Seal, derive_key, derive_key_b64

TABLE = "ledger_store_key"
CIPHER_KEY_VARIABLE = "LEDGER_CIPHER_KEY"
_CHECK_LABEL = b"ledger store key check v1"
_DDL = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, key_id TEXT NOT NULL,"
        " sealed_store_key TEXT NOT NULL, store_key_id TEXT NOT NULL, sealed_at TEXT NOT NULL)")


# What PostgreSQL answers a CREATE TABLE IF NOT EXISTS racing another ("tuple concurrently updated",
# a duplicate row type): whoever loses tries again, and then finds the table and the record.
_RACES = (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject, psycopg.errors.DuplicateTable,
          psycopg.errors.InternalError, sqlite3.IntegrityError, FileExistsError)  # and a key file made meanwhile


class StoreKeyError(ValueError):
    """The cipher key given does not open this store (or none was given for a store with data)."""


def key_id(key_b64: str) -> str:
    """A key's name: an HMAC of a fixed label under a key derived from it (safe to show)."""
    return hmac.new(derive_key(key_b64, "key-check"), _CHECK_LABEL, hashlib.sha256).hexdigest()


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class CipherKey:
    """A cipher key and where it came from: the variable, or the file."""

    value: str
    source: str  # "LEDGER_CIPHER_KEY" or the key file's path
    generated: Path | None = None  # the file it is to be written to (a new store's new key)


@dataclass(frozen=True)
class Unlocked:
    """The store key, and the file a new cipher key was generated into (None if none was)."""

    store_key: str
    generated: Path | None


def key_file(settings: Settings) -> Path:
    return settings.data_dir / "cipher.key"


def given_key(settings: Settings) -> CipherKey | None:
    """LEDGER_CIPHER_KEY, else DATA_DIR/cipher.key if it exists, else None."""
    if settings.cipher_key:
        return CipherKey(settings.cipher_key, CIPHER_KEY_VARIABLE)
    path = key_file(settings)
    if path.exists():
        return CipherKey(path.read_text().strip(), str(path.resolve()))
    return None


def unlock_store(settings: Settings) -> Unlocked:
    """The store key of the store `settings` name, unlocked with the cipher key they give.

    StoreKeyError when that key is malformed or does not open the store, or when none is given
    and the store holds data. Nothing is written before the key is accepted: then a new store
    records its key (and a new cipher key goes to DATA_DIR/cipher.key first)."""
    if _in_memory(settings):  # nothing outlives the process: nothing to check against
        key = given_key(settings) or CipherKey(new_key(), CIPHER_KEY_VARIABLE)
        _well_formed(key)
        return Unlocked(key.value, None)
    for attempt in range(8):
        try:
            return _unlock(settings, given_key(settings))  # again after a race: the key file may be there now
        except _RACES:
            if attempt == 7:  # several processes creating the table at once on PostgreSQL
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _unlock(settings: Settings, given: CipherKey | None) -> Unlocked:
    with connect(settings) as conn:
        record = _record(conn)
        sample = _first_event(conn) if record is None else None
        if given is None:
            if record is not None or sample is not None:
                raise StoreKeyError(
                    f"this store holds data and no cipher key was given: set {CIPHER_KEY_VARIABLE} "
                    f"to the store's key, or put it in {key_file(settings).resolve()} (a new key is only made for "
                    "an empty store)")
            given = CipherKey(new_key(), str(key_file(settings).resolve()), generated=key_file(settings))
        _well_formed(given)
        if record is not None:
            return Unlocked(_open(record, given), None)
        if sample is not None:  # a store from before key checks: sealed with the cipher key itself
            if not _decrypts(given.value, sample):
                raise StoreKeyError(
                    f"{given.source} does not open this store: its events were sealed with another key "
                    f"(this one is key id {key_id(given.value)[:16]})")
            store_key = given.value
        else:
            store_key = new_key()
        if given.generated is not None:
            write_new_secret(given.generated, given.value)  # before the store is sealed under it
        _create(conn, _seal_record(store_key, given.value))
        stored = _record(conn)  # another process may have sealed it first
        assert stored is not None
        return Unlocked(_open(stored, given), given.generated)


def rotate_cipher_key(settings: Settings, new_file: Path) -> str:
    """Seal the store key under a new cipher key, written to `new_file` first (mode 0600, must not
    exist): the new key's id. StoreKeyError if the current key does not open the store."""
    if _in_memory(settings):
        raise StoreKeyError("an in-memory store has no key to rotate")
    given = given_key(settings)
    if given is None:
        raise StoreKeyError(f"no cipher key to rotate: set {CIPHER_KEY_VARIABLE} or put the key in "
                            f"{key_file(settings).resolve()}")
    unlock_store(settings)  # records the store key of an older store first
    replacement = new_key()
    write_new_secret(new_file, replacement)
    with connect(settings) as conn:
        record = _record(conn)
        assert record is not None
        store_key = _open(record, given)
        sealed = _seal_record(store_key, replacement)
        changed = _execute(conn, f"UPDATE {TABLE} SET key_id = ?, sealed_store_key = ?, sealed_at = ? "
                                 "WHERE id = 1 AND key_id = ?",
                           (sealed["key_id"], sealed["sealed_store_key"], sealed["sealed_at"], record["key_id"]))
        if changed != 1:
            raise StoreKeyError(f"this store was sealed under another key meanwhile; "
                                f"{new_file} is not its key")
    return key_id(replacement)


# ---- the record ----


def _seal_record(store_key: str, cipher_key: str) -> dict[str, str]:
    return {
        "key_id": key_id(cipher_key),
        "sealed_store_key": Seal(cipher_key, "store-key-seal").seal(store_key),
        "store_key_id": key_id(store_key),
        "sealed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _open(record: dict[str, str], given: CipherKey) -> str:
    mine = key_id(given.value)
    if not hmac.compare_digest(record["key_id"], mine):
        raise StoreKeyError(
            f"{given.source} does not open this store: the store is sealed under key id "
            f"{record['key_id'][:16]}, this key's id is {mine[:16]} (give the store's key in {CIPHER_KEY_VARIABLE} "
            "or the key file; after `ledger keys rotate`, the new one)")
    try:
        store_key = Seal(given.value, "store-key-seal").unseal(record["sealed_store_key"])
    except ValueError as error:
        raise StoreKeyError(f"the store key does not unseal under {given.source}: {error}") from None
    if not hmac.compare_digest(key_id(store_key), record["store_key_id"]):
        raise StoreKeyError("the store key is not the one recorded beside it")
    return store_key


def _well_formed(given: CipherKey) -> None:
    try:
        derive_key(given.value, "key-check")
    except ValueError:  # binascii.Error included
        raise StoreKeyError(f"{given.source} is not a key: base64 of 16, 24 or 32 bytes expected") from None


def _decrypts(cipher_key: str, state: bytes) -> bool:
    cipher = KeptKeyAESCipher(Environment(env={"CIPHER_KEY": derive_key_b64(cipher_key, "event-payload")}))
    try:
        cipher.decrypt(state)
    except ValueError:
        return False
    return True


# ---- SQL, on a connection of its own ----


def _in_memory(settings: Settings) -> bool:
    return not settings.is_postgres and settings.eventsourcing_env()["SQLITE_DBNAME"] == ":memory:"


@contextmanager
def connect(settings: Settings) -> Iterator[Any]:
    env = settings.eventsourcing_env()
    if settings.is_postgres:
        conn: Any = psycopg.connect(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, autocommit=True,
            connect_timeout=5)
    else:
        conn = sqlite3.connect(env["SQLITE_DBNAME"], isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
    with closing(conn):
        yield conn


def _is_postgres(conn: Any) -> bool:
    return isinstance(conn, psycopg.Connection)


def _execute(conn: Any, statement: str, params: tuple[Any, ...] = ()) -> int:
    if _is_postgres(conn):
        return int(conn.execute(statement.replace("?", "%s"), params).rowcount)
    return int(conn.execute(statement, params).rowcount)


def _query(conn: Any, statement: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """The first row, or None when there is none or the table does not exist yet."""
    try:
        if _is_postgres(conn):
            row = conn.execute(statement.replace("?", "%s"), params).fetchone()
        else:
            row = conn.execute(statement, params).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return None
        raise
    return tuple(row) if row is not None else None


def _record(conn: Any) -> dict[str, str] | None:
    row = _query(conn, f"SELECT key_id, sealed_store_key, store_key_id FROM {TABLE} WHERE id = 1")
    return None if row is None else dict(zip(("key_id", "sealed_store_key", "store_key_id"), row, strict=True))


def _first_event(conn: Any) -> bytes | None:
    """The stored bytes of the first event, if the store holds any."""
    if _is_postgres(conn):
        row = _query(conn, "SELECT state FROM ledger_events ORDER BY notification_id LIMIT 1")  # LedgerApp's table
    else:
        row = _query(conn, "SELECT CAST(state AS BLOB) FROM stored_events ORDER BY rowid LIMIT 1")
    return bytes(row[0]) if row is not None else None


def _create(conn: Any, sealed: dict[str, str]) -> None:
    _execute(conn, _DDL)
    _execute(conn, f"INSERT INTO {TABLE} (id, key_id, sealed_store_key, store_key_id, sealed_at) "
                   "VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
             (sealed["key_id"], sealed["sealed_store_key"], sealed["store_key_id"], sealed["sealed_at"]))
