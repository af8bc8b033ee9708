"""Reading the log in bulk decodes events through `event_log.decoder`: every event comes out
exactly as the application's mapper gives it (same class, same attributes and types)."""

from __future__ import annotations

import pytest
from eventsourcing.postgres import PostgresApplicationRecorder

from ledger.service.ledger import Ledger
from ledger.storage import event_log
from ledger.storage.recorders import CopyingPostgresRecorder
from tests.conftest import FakeClock
from tests.e2e.test_runner_crash import make_history


def test_the_bulk_decoder_gives_what_the_mapper_gives(ledger: Ledger, clock: FakeClock) -> None:
    make_history(ledger, clock, purchases=20)
    decode = event_log.decoder(ledger.app)
    topics = set()
    for notification in event_log.notifications(ledger.app):
        fast, reference = decode(notification), ledger.app.mapper.to_domain_event(notification)
        assert type(fast) is type(reference)
        assert vars(fast) == vars(reference)
        assert {k: type(v) for k, v in vars(fast).items()} == {k: type(v) for k, v in vars(reference).items()}
        topics.add(notification.topic)
    assert len(topics) > 15  # imports, orders, payments, refunds, expiries


@pytest.mark.postgres
def test_the_bulk_decoder_gives_what_the_mapper_gives_on_postgres(pg_ledger: Ledger, clock: FakeClock) -> None:
    test_the_bulk_decoder_gives_what_the_mapper_gives(pg_ledger, clock)


@pytest.mark.postgres
def test_pages_of_the_log_are_the_librarys_on_postgres(pg_ledger: Ledger, clock: FakeClock) -> None:
    """The recorder reads pages as tuples instead of the library's dict rows: every page, with
    any start, stop, topics and inclusivity, holds exactly the library's notifications."""
    make_history(pg_ledger, clock, purchases=10)
    recorder = pg_ledger.app.recorder
    assert isinstance(recorder, CopyingPostgresRecorder)
    head = event_log.head(pg_ledger.app)
    topics = ["ledger.domain.stock:Stock.Reserved", "ledger.domain.orders:Order.Placed"]
    asks: list[tuple[tuple[int | None, ...], dict[str, object]]] = [
        ((None, 10), {}), ((1, head), {}), ((7, 40, head - 5), {}), ((3, 25), {"inclusive_of_start": False}),
        ((2, 100), {"topics": topics}), ((None, 100, 60), {"topics": topics}), ((head + 1, 10), {}),
    ]
    for args, options in asks:
        ours = recorder.select_notifications(*args, **options)  # type: ignore[arg-type]
        library = PostgresApplicationRecorder.select_notifications(recorder, *args, **options)  # type: ignore[arg-type]
        assert ours == library, (args, options)
        assert all(type(n.state) is bytes for n in ours)
    assert len(recorder.select_notifications(1, head)) == head
