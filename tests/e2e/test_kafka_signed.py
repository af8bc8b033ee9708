"""Forged messages on the events topic, against a real broker (Tansu): someone who may write to
the topic but does not hold the relay's signing key adds an event after the log's head, once with
the copied signature of a genuine message and once unsigned. A read-model member given the relay's
public key (LEDGER_KAFKA_VERIFY_KEY_FILE) refuses both, saying so in one log line each, and builds
exactly what a rebuild from the log builds once the genuine events arrive."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.service.ledger import open_ledger
from projections.kafka.relay import LEAF_INDEX, POSITION, PREVIOUS, Relay, events_topic
from projections.kafka.signing import SIGNATURE
from projections.kafka.source import LANES
from tests.e2e.test_kafka import _lanes_equal_a_rebuild, _log_ids, _views, _wait, read_all
from tests.helpers import buy, stocked_product
from tests.kafka_broker import Broker, broker
from tests.kafka_helpers import kafka_settings
from tests.kafka_keys import key_pair

__all__ = ["broker"]  # the fixture


def _forged(record: object, position: int, signed: bool) -> list[tuple[str, bytes]]:
    """The genuine message's headers, moved to continue the log at `position`."""
    moved = {POSITION: str(position).encode(), PREVIOUS: str(position - 1).encode(),
             LEAF_INDEX: str(position - 1).encode()}
    headers = [(name, moved.get(name, data)) for name, data in record.headers]  # type: ignore[attr-defined]
    return headers if signed else [h for h in headers if h[0] != SIGNATURE]


def test_a_member_with_the_relays_key_refuses_forged_messages(broker: Broker, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    from kafka import KafkaProducer

    from projections.kafka.source import KafkaViews

    private, public = key_pair(tmp_path)
    settings = kafka_settings(tmp_path, broker.bootstrap, kafka_signing_key_file=private,
                              kafka_verify_key_file=public)
    ledger = open_ledger(settings)
    views = _views(settings, tmp_path / "views-kafka.sqlite")
    caplog.set_level("WARNING", logger="projections.kafka.source")

    def refused(why: str) -> set[str]:
        """The lanes that logged a refusal for `why`."""
        return {r.getMessage().split()[1].rstrip(":") for r in caplog.records
                if r.getMessage().endswith(f": {why}") and "refused the message" in r.getMessage()}

    try:
        stocked_product(ledger, "SIGNED-1", 4)
        buy(ledger, "alice", "SIGNED-1")
        relay = Relay(ledger.app, settings, batch_size=100)
        relay.publish_available()
        head = _log_ids(ledger.app)[-1]
        genuine = read_all(broker.bootstrap, events_topic(settings))
        assert all(dict(r.headers).get(SIGNATURE) for r in genuine), "the relay signs every message"
        member = KafkaViews(settings, views, batch_size=50)
        try:
            _wait(lambda: member.step() >= 0 and len(member.workers) == len(LANES)
                  and set(member.positions().values()) == {head}, 60, "every lane at the head")

            # The topic's writer, without the key: the last event again, continuing the log, while
            # no genuine event stands there yet (unchecked, every lane would take it).
            last = max(genuine, key=lambda r: int(dict(r.headers)[POSITION]))
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
            try:
                for signed in (True, False):
                    producer.send(events_topic(settings), key=last.key, value=last.value,
                                  headers=_forged(last, head + 1, signed))
                producer.flush()
            finally:
                producer.close()
            why = ("its signature does not match the relay's key", "unsigned")
            _wait(lambda: member.step() >= 0 and all(refused(w) == set(LANES) for w in why), 60,
                  "every lane to refuse both forgeries")
            assert set(member.positions().values()) == {head}

            buy(ledger, "bob", "SIGNED-1")  # the genuine event after the head
            relay.publish_available()
            head = _log_ids(ledger.app)[-1]
            _wait(lambda: member.step() >= 0 and set(member.positions().values()) == {head}, 60,
                  "every lane at the new head")
        finally:
            member.close()
            relay.close()
        _lanes_equal_a_rebuild(ledger.app, settings, views, head, tmp_path)  # resumes at the head: compares
    finally:
        views.close()
        ledger.close()
