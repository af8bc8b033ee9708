"""A follower killed with SIGKILL in the middle of building the tree leaves a tree that
verifies, and the next follower completes it: nothing lost, nothing twice."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

from audit.checkpoint import Signer
from ledger.service.ledger import open_ledger
from tests.audit_helpers import build, check, settings_for

EVENTS = 8_000


def test_a_follower_killed_mid_batch_leaves_a_sound_tree(tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite"
    settings = settings_for(f"sqlite:///{db}", tmp_path)
    open_ledger(settings).close()
    rng = random.Random(5)
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state) VALUES (?, 1, ?, ?)",
            [(uuid.UUID(int=rng.getrandbits(128)).hex, "ledger.domain.orders:Order.Placed", rng.randbytes(200))
             for _ in range(EVENTS)],
        )
    conn.close()
    env = {**os.environ, "LEDGER_DATABASE_URL": f"sqlite:///{db}", "LEDGER_DATA_DIR": str(tmp_path)}
    follower = subprocess.Popen([sys.executable, "-m", "shell.cli", "audit", "follow", "--batch-size", "250"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    leaves = 0
    try:
        while leaves < 500:  # a couple of batches committed: the next is in flight
            assert follower.poll() is None, follower.stderr.read() if follower.stderr else ""
            assert time.monotonic() < deadline, "the follower never committed a batch"
            time.sleep(0.01)
            with sqlite3.connect(db) as conn:
                try:
                    leaves = conn.execute("SELECT count(*) FROM audit_leaves").fetchone()[0]
                except sqlite3.OperationalError:  # the table does not exist yet
                    leaves = 0
            conn.close()
    finally:
        follower.send_signal(signal.SIGKILL)
        follower.wait()
    partial = check(settings, None)
    assert partial.first is None and 0 < partial.tree_size < EVENTS, partial.first
    assert partial.tree_size % 250 == 0  # whole batches only
    checkpoint = build(settings, Signer.load(tmp_path / "audit-signing.key")[0])
    assert checkpoint.tree_size == EVENTS and check(settings, checkpoint).ok
