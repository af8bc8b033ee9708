"""Each read model counts each event once, whatever position it stands at. A batch's rows and its
read models' new positions commit in one transaction: when the position write fails after the rows
were written, none of the batch stays, and the runner goes on to build what a rebuild builds. And
read models of one runner standing at different positions (one added to a runner whose others
have run) each take the batch's events after their own position only, not the one they stand at."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.service.ledger import Ledger
from ledger.storage import event_log
from projections.engine.rebuild import rebuild
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from tests.conftest import FakeClock, LedgerFactory
from tests.e2e.test_runner_crash import dumps, make_history


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_ledger(request: pytest.FixtureRequest, make_ledger: LedgerFactory) -> Ledger:
    """A ledger on SQLite, and on PostgreSQL (where each batch commits in a thread of its own)."""
    if request.param == "postgres":
        return make_ledger(request.getfixturevalue("pg_url"))
    return make_ledger()


class PositionWriteFailed(Exception):
    pass


def _rebuilt_until(position: int, ledger: Ledger, tmp_path: Path) -> dict[str, object]:
    """Every read model built from scratch, in a store of its own, up to `position`."""
    store = ViewStore(ledger.settings, f"sqlite:///{tmp_path / f'rebuilt-until-{position}.sqlite'}")
    runner = Runner(ledger.app, store, build_projections(store))
    try:
        runner.catch_up(until=position)
        return {p.name: p.dump() for p in runner.projections}
    finally:
        runner.close()
        store.close()


def test_a_position_write_failing_after_the_rows_leaves_none_of_the_batch_and_the_runner_goes_on(
    any_ledger: Ledger, clock: FakeClock, tmp_path: Path
) -> None:
    """The second batch's rows are written, then recording the third read model's position fails:
    every read model stays at the first batch, its rows too. The same runner then reaches the head,
    and its read models equal a rebuild: no event of the failed batch counted twice."""
    ledger = any_ledger
    make_history(ledger, clock, purchases=12)
    store = ViewStore(ledger.settings)
    runner = Runner(ledger.app, store, build_projections(store), batch_size=25)
    names = [p.tracking_name for p in runner.projections]
    record_position = store.record_position
    calls: list[str] = []

    def failing_in_the_second_batch(cursor: Any, tracking_name: str, position: int) -> None:
        calls.append(tracking_name)
        if len(calls) == len(names) + 3:  # the first batch recorded every read model's position
            raise PositionWriteFailed
        record_position(cursor, tracking_name, position)

    store.record_position = failing_in_the_second_batch  # type: ignore[method-assign]
    first_batch = [n.id for n in ledger.app.recorder.select_notifications(1, 25)][-1]
    try:
        with pytest.raises(PositionWriteFailed):
            runner.catch_up()
        assert {name: store.position(name) for name in names} == dict.fromkeys(names, first_batch)
        assert {p.name: p.dump() for p in runner.projections} == _rebuilt_until(first_batch, ledger, tmp_path)
        store.record_position = record_position  # type: ignore[method-assign]

        assert runner.catch_up() > 0
        head = runner.head()
        assert runner.position == head and {name: store.position(name) for name in names} == dict.fromkeys(names, head)
        built = {p.name: p.dump() for p in runner.projections}
        clean = dumps(ledger, f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
        assert built["inventory"]["skus"] == clean["inventory"]["skus"]  # type: ignore[index]  # the counts first
        assert built == clean
        inventory = clean["inventory"]["skus"]  # type: ignore[index]
        assert sum(r["delivered"] + r["revoked"] for r in inventory) == 9  # 12 purchases, 3 left unpaid
    finally:
        runner.close()
        store.close()


def _failing_at(store: ViewStore, position: int) -> Callable[[], None]:
    """Make every position write of `position` (the last batch's) fail; return what undoes it."""
    record_position = store.record_position

    def failing(cursor: Any, tracking_name: str, at: int) -> None:
        if at == position:
            raise PositionWriteFailed(f"{tracking_name} at {at}")
        record_position(cursor, tracking_name, at)

    store.record_position = failing  # type: ignore[method-assign]
    return lambda: setattr(store, "record_position", record_position)


def test_a_catch_up_whose_last_commit_fails_raises_and_reports_no_progress_past_the_store(
    any_ledger: Ledger, clock: FakeClock, tmp_path: Path
) -> None:
    """On PostgreSQL the last batch's commit is still in flight when the loop ends: its failure is
    the catch-up's error all the same, and neither the progress reported nor the runner's position
    goes past what the store holds. The same runner then reaches the head, equal to a rebuild."""
    ledger = any_ledger
    make_history(ledger, clock, purchases=12)
    store = ViewStore(ledger.settings)
    runner = Runner(ledger.app, store, build_projections(store), batch_size=25)
    names = [p.tracking_name for p in runner.projections]
    log = [n.id for n in ledger.app.recorder.select_notifications(1, 10**7)]
    head, last_batch = log[-1], log[(len(log) - 1) // 25 * 25 - 1]  # the batch before the last one ended there
    restore = _failing_at(store, head)
    reported: list[int] = []
    try:
        with pytest.raises(PositionWriteFailed):
            runner.catch_up(progress=lambda position, _: reported.append(position))
        assert {name: store.position(name) for name in names} == dict.fromkeys(names, last_batch)
        assert runner.position <= last_batch
        assert reported and max(reported) <= last_batch, reported
        restore()

        assert runner.catch_up() > 0
        assert runner.position == head and {name: store.position(name) for name in names} == dict.fromkeys(names, head)
        clean = dumps(ledger, f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
        assert {p.name: p.dump() for p in runner.projections} == clean
    finally:
        runner.close()
        store.close()


def test_a_rebuild_whose_last_commit_fails_swaps_nothing_and_a_rerun_completes_it(
    any_ledger: Ledger, clock: FakeClock, tmp_path: Path
) -> None:
    """A rebuild swaps its new versions in only once they reached the head: when its last batch's
    commit fails (on PostgreSQL, the one still in flight as the catch-up ends), the rebuild fails,
    the old versions stay active, and a rerun builds what a fresh rebuild builds."""
    ledger = any_ledger
    make_history(ledger, clock, purchases=12)
    store = ViewStore(ledger.settings)
    try:
        live = build_projections(store)
        Runner(ledger.app, store, live).catch_up()
        head = event_log.head(ledger.app)
        restore = _failing_at(store, head)
        with pytest.raises(PositionWriteFailed):
            rebuild(ledger.app, store, batch_size=25)
        active = store.active_versions()
        assert {p.name: active[p.name] for p in live} == dict.fromkeys((p.name for p in live), 1)
        restore()

        assert rebuild(ledger.app, store, batch_size=25) == dict.fromkeys((p.name for p in live), 2)
        rebuilt = build_projections(store)  # the active versions: the rebuilt ones
        assert {p.tracking_name: store.position(p.tracking_name) for p in rebuilt} == {
            f"{p.name}@v2": head for p in live}
        assert {p.name: p.dump() for p in rebuilt} == dumps(ledger, f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
    finally:
        store.close()


def test_a_live_runner_whose_commit_fails_raises_and_restarts_from_the_store(
    any_ledger: Ledger, clock: FakeClock, tmp_path: Path
) -> None:
    """`run_forever` commits each batch before taking the next: a commit failing with an error it
    does not retry by itself ends it with that error (the service's supervisor logs it and starts
    it again), the store keeps the batch before. Started again, the same runner reloads from the
    store and reaches the head, equal to a rebuild."""
    ledger = any_ledger
    make_history(ledger, clock, purchases=12)
    store = ViewStore(ledger.settings)
    runner = Runner(ledger.app, store, build_projections(store), batch_size=25, poll_interval=0.05)
    names = [p.tracking_name for p in runner.projections]
    log = [n.id for n in ledger.app.recorder.select_notifications(1, 10**7)]
    head, last_batch = log[-1], log[(len(log) - 1) // 25 * 25 - 1]
    restore = _failing_at(store, head)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
    try:
        with pytest.raises(PositionWriteFailed):
            runner.run_forever(stop)
        assert {name: store.position(name) for name in names} == dict.fromkeys(names, last_batch)
        assert runner.position <= last_batch
        restore()

        thread.start()  # restarted, as the supervisor does
        deadline = time.monotonic() + 30
        while runner.position < head and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runner.position == head and {name: store.position(name) for name in names} == dict.fromkeys(names, head)
        clean = dumps(ledger, f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
        assert {p.name: p.dump() for p in runner.projections} == clean
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=10)
        runner.close()
        store.close()


def _position_of(ledger: Ledger, kind: str, nth: int) -> int:
    """The position of the `nth` event of type `kind` (its qualified name) in the log."""
    app = ledger.app
    found = [n.id for n in app.recorder.select_notifications(1, 10**7)
             if type(app.mapper.to_domain_event(n)).__qualname__ == kind]
    return found[nth]


def test_read_models_of_one_runner_at_different_positions_each_count_an_event_once(
    any_ledger: Ledger, clock: FakeClock, tmp_path: Path
) -> None:
    """The facts and the inventory have run to a `Stock.Reserved` mid-log; the journal and the sales
    are added to the runner, at 0. Its first batch starts at the log's beginning for their sake:
    the facts and the inventory skip every event up to the one they stand at, that one included.
    At the head, every read model equals a rebuild's."""
    ledger = any_ledger
    make_history(ledger, clock, purchases=12)
    ahead = _position_of(ledger, "Stock.Reserved", 6)
    store = ViewStore(ledger.settings)
    try:
        first = Runner(ledger.app, store, build_projections(store, ["inventory"]))
        first.catch_up(until=ahead)
        first.close()

        runner = Runner(ledger.app, store, build_projections(store, ["inventory", "journal", "sales"]))
        try:
            assert runner.positions == {"facts@v1": ahead, "inventory@v1": ahead, "journal@v1": 0, "sales@v1": 0}
            runner.catch_up()
            assert runner.position == runner.head()
            built = {p.name: p.dump() for p in runner.projections}
            clean = dumps(ledger, f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
            assert built["inventory"]["skus"] == clean["inventory"]["skus"]  # type: ignore[index]  # the counts first
            assert built == {name: clean[name] for name in ("facts", "inventory", "journal", "sales")}
            inventory = clean["inventory"]["skus"]  # type: ignore[index]
            assert sum(r["reserved"] for r in inventory) == 0  # every order paid (delivered) or expired
        finally:
            runner.close()
    finally:
        store.close()
