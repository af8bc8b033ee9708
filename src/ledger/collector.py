"""The cyclic garbage collector in the long-running processes (`ledger serve`: each worker and the
writer's process; `ledger project run`, also `--from-kafka`; `ledger relay`; `ledger audit follow`)
and in bulk reads of the log (a rebuild).

With CPython's defaults (a collection every 700 allocations net, a full one every 100 of those)
the serving process of `ledger bench api` spent a fifth of its time in the collector: 2,275
collections in ~25 s of a flash sale and its reads, 5.1 s, of which full collections walking every
object the process holds (modules, the writer's aggregates, the read models' rows) paused it for
170-200 ms each, which were the sale's and the reads' p99. Here what exists after start-up is
frozen out of the collector's sight and the youngest generation is collected every 10,000
allocations: ~290 collections, 0.5-1.0 s in all. (50,000, as a rebuild uses, took as long in all
but paused 70-90 ms per young collection, where 10,000 pauses 20-30 ms.) The relay published 12-20 %
more events/s so (`ledger bench relay`: 11.4k against 9.5-10.2k). The ledger's own objects
(aggregates, events, rows) hold no reference cycles, so nothing it keeps waits on the collector;
the few cycles frameworks make are still collected.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNGEST, MIDDLE, OLDEST = 10_000, 20, 100


def tune_for_serving() -> None:
    """Call once a long-running process has started (its modules and services are loaded)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNGEST, MIDDLE, OLDEST)


@contextmanager
def tuned_for_serving() -> Iterator[None]:
    """`tune_for_serving` for a while, then the collector as it was (a benchmark timing the writer
    as `ledger serve` runs it, inside a process that goes on: a test's)."""
    with _restored():
        tune_for_serving()
        yield


@contextmanager
def tuned_for_bulk() -> Iterator[None]:
    """For reading (and applying) the log in bulk: what the process held before is frozen out of
    the collector's sight, and the youngest generation is collected every 50,000 allocations.

    A rebuild keeps hundreds of thousands of rows in memory and allocates an event per position:
    with the default thresholds the collector ran ~470 times in a 65k-event rebuild, walking those
    rows, for ~12 % of its CPU; frozen, a 200k-event rebuild's collections took 0.26 s instead of
    0.32-0.45 s. A plain read of the same 200k events ran 1.6 times as fast under this as without
    it (~420k against 230-280k events/s: full collections walked the seeding process's objects),
    so `ledger bench replay` times its raw read under it too. Rows and events hold no cycles."""
    with _restored():
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        yield


@contextmanager
def _restored() -> Iterator[None]:
    """The collector's thresholds as they were, and nothing frozen, once the block ends."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
