"""The base of every read model: tables, event handlers, and rows kept in memory
between flushes so a batch of thousands of events costs one write per changed row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from operator import itemgetter
from typing import Any, ClassVar
from uuid import UUID

import msgspec
from eventsourcing.utils import get_topic

from ledger.storage.database import Changes
from projections.engine.events import Handlers
from projections.engine.store import ViewStore

Row = dict[str, Any]
TEXT, INT, MONEY = "TEXT", "BIGINT", "NUMERIC(20, 4)"
PREFETCH_CHUNK = 500  # ids per look-up query (SQLite allows 999 parameters before 3.32)


_JSON = msgspec.json.Encoder()
# UUID (by its int: a C hash, where hashing the UUID calls Python) -> its text. An id is converted
# again by nearly every event that names it (a key: its batch, reservation, delivery, the order's
# delivery in three read models), and a look-up costs a third of a conversion.
_IDENTS: dict[int, str] = {}
MAX_IDENTS = 200_000  # then the cache starts again: ids come back in bursts, near where they began


def ident(value: Any) -> str:
    """An id as the tables store it: a UUID in its canonical text (msgspec writes it in C,
    half what `str(uuid)` costs, and each is kept for its next use), else `str`."""
    if type(value) is not UUID:
        return str(value)
    number = value.int
    text = _IDENTS.get(number)
    if text is None:
        if len(_IDENTS) >= MAX_IDENTS:
            _IDENTS.clear()
        text = _IDENTS[number] = _JSON.encode(value)[1:-1].decode()
    return text


def money(value: Any) -> Decimal:
    """A money value as Decimal, whatever the store or the event gave back."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True)
class Table:
    """A table: its name, its key columns, its other columns with SQL types, and the columns
    readers look rows up by besides the key (each gets an index)."""

    name: str
    key: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def all_columns(self) -> list[str]:
        return [c for c, _ in self.columns]

    @cached_property
    def values(self) -> Callable[[Row], tuple[Any, ...]]:
        """A row's values in column order (itemgetter: one C call per row)."""
        names = self.all_columns
        if len(names) == 1:
            return lambda row: (row[names[0]],)
        return itemgetter(*names)

    @cached_property
    def blank(self) -> Row:
        """A new row before its key and defaults are set: text None, numbers 0."""
        return {c: (None if kind == "TEXT" else 0) for c, kind in self.columns}

    @cached_property
    def fresh(self) -> Callable[[tuple[Any, ...]], Row]:
        """A new row with its key set, its other columns blank."""
        return self.maker(self.blank)

    def maker(self, template: Row) -> Callable[[tuple[Any, ...]], Row]:
        """What makes a row from its key: a copy of `template` with the key set (for a key of one
        or two columns directly, a sixth of `update(zip(...))`)."""
        names = self.key
        if len(names) == 1:
            (name,) = names

            def one(key: tuple[Any, ...]) -> Row:
                row = template.copy()
                row[name] = key[0]
                return row

            return one

        if len(names) == 2:
            first, second = names

            def two(key: tuple[Any, ...]) -> Row:
                row = template.copy()
                row[first], row[second] = key
                return row

            return two

        def many(key: tuple[Any, ...]) -> Row:
            row = template.copy()
            row.update(zip(names, key, strict=True))
            return row

        return many

    def decode(self, values: tuple[Any, ...]) -> Row:
        """A row as read back: money columns as Decimal whatever the store returned."""
        row = dict(zip(self.all_columns, values, strict=True))
        for column, kind in self.columns:
            if kind.startswith("NUMERIC") and row[column] is not None:
                row[column] = Decimal(str(row[column])).normalize() + 0
        return row


class Projection(Handlers):
    """Subclasses name their tables and register handlers `(event, position)` with `@handles(Event)`."""

    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]]

    def __init__(self, store: ViewStore, version: int | None = None) -> None:
        self.store = store
        self.version = version if version is not None else store.active_versions()[self.name]
        # Where `stored` looks rows up instead of this version's tables (a checkpoint), if anywhere.
        self.lookup: Callable[[Projection, str, str, Sequence[Any]], list[Row]] | None = None
        self.handlers = self.bound_handlers()  # topic -> bound method, built once
        self._specs = {t.name: t for t in self.tables}
        self.topics = frozenset(self.handlers)  # read for every event: built once
        self.reset()

    # ---- naming ----

    @property
    def tracking_name(self) -> str:
        return self.tracking_name_of(self.version)

    def tracking_name_of(self, version: int) -> str:
        return f"{self.name}@v{version}"

    def table(self, name: str, version: int | None = None) -> str:
        return f"{self.name}_{name}_v{self.version if version is None else version}"

    # ---- lifecycle ----

    def reset(self) -> None:
        """Forget everything held in memory (after a failed flush, or to reload)."""
        self.rows: dict[str, dict[tuple[Any, ...], Row]] = {t.name: {} for t in self.tables}
        self.dirty: dict[str, set[tuple[Any, ...]]] = {t.name: set() for t in self.tables}
        # Dirty rows made here that the store does not hold: inserted, no upsert needed.
        self.created: dict[str, set[tuple[Any, ...]]] = {t.name: set() for t in self.tables}
        self.appended: dict[str, list[Row]] = {t.name: [] for t in self.tables}
        # A table is "complete" while every row it holds is also in memory (it was empty when
        # we started and nothing was evicted since): then a miss needs no query.
        self.complete: dict[str, bool] = {t.name: False for t in self.tables}
        self.absent: dict[str, set[tuple[Any, ...]]] = {t.name: set() for t in self.tables}

    def create_tables(self, cursor: Any) -> None:
        for t in self.tables:
            columns = ", ".join(f"{c} {self._sql_type(kind)}" for c, kind in t.columns)
            key = f", PRIMARY KEY ({', '.join(t.key)})" if t.key else ""
            self.store.execute(cursor, f"CREATE TABLE IF NOT EXISTS {self.table(t.name)} ({columns}{key})")
            for indexed in t.indexes:  # IF NOT EXISTS: a table made before the index gets it at the next start
                name = f"{self.table(t.name)}_by_{'_'.join(indexed)}"
                self.store.execute(cursor, f"CREATE INDEX IF NOT EXISTS {name} ON {self.table(t.name)} "
                                           f"({', '.join(indexed)})")

    def _sql_type(self, kind: str) -> str:
        # SQLite's NUMERIC affinity would turn "0.10" into a float: keep money as exact text.
        return kind if self.store.is_postgres or not kind.startswith("NUMERIC") else "TEXT"

    def drop_tables(self, cursor: Any, version: int | None = None) -> None:
        """Drop a version's tables, and the position they were built to: a rebuild killed part-way
        leaves both, and the next one, making that version again, must start from the log's
        beginning (it started from the killed one's position over empty tables)."""
        for t in self.tables:
            self.store.execute(cursor, f"DROP TABLE IF EXISTS {self.table(t.name, version)}")
        self.store.forget_position(cursor, self.tracking_name_of(self.version if version is None else version))

    def check_complete(self) -> None:
        """Mark the keyed tables that are empty on disk: lookups in them never need a query."""
        for t in self.tables:
            if t.key:
                self.complete[t.name] = not self.store.query(f"SELECT 1 FROM {self.table(t.name)} LIMIT 1")

    def evict(self, table: str) -> None:
        """Drop a table's rows from memory (after a flush): from now on misses query the store."""
        self.rows[table] = {}
        self.complete[table] = False

    def fetch(self, table: str, key: tuple[Any, ...]) -> Row | None:
        """The row for `key` from memory, else from the store (not marked dirty), else None."""
        found = self.rows[table].get(key)
        if found is not None or self.complete[table] or key in self.absent[table]:
            return found
        spec = self._spec(table)
        where = " AND ".join(f"{k} = ?" for k in spec.key)
        rows = self.stored(table, where, key)
        if not rows:
            self.absent[table].add(key)
            return None
        row = rows[0]
        self.rows[table][key] = row
        return row

    def stored(self, table: str, where: str, params: Sequence[Any]) -> list[Row]:
        """The stored rows of `table` that match `where`, decoded: where a row missing from memory
        is looked up. A point-in-time fold reads them from a checkpoint instead (`lookup`,
        `projections.engine.checkpoints`)."""
        if self.lookup is not None:
            return self.lookup(self, table, where, params)
        spec = self._spec(table)
        values = self.store.query(f"SELECT {', '.join(spec.all_columns)} FROM {self.table(table)} WHERE {where}",
                                  params)
        return [spec.decode(v) for v in values]

    def prefetch(self, table: str, keys: Sequence[tuple[Any, ...]]) -> None:
        """Bring the stored rows of `keys` (a one-column key) into memory in a query per
        `PREFETCH_CHUNK` of them, so that `fetch` then finds them, or knows them absent, without
        a query each (a recall of a supplier batch names 100,000 keys in one event)."""
        if self.complete[table]:
            return
        rows, absent = self.rows[table], self.absent[table]
        wanted = list(dict.fromkeys(k for k in keys if k not in rows and k not in absent))
        if not wanted:
            return
        spec = self._spec(table)
        (column,) = spec.key
        for start in range(0, len(wanted), PREFETCH_CHUNK):
            chunk = wanted[start:start + PREFETCH_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for row in self.stored(table, f"{column} IN ({marks})", [k[0] for k in chunk]):
                rows[(row[column],)] = row
            absent.update(k for k in chunk if k not in rows)

    def load(self) -> None:
        """Read keyed rows back into memory; append-only tables stay on disk."""
        for t in self.tables:
            if not t.key:
                continue
            self.complete[t.name] = True  # everything on disk is about to be in memory
            for values in self.store.query(f"SELECT {', '.join(t.all_columns)} FROM {self.table(t.name)}"):
                row = t.decode(values)
                self.rows[t.name][tuple(row[k] for k in t.key)] = row

    # ---- event handling ----

    def handle(self, event: Any, position: int) -> None:
        self.handlers[get_topic(type(event))](event, position)

    # ---- rows ----

    def row(self, table: str, key: tuple[Any, ...], defaults: Row | None = None) -> Row:
        """The row for `key`, created from `defaults` if new; marked dirty either way."""
        rows = self.rows[table]
        found = rows.get(key)
        if found is None and not self.complete[table]:
            found = self.fetch(table, key)  # stored, but not in memory: never overwrite it with zeros
        if found is None:
            self.absent[table].discard(key)
            found = self._specs[table].fresh(key)
            if defaults:
                found.update(defaults)
            rows[key] = found
            self.created[table].add(key)
        self.dirty[table].add(key)
        return found

    def insert_new(self, table: str, keys: Sequence[tuple[Any, ...]], values: Row) -> None:
        """Rows that the event creates and that cannot exist yet (the keys of the batch that
        registers them), each with `values`: no look-up in memory or in the store, where `row`
        would query the store once per row while the table is not all in memory. Were one
        stored after all, its insert fails the batch's commit instead of overwriting it."""
        spec = self._specs[table]
        make, rows = spec.maker(spec.blank | values), self.rows[table]
        for key in keys:
            rows[key] = make(key)
        if self.absent[table]:
            self.absent[table].difference_update(keys)
        self.created[table].update(keys)
        self.dirty[table].update(keys)

    def peek(self, table: str, key: tuple[Any, ...]) -> Row | None:
        return self.rows[table].get(key)

    def append(self, table: str, row: Row) -> None:
        self.appended[table].append(row)

    def flush(self, cursor: Any) -> None:
        """Write every changed row in the caller's transaction, then bound memory."""
        self.store.write_changes(cursor, self.changes())
        self.trim()

    def changes(self) -> list[Changes]:
        """Take every row changed since the last call (no longer dirty afterwards): rows the
        store lacks as inserts, the others as upserts, appended rows as inserts."""
        out: list[Changes] = []
        for t in self.tables:
            values, columns, name = t.values, t.all_columns, self.table(t.name)
            dirty, created = self.dirty[t.name], self.created[t.name]
            if dirty:
                row_of = self.rows[t.name].__getitem__
                fresh = dirty & created if created else set()
                if fresh:  # map, not a comprehension: no Python frame per row
                    out.append(Changes(name, columns, list(map(values, map(row_of, fresh)))))
                    dirty -= fresh
                if dirty:
                    out.append(Changes(name, columns, list(map(values, map(row_of, dirty))), t.key))
                self.dirty[t.name], self.created[t.name] = set(), set()
            elif created:
                self.created[t.name] = set()
            if self.appended[t.name]:
                out.append(Changes(name, columns, list(map(values, self.appended[t.name]))))
                self.appended[t.name] = []
        return out

    def trim(self) -> None:
        """After a flush, with nothing dirty: drop rows from memory if it grew too large
        (subclasses that fetch on demand bound theirs here)."""

    @property
    def wants_trim(self) -> bool:
        """Would `trim` drop rows now? A runner that commits in the background waits first."""
        return False

    def select(self, table: str, where: str = "", params: Sequence[Any] = (), order: str = "",
               limit: int | None = None) -> list[Row]:
        """Committed rows of one table, decoded (money as Decimal)."""
        spec = self._spec(table)
        query = f"SELECT {', '.join(spec.all_columns)} FROM {self.table(table)}"
        if where:
            query += f" WHERE {where}"
        if order:
            query += f" ORDER BY {order}"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        return [spec.decode(values) for values in self.store.query(query, params)]

    def dump(self) -> dict[str, list[Row]]:
        """Every table's committed rows, sorted: the shape tests compare."""
        out: dict[str, list[Row]] = {}
        for t in self.tables:
            columns = t.all_columns
            out[t.name] = sorted(self.select(t.name), key=lambda r: [str(r[c]) for c in columns])
        return out

    def _spec(self, table: str) -> Table:
        return self._specs[table]
