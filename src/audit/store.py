"""The audit tables, beside the events in the event store's database:

* `audit_leaves`: leaf index <-> position, and the leaf hash;
* `audit_nodes`: every complete subtree hash of level >= 1 (see `audit.merkle`);
* `audit_checkpoints`: signed tree heads;
* `audit_verifications`: the outcome of each `ledger audit verify` (the UI shows the last one).

Nothing here ever changes an event."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any

from audit.checkpoint import Checkpoint
from audit.merkle import Node, frontier_nodes
from ledger.config import Settings
from ledger.storage.database import Database


@dataclass(frozen=True)
class VerificationRecord:
    """What one verification found, as kept in `audit_verifications`."""

    verified_at: str  # ISO 8601, UTC
    ok: bool
    events: int  # events read and hashed
    tree_size: int  # leaves in the stored tree
    root_hash: str  # recomputed root of the stored tree, hex ("" when empty)
    not_in_tree: int  # newer events the follower had not added yet
    finding_kind: str | None  # the first difference (audit.verification.Finding), if any
    finding_position: int | None
    finding_detail: str | None
    checkpoint_size: int | None  # the checkpoint the log was held to, if any
    checkpoint_status: str | None  # consistent, truncated, forked, bad-signature
    seconds: float


_VERIFICATION_COLUMNS = tuple(f.name for f in fields(VerificationRecord))


class AuditStore:
    def __init__(self, settings: Settings) -> None:
        # Always the events' database; a small pool: one follower and the odd proof or checkpoint.
        small = settings.model_copy(update={"postgres_pool_size": 2})
        self.db = Database(small, database_url=settings.effective_database_url)
        blob = "BYTEA" if self.db.is_postgres else "BLOB"
        with self.db.transaction() as cursor:
            for ddl in (
                f"CREATE TABLE IF NOT EXISTS audit_leaves (leaf_index BIGINT PRIMARY KEY,"
                f" position BIGINT NOT NULL UNIQUE, leaf_hash {blob} NOT NULL)",
                f"CREATE TABLE IF NOT EXISTS audit_nodes (level INTEGER NOT NULL, idx BIGINT NOT NULL,"
                f" hash {blob} NOT NULL, PRIMARY KEY (level, idx))",
                f"CREATE TABLE IF NOT EXISTS audit_checkpoints (tree_size BIGINT PRIMARY KEY,"
                f" root_hash {blob} NOT NULL, last_position BIGINT NOT NULL, created_at TEXT NOT NULL,"
                f" signature {blob} NOT NULL, public_key {blob} NOT NULL)",
                "CREATE TABLE IF NOT EXISTS audit_verifications (verified_at TEXT NOT NULL, ok INTEGER NOT NULL,"
                " events BIGINT NOT NULL, tree_size BIGINT NOT NULL, root_hash TEXT NOT NULL,"
                " not_in_tree BIGINT NOT NULL, finding_kind TEXT, finding_position BIGINT, finding_detail TEXT,"
                " checkpoint_size BIGINT, checkpoint_status TEXT, seconds DOUBLE PRECISION NOT NULL)",
            ):
                self.db.execute(cursor, ddl)

    # ---- the tree ----

    def head(self) -> tuple[int, int]:
        """(tree size, position of its last leaf); (0, 0) when empty."""
        rows = self.db.query("SELECT leaf_index, position FROM audit_leaves ORDER BY leaf_index DESC LIMIT 1")
        return (int(rows[0][0]) + 1, int(rows[0][1])) if rows else (0, 0)

    def append(self, leaves: Sequence[tuple[int, int, bytes]], nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """One transaction: new leaves (index, position, hash) and the nodes they complete."""
        with self.db.transaction() as cursor:
            if self.db.is_postgres:  # one statement per table, arrays sent in binary
                for statement, rows in (
                    ("INSERT INTO audit_leaves (leaf_index, position, leaf_hash) "
                     "SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::bytea[])", leaves),
                    ("INSERT INTO audit_nodes (level, idx, hash) "
                     "SELECT * FROM unnest(%b::integer[], %b::bigint[], %b::bytea[])", nodes),
                ):
                    if rows:
                        cursor.execute(statement, [list(column) for column in zip(*rows, strict=True)])
                return
            self.db.write_rows(cursor, "audit_leaves", ("leaf_index", "position", "leaf_hash"), leaves)
            self.db.write_rows(cursor, "audit_nodes", ("level", "idx", "hash"), nodes)

    def nodes(self, wanted: Sequence[Node]) -> dict[Node, bytes]:
        """Complete subtree hashes by (level, index); level 0 comes from the leaves."""
        found: dict[Node, bytes] = {}
        leaves = [index for level, index in wanted if level == 0]
        inner = [(level, index) for level, index in wanted if level > 0]
        for chunk in _chunks(leaves, 500):
            rows = self.db.query(
                f"SELECT leaf_index, leaf_hash FROM audit_leaves WHERE leaf_index IN ({','.join('?' * len(chunk))})",
                chunk)
            found.update({(0, int(i)): bytes(h) for i, h in rows})
        for chunk in _chunks(inner, 200):
            where = " OR ".join("(level = ? AND idx = ?)" for _ in chunk)
            rows = self.db.query(f"SELECT level, idx, hash FROM audit_nodes WHERE {where}",
                                 [v for node in chunk for v in node])
            found.update({(int(level), int(i)): bytes(h) for level, i, h in rows})
        missing = set(wanted) - found.keys()
        if missing:
            raise LookupError(f"the audit tree lacks {len(missing)} node(s), e.g. {min(missing)}")
        return found

    def frontier(self, size: int) -> list[bytes]:
        wanted = frontier_nodes(size)
        found = self.nodes(wanted)
        return [found[node] for node in wanted]

    def level_nodes(self, level: int, first: int, last: int) -> dict[int, bytes]:
        """Stored nodes of one level with index in [first, last]."""
        rows = self.db.query("SELECT idx, hash FROM audit_nodes WHERE level = ? AND idx >= ? AND idx <= ?",
                             (level, first, last))
        return {int(i): bytes(h) for i, h in rows}

    def leaves(self, first: int, last: int) -> list[tuple[int, int, bytes]]:
        """Stored leaves (index, position, hash) with index in [first, last], in order."""
        rows = self.db.query("SELECT leaf_index, position, leaf_hash FROM audit_leaves WHERE leaf_index >= ? "
                             "AND leaf_index <= ? ORDER BY leaf_index", (first, last))
        return [(int(i), int(p), bytes(h)) for i, p, h in rows]

    def leaf_index(self, position: int) -> int | None:
        rows = self.db.query("SELECT leaf_index FROM audit_leaves WHERE position = ?", (position,))
        return int(rows[0][0]) if rows else None

    # ---- checkpoints ----

    def add_checkpoint(self, cp: Checkpoint) -> None:
        with self.db.transaction() as cursor:
            self.db.execute(
                cursor,
                "INSERT INTO audit_checkpoints (tree_size, root_hash, last_position, created_at, signature, public_key)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING",
                (cp.tree_size, cp.root_hash, cp.last_position, cp.timestamp, cp.signature, cp.public_key),
            )

    def checkpoints(self, tree_size: int | None = None) -> list[Checkpoint]:
        """Every stored checkpoint by size (or the one of `tree_size`)."""
        where, params = ("WHERE tree_size = ?", (tree_size,)) if tree_size is not None else ("", ())
        rows = self.db.query("SELECT tree_size, root_hash, last_position, created_at, signature, public_key "
                             f"FROM audit_checkpoints {where} ORDER BY tree_size", params)
        return [Checkpoint(int(s), bytes(r), int(p), str(t), bytes(g), bytes(k)) for s, r, p, t, g, k in rows]

    def latest_checkpoint(self, keys: Collection[bytes] | None = None) -> Checkpoint | None:
        """The newest stored checkpoint; with `keys`, the newest signed by one of them (a row
        anyone with SQL access may have inserted is not one)."""
        below = 2**63 - 1
        while True:
            rows = self.db.query("SELECT tree_size, root_hash, last_position, created_at, signature, public_key "
                                 "FROM audit_checkpoints WHERE tree_size < ? ORDER BY tree_size DESC LIMIT 50",
                                 (below,))
            for s, r, p, t, g, k in rows:
                found = Checkpoint(int(s), bytes(r), int(p), str(t), bytes(g), bytes(k))
                if keys is None or found.signed_by(keys):
                    return found
            if len(rows) < 50:
                return None
            below = int(rows[-1][0])

    # ---- verifications ----

    def add_verification(self, record: VerificationRecord) -> None:
        values = [int(v) if isinstance(v, bool) else v for v in astuple(record)]  # ok: an INTEGER
        with self.db.transaction() as cursor:
            self.db.execute(
                cursor, f"INSERT INTO audit_verifications ({', '.join(_VERIFICATION_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _VERIFICATION_COLUMNS)})", values,
            )

    def latest_verification(self) -> VerificationRecord | None:
        """The most recent verification's outcome (None if the log was never verified)."""
        rows = self.db.query(f"SELECT {', '.join(_VERIFICATION_COLUMNS)} FROM audit_verifications "
                             "ORDER BY verified_at DESC LIMIT 1")
        if not rows:
            return None
        at, ok, events, size, root, newer, kind, position, detail, cp_size, status, seconds = rows[0]
        return VerificationRecord(
            str(at), bool(ok), int(events), int(size), str(root), int(newer), kind,
            None if position is None else int(position), detail, None if cp_size is None else int(cp_size),
            status, float(seconds),
        )

    def close(self) -> None:
        self.db.close()


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]

