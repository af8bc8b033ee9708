"""`ledger bench as-of`: point-in-time reads on a demo-sized history, against the live read and
against the rebuild they avoid, in the same run.

On a throwaway store holding the demo's history (`shell.demo.run_demo`), for each report it
times, at positions head/2 and head:

* live: the report's statements on the live read models (what a read costs today);
* rebuild: a runner replaying the same read models from zero up to the position into fresh
  tables, then the same statements (the obvious way to answer "as of", which as_of avoids);
* as_of cold: a fold with a fresh `History` (the whole log decoded first: a process's first read);
* as_of warm: a fold with a warm `History` (every later read).
"""

from __future__ import annotations

import base64
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ledger.config import Settings
from ledger.service.ledger import Ledger, open_ledger
from ledger.storage import event_log
from projections.engine.as_of import History, LiveReadModels, ReadSource, fold
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from projections.models.journal import Journal, trial_balance
from shell.bench.stores import throwaway_store
from shell.demo import SimClock, run_demo

# Report -> (read models it folds, the statements its route runs).
Query = Callable[[ReadSource], object]


def _journal(source: ReadSource) -> object:
    journal = source.view("journal")
    assert isinstance(journal, Journal)
    return trial_balance(source.store, journal)


REPORTS: dict[str, tuple[list[str], Query]] = {
    "sales": (["sales"], lambda s: s.view("sales").select("daily")),
    "profit": (["profit"], lambda s: s.view("profit").select("daily")),
    "inventory": (["inventory"], lambda s: (s.view("inventory").select("skus"), s.view("inventory").select("batches"))),
    "trial balance": (["journal"], _journal),
}


@dataclass(frozen=True)
class AsOfTiming:
    report: str
    position: int
    live_s: float
    rebuild_s: float
    cold_s: float
    warm_s: float


@dataclass(frozen=True)
class AsOfBench:
    store: str
    events: int
    seed_seconds: float
    timings: list[AsOfTiming]


def _timed(run: Callable[[], object]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def _rebuilt(ledger: Ledger, names: list[str], position: int, query: Query, tmp: Path) -> None:
    store = ViewStore(ledger.settings, f"sqlite:///{tmp / f'rebuild-{position}-{names[0]}.sqlite'}")
    try:
        projections = build_projections(store, names)
        Runner(ledger.app, store, projections).catch_up(until=position)
        query(LiveReadModels(store, {p.name: p for p in projections}))
    finally:
        store.close()


def _folded(history: History, names: list[str], position: int, query: Query) -> None:
    point = fold(history, names, position)
    try:
        query(point)
    finally:
        point.close()


def bench_as_of(settings: Settings, *, orders: int, seed: int, say: Callable[[str], None]) -> AsOfBench:
    with throwaway_store(settings) as (url, description), tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        clock = SimClock()
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        ledger = open_ledger(Settings(database_url=url, data_dir=tmp, cipher_key=key), clock=clock)
        try:
            began = time.perf_counter()
            run_demo(ledger, clock, seed, orders, lambda _: None)
            seed_seconds = time.perf_counter() - began
            head = event_log.head(ledger.app)
            say(f"store: {description} (dropped); {head} events of the demo (seed {seed}, {orders} orders) "
                f"in {seed_seconds:.1f} s")
            store = ViewStore(ledger.settings)
            Runner(ledger.app, store, build_projections(store)).catch_up()
            warm = History(ledger.app)
            warm.extend(head)
            timings = []
            for report, (names, query) in REPORTS.items():
                live = LiveReadModels(store, {p.name: p for p in build_projections(store, names)})
                for position in (head // 2, head):
                    timings.append(AsOfTiming(
                        report, position,
                        live_s=_timed(lambda: query(live)),  # noqa: B023
                        rebuild_s=_timed(lambda: _rebuilt(ledger, names, position, query, tmp)),  # noqa: B023
                        cold_s=_timed(lambda: _folded(History(ledger.app), names, position, query)),  # noqa: B023
                        warm_s=_timed(lambda: _folded(warm, names, position, query)),  # noqa: B023
                    ))
            store.close()
            return AsOfBench(description, head, seed_seconds, timings)
        finally:
            ledger.close()
