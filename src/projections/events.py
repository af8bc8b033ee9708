"""Every domain event class by `Aggregate.Event` name, for handler discovery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventsourcing.utils import get_topic

from ledger.event_catalogue import aggregates, declared_events

EVENT_CLASSES: dict[str, type] = {
    f"{aggregate.__name__}.{event.__name__}": event
    for aggregate in aggregates()
    for event in declared_events(aggregate)
}


def handlers_of(obj: object) -> dict[str, Callable[..., Any]]:
    """`obj`'s `on_<Aggregate>_<Event>` methods by the stored topic of their event."""
    found = {}
    for qualname, cls in EVENT_CLASSES.items():
        method = getattr(obj, "on_" + qualname.replace(".", "_"), None)
        if method is not None:
            found[get_topic(cls)] = method
    return found
