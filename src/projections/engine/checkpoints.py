"""Checkpoints of the read models, so that a point-in-time read costs at most the events since
the nearest one (`LEDGER_AS_OF_CHECKPOINT_EVENTS`), never a fold of the whole history.

A background job (`Checkpoints.build`, run by `ledger serve`'s background threads) folds the log
forward in steps of `every` positions with the read-model classes themselves (as
`projections.engine.as_of.fold` does), and after each step stores, for every keyed table of
`facts`, `inventory`, `sales`, `profit` and `journal`, the rows that step changed, tagged with
the step's end position (`since`) in a table of its own (`as_of_<model>_<table>`). The state of
a table at checkpoint C is then, per key, its row with the greatest `since` <= C: each
checkpoint stores only what changed, so the tables grow with the history once, not once per
checkpoint. The step's earliest event time goes into `as_of_checkpoints` beside its position,
which is what maps an `as_of_time` to a position without reading the whole log.

A point-in-time read at P (`Checkpoints.point`) takes the greatest checkpoint C <= P, folds the
events in (C, P] with fresh read-model instances whose misses are looked up in the checkpoint
(`Projection.lookup`, one indexed query per row not yet in memory, kept for the next reads:
rows as of a checkpoint never change), and lays the rows it changed
over the checkpoint's rows of the tables the route reads, in a private in-memory database
(`MemoryStore`), where the route runs its usual statements. Tables that grow with the history
(`facts`, `profit`'s order keys) are looked up, never copied, and the append-only ones
(`journal` entries, inventory alerts) are not kept: entries carry their position, so a past
account page reads the live entries up to P (`api.routes.books`).

When the checkpoints are more than `MAX_STEPS` steps behind the position asked (a store just
upgraded, whose checkpoints are being built), the read is refused (`NotReady`) rather than
folding an unbounded stretch of the log.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.application import LedgerApp
from ledger.storage import event_log
from projections.engine.as_of import MemoryStore, PointInTime
from projections.engine.base import Projection, Row, Table
from projections.engine.registry import PROJECTION_NAMES, build_projections
from projections.engine.store import ViewStore

log = logging.getLogger(__name__)

FOLDED = ("facts", "inventory", "sales", "profit", "journal")
# Keyed tables that grow with the history: looked up by key during a fold, never copied whole.
LOOKED_UP = {("facts", "orders"), ("facts", "keys"), ("facts", "products"), ("facts", "fulfilments"),
             ("facts", "suppliers"), ("profit", "order_keys")}
MAX_STEPS = 2  # a read folds at most this many steps' events (else NotReady)
REST_EVERY = 500  # events folded between two rests of a background build
CACHED_LOOKUPS = 20_000  # rows as of a checkpoint kept per process (looked up by earlier reads)
INDEX_DDL = (
    "CREATE TABLE IF NOT EXISTS as_of_checkpoints (position BIGINT PRIMARY KEY, previous BIGINT NOT NULL,"
    " min_time DOUBLE PRECISION, built_at TEXT NOT NULL)"
)


class NotReady(Exception):
    """The checkpoints are too far behind the position asked: a read would fold too much."""


@dataclass
class Folded:
    """What one fold did: where it started, and how many events it read (the tests count them)."""

    base: int
    events: int


def _classes() -> dict[str, tuple[Table, ...]]:
    projections = build_projections(MemoryStore(), list(FOLDED), versions=dict.fromkeys(PROJECTION_NAMES, 1))
    return {p.name: p.tables for p in projections}


def table_name(model: str, table: str) -> str:
    return f"as_of_{model}_{table}"


class Checkpoints:
    """The checkpoints in the read models' store: built forward by `build`, read by `point` and
    `position_at`."""

    def __init__(self, app: LedgerApp, store: ViewStore, every: int) -> None:
        self.app, self.store, self.every = app, store, every
        self.tables = {name: tuple(t for t in tables if t.key) for name, tables in _classes().items()}
        self.reads = 0  # events decoded to answer reads, since this object was made (the tests read it)
        self._tail_lock = threading.Lock()
        # Rows as of a checkpoint never change: the lookups of one read serve the next ones near it.
        self._cache: OrderedDict[tuple[Any, ...], list[Row]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._tail_events: list[tuple[int, float]] = []
        with store.transaction() as cursor:
            store.execute(cursor, INDEX_DDL)
            for model, tables in self.tables.items():
                for t in tables:
                    columns = ", ".join(f"{c} {self._type(kind)}" for c, kind in t.columns)
                    store.execute(cursor, f"CREATE TABLE IF NOT EXISTS {table_name(model, t.name)} ({columns}, "
                                          f"since BIGINT NOT NULL, PRIMARY KEY ({', '.join(t.key)}, since))")

    def _type(self, kind: str) -> str:
        return kind if self.store.is_postgres or not kind.startswith("NUMERIC") else "TEXT"

    # ---- where they stand ----

    def latest(self) -> int:
        rows = self.store.query("SELECT MAX(position) FROM as_of_checkpoints")
        return int(rows[0][0] or 0)

    def nearest(self, position: int) -> int:
        """The greatest checkpoint at or before `position` (0: the empty log)."""
        rows = self.store.query("SELECT MAX(position) FROM as_of_checkpoints WHERE position <= ?", (position,))
        return int(rows[0][0] or 0)

    # ---- building ----

    def build(self, until: int | None = None, stop: threading.Event | None = None, rest: float = 0.0) -> int:
        """Build every checkpoint whose step lies wholly at or before `until` (default: the log's
        head), until `stop` is set; return how many were built. `rest`: after each stretch of
        events folded, wait `rest` times as long as it took (a background builder in a serving
        process keeps its share of the CPU small: its order path runs in the same interpreter)."""
        top = event_log.head(self.app) if until is None else until
        built = 0
        while stop is None or not stop.is_set():
            last = self.latest()
            if top - last < self.every:
                return built
            self._step(last, last + self.every, rest)
            built += 1
        return built

    def _step(self, last: int, target: int, rest: float = 0.0) -> None:
        projections = self._projections(FOLDED, last)
        earliest = math.inf
        began = time.perf_counter()
        for n, (_, event) in enumerate(self._events(last, target, projections, every_topic=True), start=1):
            earliest = min(earliest, event.timestamp.timestamp())
            if rest and n % REST_EVERY == 0:
                time.sleep((time.perf_counter() - began) * rest)
                began = time.perf_counter()
        with self.store.transaction() as cursor:
            for projection in projections:
                for t in self.tables[projection.name]:
                    dirty = projection.dirty[t.name]
                    if not dirty:
                        continue
                    rows = projection.rows[t.name]
                    self.store.write_rows(cursor, table_name(projection.name, t.name), [*t.all_columns, "since"],
                                          [(*t.values(rows[k]), target) for k in dirty])
            self.store.execute(cursor, "INSERT INTO as_of_checkpoints (position, previous, min_time, built_at) "
                                       "VALUES (?, ?, ?, ?)",
                               (target, last, None if earliest == math.inf else earliest,
                                datetime.now(UTC).isoformat()))

    # ---- reading ----

    def _lookup(self, at: int) -> Callable[[Projection, str, str, Sequence[Any]], list[Row]]:
        """`Projection.lookup` for rows as of checkpoint `at`: per key, its newest row at or before it."""

        def stored(projection: Projection, table: str, where: str, params: Sequence[Any]) -> list[Row]:
            asked = (at, projection.name, table, where, tuple(params))
            with self._cache_lock:
                found = self._cache.get(asked)
                if found is not None:
                    self._cache.move_to_end(asked)
            if found is None:
                found = self._query(projection, table, where, params, at)
                with self._cache_lock:
                    self._cache[asked] = found
                    while len(self._cache) > CACHED_LOOKUPS:
                        self._cache.popitem(last=False)
            return [dict(row) for row in found]  # the fold changes the rows it is given

        return stored

    def _query(self, projection: Projection, table: str, where: str, params: Sequence[Any], at: int) -> list[Row]:
        spec = projection._spec(table)
        values = self.store.query(f"SELECT {', '.join(spec.all_columns)} FROM {table_name(projection.name, table)} "
                                  f"WHERE {where} AND since <= ? ORDER BY since DESC", (*params, at))
        seen: set[tuple[Any, ...]] = set()
        out = []
        for v in values:
            row = spec.decode(v)
            key = tuple(row[k] for k in spec.key)
            if key not in seen:
                seen.add(key)
                out.append(row)
        return out

    def rows_at(self, model: str, spec: Table, at: int) -> list[Row]:
        """Every row of one checkpointed table as of checkpoint `at`."""
        name, keys = table_name(model, spec.name), ", ".join(spec.key)
        same = " AND ".join(f"c.{k} = m.{k}" for k in spec.key)
        values = self.store.query(
            f"SELECT {', '.join(f'c.{c}' for c in spec.all_columns)} FROM {name} c JOIN (SELECT {keys}, "
            f"MAX(since) AS since FROM {name} WHERE since <= ? GROUP BY {keys}) m ON {same} AND c.since = m.since",
            (at,))
        return [spec.decode(v) for v in values]

    def _projections(self, names: Iterable[str], base: int) -> list[Projection]:
        projections = build_projections(MemoryStore(), list(names), versions=dict.fromkeys(PROJECTION_NAMES, 1))
        for projection in projections:
            if base == 0:  # the empty log: nothing to look up
                projection.complete = dict.fromkeys(projection.complete, True)
            else:
                projection.lookup = self._lookup(base)
        return projections

    def _events(self, after: int, until: int, projections: list[Projection],
                every_topic: bool = False) -> Iterable[tuple[int, Any]]:
        """Feed the events in (after, until] to `projections`, yielding each (position, event)."""
        routes: dict[str, list[Callable[[Any, int], None]]] = {}
        for projection in projections:
            for topic, handler in projection.handlers.items():
                routes.setdefault(topic, []).append(handler)
        decode = event_log.decoder(self.app)
        topics = () if every_topic else tuple(sorted(routes))
        for notification in event_log.notifications(self.app, after, stop=until, topics=topics):
            event = decode(notification)
            for handler in routes.get(notification.topic, ()):
                handler(event, notification.id)
            yield notification.id, event

    def _base(self, position: int) -> int:
        base = self.nearest(position)
        if position - base > MAX_STEPS * self.every:
            raise NotReady(f"point-in-time checkpoints reach position {self.latest()}; position {position} is "
                           "further than a read may fold (they are being built)")
        return base

    def point(self, names: Sequence[str], position: int) -> tuple[PointInTime, Folded]:
        """The read models `names` as of `position`: the nearest checkpoint, and the events since."""
        base = self._base(position)
        projections = self._projections(names, base)
        folded = Folded(base, 0)
        for _ in self._events(base, position, projections):
            folded.events += 1
        self.reads += folded.events
        store = projections[0].store
        assert isinstance(store, MemoryStore)
        with store.transaction() as cursor:
            for projection in projections:
                if projection.name not in names or projection.name == "facts":
                    continue
                projection.create_tables(cursor)
                for t in self.tables[projection.name]:
                    if (projection.name, t.name) in LOOKED_UP:
                        continue
                    merged = {} if base == 0 else {
                        tuple(r[k] for k in t.key): r for r in self.rows_at(projection.name, t, base)}
                    merged.update(projection.rows[t.name])
                    store.write_rows(cursor, projection.table(t.name), t.all_columns,
                                     [tuple(r[c] for c in t.all_columns) for r in merged.values()])
        return PointInTime(position, store, {p.name: p for p in projections}), folded

    def position_at(self, when: datetime) -> int:
        """The last position whose event's timestamp is at or before `when` (0 if none); a time
        without a zone is UTC. Reads at most the events past the last checkpoint and one step."""
        moment = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        head = event_log.head(self.app)
        last = self._base(head)
        found = max((p for p, t in self._tail(last, head) if t <= moment), default=0)
        if found:
            return found
        rows = self.store.query("SELECT position, previous FROM as_of_checkpoints WHERE min_time <= ? "
                                "ORDER BY position DESC LIMIT 1", (moment,))
        if not rows:
            return 0
        return self._last_at_or_before(int(rows[0][1]), int(rows[0][0]), moment)

    def _tail(self, last: int, head: int) -> list[tuple[int, float]]:
        """(position, event time) of every event after checkpoint `last` up to `head`: kept between
        reads and extended at its end, so that a read decodes only the events new since the last."""
        with self._tail_lock:
            if self._tail_events and self._tail_events[0][0] <= last:
                self._tail_events = [(p, t) for p, t in self._tail_events if p > last]
            start = self._tail_events[-1][0] if self._tail_events else last
            decode = event_log.decoder(self.app)
            for notification in event_log.notifications(self.app, max(start, last), stop=head):
                self.reads += 1
                self._tail_events.append((notification.id, decode(notification).timestamp.timestamp()))
            return list(self._tail_events)

    def _last_at_or_before(self, after: int, until: int, moment: float) -> int:
        decode, found = event_log.decoder(self.app), 0
        for notification in event_log.notifications(self.app, after, stop=until):
            self.reads += 1
            if decode(notification).timestamp.timestamp() <= moment:
                found = notification.id
        return found
