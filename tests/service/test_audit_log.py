"""The audit log over real ledger histories: what a leaf covers, the follower, two followers
at once, and tampering found on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from pathlib import Path

import psycopg
import pytest

from audit.checkpoint import Signer
from audit.log import AuditLog
from audit.rows import EventReader
from audit.store import AuditStore
from ledger.service.ledger import Ledger
from tests.audit_helpers import build, check
from tests.helpers import buy, head, place, stocked_product


def _history(ledger: Ledger) -> None:
    stocked_product(ledger, "GAME-1", 12)
    for n in range(4):
        buy(ledger, f"customer-{n}", "GAME-1", 2)
    place(ledger, "late", "GAME-1", 1)


def _signer(ledger: Ledger) -> Signer:
    return Signer.load(ledger.settings.signing_key_path)[0]


def test_a_leaf_covers_position_id_version_topic_and_the_stored_bytes(ledger: Ledger) -> None:
    _history(ledger)
    build(ledger.settings, _signer(ledger))
    store = AuditStore(ledger.settings)
    try:
        notifications = ledger.app.recorder.select_notifications(1, 10_000)
        assert store.head() == (len(notifications), notifications[-1].id)
        for index, n in enumerate(notifications):
            topic = n.topic.encode()
            leaf = (struct.pack(">Bq", 1, n.id) + n.originator_id.bytes + struct.pack(">qI", n.originator_version,
                    len(topic)) + topic + struct.pack(">I", len(n.state)) + n.state)
            assert store.leaves(index, index) == [(index, n.id, hashlib.sha256(b"\x00" + leaf).digest())]
    finally:
        store.close()


def test_the_follower_resumes_and_two_followers_never_disagree(ledger: Ledger) -> None:
    _history(ledger)
    stores = [AuditStore(ledger.settings) for _ in range(2)]
    readers = [EventReader(ledger.settings) for _ in range(2)]
    try:
        one, two = (AuditLog(s, r, batch_size=7) for s, r in zip(stores, readers, strict=True))
        one.run_once()
        two.run_once()  # the same batch again: it loses, reloads, and carries on from one's
        assert two.size == one.size == 7
        one.catch_up()
        two.catch_up()
        assert one.size == two.size == len(ledger.app.recorder.select_notifications(1, 10_000))
        assert one.root() == two.root() and check(ledger.settings, None).first is None
        place(ledger, "later", "GAME-1", 1)
        resumed = AuditLog(AuditStore(ledger.settings), EventReader(ledger.settings))
        assert resumed.size == one.size and resumed.root() == one.root()
        assert resumed.catch_up() >= 1 and resumed.position == head(ledger)
        resumed.reader.close()
        resumed.store.close()
    finally:
        for reader in readers:
            reader.close()
        for store in stores:
            store.close()


def test_an_edited_event_on_sqlite_is_found_and_a_clean_log_verifies(ledger: Ledger) -> None:
    _history(ledger)
    checkpoint = build(ledger.settings, _signer(ledger))
    clean = check(ledger.settings, checkpoint)
    assert clean.ok and clean.events == head(ledger) and clean.root == checkpoint.root_hash
    target = head(ledger) // 2
    db = Path(ledger.settings.eventsourcing_env()["SQLITE_DBNAME"])
    with sqlite3.connect(db) as conn:  # an in-place edit, as a DBA could make: the type stays BLOB
        conn.execute("UPDATE stored_events SET state = zeroblob(length(state)) WHERE rowid = ?", (target,))
    conn.close()
    found = check(ledger.settings, checkpoint)
    assert found.first is not None and (found.first.kind, found.first.position) == ("changed", target)
    assert found.checkpoint_status == "forked" and not found.ok


@pytest.mark.postgres
def test_tampering_on_postgresql_is_found_at_its_first_position(pg_ledger: Ledger) -> None:
    _history(pg_ledger)
    checkpoint = build(pg_ledger.settings, _signer(pg_ledger))
    assert check(pg_ledger.settings, checkpoint).ok
    last = head(pg_ledger)
    url = pg_ledger.settings.effective_database_url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE ledger_events SET state = state || '\\x00'::bytea WHERE notification_id = %s", (last - 3,))
    found = check(pg_ledger.settings, checkpoint)
    assert found.first is not None and (found.first.kind, found.first.position) == ("changed", last - 3)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM ledger_events WHERE notification_id = %s", (5,))
    found = check(pg_ledger.settings, checkpoint)
    assert found.first is not None and (found.first.kind, found.first.position) == ("missing", 5)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM ledger_events WHERE notification_id >= %s", (3,))
    found = check(pg_ledger.settings, checkpoint)
    assert found.first is not None and (found.first.kind, found.first.position) == ("truncated", 3)
    assert found.checkpoint_status == "truncated" and not found.ok
