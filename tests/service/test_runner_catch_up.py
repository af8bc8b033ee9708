"""Catching up on PostgreSQL commits each batch in a thread while the next one is applied. A
commit that fails part-way through a catch-up loses nothing and counts nothing twice: the
catch-up stops with the error, and the next one ends where an uninterrupted build ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.service.ledger import Ledger
from projections.registry import build_projections
from projections.runner import Runner
from projections.store import Changes, ViewStore
from tests.conftest import FakeClock, LedgerFactory
from tests.e2e.test_runner_crash import dumps, make_history


class CommitFailed(Exception):
    pass


@pytest.mark.postgres
def test_a_commit_failing_mid_catch_up_loses_and_repeats_nothing(
    make_ledger: LedgerFactory, pg_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    ledger: Ledger = make_ledger(pg_url)
    make_history(ledger, clock, purchases=40)
    store = ViewStore(ledger.settings)
    runner = Runner(ledger.app, store, build_projections(store), batch_size=25)
    journal = next(p for p in runner.projections if p.name == "journal")
    write = store.write_changes
    calls = {"n": 0}

    def failing_third(cursor: Any, changes: list[Changes]) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise CommitFailed
        write(cursor, changes)

    store.write_changes = failing_third  # type: ignore[method-assign]
    try:
        with pytest.raises(CommitFailed):
            runner.catch_up()
        committed = store.position(journal.tracking_name)
        assert 0 < committed < runner.head()  # two batches in, the third refused
        assert runner.catch_up() > 0
        assert runner.position == runner.head()
        expected = dumps(ledger, f"sqlite:///{tmp_path / 'clean-views.sqlite'}")
        assert {p.name: p.dump() for p in runner.projections} == expected
    finally:
        runner.close()
        store.close()
