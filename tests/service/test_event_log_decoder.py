"""Reading the log in bulk decodes events through `event_log.decoder`: every event comes out
exactly as the application's mapper gives it (same class, same attributes and types)."""

from __future__ import annotations

import pytest

from ledger import event_log
from ledger.service.ledger import Ledger
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
