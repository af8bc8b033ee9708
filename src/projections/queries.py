"""The read side's one seam: everything a reader asks of the log and of the read models.

* **Versions**: which version of each read model readers use (`Versions`, over
  `ViewStore.active_versions`, the one reader of `projection_versions`).
* **The log and lag**: the head of the log, where read models stand, how far behind they are
  (`ReadSide.head`, `ReadSide.lag`, `lag`); paging the log is `ledger.event_log.pages`, the one
  loop every reader of the log uses.
* **Report queries**: every query the HTTP routes and the CLI run against a read model, over a
  `ReadSource` (the live read models, or a past point folded by `projections.as_of`). Routes
  parse input, call these, and answer; none of them writes SQL or reads the log itself.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from ledger import event_log, positions
from ledger.application import LedgerApp
from projections.as_of import ReadSource
from projections.base import Projection, Row
from projections.events import EVENT_CLASSES
from projections.fraud import Fraud, alerts, subject
from projections.journal import Journal, TrialBalance
from projections.journal import trial_balance as journal_trial_balance
from projections.profit import margin
from projections.registry import PROJECTION_NAMES, build_projections
from projections.store import ActiveVersions, ViewStore

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
        """One aggregate's notifications after `after`: the log has no index by aggregate, so it
        is read page by page, up to the aggregate's newest event at most."""
        newest = self.app.recorder.select_events(stream_id, desc=True, limit=1)
        if not newest:
            return []
        found = []
        for n in event_log.notifications(self.app, after, stop=stop, topics=topics):
            if n.originator_id == stream_id:
                found.append(n)
                if len(found) == limit or n.originator_version >= newest[0].originator_version:
                    break
        return found

    def previous_after(self, after: int, limit: int, topics: Sequence[str] = (),
                       stream_id: UUID | None = None) -> int | None:
        """Where the page before the one after `after` starts (`log_page`'s `after` for the
        `limit` events with the same filters at positions up to `after`); None if there are none.
        Read backwards in growing windows, since the log is only read forwards."""
        window = 2 * limit
        while True:
            start = max(0, after - window)
            last: deque[int] = deque(maxlen=limit)
            for n in event_log.notifications(self.app, start, stop=after, topics=topics):
                if stream_id is None or n.originator_id == stream_id:
                    last.append(n.id)
            if len(last) == limit or start == 0:
                return last[0] - 1 if last else None
            window *= 4

    def stream(self, stream_id: UUID) -> list[Any]:
        """Every event of one aggregate, in version order ([] if it has none)."""
        return list(self.app.events.get(stream_id))

    def stream_page(self, stream_id: UUID, *, after: int = 0, before: int | None = None,
                    limit: int = 100) -> list[tuple[int, Any]]:
        """Up to `limit` (position, decoded event) of one aggregate after `after` and before
        `before`, newest first: a timeline's page of a stream that may be long (a SKU's stock)."""
        found = positions.stream_page(self.app, stream_id, after=after, before=before, limit=limit)
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


# ---- inventory ----


def inventory(
    source: ReadSource, sku: str | None = None, *, batches: bool = False
) -> tuple[list[Row], list[Row] | None]:
    """Every SKU's row (or one SKU's), and with `batches` their batches' rows."""
    view = source.view("inventory")
    if sku is None:
        skus = view.select("skus", order="sku")
        found = view.select("batches", order="sku, batch_id") if batches else None
    else:
        skus = view.select("skus", "sku = ?", (sku,))
        found = view.select("batches", "sku = ?", (sku,), order="batch_id") if batches and skus else None
    return skus, found


# ---- sales and profit ----


@dataclass(frozen=True)
class DailyReport:
    """A report summing a daily read model's rows over chosen dimensions, kept apart by currency."""

    name: str
    dimensions: dict[str, str]  # query name -> column
    counts: tuple[str, ...]
    money: tuple[str, ...]

    @property
    def pattern(self) -> str:
        names = "|".join(self.dimensions)
        return rf"^({names})(,({names}))*$"

    def columns(self, group_by: Sequence[str]) -> list[str]:
        return [*group_by, "currency", *self.counts, *self.money, *(("margin",) if self.name == "profit" else ())]


SALES = DailyReport(
    "sales", {"day": "day", "sku": "sku", "channel": "channel", "promotion": "promotion"},
    ("orders", "units"), ("gross", "discounts", "refunds", "net", "returned_payments"),
)
PROFIT = DailyReport(
    "profit", {"day": "day", "sku": "sku", "supplier": "supplier", "batch": "batch_id"},
    ("keys_sold", "keys_written_off"), ("revenue", "discounts", "refunds", "cost_of_goods", "write_offs", "profit"),
)


def daily_report(source: ReadSource, report: DailyReport, group_by: Sequence[str],
                 date_from: date | None = None, date_to: date | None = None) -> list[Row]:
    """The report's rows between two days (inclusive), summed per group and currency; money is
    summed on Decimal; profit's margin is recomputed from each group's sums."""
    where, params = [], []
    if date_from:
        where.append("day >= ?")
        params.append(date_from.isoformat())
    if date_to:
        where.append("day <= ?")
        params.append(date_to.isoformat())
    rows = source.view(report.name).select("daily", " AND ".join(where), params)
    return _summed(report, rows, list(group_by))


def _summed(report: DailyReport, rows: Sequence[Row], group_by: list[str]) -> list[Row]:
    columns = [report.dimensions[g] for g in group_by]
    groups: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        key = (*(row[c] for c in columns), row["currency"])
        total = groups.get(key)
        if total is None:
            total = groups[key] = {
                **{g: row[c] for g, c in zip(group_by, columns, strict=True)}, "currency": row["currency"],
                **{c: 0 for c in report.counts}, **{m: ZERO for m in report.money},
            }
        for c in report.counts:
            total[c] += int(row[c] or 0)
        for m in report.money:
            total[m] += row[m] if row[m] is not None else ZERO
    out = [groups[k] for k in sorted(groups, key=lambda k: tuple(str(v) for v in k))]
    if report.name == "profit":
        for total in out:
            total["margin"] = margin(total["profit"], total["revenue"] - total["discounts"] - total["refunds"])
    return out


# ---- the books ----


def _journal(source: ReadSource) -> Journal:
    journal = source.view("journal")
    assert isinstance(journal, Journal)
    return journal


def trial_balance(source: ReadSource) -> TrialBalance:
    """Every account's committed debits, credits and balance per currency."""
    return journal_trial_balance(source.store, _journal(source))


def account_entries(source: ReadSource, account: str, after: int, position: int, limit: int) -> tuple[list[Row], bool]:
    """An account's journal entries at positions after `after` up to `position`, in log order:
    at least `limit` of them if there are, never splitting one event's entries over two pages;
    and whether more follow."""
    journal = source.view("journal")
    rows = journal.select("entries", "account = ? AND position > ? AND position <= ?", (account, after, position),
                          order="position, entry_no", limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    if more and rows:
        # The next page starts after a position: the rest of the last event's entries go on this one.
        last = rows[-1]
        rows += journal.select("entries", "account = ? AND position = ? AND entry_no > ?",
                               (account, last["position"], last["entry_no"]), order="entry_no")
    return rows, more


# ---- fraud ----


def _fraud(source: ReadSource) -> Fraud:
    view = source.view("fraud")
    assert isinstance(view, Fraud)
    return view


def fraud_alerts(source: ReadSource, *, rule: str | None = None, subject_kind: str | None = None,
                 subject_id: str | None = None, since: int = 0, until: int | None = None,
                 limit: int | None = None) -> list[Row]:
    """Alerts raised at positions after `since` (and at most `until`), in log order, filtered."""
    return alerts(source.store, _fraud(source), rule=rule, subject_kind=subject_kind, subject_id=subject_id,
                  since=since, until=until, limit=limit)


def fraud_counters(source: ReadSource, kind: str, ident: str) -> list[Row]:
    """One subject's count per rule and how many alerts each count raised (`level`), by rule."""
    return _fraud(source).select("counters", "subject_kind = ? AND subject_id = ?", (kind, ident), order="rule")


def fraud_subject(source: ReadSource, kind: str, ident: str, recent: int = 50) -> tuple[Row | None, list[Row]]:
    """One subject's scores (None if never alerted) and its latest `recent` alerts."""
    view = _fraud(source)
    found = subject(source.store, view, kind, ident)
    latest = alerts(source.store, view, subject_kind=kind, subject_id=ident)[-recent:]
    return found, latest


def _decoded(app: LedgerApp, found: Sequence[Notification]) -> list[tuple[int, Any]]:
    """(position, event) of each notification, by the log's one decoder."""
    decode = event_log.decoder(app)
    return [(n.id, decode(n)) for n in found]
