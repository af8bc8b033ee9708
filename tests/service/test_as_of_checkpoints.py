"""Point in time from checkpoints: a read at any position equals a runner stopped there, and
costs at most the events since the nearest checkpoint, however long the history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.config import Settings
from projections.engine.checkpoints import MAX_STEPS, Checkpoints, NotReady
from projections.engine.store import ViewStore
from tests.demo_history import DemoStore, seeded
from tests.helpers import head
from tests.service.test_as_of import REPORTS, replayed

# What a point-in-time route reads: every keyed table but the working state that grows with the
# history (looked up during a fold, never copied), and no append-only table (see checkpoints.py).
SHOWN = {"inventory": ("skus", "batches", "expired"), "sales": ("daily", "breakage"), "profit": ("daily",),
         "journal": ("balances",)}


def _shown(dump: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    return {name: {t: dump[name][t] for t in tables} for name, tables in SHOWN.items()}


def _checkpoints(app: LedgerApp, settings: Settings, url: str, every: int) -> tuple[Checkpoints, ViewStore]:
    store = ViewStore(settings, url)
    return Checkpoints(app, store, every), store


def _point(checkpoints: Checkpoints, position: int) -> tuple[dict[str, Any], int]:
    point, folded = checkpoints.point(REPORTS, position)
    try:
        return _shown({name: point.view(name).dump() for name in REPORTS}), folded.events
    finally:
        point.close()


def test_a_read_from_a_checkpoint_equals_a_replay_and_folds_only_the_events_since(
        demo_store: DemoStore, tmp_path: Path) -> None:
    ledger = demo_store.ledger
    top, every = head(ledger), 97
    checkpoints, store = _checkpoints(ledger.app, ledger.settings, f"sqlite:///{tmp_path / 'ck.sqlite'}", every)
    try:
        assert checkpoints.build() == top // every
        for position in (0, 1, every, every + 1, top // 3, top // 2 + 5, top - 1, top):
            expected = _shown(replayed(ledger.app, ledger.settings, f"sqlite:///{tmp_path / f'r{position}.sqlite'}",
                                       position))
            got, folded = _point(checkpoints, position)
            assert got == expected, position
            assert folded <= every, (position, folded)  # the events since the nearest checkpoint, no more
        # The cost does not grow with the history: a read near the head folds what one near the start does.
        reads = checkpoints.reads
        _point(checkpoints, top - top % every + every // 2 if top % every > every // 2 else top)
        assert checkpoints.reads - reads <= every
    finally:
        store.close()


def test_as_of_time_reads_at_most_two_steps(demo_store: DemoStore, tmp_path: Path) -> None:
    ledger = demo_store.ledger
    stamps = [(n.id, ledger.app.mapper.to_domain_event(n).timestamp)
              for n in ledger.app.recorder.select_notifications(1, 100_000)]
    every = 101
    checkpoints, store = _checkpoints(ledger.app, ledger.settings, f"sqlite:///{tmp_path / 'ck.sqlite'}", every)
    try:
        checkpoints.build()
        for _, moment in [*stamps[:: max(1, len(stamps) // 9)], stamps[-1]]:
            for when in (moment, moment - timedelta(microseconds=1)):
                reads = checkpoints.reads
                expected = max((p for p, t in stamps if t <= when), default=0)
                assert checkpoints.position_at(when) == expected, when
                assert checkpoints.reads - reads <= 2 * every
        reads = checkpoints.reads
        assert checkpoints.position_at(stamps[0][1] - timedelta(days=3650)) == 0  # "1970": no fold of the log
        assert checkpoints.reads - reads <= every
    finally:
        store.close()


def test_a_read_too_far_past_the_checkpoints_is_refused_not_folded(demo_store: DemoStore, tmp_path: Path) -> None:
    ledger = demo_store.ledger
    every = 50
    checkpoints, store = _checkpoints(ledger.app, ledger.settings, f"sqlite:///{tmp_path / 'ck.sqlite'}", every)
    try:
        assert checkpoints.build(until=3 * every) == 3
        with pytest.raises(NotReady):
            checkpoints.point(REPORTS, 3 * every + MAX_STEPS * every + 1)
        assert checkpoints.reads == 0
        point, folded = checkpoints.point(REPORTS, 3 * every + MAX_STEPS * every)
        point.close()
        assert folded.base == 3 * every and folded.events <= MAX_STEPS * every
    finally:
        store.close()


def test_checkpoints_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    ledger = seeded(pg_url, tmp_path, orders=40, seed=11)
    try:
        every = 61
        checkpoints, store = _checkpoints(ledger.app, ledger.settings, pg_url, every)
        try:
            checkpoints.build()
            position = head(ledger) * 2 // 3
            expected = _shown(replayed(ledger.app, ledger.settings, pg_url, position))
            got, folded = _point(checkpoints, position)
            assert got == expected and folded <= every
            assert expected["sales"]["daily"] and expected["journal"]["balances"]
        finally:
            store.close()
    finally:
        ledger.close()
