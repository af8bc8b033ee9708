"""The Kafka relay's recorded position moves only over messages the broker acknowledged: a relay
killed at any moment resends from the first message still in flight, never from after it. Played
without a broker: the relay connects to a producer whose sends stay unacknowledged until the test
settles them, one by one and out of order, as a broker's acknowledgements of several partitions
arrive. A message the broker refuses for its size is named, and the relay holds just before it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kafka.future import Future

from ledger.application import build_app
from ledger.service.ledger import Ledger
from projections.kafka import relay as relay_module
from projections.kafka.relay import POSITION, Relay, RelayPosition
from tests.helpers import buy, head, stocked_product
from tests.kafka_helpers import kafka_settings


class HeldProducer:
    """Stands in for `KafkaProducer`: each send returns a future that stays pending until the test
    acknowledges it (`flush` acknowledges everything, as a producer's flush waits for it)."""

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: dict[int, Future] = {}  # position -> its send's future

    def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Future:
        future = self.sent[int(dict(headers)[POSITION])] = Future()
        return future

    def acknowledge(self, *positions: int) -> None:
        for position in positions:
            self.sent[position].success(None)

    def flush(self, timeout: float | None = None) -> None:
        self.acknowledge(*(p for p, future in self.sent.items() if not future.is_done))

    def close(self, timeout: float | None = None) -> None:
        pass


def test_the_recorded_position_never_passes_a_message_still_in_flight(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batches of 5 in flight; the broker acknowledged the whole first one and all of the second
    but its third message. The position recorded (the one a restarted relay resumes after) covers
    the first batch and stops before that message; once it is acknowledged, the rest counts too."""
    stocked_product(ledger, "RELAY-1", 3)
    for n in range(3):
        buy(ledger, f"relay-{n}", "RELAY-1")
    assert head(ledger) > 10
    producers: list[HeldProducer] = []

    def held_producer(**config: Any) -> HeldProducer:
        producers.append(HeldProducer(**config))
        return producers[-1]

    monkeypatch.setattr("kafka.KafkaProducer", held_producer)  # what `Relay.connect` makes
    monkeypatch.setattr(relay_module, "ensure_topic", lambda *args: None)  # no cluster to ask
    settings = ledger.settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9"})
    relay = Relay(ledger.app, settings, batch_size=5)
    try:
        relay.connect()
        (producer,) = producers
        assert producer.config["acks"] == "all"
        assert (relay.send_batch(), relay.send_batch()) == (5, 5)
        assert sorted(producer.sent) == list(range(1, 11))  # positions 1..10, none acknowledged

        producer.acknowledge(1, 2, 3, 4, 5, 6, 7, 9, 10)  # 8 is still in flight
        relay.record_acknowledged()
        stored = RelayPosition(ledger.app, relay.topic).position()
        assert 5 <= stored < 8, stored  # over the first batch, never over position 8
        assert relay.position == stored

        producer.acknowledge(8)
        relay.record_acknowledged()
        assert RelayPosition(ledger.app, relay.topic).position() == 10

        assert relay.publish_available() == head(ledger) - 10  # the rest, acknowledged by the flush
        assert RelayPosition(ledger.app, relay.topic).position() == head(ledger)
    finally:
        relay.close()


class _Sent:
    """A producer future, settled: acknowledged, or refused with `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.is_done, self.exception = True, error

    def failed(self) -> bool:
        return self.exception is not None


def test_a_message_the_broker_refuses_for_its_size_is_named_and_what_it_acknowledged_before_counts(
    tmp_path: Path,
) -> None:
    """The broker's own limit (topic max.message.bytes under the producer's): Tansu enforces none, so
    the refusal kafka-python reports for a one-record batch is played here."""
    from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

    from projections.kafka.relay import Unpublishable

    settings = kafka_settings(tmp_path, "127.0.0.1:9")
    built, _ = build_app(settings)
    try:
        relay = Relay(built, settings)

        def message(position: int, ce_type: str = "ledger.Stock.Voided") -> Any:
            return b"k", b"x" * 50, [("ce_type", ce_type.encode()), (POSITION, str(position).encode())]

        relay._in_flight.append((12, [_Sent(), _Sent()], [message(11), message(12)]))
        relay._in_flight.append((15, [_Sent(), _Sent(MessageSizeTooLargeError()), _Sent()],
                                 [message(13), message(14, "ledger.Batch.Recalled"), message(15)]))
        with pytest.raises(Unpublishable, match=r"position 14 \(ledger.Batch.Recalled, 50 bytes.*Held at position 13"):
            relay.record_acknowledged()
        assert relay.position == 13 and RelayPosition(built, relay.topic).position() == 13

        relay._in_flight.clear()  # any other failure is raised as it is (an outage)
        relay._in_flight.append((16, [_Sent(KafkaTimeoutError())], [message(16)]))
        with pytest.raises(KafkaTimeoutError):
            relay.record_acknowledged()
        assert relay.position == 13
    finally:
        built.close()
