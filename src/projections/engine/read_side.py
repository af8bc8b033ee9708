"""The read side's one seam: everything a reader asks of the log and of the read models.

* **Versions**: which version of each read model readers use (`Versions`, over
  `ViewStore.active_versions`, the one reader of `projection_versions`).
* **The log and lag**: the head of the log, where read models stand, how far behind they are
  (`ReadSide.head`, `ReadSide.lag`, `lag`); paging the log is `ledger.storage.event_log.pages`, the one
  loop every reader of the log uses.
The report queries over the read models are `projections.models.report_queries`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from ledger.application import LedgerApp
from ledger.storage import event_log, positions
from projections.engine.base import Projection
from projections.engine.events import EVENT_CLASSES
from projections.engine.registry import PROJECTION_NAMES, build_projections
from projections.engine.store import ActiveVersions, ViewStore

ZERO = Decimal(0)

# ---- versions ----


class Versions:
    """The active version of every read model, read again at most every `refresh_s` seconds
    (one query for all of them); 0 reads them every time."""

    def __init__(self, store: ViewStore, refresh_s: float = 1.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._read_at = 0.0
        self._current: ActiveVersions | None = None
        self._lock = threading.Lock()

    def current(self) -> ActiveVersions:
        with self._lock:
            now = time.monotonic()
            if self._current is None or now - self._read_at > self.refresh_s:
                self._current = self.store.active_versions()
                self._read_at = now
            return self._current

    def swapped(self, projections: Iterable[Projection]) -> bool:
        """True if any of `projections` is no longer at its active version."""
        active = self.current()
        return any(active[p.name] != p.version for p in projections)


# ---- where the read models stand ----


@dataclass(frozen=True)
class Lag:
    """Where the log's head is, the lowest position of some read models, and the events between."""

    head: int
    position: int

    @property
    def events(self) -> int:
        return max(0, self.head - self.position)

    def seconds(self, app: LedgerApp, now: datetime) -> float:
        """How long the oldest event not yet processed has been waiting."""
        return event_log.age_of_next(app, self.position, now) if self.events else 0.0


def lag(app: LedgerApp, store: ViewStore, tracking_names: Iterable[str], head: int | None = None) -> Lag:
    """How far the read models tracked under `tracking_names` are behind the log's head (read
    first unless given, so a read model never looks ahead of it)."""
    head = event_log.head(app) if head is None else head
    return Lag(head, min((store.position(name) for name in tracking_names), default=head))


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
    """Each read model's version, position, lag (events and seconds, by `lag`) and events/s."""
    now = now or datetime.now(UTC)
    head = event_log.head(app)
    rates = dict(store.query("SELECT tracking_name, events_per_s FROM projection_status"))
    found = []
    for projection in build_projections(store):
        behind = lag(app, store, [projection.tracking_name], head)
        found.append(
            ProjectionStatus(
                name=projection.name,
                version=projection.version,
                position=behind.position,
                head=behind.head,
                lag_events=behind.events,
                lag_seconds=behind.seconds(app, now),
                events_per_s=float(rates.get(projection.tracking_name, 0.0)),
            )
        )
    return found


class ReadSide:
    """The live read models of one process, at their active versions (a rebuild's swap is
    followed within `refresh_s`), and the log they are built from. A `ReadSource`."""

    def __init__(self, app: LedgerApp, store: ViewStore, refresh_s: float = 1.0) -> None:
        self.app = app
        self.store = store
        self.versions = Versions(store, refresh_s)
        self._views: dict[str, Projection] = {}
        self._lock = threading.Lock()
        self._positions: dict[str, tuple[float, int]] = {}  # tracking name -> (read at, position)

    def view(self, name: str) -> Projection:
        """The read model at its active version."""
        with self._lock:
            if not self._views or self.versions.swapped(self._views.values()):
                active = self.versions.current()
                versions = {n: active[n] for n in PROJECTION_NAMES}
                self._views = {p.name: p for p in build_projections(self.store, versions=versions)}
            return self._views[name]

    def head(self) -> int:
        return event_log.head(self.app)

    def position(self, names: Sequence[str], max_age: float = 0.0) -> int:
        """The position every named read model has reached. With `max_age`, a position read
        at most that many seconds ago will do: a read model only moves forward, so rows read
        after it still reflect at least that position (one query fewer per busy read)."""
        return min(self._position(self.view(n).tracking_name, max_age) for n in names)

    def _position(self, tracking_name: str, max_age: float) -> int:
        now = time.monotonic()
        known = self._positions.get(tracking_name)
        if known is not None and now - known[0] <= max_age:
            return known[1]
        position = self.store.position(tracking_name)
        self._positions[tracking_name] = (now, position)
        return position

    def lag(self, names: Sequence[str] = PROJECTION_NAMES, head: int | None = None) -> Lag:
        """How far the named read models (all by default) are behind the log's head."""
        return lag(self.app, self.store, [self.view(n).tracking_name for n in names], head)

    def status(self) -> list[ProjectionStatus]:
        return projection_status(self.app, self.store)

    def wait_for(self, names: Sequence[str], position: int, timeout: float) -> int | None:
        """Poll until the read models reach `position`; their position, or None on timeout."""
        return _poll(lambda: self.position(names), position, timeout, 0.01)

    # ---- the log itself, for the audit trail ----

    def log_page(self, after: int, limit: int, stop: int, topics: Sequence[str] = (),
                 stream_id: UUID | None = None) -> list[tuple[int, Any]]:
        """Up to `limit` (position, decoded event) after `after`, at most `stop`, only `topics` if
        any, only one aggregate's events if `stream_id` is given."""
        if stop <= after:
            return []
        if stream_id is None:
            found: Sequence[Notification] = event_log.page(self.app, after, limit, stop=stop, topics=topics)
        else:
            found = self._stream_page(after, limit, stop, topics, stream_id)
        return _decoded(self.app, found)

    def _stream_page(self, after: int, limit: int, stop: int, topics: Sequence[str],
                     stream_id: UUID) -> list[Notification]:
        """One aggregate's notifications after `after`: one query on the events' index by aggregate
        and position (`positions.ensure_stream_index`), never a read of the log."""
        return positions.stream_range(self.app, stream_id, after=after, stop=stop, limit=limit, topics=topics)

    def previous_after(self, after: int, limit: int, topics: Sequence[str] = (),
                       stream_id: UUID | None = None) -> int | None:
        """Where the page before the one after `after` starts (`log_page`'s `after` for the
        `limit` events with the same filters at positions up to `after`); None if there are none.
        One aggregate's: one query on its index. The whole log's: read backwards in growing
        windows, since the log is only read forwards."""
        if stream_id is not None:
            found = positions.stream_range(self.app, stream_id, stop=after, limit=limit, topics=topics,
                                           newest_first=True)
            return found[-1].id - 1 if found else None
        window = 2 * limit
        while True:
            start = max(0, after - window)
            last: deque[int] = deque(maxlen=limit)
            for n in event_log.notifications(self.app, start, stop=after, topics=topics):
                last.append(n.id)
            if len(last) == limit or start == 0:
                return last[0] - 1 if last else None
            window *= 4

    def stream_events(self, stream_id: UUID, *, after: int, stop: int, limit: int) -> list[tuple[int, Any]]:
        """Up to `limit` (position, decoded event) of one aggregate after `after`, at most `stop`, in order."""
        return _decoded(self.app, positions.stream_range(self.app, stream_id, after=after, stop=stop, limit=limit))

    def stream_page(self, stream_id: UUID, *, after: int = 0, before: int | None = None,
                    limit: int = 100) -> list[tuple[int, Any]]:
        """Up to `limit` (position, decoded event) of one aggregate after `after` and before
        `before`, newest first: a timeline's page of a stream that may be long (a SKU's stock)."""
        stop = None if before is None else before - 1
        found = positions.stream_range(self.app, stream_id, after=after, stop=stop, limit=limit, newest_first=True)
        return _decoded(self.app, found)


def _poll(read: Any, wanted: int, timeout: float, every: float) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        reached: int = read()
        if reached >= wanted:
            return reached
        if time.monotonic() >= deadline:
            return None
        time.sleep(every)


def event_topic(name: str) -> str | None:
    """The stored topic of an event named `Aggregate.Event` (None if there is no such event)."""
    cls = EVENT_CLASSES.get(name)
    return None if cls is None else get_topic(cls)


def _decoded(app: LedgerApp, found: Sequence[Notification]) -> list[tuple[int, Any]]:
    """(position, event) of each notification, by the log's one decoder."""
    decode = event_log.decoder(app)
    return [(n.id, decode(n)) for n in found]
