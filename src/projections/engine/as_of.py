"""Point in time: read models as they stood at a log position, without touching the live ones.

The mechanism is a fold: the events up to the position are fed, in log order, to *fresh
instances of the read-model classes themselves* (the same handlers the runner calls), whose
rows then land in a private in-memory SQLite database. The caller queries that database with
exactly the statements it uses on the live tables, so no read model's logic exists twice.

What makes a fold fast is `History`: a per-process copy of the log's timeline (every position
with its event's timestamp) and of the decoded events the read models handle. Events never
change once written, so it only grows at the tail; decoding (decrypt, JSON, objects) is most
of the cost of reading the log, and it is paid once per process instead of once per request.
docs/read-models.md ("Point in time") has the measurements.
"""

from __future__ import annotations

import bisect
import sqlite3
import threading
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ledger.application import LedgerApp
from ledger.storage import event_log
from projections.engine.base import Projection
from projections.engine.events import Handlers
from projections.engine.registry import PROJECTION_NAMES, build_projections
from projections.engine.store import ViewStore
from projections.models.facts import Facts
from projections.models.inventory import Inventory
from projections.models.journal import Journal
from projections.models.profit import Profit
from projections.models.sales import Sales

# The read models a fold can build, and therefore the topics worth keeping decoded.
FOLDABLE = (Facts, Inventory, Sales, Profit, Journal)
DEFAULT_CACHED_EVENTS = 50_000
PAGE = 5_000


class MemoryStore(ViewStore):
    """A `ViewStore` over a private in-memory SQLite database: where a fold's rows live.

    It speaks the SQL dialect of the SQLite view store (money as exact decimal text), and
    has no tracking or versions: a fold is never resumed and never swapped."""

    def __init__(self) -> None:  # no super().__init__: nothing of the configured store is used
        self.is_postgres = False
        self._connection = sqlite3.connect(":memory:", check_same_thread=False)
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._lock:
            cursor = self._connection.cursor()
            try:
                yield cursor
                self._connection.commit()
            except BaseException:
                self._connection.rollback()
                raise
            finally:
                cursor.close()

    @contextmanager
    def _read_cursor(self) -> Iterator[Any]:
        with self.transaction() as cursor:
            yield cursor

    def close(self) -> None:
        self._connection.close()


@dataclass(frozen=True)
class Logged:
    position: int
    topic: str
    event: Any


class History:
    """The log as this process has read it so far (thread-safe; grows at the tail only).

    Keeps every position's event timestamp (16 bytes an event), and the decoded events that
    one of `folds` handles (the foldable read models; reconciliation adds its own), up to
    `max_events` of them (about 2 KB each); events past that are decoded again from the store
    whenever a fold needs them.
    """

    def __init__(self, app: LedgerApp, max_events: int = DEFAULT_CACHED_EVENTS,
                 folds: Iterable[type[Handlers]] = FOLDABLE) -> None:
        self.app = app
        self.max_events = max_events
        self.topics = tuple(sorted({t for cls in folds for t in cls.handled_topics()}))
        self._lock = threading.Lock()
        self._positions = array("q")  # every position read, ascending
        self._times = array("d")  # its event's timestamp, POSIX seconds (exact to the microsecond)
        self._events: list[Logged] = []  # decoded events of foldable topics: a prefix of the log
        self._event_positions = array("q")
        self._complete_to = 0  # every foldable event up to here is in _events
        self._full = False
        self.read_to = 0

    def head(self) -> int:
        return event_log.head(self.app)

    def extend(self, to: int) -> None:
        """Read and decode the log from where we stopped up to position `to` (at most the head)."""
        if to <= self.read_to:
            return
        to = min(to, self.head())  # never mark positions not written yet as read
        decode = event_log.decoder(self.app)
        with self._lock:
            for notifications in event_log.pages(self.app, self.read_to, stop=to, size=PAGE):
                for notification in notifications:
                    event: Any = decode(notification)
                    self._positions.append(notification.id)
                    self._times.append(event.timestamp.timestamp())
                    if self._full:
                        continue
                    if notification.topic in self.topics:
                        if len(self._events) == self.max_events:
                            self._full = True  # from here on, folds decode from the store
                            continue
                        self._events.append(Logged(notification.id, notification.topic, event))
                        self._event_positions.append(notification.id)
                    self._complete_to = notification.id
                self.read_to = notifications[-1].id
            self.read_to = max(self.read_to, to)  # trailing gaps in the ids: nothing there

    def position_at(self, when: datetime) -> int:
        """The last position whose event's timestamp is at or before `when` (0 if none).
        A time without a zone is taken as UTC."""
        self.extend(self.head())
        moment = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        with self._lock:
            for index in range(len(self._times) - 1, -1, -1):  # timestamps need not rise with positions
                if self._times[index] <= moment:
                    return int(self._positions[index])
        return 0

    def events(self, until: int) -> Iterator[Logged]:
        """Every foldable event up to position `until`, in log order."""
        self.extend(until)
        with self._lock:
            cached = self._events[: bisect.bisect_right(self._event_positions, until)]
            resume = self._complete_to
        yield from cached
        # Past the cache: decode from the store again.
        decode = event_log.decoder(self.app)
        for notification in event_log.notifications(self.app, resume, stop=until, size=PAGE, topics=self.topics):
            yield Logged(notification.id, notification.topic, decode(notification))


class ReadSource(Protocol):
    """Where a reader reads: the live read models (`api.services.Services`) or a past point
    (`PointInTime`)."""

    @property
    def store(self) -> ViewStore: ...

    def view(self, name: str) -> Projection: ...


@dataclass(frozen=True)
class LiveReadModels:
    """Read models at their active versions in `store`, as a `ReadSource`."""

    store: ViewStore
    views: dict[str, Projection]

    def view(self, name: str) -> Projection:
        return self.views[name]


@dataclass
class PointInTime:
    """Read models folded up to `position`, queryable like the live ones: `view(name)` and
    `store` stand where `Services.view` and `Services.store` stand for the live read models."""

    position: int
    store: MemoryStore
    views: dict[str, Projection]

    def view(self, name: str) -> Projection:
        return self.views[name]

    def close(self) -> None:
        self.store.close()


def fold(history: History, names: list[str], position: int) -> PointInTime:
    """The read models `names` (facts always with them) as of `position`."""
    store = MemoryStore()
    projections = build_projections(store, names, versions=dict.fromkeys(PROJECTION_NAMES, 1))
    for projection in projections:
        projection.complete = dict.fromkeys(projection.complete, True)  # all in memory: never look on disk
    routes = {topic: [p.handlers[topic] for p in projections if topic in p.handlers] for topic in history.topics}
    for logged in history.events(position):
        for handler in routes[logged.topic]:
            handler(logged.event, logged.position)
    with store.transaction() as cursor:
        for projection in projections:
            if projection.name in names:
                projection.create_tables(cursor)
                projection.flush(cursor)
    return PointInTime(position, store, {p.name: p for p in projections})
