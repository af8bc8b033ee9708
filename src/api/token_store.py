"""The API tokens' table, `auth_tokens`, in the events' database: never the read models' (a host
that builds read models of its own, `project run --from-kafka`, has write access to those and
must not be able to mint a token).

A row per token made by `ledger tokens create` (or `serve --demo`): a random id (what events
and logs name), the SHA-256 of its secret (a 256-bit random secret: nothing to guess from its
hash), its role, when it was made, last used (to the minute or so) and revoked. A token of
LEDGER_API_TOKENS has a row only once it is revoked (no secret in it). Revoked rows stay, so
that `tokens list` still shows them."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger.config import Settings
from ledger.storage.database import Database

log = logging.getLogger(__name__)
STORED, ENV = "stored", "env"  # where a token comes from


def secret_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class TokenRow:
    """What `tokens list` shows of a token: never its secret."""

    token_id: str
    role: str
    source: str  # STORED or ENV
    created_at: str | None
    last_used_at: str | None
    revoked_at: str | None


_COLUMNS = "token_id, role, source, created_at, last_used_at, revoked_at"


class TokenStore:
    def __init__(self, settings: Settings) -> None:
        small = settings.model_copy(update={"postgres_pool_size": 1})
        self.db = Database(small, database_url=settings.effective_database_url)
        with self.db.transaction() as cursor:
            self.db.execute(cursor, "CREATE TABLE IF NOT EXISTS auth_tokens (token_id TEXT PRIMARY KEY,"
                            " secret_sha256 TEXT UNIQUE, role TEXT NOT NULL, source TEXT NOT NULL,"
                            " created_at TEXT, last_used_at TEXT, revoked_at TEXT)")
        self._adopt_old_table()

    def _adopt_old_table(self) -> None:
        """Tokens of the table before this one (`api_tokens`, by hash) move here, each given an
        id, when that table is in this same database; one left in a separate read-model database
        is not trusted (see the module's doc)."""
        found = ("SELECT to_regclass('api_tokens') IS NOT NULL" if self.db.is_postgres else
                 "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'api_tokens'")
        if not self.db.query(found)[0][0]:
            return
        with self.db.transaction() as cursor:
            rows = self.db.execute(cursor, "SELECT token_hash, role, created_at FROM api_tokens").fetchall()
            for row in rows:
                digest, role, created = tuple(row.values()) if isinstance(row, dict) else tuple(row)
                self.db.execute(cursor, "INSERT INTO auth_tokens (token_id, secret_sha256, role, source, created_at)"
                                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                (new_token_id(), digest, role, STORED, created))
            self.db.execute(cursor, "DROP TABLE api_tokens")
        log.info("moved %d API tokens to auth_tokens", len(rows))

    def create(self, role: str) -> tuple[str, str]:
        """A new token of `role`: (its id, its secret). Only the secret's hash is kept."""
        token_id, token = new_token_id(), secrets.token_urlsafe(32)
        with self.db.transaction() as cursor:
            self.db.execute(cursor, "INSERT INTO auth_tokens (token_id, secret_sha256, role, source, created_at)"
                            " VALUES (?, ?, ?, ?, ?)", (token_id, secret_hash(token), role, STORED, utc_now()))
        return token_id, token

    def find(self, digest: str) -> tuple[str, str] | None:
        """(id, role) of the unrevoked stored token whose secret hashes to `digest`."""
        rows = self.db.query("SELECT token_id, role FROM auth_tokens WHERE secret_sha256 = ? AND revoked_at IS NULL",
                             (digest,))
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def revoked(self) -> frozenset[str]:
        rows = self.db.query("SELECT token_id FROM auth_tokens WHERE revoked_at IS NOT NULL")
        return frozenset(str(r[0]) for r in rows)

    def rows(self, env: Mapping[str, str]) -> list[TokenRow]:
        """Every stored token, and the tokens of LEDGER_API_TOKENS (`env`: id -> role), by id."""
        stored = {str(r[0]): _row(r) for r in self.db.query(f"SELECT {_COLUMNS} FROM auth_tokens")}
        for token_id, role in env.items():
            stored.setdefault(token_id, TokenRow(token_id, role, ENV, None, None, None))
        return sorted(stored.values(), key=lambda row: (row.source, row.created_at or "", row.token_id))

    def revoke(self, token_id: str, env: Mapping[str, str]) -> TokenRow | None:
        """Revoke the token `token_id` (stored, or of `env`: id -> role); None if there is none.
        Revoking a revoked token changes nothing."""
        now = utc_now()
        with self.db.transaction() as cursor:
            self.db.execute(cursor, "UPDATE auth_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                            (now, token_id))
            if token_id in env:
                self.db.execute(cursor, "INSERT INTO auth_tokens (token_id, role, source, revoked_at)"
                                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (token_id, env[token_id], ENV, now))
        return next((row for row in self.rows(env) if row.token_id == token_id), None)

    def record_use(self, used: Iterable[tuple[str, str]]) -> None:
        """(id, when) of tokens used lately."""
        with self.db.transaction() as cursor:
            for token_id, when in used:
                self.db.execute(cursor, "UPDATE auth_tokens SET last_used_at = ? WHERE token_id = ?", (when, token_id))

    def close(self) -> None:
        self.db.close()


def _row(values: tuple[object, ...]) -> TokenRow:
    token_id, role, source, created, used, revoked = (None if v is None else str(v) for v in values)
    return TokenRow(str(token_id), str(role), str(source), created, used, revoked)


def new_token_id() -> str:
    return "tok_" + secrets.token_hex(8)
