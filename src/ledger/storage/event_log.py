"""The global notification log, read in order: its head, and its pages.

Everything that reads the log from a position onwards (the projection runner, replay, point in
time, the demo's summary, the relay, the audit feed, benchmarks) pages it with `pages`.

The library offers `recorder.select_notifications(start, limit, stop, topics,
inclusive_of_start=...)` and `max_notification_id()`; its `notification_log.select` caps a page at
the application's `log_section_size` (10), and `recorder.subscribe` does not exist on SQLite. So
paging is a loop over `select_notifications` after the last id read -- written once, here.
Ids can have gaps (rolled-back inserts): a page's next start is its last id + 1, never a count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from datetime import datetime
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

from eventsourcing.persistence import Mapper, Notification, find_id_convertor, pass_through_convertor
from eventsourcing.utils import resolve_topic

from ledger.application import LedgerApp

PAGE = 5_000


def head(app: LedgerApp) -> int:
    """The position of the newest event in the log (0 when it is empty)."""
    return app.recorder.max_notification_id() or 0


def page(
    app: LedgerApp, after: int, size: int, *, stop: int | None = None, topics: Sequence[str] = ()
) -> Sequence[Notification]:
    """Up to `size` notifications at positions after `after` (and at most `stop`), in order."""
    return app.recorder.select_notifications(after, size, stop=stop, topics=list(topics), inclusive_of_start=False)


def pages(
    app: LedgerApp,
    after: int = 0,
    *,
    stop: int | None = None,
    size: int = PAGE,
    topics: Sequence[str] = (),
    read_ahead: Executor | None = None,
) -> Iterator[Sequence[Notification]]:
    """The log after position `after` (up to `stop`, inclusive), one page of at most `size`
    notifications at a time, in log order; only `topics` if given.

    It ends at an empty page, at `stop`, or (with `stop` given) at a page that is not full.
    With `read_ahead`, the next page is read on that executor while the caller works on this
    one (only after a full page: a short one means the reader has caught up)."""
    ahead: Future[Sequence[Notification]] | None = None
    while stop is None or after < stop:
        found = ahead.result() if ahead is not None else page(app, after, size, stop=stop, topics=topics)
        ahead = None
        if not found:
            return
        after = found[-1].id
        more = len(found) == size and (stop is None or after < stop)
        if more and read_ahead is not None:
            ahead = read_ahead.submit(page, app, after, size, stop=stop, topics=topics)
        yield found
        if not more and stop is not None:
            return


def notifications(
    app: LedgerApp, after: int = 0, *, stop: int | None = None, size: int = PAGE, topics: Sequence[str] = ()
) -> Iterator[Notification]:
    """Every notification after `after` (up to `stop`), one at a time, in log order."""
    for found in pages(app, after, stop=stop, size=size, topics=topics):
        yield from found


class Decoder:
    """`mapper.to_domain_event`, with what it looks up for every event (the class by its topic,
    the class version, how to convert the id) looked up once per topic: a fifth of decoding an
    event when reading the log in bulk. Anything else than a version-1 event stored under a
    UUID (an upcast, an id stored as text, a payload that fails to decode) goes through the
    mapper itself, so the result and its errors are the mapper's."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        self._mapper = mapper
        self._decrypt = mapper.cipher.decrypt if mapper.cipher else None
        self._decompress = mapper.compressor.decompress if mapper.compressor else None
        self._decode = mapper.transcoder.decode
        self._classes: dict[str, type | None] = {}  # topic -> class, or None: leave it to the mapper
        self._new, self._set = object.__new__, object.__setattr__

    def __call__(self, notification: Notification) -> Any:
        topic = notification.topic
        try:
            cls = self._classes[topic]
        except KeyError:
            cls = self._classes[topic] = self._fast_class(topic)
        if cls is None or type(notification.originator_id) is not UUID:
            return self._mapper.to_domain_event(notification)
        try:
            state = notification.state
            if self._decrypt is not None:
                state = self._decrypt(state)
            if self._decompress is not None:
                state = self._decompress(state)
            event_state: dict[str, Any] = self._decode(state)
        except Exception:
            return self._mapper.to_domain_event(notification)  # raises the mapper's error
        if "class_version" in event_state:
            return self._mapper.to_domain_event(notification)
        event_state["originator_id"] = notification.originator_id
        event_state["originator_version"] = notification.originator_version
        event: Any = self._new(cls)
        self._set(event, "__dict__", event_state)
        return event

    @staticmethod
    def _fast_class(topic: str) -> type | None:
        cls: type = resolve_topic(topic)
        plain = getattr(cls, "class_version", 1) == 1 and find_id_convertor(cls, UUID) is pass_through_convertor
        return cls if plain else None


_decoders: WeakKeyDictionary[LedgerApp, Decoder] = WeakKeyDictionary()


def decoder(app: LedgerApp) -> Callable[[Notification], Any]:
    """What turns a notification of `app`'s log into its domain event, fast (see `Decoder`):
    the one way every reader of the log decodes it, one per application (what it looked up
    is kept)."""
    found = _decoders.get(app)
    if found is None:
        found = _decoders[app] = Decoder(app.mapper)
    return found


def events(
    app: LedgerApp, after: int = 0, *, stop: int | None = None, size: int = PAGE, topics: Sequence[str] = ()
) -> Iterator[Any]:
    """Every event after `after` (up to `stop`), decoded through the application's mapper."""
    decode = decoder(app)
    for notification in notifications(app, after, stop=stop, size=size, topics=topics):
        yield decode(notification)


def age_of_next(app: LedgerApp, position: int, now: datetime) -> float:
    """Seconds the oldest event after `position` has been waiting (0 when there is none)."""
    found = page(app, position, 1)
    if not found:
        return 0.0
    written: datetime = getattr(app.mapper.to_domain_event(found[0]), "timestamp")  # noqa: B009
    return max(0.0, (now - written).total_seconds())
