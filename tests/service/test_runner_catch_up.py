"""Catching up on PostgreSQL commits each batch in a thread while the next one is applied. A
commit that fails part-way through a catch-up loses nothing and counts nothing twice: the
catch-up stops with the error, and the next one ends where an uninterrupted build ends. And a
supplier-sized batch costs a catch-up a few queries, not one per key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.service.ledger import Ledger
from ledger.storage.database import Changes
from projections.engine import runner as runner_module
from projections.engine.base import Projection
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from tests.conftest import FakeClock, LedgerFactory
from tests.e2e.test_runner_crash import dumps, make_history
from tests.helpers import fresh_codes, import_batch, stocked_product


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


def _queries_to_follow(ledger: Ledger, store: ViewStore) -> tuple[list[str], dict[str, Projection]]:
    """Catch up after a restart (memory empty, tables not): the queries it asked, its read models."""
    runner = Runner(ledger.app, store, build_projections(store))
    queries: list[str] = []
    query = store.query

    def counted(statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
        queries.append(statement)
        return query(statement, params)

    store.query = counted  # type: ignore[method-assign]
    try:
        runner.catch_up()
    finally:
        store.query = query  # type: ignore[method-assign]
        runner.close()
    return queries, {p.name: p for p in runner.projections}


def test_a_supplier_batch_costs_a_live_runner_no_query_per_key(ledger: Ledger) -> None:
    """A live runner holds only part of its tables in memory, so a row it does not hold is looked
    up in the store before it is written. A batch's keys are new by construction: following an
    import of 2,000 codes asks the store a handful of questions, not one per key, and so does
    following the batch's recall; the facts, inventory, journal and profit then say so."""
    stocked_product(ledger, "GAME-1", 3)
    store = ViewStore(ledger.settings)
    try:
        Runner(ledger.app, store, build_projections(store)).catch_up()  # tables no longer empty
        batch = import_batch(ledger, "GAME-1", fresh_codes(2000, "BIG"), unit_cost="0.50")
        queries, views = _queries_to_follow(ledger, store)
        assert len(queries) < 30, queries[:40]
        assert len(views["facts"].select("keys", "state = ?", ("available",))) == 2003
        (sku,) = views["inventory"].select("skus")
        assert sku["available"] == 2003

        ledger.recall_batch(ledger.context("admin"), batch.batch_id, "supplier recall")
        queries, views = _queries_to_follow(ledger, store)
        assert len(queries) < 30, queries[:40]
        assert len(views["facts"].select("keys", "state = ?", ("voided",))) == 2000
        (sku,) = views["inventory"].select("skus")
        assert (sku["available"], sku["voided"]) == (3, 2000)
        (written_off,) = views["profit"].select("daily", "batch_id = ?", (str(batch.batch_id),))
        assert (written_off["keys_written_off"], written_off["write_offs"]) == (2000, Decimal("1000"))
        entries = views["journal"].select("entries", "event_type = ?", ("Stock.Voided",))
        assert sorted((e["account"], e["debit"], e["credit"]) for e in entries) == [
            ("inventory", 0, Decimal("1000")), ("write_offs", Decimal("1000"), 0)]
    finally:
        store.close()


def test_a_batch_of_several_pages_commits_once_and_builds_the_same_rows(
    ledger: Ledger, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild commits more events at a time than it reads: a batch is read page by page (here
    pages of 4 events, batches of 25) and commits once; the rows equal one-page-per-commit's."""
    make_history(ledger, clock, purchases=12)
    monkeypatch.setattr(runner_module, "PAGE_SIZE", 4)
    store = ViewStore(ledger.settings)
    runner = Runner(ledger.app, store, build_projections(store), batch_size=25)
    commits: list[int] = []
    write = store.write_changes

    def counted(cursor: Any, changes: list[Changes]) -> None:
        commits.append(1)
        write(cursor, changes)

    store.write_changes = counted  # type: ignore[method-assign]
    try:
        head = runner.head()
        assert runner.catch_up() == head
        # A batch ends with the page that fills it: 7 pages of 4 = 28 events a commit, not one per page.
        assert len(commits) == -(-head // 28)
        expected = dumps(ledger, f"sqlite:///{tmp_path / 'one-page-per-commit.sqlite'}")
        assert {p.name: p.dump() for p in runner.projections} == expected
    finally:
        runner.close()
        store.close()
