"""Risk at order time from the fraud read model: reject when a subject's score is too high."""

from __future__ import annotations

import json
import logging
from typing import Any

from ledger.config import Settings
from ledger.domain.risk import OrderFacts, RiskVerdict
from projections.engine.read_side import Versions
from projections.engine.store import ViewStore
from projections.models.fraud import CUSTOMER, DEVICE, IP, Fraud

log = logging.getLogger(__name__)


class FraudRiskAssessor:
    """Implements `ledger.domain.risk.RiskAssessor` over the active `fraud_subjects` table.

    `threshold` None reads LEDGER_FRAUD_REJECT_SCORE (`Settings.fraud_reject_score`); 0 (the
    default) never rejects. `shell.composition` arms one when that setting is above 0.
    The read model lags the log by the runner's delay: an order is judged on the history
    projected so far. A missing or unreadable read model lets the order through.
    """

    def __init__(self, store: ViewStore, threshold: int | None = None) -> None:
        self.store = store
        self.versions = Versions(store, refresh_s=0.0)  # a swap of the fraud read model counts at once
        self.threshold = Settings().fraud_reject_score if threshold is None else int(threshold)

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def assess(self, facts: OrderFacts) -> RiskVerdict | None:
        if not self.enabled:
            return None
        named = [(CUSTOMER, facts.customer_id), (IP, facts.client_ip), (DEVICE, facts.device_id)]
        wanted = [(kind, value) for kind, value in named if value]
        try:
            found = self._subjects(wanted)
        except Exception as error:  # the seam must never break order placement
            log.warning("fraud read model unreadable (%s); order let through", error)
            return None
        worst: tuple[Any, ...] | None = None
        for kind, value in wanted:  # customer first: ties go to the customer
            row = found.get((kind, value))
            if row is not None and (worst is None or row[2] > worst[2]):
                worst = row
        if worst is None or worst[2] < self.threshold:
            return None
        kind, ident, score, alert_count, top_rule = worst[:5]
        return RiskVerdict(
            rule=str(top_rule),
            score=float(score),
            evidence={
                "subject": f"{kind}:{ident}",
                "subject_kind": kind,
                "subject_id": ident,
                "alerts": int(alert_count),
                "threshold": self.threshold,
                "positions": self._positions(kind, ident, str(top_rule)),
            },
        )

    def _table(self, name: str) -> str:
        return f"{Fraud.name}_{name}_v{self.versions.current()[Fraud.name]}"

    def _subjects(self, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[Any, ...]]:
        if not wanted:
            return {}
        where = " OR ".join("(subject_kind = ? AND subject_id = ?)" for _ in wanted)
        params = [part for pair in wanted for part in pair]
        rows = self.store.query(
            f"SELECT subject_kind, subject_id, score, alerts, top_rule FROM {self._table('subjects')} WHERE {where}",
            params,
        )
        return {(str(r[0]), str(r[1])): r for r in rows}

    def _positions(self, kind: str, ident: str, rule: str) -> list[int]:
        """The positions of the subject's latest alert of that rule: the events that prove it."""
        rows = self.store.query(
            f"SELECT positions FROM {self._table('alerts')} WHERE subject_kind = ? AND subject_id = ? AND rule = ? "
            "ORDER BY position DESC LIMIT 1",
            (kind, ident, rule),
        )
        return [int(p) for p in json.loads(rows[0][0])] if rows else []
