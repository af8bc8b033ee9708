"""Where each read model stands: position, lag in events and in seconds, throughput."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ledger.application import LedgerApp
from projections.registry import build_projections
from projections.store import ViewStore


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    version: int
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    events_per_s: float


def projection_status(app: LedgerApp, store: ViewStore, now: datetime | None = None) -> list[ProjectionStatus]:
    now = now or datetime.now(UTC)
    head = app.recorder.max_notification_id() or 0
    rates = dict(store.query("SELECT tracking_name, events_per_s FROM projection_status"))
    found = []
    for projection in build_projections(store):
        position = store.position(projection.tracking_name)
        found.append(
            ProjectionStatus(
                name=projection.name,
                version=projection.version,
                position=position,
                head=head,
                lag_events=max(0, head - position),
                lag_seconds=_age_of_next(app, position, now) if position < head else 0.0,
                events_per_s=float(rates.get(projection.tracking_name, 0.0)),
            )
        )
    return found


def _age_of_next(app: LedgerApp, position: int, now: datetime) -> float:
    """How long the oldest event not yet processed has been waiting."""
    pending = app.recorder.select_notifications(position + 1, 1)
    if not pending:
        return 0.0
    event = app.mapper.to_domain_event(pending[0])
    written: datetime = getattr(event, "timestamp")  # noqa: B009
    return max(0.0, (now - written).total_seconds())
