"""Domain event classes, and handlers registered by event class.

A read model (or a replay report, or any fold of the log) marks each handler with the event
class it handles::

    class Inventory(Projection):
        @handles(Stock.Reserved)
        def on_Stock_Reserved(self, e: Stock.Reserved, position: int) -> None: ...

The method's name is free; the class is what registers it. A misspelt event cannot be
written (``Stock.Reservd`` is an AttributeError at import), and `handles` refuses anything
that is not an event declared by a ledger aggregate (a base class, another library's event)
with `UnknownEvent`, also at import. `Handlers.__init_subclass__` collects the marks once per
class: `topic -> method name`. An instance turns that into `topic -> bound method` once, so
dispatching an event stays one dict lookup by its stored topic string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

from eventsourcing.utils import get_topic

from ledger.domain.base import LedgerAggregate
from ledger.encoding.event_catalogue import aggregates, declared_events

EVENT_CLASSES: dict[str, type[LedgerAggregate.Event]] = {
    f"{aggregate.__name__}.{event.__name__}": event
    for aggregate in aggregates()
    for event in declared_events(aggregate)
}
# The stored topic of every event a ledger aggregate declares.
EVENT_TOPICS: dict[str, type[LedgerAggregate.Event]] = {get_topic(cls): cls for cls in EVENT_CLASSES.values()}

E = TypeVar("E", bound=LedgerAggregate.Event)
S = TypeVar("S")
P = ParamSpec("P")
_MARK = "__handles_topic__"
# The old convention: a method named after an event. Unregistered, it would be silently ignored.
_LEGACY_NAME = re.compile(r"^on_[A-Z][A-Za-z]*_[A-Z][A-Za-z]*$")


class UnknownEvent(TypeError):
    """A handler was registered for something that is not a domain event of the ledger."""


def topic_of(event: object) -> str:
    """The stored topic of a declared domain event class; UnknownEvent for anything else."""
    if not isinstance(event, type) or not issubclass(event, LedgerAggregate.Event):
        raise UnknownEvent(f"{event!r} is not a domain event class")
    topic = get_topic(event)
    if EVENT_TOPICS.get(topic) is not event:
        raise UnknownEvent(f"{event.__qualname__} ({topic}) is not an event any ledger aggregate declares")
    return topic


def handles(event: type[E]) -> Callable[[Callable[Concatenate[S, E, P], None]], Callable[Concatenate[S, E, P], None]]:
    """Register the decorated method as the handler of `event` (checked now, at import)."""
    topic = topic_of(event)

    def mark(method: Callable[Concatenate[S, E, P], None]) -> Callable[Concatenate[S, E, P], None]:
        if hasattr(method, _MARK):
            raise UnknownEvent(f"{method.__qualname__} is already the handler of {getattr(method, _MARK)}: "
                               "write one method per event")
        setattr(method, _MARK, topic)
        return method

    return mark


class Handlers:
    """A class whose methods are registered with `handles`: `handler_names` maps each handled
    topic to its method's name, collected once when the class is defined (base classes first,
    so a subclass may override a handler by defining a method of the same name)."""

    handler_names: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = dict(cls.handler_names)
        for name, value in vars(cls).items():
            topic = getattr(value, _MARK, None)
            if topic is None:
                if _LEGACY_NAME.match(name) and callable(value) and name not in names.values():
                    raise UnknownEvent(f"{cls.__qualname__}.{name} is not registered: mark it with "
                                       f"@handles(<the event class>)")
                continue
            taken = names.get(topic)
            if taken is not None and taken != name and taken in vars(cls):
                raise UnknownEvent(f"{cls.__qualname__} handles {topic} twice ({taken} and {name})")
            names[topic] = name
        cls.handler_names = names

    @classmethod
    def handled_topics(cls) -> frozenset[str]:
        return frozenset(cls.handler_names)

    def bound_handlers(self) -> dict[str, Callable[..., None]]:
        """`topic -> bound method`: what dispatch looks an event's topic up in."""
        return {topic: getattr(self, name) for topic, name in self.handler_names.items()}
