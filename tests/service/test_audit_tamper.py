"""Tamper evidence on random histories (SQLite): editing any stored event's bytes, deleting
one, swapping two, cutting off the tail or rewriting it (a fork) is always detected and the
first differing position reported; an untouched log always verifies; and a fork covered up by
rebuilding the tree is never signed (it does not extend the last checkpoint)."""

from __future__ import annotations

import random
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.checkpoint import Signer
from audit.log import CheckpointRefused
from ledger.service.ledger import open_ledger
from tests.audit_helpers import build, check, rebuild_tree, settings_for

TOPICS = ["ledger.domain.orders:Order.Placed", "ledger.domain.orders:Order.Paid", "ledger.domain.stock:Stock.Reserved"]
OPS = ["none", "edit", "delete", "swap", "truncate", "fork", "fork-and-cover-up"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty store with the library's own tables."""
    folder = tmp_path_factory.mktemp("template")
    open_ledger(settings_for(f"sqlite:///{folder / 'ledger.sqlite'}", folder)).close()
    return folder / "ledger.sqlite"


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    return Signer.load(tmp_path_factory.mktemp("key") / "audit-signing.key")[0]


@pytest.fixture
def fresh(template: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _rows(rng: random.Random, count: int) -> list[tuple[str, int, str, bytes]]:
    """(id, version, topic, state) of `count` events over a few aggregates."""
    versions: dict[str, int] = {}
    aggregates = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(max(1, count // 5))]
    out = []
    for _ in range(count):
        aggregate = rng.choice(aggregates)
        versions[aggregate] = versions.get(aggregate, 0) + 1
        out.append((aggregate, versions[aggregate], rng.choice(TOPICS), rng.randbytes(rng.randint(1, 300))))
    return out


def _insert(db: Path, rows: list[tuple[str, int, str, bytes]], first_position: int, rng: random.Random) -> list[int]:
    """Append rows at increasing positions with random gaps (rolled-back inserts leave them)."""
    placed, position = [], first_position
    with sqlite3.connect(db) as conn:
        for row in rows:
            conn.execute("INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state) "
                         "VALUES (?, ?, ?, ?, ?)", (position, *row))
            placed.append(position)
            position += 1 + (rng.random() < 0.1) * rng.randint(1, 5)
    conn.close()
    return placed


@dataclass(frozen=True)
class Case:
    seed: int
    size: int
    signed_at: list[int]  # tree sizes at which checkpoints were signed; the last is `size`
    op: str
    leaf: int
    other: int  # the second leaf of a swap
    tail: int  # events of a forked tail


def run(case: Case, template: Path, signer: Signer, folder: Path) -> None:
    rng = random.Random(case.seed)
    db = folder / "ledger.sqlite"
    shutil.copy(template, db)
    settings_ = settings_for(f"sqlite:///{db}", folder)
    rows = _rows(rng, case.size)
    positions: list[int] = []
    for at in case.signed_at:  # the history grows; a checkpoint is signed now and then
        positions += _insert(db, rows[len(positions):at], positions[-1] + 1 if positions else 1, rng)
        checkpoint = build(settings_, signer)
    assert checkpoint.tree_size == case.size

    op, i = case.op, case.leaf
    conn = sqlite3.connect(db)
    if op == "edit":
        state = rows[i][3]
        at = rng.randrange(len(state))
        edited = state[:at] + bytes([state[at] ^ (1 << rng.randrange(8))]) + state[at + 1:]
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (edited, positions[i]))
    elif op == "delete":
        conn.execute("DELETE FROM stored_events WHERE rowid = ?", (positions[i],))
    elif op == "swap":
        i, j = min(i, case.other), max(i, case.other)
        conn.execute("UPDATE stored_events SET originator_version = -1 WHERE rowid = ?", (positions[j],))
        conn.execute("UPDATE stored_events SET originator_id = ?, originator_version = ?, topic = ?, state = ? "
                     "WHERE rowid = ?", (*rows[j], positions[i]))
        conn.execute("UPDATE stored_events SET originator_id = ?, originator_version = ?, topic = ?, state = ? "
                     "WHERE rowid = ?", (*rows[i], positions[j]))
    elif op == "truncate":
        conn.execute("DELETE FROM stored_events WHERE rowid >= ?", (positions[i],))
    elif op in ("fork", "fork-and-cover-up"):
        conn.execute("DELETE FROM stored_events WHERE rowid >= ?", (positions[i],))
        conn.commit()
        _insert(db, _rows(rng, case.tail), positions[i], rng)
    conn.commit()
    conn.close()
    if op == "fork-and-cover-up":
        rebuild_tree(settings_)

    result = check(settings_, checkpoint)
    if op == "none":
        assert result.ok and result.first is None and result.checkpoint_status == "consistent"
        assert result.events == case.size and result.root == checkpoint.root_hash
        return
    assert not result.ok
    first = result.first
    assert first is not None, op
    if op == "fork-and-cover-up":
        # The stored tree now agrees with the rewritten log; only the signed checkpoints do
        # not. The newest that still agrees bounds where the history changed.
        agreeing = max((s for s in case.signed_at if s <= i), default=0)
        count = i + case.tail
        if count >= case.size or any(i < s <= count for s in case.signed_at):
            assert result.checkpoint_status == "forked"
            assert (first.kind, first.leaf_index, first.position) == ("forked", agreeing, positions[agreeing])
        else:  # shorter than the checkpoint, and no signed checkpoint inside it disagrees
            assert result.checkpoint_status == "truncated"
            assert (first.kind, first.leaf_index) == ("truncated", count)
        with pytest.raises(CheckpointRefused, match=r"events were removed|not consistent with the last checkpoint"):
            build(settings_, signer)  # the signer will not sign the rewritten tree
        return
    expected = {"edit": "changed", "delete": "missing", "swap": "changed", "truncate": "truncated", "fork": "changed"}
    # Deleting the newest event leaves a log indistinguishable from one cut short there.
    shortened = op == "truncate" or (op == "delete" and i == case.size - 1)
    kind = "truncated" if shortened else expected[op]
    assert (first.kind, first.position, first.leaf_index) == (kind, positions[i], i)
    assert result.checkpoint_status == ("truncated" if shortened else "forked")


@st.composite
def cases(draw: st.DrawFn) -> Case:
    size = draw(st.integers(2, 2200))
    signed_at = sorted(set(draw(st.lists(st.integers(1, size), max_size=4))) | {size})
    op = draw(st.sampled_from(OPS))
    leaf = draw(st.integers(1 if op == "truncate" else 0, size - 1))
    other = draw(st.integers(0, size - 1).filter(lambda j: j != leaf))
    return Case(draw(st.integers(0, 2**32)), size, signed_at, op, leaf, other, draw(st.integers(1, size - leaf + 50)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
@example(case=Case(seed=0, size=2, signed_at=[2], op="delete", leaf=1, other=0, tail=1))  # the newest event deleted
def test_any_tampering_is_found_at_its_first_position(case: Case, template: Path, signer: Signer, fresh: Path) -> None:
    with tempfile.TemporaryDirectory(dir=fresh) as folder:
        run(case, template, signer, Path(folder))
