"""`ledger bench relay`: the relay publishing N stored events, against a raw kafka-python producer
sending the very same bytes (keys, values, headers) with the same settings, in the same run."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from ledger.collector import tuned_for_serving
from ledger.config import Settings
from ledger.storage import event_log
from projections.kafka.connection import connection, require_bootstrap
from projections.kafka.relay import Relay, encode, ensure_topic, events_topic, producer_config
from shell.bench.replay import seeded_store


@dataclass(frozen=True)
class RelayRound:
    raw_seconds: float
    relay_seconds: float


@dataclass(frozen=True)
class RelayBench:
    store: str
    events: int
    seed_seconds: float
    rounds: list[RelayRound]

    def rate(self, seconds: float) -> float:
        return self.events / seconds

    @property
    def best_raw(self) -> float:
        return self.rate(min(r.raw_seconds for r in self.rounds))

    @property
    def best_relay(self) -> float:
        return self.rate(min(r.relay_seconds for r in self.rounds))

    @property
    def ratio(self) -> float:
        return self.best_relay / self.best_raw


def _raw_send(settings: Settings, topic: str, messages: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(**producer_config(settings))
    try:
        producer.partitions_for(topic)  # metadata first, as the relay has it before it starts timing
        began = time.perf_counter()
        futures = [producer.send(topic, key=k, value=v, headers=h) for k, v, h in messages]
        producer.flush()
        elapsed = time.perf_counter() - began
        for future in futures:
            future.get(0)
        return elapsed
    finally:
        producer.close()


def _delete_topics(settings: Settings, names: list[str]) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(**connection(settings), client_id="ledger-bench")
    try:
        admin.delete_topics(names)
    except Exception:  # a broker that cannot delete keeps them: the names are unique anyway
        pass
    finally:
        admin.close()


def bench_relay(settings: Settings, events: int = 50_000, batch_size: int = 2000, rounds: int = 2) -> RelayBench:
    require_bootstrap(settings)
    with seeded_store(settings, events) as (ledger, where, seeded):
        app = ledger.app
        notifications = list(event_log.notifications(app))
        source = settings.kafka_source.encode()
        messages, previous, decode = [], 0, event_log.decoder(app)
        for leaf, n in enumerate(notifications):
            messages.append(encode(n, decode(n), previous, source, leaf))
            previous = n.id
        results, topics = [], []
        for _ in range(rounds):
            run = settings.model_copy(update={"kafka_topic_prefix": f"ledger-bench-{uuid.uuid4().hex[:8]}."})
            raw_topic = f"{run.kafka_topic_prefix}raw"
            topics += [raw_topic, events_topic(run)]
            for topic in (raw_topic, events_topic(run)):
                ensure_topic(run, topic, run.kafka_partitions, run.kafka_replication)
            with tuned_for_serving():  # both sides with the collector as `ledger relay` runs
                raw = _raw_send(run, raw_topic, messages)
                relay = Relay(app, run, batch_size=batch_size)
                relay.connect()
                began = time.perf_counter()
                relay.publish_available()
                relayed = time.perf_counter() - began
                relay.close()
            results.append(RelayRound(raw, relayed))
        _delete_topics(settings, topics)
    return RelayBench(where, len(messages), seeded, results)


