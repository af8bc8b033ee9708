"""Point in time: the read models folded up to a position equal the same read models built by a
runner that replayed only the events up to that position."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application import LedgerApp
from ledger.config import Settings
from ledger.service.ledger import Ledger
from projections.engine.as_of import History, fold
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from tests.demo_history import DemoStore, seeded
from tests.helpers import buy, head, stocked_product

REPORTS = ["inventory", "sales", "profit", "journal"]
Dump = dict[str, dict[str, list[dict[str, Any]]]]


def replayed(app: LedgerApp, settings: Settings, views_url: str, position: int) -> Dump:
    """The report read models built from zero by a runner stopped at `position`."""
    store = ViewStore(settings, views_url)
    try:
        projections = build_projections(store, REPORTS)
        runner = Runner(app, store, projections, batch_size=500)
        runner.catch_up(until=position)
        assert runner.position == position
        return {p.name: p.dump() for p in projections if p.name in REPORTS}
    finally:
        store.close()


def folded(history: History, position: int) -> Dump:
    point = fold(history, REPORTS, position)
    try:
        assert point.position == position
        return {name: point.view(name).dump() for name in REPORTS}
    finally:
        point.close()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_as_of_equals_a_replay_up_to_the_position(demo_store: DemoStore, data: st.DataObject) -> None:
    ledger = demo_store.ledger
    position = data.draw(st.integers(1, head(ledger)), label="position")
    history = History(ledger.app)
    with tempfile.TemporaryDirectory() as tmp:
        expected = replayed(ledger.app, ledger.settings, f"sqlite:///{Path(tmp) / 'views.sqlite'}", position)
    got = folded(history, position)
    assert got == expected


def test_as_of_at_the_edges_and_past_the_cache(demo_store: DemoStore, tmp_path: Path) -> None:
    ledger = demo_store.ledger
    top = head(ledger)
    warm = History(ledger.app)
    small = History(ledger.app, max_events=100)  # most of the log is decoded again from the store
    for position in (0, top // 3, top):
        expected = replayed(ledger.app, ledger.settings, f"sqlite:///{tmp_path / f'v{position}.sqlite'}", position)
        assert folded(warm, position) == expected, position
        assert folded(small, position) == expected, position
    assert folded(warm, 0)["sales"]["daily"] == []
    assert folded(warm, top)["sales"]["daily"] and folded(warm, top)["inventory"]["alerts"]


def test_as_of_time_is_the_last_position_at_or_before_it(demo_store: DemoStore) -> None:
    ledger = demo_store.ledger
    stamps = [(n.id, ledger.app.mapper.to_domain_event(n).timestamp)
              for n in ledger.app.recorder.select_notifications(1, 100_000)]
    history = History(ledger.app)
    for _, moment in [*stamps[:: max(1, len(stamps) // 7)], stamps[-1]]:
        for when in (moment, moment - timedelta(microseconds=1)):
            expected = max((p for p, t in stamps if t <= when), default=0)
            assert history.position_at(when) == expected, when
    assert history.position_at(stamps[0][1] - timedelta(days=1)) == 0
    assert history.position_at(stamps[-1][1].replace(tzinfo=None) + timedelta(days=1)) == stamps[-1][0]


def test_history_follows_a_growing_log(ledger: Ledger, tmp_path: Path) -> None:
    stocked_product(ledger, "GAME-1", 5)
    history = History(ledger.app)
    before = head(ledger)
    assert folded(history, before)["sales"]["daily"] == []
    buy(ledger, "alice", "GAME-1", 2)
    after = head(ledger)
    (row,) = folded(history, after)["sales"]["daily"]
    assert row["units"] == 2
    assert folded(history, before)["sales"]["daily"] == []  # the past is unchanged


def test_as_of_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    ledger = seeded(pg_url, tmp_path, orders=40, seed=11)
    try:
        position = head(ledger) * 2 // 3
        expected = replayed(ledger.app, ledger.settings, pg_url, position)
        assert folded(History(ledger.app), position) == expected
        assert expected["sales"]["daily"] and expected["journal"]["balances"]
    finally:
        ledger.close()
