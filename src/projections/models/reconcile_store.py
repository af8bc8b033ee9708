"""The last reconciliation, kept in the read models' store with the position it was computed at.

A reconciliation folds the whole history (`projections.models.reconcile`), so it is never run per
request: a background job of `ledger serve` (`api.background`) runs it when the read models have
moved and `LEDGER_RECONCILE_INTERVAL_S` has passed since the last one, and stores the result here;
`GET /v1/reconciliation` and `/ui/finance` read it (docs/reconciliation.md)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from projections.engine.store import ViewStore
from projections.models.reconcile import Finding, InProgress, MoneyTotals, Reconciliation

DDL = ("CREATE TABLE IF NOT EXISTS reconciliation_results (name TEXT PRIMARY KEY, position BIGINT NOT NULL,"
       " computed_at TEXT NOT NULL, result TEXT NOT NULL)")
LATEST = "latest"


@dataclass(frozen=True)
class Stored:
    """A stored reconciliation and when it was computed (it holds its position)."""

    result: Reconciliation
    computed_at: datetime


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _decode(body: dict[str, Any]) -> Reconciliation:
    return Reconciliation(
        position=int(body["position"]), examined=dict(body["examined"]),
        totals=[MoneyTotals(t["currency"], Decimal(t["money_in"]), Decimal(t["revenue"]),
                            Decimal(t["refunds_payable"])) for t in body["totals"]],
        findings=[Finding(f["check"], f["subject"], f["detail"], tuple(f["positions"])) for f in body["findings"]],
        in_progress=[InProgress(
            p["order_id"], p["status"], p["supplier"], Decimal(p["kept"]), p["currency"],
            datetime.fromisoformat(p["deadline"]), p["overdue"], p["escalated"], tuple(p["positions"]),
        ) for p in body["in_progress"]],
    )


class ReconciliationStore:
    def __init__(self, store: ViewStore) -> None:
        self.store = store
        with store.transaction() as cursor:
            store.execute(cursor, DDL)

    def save(self, result: Reconciliation, computed_at: datetime | None = None) -> None:
        at = (computed_at or datetime.now(UTC)).isoformat()
        body = json.dumps(asdict(result), default=_encode)
        with self.store.transaction() as cursor:
            self.store.execute(
                cursor, "INSERT INTO reconciliation_results (name, position, computed_at, result) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position, computed_at = excluded.computed_at, "
                "result = excluded.result", (LATEST, result.position, at, body))

    def position(self) -> int | None:
        """The position of the stored result (None: none yet), without reading the result."""
        rows = self.store.query("SELECT position FROM reconciliation_results WHERE name = ?", (LATEST,))
        return int(rows[0][0]) if rows else None

    def latest(self) -> Stored | None:
        rows = self.store.query("SELECT computed_at, result FROM reconciliation_results WHERE name = ?", (LATEST,))
        if not rows:
            return None
        computed_at, body = rows[0]
        return Stored(_decode(json.loads(body)), datetime.fromisoformat(str(computed_at)))
