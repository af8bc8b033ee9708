"""The Kafka relay: every event of the notification log, in log order, at least once.

The position published up to is kept in the event store's own database (`kafka_relay`) and moves
only over batches the broker acknowledged (acks=all, idempotent producer), so a relay killed at
any moment starts again from the last acknowledged batch: nothing is skipped, and only the
batches in flight at the kill can arrive twice. Message format: docs/kafka.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing import persistence as es_persistence
from eventsourcing.persistence import Notification

from ledger.application import TRANSIENT_DATABASE_ERRORS, LedgerApp
from ledger.config import Settings
from ledger.encoding.event_json import dumps, kafka_json
from ledger.helper_processes import helper_pool
from ledger.storage import event_log
from ledger.storage.positions import events_through
from projections.kafka.connection import connection
from projections.kafka.signing import MessageSigner

log = logging.getLogger(__name__)

SPEC_VERSION = b"1.0"
CONTENT_TYPE = b"application/json"
TYPE_PREFIX = "ledger."
# Headers of our own, beside the CloudEvents ones.
POSITION, PREVIOUS, VERSION = "ledger_position", "ledger_prev_position", "ledger_version"
# The event's leaf index in the audit log's Merkle tree (docs/audit.md): every event in log order
# is one leaf, so it is the count of events before it. A consumer asks for the inclusion proof of
# exactly what it received with it (or with the position).
LEAF_INDEX = "ledger_leaf_index"

Header = tuple[str, bytes]
# Kafka's default max.message.bytes of a topic.
KAFKA_DEFAULT_MAX_MESSAGE = 1_048_588

DDL = (
    "CREATE TABLE IF NOT EXISTS kafka_relay ("
    " topic TEXT PRIMARY KEY, position BIGINT NOT NULL, events_per_s DOUBLE PRECISION NOT NULL,"
    " updated_at TEXT NOT NULL, error TEXT, error_since TEXT)"
)


def events_topic(settings: Settings) -> str:
    """One topic for every aggregate kind (docs/kafka.md says why)."""
    return f"{settings.kafka_topic_prefix}events"


def ensure_topic(
    settings: Settings, name: str, partitions: int, replication: int, configs: dict[str, str] | None = None
) -> None:
    """Create the topic (with `configs`) unless it exists; an existing topic is left as it is."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**connection(settings), client_id="ledger-admin", request_timeout_ms=10_000)
    try:
        if name in admin.list_topics():
            return
        try:
            admin.create_topics([NewTopic(name, partitions, replication, topic_configs=configs or {})])
        except TopicAlreadyExistsError:
            pass
    finally:
        admin.close()


def events_topic_configs(settings: Settings) -> dict[str, str]:
    """What the relay asks for when it creates the events topic: room for its largest message when
    LEDGER_KAFKA_MAX_MESSAGE_BYTES is above Kafka's default (an existing topic is the operator's)."""
    if settings.kafka_max_message_bytes <= KAFKA_DEFAULT_MAX_MESSAGE:
        return {}
    return {"max.message.bytes": str(settings.kafka_max_message_bytes)}


class Unpublishable(Exception):
    """A message the producer or the broker refuses for its size. Not an outage: retrying will not
    help until the limits are raised. The relay holds just before it (nothing after it is skipped
    over) and says which event it is."""

    def __init__(self, position: int, ce_type: str, size: int, limit: int, held_at: int) -> None:
        super().__init__(
            f"cannot publish position {position} ({ce_type}, {size:,} bytes of value): over the message size "
            f"limit (LEDGER_KAFKA_MAX_MESSAGE_BYTES={limit:,} and the topic's max.message.bytes); raise both "
            f"(docs/kafka.md, 'Message size'). Held at position {held_at}."
        )
        self.position = position


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class RelayStatus:
    topic: str
    position: int
    head: int
    lag_events: int
    events_per_s: float
    updated_at: str
    error: str | None
    error_since: str | None


class RelayPosition:
    """The relay's row in the event store's database: position, throughput, the current outage."""

    def __init__(self, app: LedgerApp, topic: str) -> None:
        self.app = app
        self.topic = topic
        self._datastore: Any = getattr(app.recorder, "datastore")  # noqa: B009
        self._pg = type(self._datastore).__module__.startswith("eventsourcing.postgres")
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(DDL)
            self._execute(cursor, "INSERT INTO kafka_relay (topic, position, events_per_s, updated_at) "
                                  "VALUES (?, 0, 0, ?) ON CONFLICT (topic) DO NOTHING", (topic, _now()))

    def _execute(self, cursor: Any, statement: str, params: Sequence[Any]) -> None:
        cursor.execute(statement.replace("?", "%s") if self._pg else statement, tuple(params))

    def _row(self) -> tuple[Any, ...]:
        return read_row(self.app, self.topic) or (0, 0.0, "", None, None)

    def position(self) -> int:
        return int(self._row()[0])

    def advance(self, position: int, rate: float) -> None:
        """Record `position` as published (the broker acknowledged it): the outage, if any, is over."""
        with self._datastore.transaction(commit=True) as cursor:
            self._execute(cursor, "UPDATE kafka_relay SET position = ?, events_per_s = ?, updated_at = ?, "
                                  "error = NULL, error_since = NULL WHERE topic = ?",
                          (position, rate, _now(), self.topic))

    def report(self, error: str) -> None:
        """Record that the broker cannot be reached (or refused); keeps when the outage began."""
        with self._datastore.transaction(commit=True) as cursor:
            self._execute(cursor, "UPDATE kafka_relay SET error = ?, error_since = COALESCE(error_since, ?), "
                                  "updated_at = ? WHERE topic = ?", (error[:500], _now(), _now(), self.topic))

    def status(self) -> RelayStatus:
        return self.status_of(self.app, self.topic)

    @staticmethod
    def status_of(app: LedgerApp, topic: str) -> RelayStatus:
        position, rate, updated_at, error, error_since = read_row(app, topic) or (0, 0.0, "", None, None)
        head = event_log.head(app)
        return RelayStatus(topic, int(position), head, max(0, head - int(position)), float(rate),
                           str(updated_at), error, error_since)


def read_row(app: LedgerApp, topic: str) -> tuple[Any, ...] | None:
    """The relay's row, read only: None before a relay ever ran."""
    datastore: Any = getattr(app.recorder, "datastore")  # noqa: B009
    pg = type(datastore).__module__.startswith("eventsourcing.postgres")
    try:
        return _select_row(datastore, pg, topic)
    except (*TRANSIENT_DATABASE_ERRORS, es_persistence.ProgrammingError):
        if not _table_exists(datastore, pg):
            return None
    # The relay created its table between the two reads (it was just starting): read again.
    return _select_row(datastore, pg, topic)


def _select_row(datastore: Any, pg: bool, topic: str) -> tuple[Any, ...] | None:
    statement = "SELECT position, events_per_s, updated_at, error, error_since FROM kafka_relay WHERE topic = ?"
    with datastore.transaction(commit=False) as cursor:
        cursor.execute(statement.replace("?", "%s") if pg else statement, (topic,))
        row = cursor.fetchone()
    if row is None:
        return None
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def _table_exists(datastore: Any, pg: bool) -> bool:
    statement = ("SELECT 1 FROM information_schema.tables WHERE table_name = 'kafka_relay'" if pg
                 else "SELECT 1 FROM sqlite_master WHERE name = 'kafka_relay'")
    with datastore.transaction(commit=False) as cursor:
        cursor.execute(statement)
        return cursor.fetchone() is not None


def relay_status(app: LedgerApp, settings: Settings) -> RelayStatus | None:
    """The relay's status (read only), or None when no relay is configured (LEDGER_KAFKA_BOOTSTRAP
    empty). Before the relay first ran: position 0."""
    if not settings.kafka_bootstrap:
        return None
    return RelayPosition.status_of(app, events_topic(settings))


def encode(
    notification: Notification, event: Any, previous: int, source: bytes, leaf_index: int
) -> tuple[bytes, bytes, list[Header]]:
    """Key, value and headers of one event (CloudEvents Kafka binding, binary mode)."""
    aggregate = str(event.originator_id).encode()
    version = str(event.originator_version).encode()
    headers = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", aggregate + b"/" + version),
        ("ce_source", source),
        ("ce_type", (TYPE_PREFIX + type(event).__qualname__).encode()),
        ("ce_time", event.timestamp.isoformat().encode()),
        ("ce_subject", aggregate),
        ("content-type", CONTENT_TYPE),
        (POSITION, str(notification.id).encode()),
        (PREVIOUS, str(previous).encode()),
        (VERSION, version),
        (LEAF_INDEX, str(leaf_index).encode()),
    ]
    return aggregate, dumps(kafka_json(event)), headers


def producer_config(settings: Settings) -> dict[str, Any]:
    """acks=all and the idempotent producer (no reordering or duplicates on the producer's own
    retries); batches of up to 256 KiB, each waiting at most 5 ms to fill (measured: docs/kafka.md);
    no message over LEDGER_KAFKA_MAX_MESSAGE_BYTES (Kafka's default: 1 MiB)."""
    return {
        **connection(settings),
        "client_id": "ledger-relay",
        "acks": "all",
        "enable_idempotence": True,
        "max_in_flight_requests_per_connection": 5,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "delivery_timeout_ms": settings.kafka_delivery_timeout_ms,
        "request_timeout_ms": min(30_000, settings.kafka_delivery_timeout_ms - 100),
        "max_block_ms": settings.kafka_delivery_timeout_ms,
        "max_request_size": settings.kafka_max_message_bytes,
    }


Message = tuple[bytes, bytes, list[Header]]
_worker_app: LedgerApp | None = None


def _start_encoder(env: dict[str, str]) -> None:
    """In the encoder process (`ledger.helper_processes`: it ends with the relay): its own
    application over the same store and key."""
    global _worker_app
    _worker_app = LedgerApp(env=env)


def encoded_page(app: LedgerApp, after: int, size: int, leaf: int, source: bytes) -> tuple[list[Message], int]:
    """The messages of up to `size` events after position `after` (the first being leaf `leaf`),
    and the position of the last one (`after` when there is none)."""
    notifications = event_log.page(app, after, size)
    to_event, messages, previous = event_log.decoder(app), [], after
    for notification in notifications:
        messages.append(encode(notification, to_event(notification), previous, source, leaf))
        previous, leaf = notification.id, leaf + 1
    return messages, previous


def _encoded_page_in_worker(after: int, size: int, leaf: int, source: bytes) -> tuple[list[Message], int]:
    assert _worker_app is not None
    return encoded_page(_worker_app, after, size, leaf, source)


class Relay:
    """Reads the log from the recorded position and publishes it. Batches are pipelined: the
    next is read, decrypted and encoded by an encoder process of its own while this process
    hands the current one to the producer and earlier ones are in flight; the position moves
    over the longest acknowledged prefix only."""

    def __init__(
        self,
        app: LedgerApp,
        settings: Settings,
        *,
        batch_size: int = 2000,
        poll_interval: float = 0.1,
        max_in_flight_batches: int = 4,
    ) -> None:
        self.app = app
        self.settings = settings
        self.topic = events_topic(settings)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_in_flight_batches = max_in_flight_batches
        self.source = settings.kafka_source.encode()
        self.signer = MessageSigner.from_settings(settings, self.topic)  # None: unsigned messages
        self.store = RelayPosition(app, self.topic)
        self.position = self.store.position()  # acknowledged and recorded
        self._sent = self.position  # handed to the producer
        self._leaves_sent = events_through(app, self._sent)  # the next event's leaf index
        # Per batch handed to the producer: its last position, its futures and its messages.
        self._in_flight: deque[tuple[int, list[Any], list[Message]]] = deque()
        self._producer: Any = None
        # Reading and encoding the next batch in a process of its own while this one sends: the
        # two halves are CPU-bound Python and would otherwise take turns on one core.
        self._encoder: Any = None
        self._next: Any = None  # the future of the next batch's messages, read after `_sent`
        self._acked_since = (self.position, time.perf_counter())

    # ---- connection ----

    def connect(self) -> None:
        from kafka import KafkaProducer

        if self._producer is None:
            ensure_topic(self.settings, self.topic, self.settings.kafka_partitions,
                         self.settings.kafka_replication, events_topic_configs(self.settings))
            self._producer = KafkaProducer(**producer_config(self.settings))
            self._producer.partitions_for(self.topic)  # metadata now, not inside the first batch

    def _reset(self) -> None:
        """After a failure: drop the producer and whatever it had in flight; resume from the
        recorded position (what was in flight may arrive twice, never with a gap)."""
        producer, self._producer = self._producer, None
        self._in_flight.clear()
        self._sent = self.position
        self._leaves_sent = events_through(self.app, self._sent)
        self._next = None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception:  # closing a producer whose broker is gone
                log.debug("closing the producer failed", exc_info=True)

    def close(self) -> None:
        """Wait (bounded) for what is in flight and record it; what is not acknowledged by then is
        sent again by the next run."""
        if self._producer is not None:
            try:
                self.record_acknowledged(wait=True)
            except Exception as error:  # the broker is gone: the next run resends from the position
                log.warning("relay: closing with unacknowledged events (%s)", type(error).__name__)
            finally:
                self._producer.close(timeout=5)
                self._producer = None
        if self._encoder is not None:
            self._encoder.shutdown(wait=False, cancel_futures=True)
            self._encoder = None

    # ---- publishing ----

    def send_batch(self) -> int:
        """Hand the next batch to the producer; return how many events it had."""
        messages, last = self._next_messages()
        if not messages:
            return 0
        self._sent, self._leaves_sent = last, self._leaves_sent + len(messages)
        self._read_ahead()
        from kafka.errors import MessageSizeTooLargeError

        if self.signer is not None:
            messages = [(key, value, self.signer.signed(key, value, headers)) for key, value, headers in messages]
        producer, futures = self._producer, []
        for key, value, headers in messages:
            try:
                futures.append(producer.send(self.topic, key=key, value=value, headers=headers))
            except MessageSizeTooLargeError:  # refused before sending: publish what comes before it
                sent = messages[:len(futures)]
                if sent:
                    self._in_flight.append((_position_of(sent[-1]), futures, sent))
                self.record_acknowledged(wait=True)
                error = self._unpublishable(messages[len(futures)])
                self._reset()  # the next try starts from it again, never after it
                raise error from None
        self._in_flight.append((last, futures, messages))
        return len(messages)

    def _unpublishable(self, message: Message) -> Unpublishable:
        _, value, headers = message
        return Unpublishable(_position_of(message), dict(headers)["ce_type"].decode(), len(value),
                             self.settings.kafka_max_message_bytes, self.position)

    def _read_ahead(self) -> None:
        """Have the encoder process (started on first use) read and encode the batch after `_sent`."""
        if self._encoder is None:
            self._encoder = helper_pool(1, _start_encoder, (dict(self.app.env),))
        self._next = self._encoder.submit(_encoded_page_in_worker, self._sent, self.batch_size,
                                          self._leaves_sent, self.source)

    def _next_messages(self) -> tuple[list[Message], int]:
        """The next batch's messages: read ahead by the encoder process, or read here."""
        pending, self._next = self._next, None
        if pending is not None:
            messages, last = pending.result()
            if messages:
                return messages, last
        return encoded_page(self.app, self._sent, self.batch_size, self._leaves_sent, self.source)

    def record_acknowledged(self, wait: bool = False) -> None:
        """Move the recorded position over the batches the broker acknowledged (all of them when
        `wait`); a failed send raises (the caller resets and resumes)."""
        if wait and self._in_flight:
            self._flush()
        acknowledged, failure = self.position, None
        while self._in_flight and all(f.is_done for f in self._in_flight[0][1]):
            last, futures, messages = self._in_flight.popleft()
            failed = next((n for n, future in enumerate(futures) if future.failed()), None)
            if failed is not None:
                if failed:  # what the broker acknowledged before it still counts
                    acknowledged = _position_of(messages[failed - 1])
                failure = futures[failed].exception, messages[failed]
                break
            acknowledged = last
        if acknowledged > self.position:
            before, since = self._acked_since
            now = time.perf_counter()
            rate = (acknowledged - before) / max(now - since, 1e-9)
            self.store.advance(acknowledged, rate)
            self.position = acknowledged
            self._acked_since = (acknowledged, now)
        if failure is not None:
            from kafka.errors import MessageSizeTooLargeError

            error, message = failure
            if isinstance(error, MessageSizeTooLargeError):  # the broker's message.max.bytes
                raise self._unpublishable(message) from error
            raise error

    def _flush(self) -> None:
        self._producer.flush(timeout=self.settings.kafka_delivery_timeout_ms / 1000)

    def publish_available(self) -> int:
        """Publish everything in the log now and wait for the acknowledgements; return the count."""
        self.connect()
        total = 0
        while True:
            sent = self.send_batch()
            total += sent
            self.record_acknowledged(wait=sent == 0 or len(self._in_flight) >= self.max_in_flight_batches)
            if sent == 0:
                return total

    def run_forever(self, stop: threading.Event) -> None:
        """Publish until stopped; on a broker or database failure, or a message too large to send,
        report it, back off and resume from the recorded position."""
        from kafka.errors import KafkaError

        backoff = 0.5
        while not stop.is_set():
            try:
                self.publish_available()
                backoff = 0.5
                self._acked_since = (self.position, time.perf_counter())
                stop.wait(self.poll_interval)
            except (Unpublishable, KafkaError, *TRANSIENT_DATABASE_ERRORS) as error:
                if isinstance(error, Unpublishable):  # not an outage: it needs an operator
                    message = str(error)
                    log.error("relay: %s Retrying in %.1fs.", message, backoff)
                else:
                    message = f"{type(error).__name__}: {error}"
                    log.warning("relay: %s; retrying in %.1fs from position %d", message, backoff, self.position)
                self._reset()
                try:
                    self.store.report(message)
                except TRANSIENT_DATABASE_ERRORS:
                    log.warning("relay: cannot record the outage either", exc_info=True)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        self.close()


def _position_of(message: Message) -> int:
    return int(dict(message[2])[POSITION])
