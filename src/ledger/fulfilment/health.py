"""Suppliers' recent attempt outcomes, read from the log: what a starting worker's breakers
begin from (`Breakers.replay`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from eventsourcing.utils import get_topic

from ledger.application import LedgerApp
from ledger.domain.fulfilment import Fulfilment
from ledger.storage.event_log import events, head

_STARTED = Fulfilment.AttemptStarted
_FAILED = (Fulfilment.AttemptFailed, Fulfilment.AttemptUnknown)
_OUTCOMES = (_STARTED, Fulfilment.AttemptSucceeded, *_FAILED)


def recent_outcomes(app: LedgerApp, now: datetime, window: int) -> Iterator[tuple[str, bool, float]]:
    """(supplier, failed, seconds ago) for each attempt outcome among the last `window` events of
    the log, oldest first. An outcome whose attempt started before the window is left out (its
    supplier is not named by the outcome itself)."""
    supplier_of: dict[str, str] = {}
    after = max(0, head(app) - window)
    for event in events(app, after, topics=[get_topic(cls) for cls in _OUTCOMES]):
        if isinstance(event, _STARTED):
            supplier_of[event.attempt_id] = event.supplier
            continue
        supplier = supplier_of.get(event.attempt_id)
        if supplier is not None:
            yield supplier, isinstance(event, _FAILED), max(0.0, (now - event.timestamp).total_seconds())
