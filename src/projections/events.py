"""Every domain event class by `Aggregate.Event` name, for handler discovery."""

from __future__ import annotations

from ledger.event_catalogue import aggregates, declared_events

EVENT_CLASSES: dict[str, type] = {
    f"{aggregate.__name__}.{event.__name__}": event
    for aggregate in aggregates()
    for event in declared_events(aggregate)
}
