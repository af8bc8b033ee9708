"""Building audit trees over stores in tests, and tampering with those stores as an attacker
with database access would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audit.checkpoint import Checkpoint, Signer
from audit.log import AuditLog
from audit.rows import EventReader
from audit.store import AuditStore
from audit.verification import Verification, verify
from ledger.config import Settings
from tests.conftest import TEST_CIPHER_KEY


def settings_for(url: str, data_dir: Path) -> Settings:
    return Settings(database_url=url, data_dir=data_dir, cipher_key=TEST_CIPHER_KEY)


@contextmanager
def audit_log(settings: Settings) -> Iterator[AuditLog]:
    store, reader = AuditStore(settings), EventReader(settings)
    try:
        yield AuditLog(store, reader, batch_size=700)  # small batches: several per history
    finally:
        reader.close()
        store.close()


def build(settings: Settings, signer: Signer) -> Checkpoint:
    """Bring the tree up to the log's head and sign a checkpoint of it."""
    with audit_log(settings) as log:
        return log.checkpoint(signer)


def check(settings: Settings, checkpoint: Checkpoint | None) -> Verification:
    """Verify the log, held to `checkpoint` (as a file handed to verify) and every stored one,
    with the key that signed `checkpoint` pinned (the tests' own)."""
    with audit_log(settings) as log:
        files = [("checkpoint.json", checkpoint)] if checkpoint is not None else []
        keys = [checkpoint.public_key] if checkpoint is not None else []
        return verify(log.store, log.reader, files, keys, batch_size=900)


def rebuild_tree(settings: Settings) -> None:
    """The attacker's cover-up: recompute the tree over the rewritten log (signed checkpoints
    stay: they cannot be forged)."""
    store = AuditStore(settings)
    try:
        with store.db.transaction() as cursor:
            cursor.execute("DELETE FROM audit_leaves")
            cursor.execute("DELETE FROM audit_nodes")
    finally:
        store.close()
    with audit_log(settings) as log:
        log.catch_up()


def positions(conn: Any, table: str, id_column: str) -> list[int]:
    return [int(r[0]) for r in conn.execute(f"SELECT {id_column} FROM {table} ORDER BY {id_column}").fetchall()]
