"""Read models built from the Kafka topic instead of the database log, by a consumer group.

Every read model needs the events in the log's global order (see docs/architecture.md, "Read
models from Kafka"), so the group does not split the events topic by key. It splits *lanes*:
one lane per read model, one partition of the `<prefix>views-lanes` topic per lane (a topic
that carries no messages; Kafka's group protocol only decides which member owns which lane and
moves a dead member's lanes to the others). The member owning a lane reads every partition of
the events topic and puts the global order back with the `ledger_prev_position` header: the
event after position P is the one whose previous position is P, whatever partition it is in.
A lane other than `facts` keeps its own copy of the facts (`facts_<lane>`), so its lookups see
the facts as of the event being handled, exactly as the database runner's shared facts do.

Lists as long as a supplier file are not in their messages, only their length (docs/kafka.md,
"Message size"): a batch's key ids in `Batch.Received` and `Stock.Replenished`, a recall's in
`Batch.Recalled` and `Stock.Voided`. Each id is the key of a message of its own (`Key.Registered`,
`Key.Voided`) of the same command, after it in the log. A lane gives its read models the events
the log holds, lists filled back in from those messages, so it never applies (nor commits) part of
an import or a recall before all of its keys have arrived.

Exactly once into the read models: a batch's rows, its position and the Kafka offsets it
consumed commit in one transaction of the read-model database, conditional on the lane's
position still being the one this member started from. A member that lost its lane in a
rebalance (or a zombie) therefore cannot commit over its successor's work.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from ledger.application import TRANSIENT_DATABASE_ERRORS
from ledger.config import Settings
from ledger.encoding.event_json import COUNTED_ON_KAFKA, decode_event
from projections.engine.base import Projection
from projections.engine.events import EVENT_CLASSES
from projections.engine.registry import DEPENDENT, PROJECTION_NAMES
from projections.engine.store import ViewStore
from projections.kafka.connection import connection
from projections.kafka.relay import (
    POSITION,
    PREVIOUS,
    TYPE_PREFIX,
    VERSION,
    ensure_topic,
    events_topic,
)
from projections.kafka.signing import MessageVerifier
from projections.models.facts import Facts

log = logging.getLogger(__name__)

LANES = PROJECTION_NAMES
LANES_DDL = (
    "CREATE TABLE IF NOT EXISTS kafka_lanes (lane TEXT PRIMARY KEY, position BIGINT NOT NULL, offsets TEXT NOT NULL)"
)
# Event classes and their stored topics by CloudEvents type.
_TYPES = {TYPE_PREFIX + name: (cls, get_topic(cls)) for name, cls in EVENT_CLASSES.items()}
# What a counted message's list is made of, by its CloudEvents type: (list, count, members' type).
_COUNTED = {
    (TYPE_PREFIX + cls.__qualname__).encode(): (c.listed, c.counted_as, (TYPE_PREFIX + c.member.__qualname__).encode())
    for cls, c in COUNTED_ON_KAFKA.items()
}


def lanes_topic(settings: Settings) -> str:
    return f"{settings.kafka_topic_prefix}views-lanes"


def lane_projections(store: ViewStore, lane: str) -> list[Projection]:
    """The projections one lane feeds, facts first: the facts alone, or a private facts copy and
    the read model that looks things up in it."""
    if lane == "facts":
        return [Facts(store)]
    if lane not in DEPENDENT:
        raise ValueError(f"unknown lane {lane!r}; known: {', '.join(LANES)}")
    private: type[Facts] = type(f"Facts_{lane}", (Facts,), {"name": f"facts_{lane}"})
    facts = private(store)
    return [facts, DEPENDENT[lane](store, facts)]


class LaneLost(Exception):
    """Another member committed this lane since we loaded it: ours is stale."""


@dataclass
class _Pending:
    position: int
    partition: int
    offset: int
    record: Any
    ce_type: bytes
    _value: dict[str, Any] | None = None

    @property
    def value(self) -> dict[str, Any]:
        """The message's JSON, parsed once."""
        if self._value is None:
            self._value = json.loads(self.record.value)
        return self._value

    def counted(self) -> tuple[bytes, int] | None:
        """(members' type, how many) when the message counts a list instead of listing it."""
        shape = _COUNTED.get(self.ce_type)
        if shape is None or shape[1] not in self.value:  # published before lists were counted
            return None
        return shape[2], int(self.value[shape[1]])


def _correlation(item: _Pending) -> Any:
    return item.value.get("meta", {}).get("correlation_id")


class LaneWorker:
    """Builds one lane's read models from the events topic; owned by one member at a time."""

    def __init__(self, settings: Settings, store: ViewStore, lane: str, *, batch_size: int = 5000) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.store = store
        self.lane = lane
        self.batch_size = batch_size
        self.topic = events_topic(settings)
        self.verifier = MessageVerifier.from_settings(settings)  # None: every message is taken
        self.projections = lane_projections(store, lane)
        with store.transaction() as cursor:
            store.execute(cursor, LANES_DDL)
            store.execute(cursor, "INSERT INTO kafka_lanes (lane, position, offsets) VALUES (?, 0, '{}') "
                                  "ON CONFLICT (lane) DO NOTHING", (lane,))
            for projection in self.projections:
                projection.create_tables(cursor)
        (position, offsets), = store.query("SELECT position, offsets FROM kafka_lanes WHERE lane = ?", (lane,))
        self.position = int(position)
        self.offsets: dict[int, int] = {int(p): int(o) for p, o in json.loads(offsets).items()}
        for projection in self.projections:
            projection.load()
        topic = events_topic(settings)
        ensure_topic(settings, topic, settings.kafka_partitions, settings.kafka_replication)
        self.consumer = KafkaConsumer(
            **connection(settings), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            client_id=f"ledger-views-{lane}", max_poll_records=batch_size,
            # The broker checked each batch's CRC when it was produced; kafka-python's pure-Python
            # CRC32C cost more than all the rest of a lane's work together (16 of 44 s, profiled).
            check_crcs=False,
        )
        partitions = self.consumer.partitions_for_topic(topic)
        if not partitions:
            self.consumer.close()
            raise LookupError(f"topic {topic} has no partitions yet")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(assigned)
        for tp in assigned:
            if tp.partition in self.offsets:
                self.consumer.seek(tp, self.offsets[tp.partition])
            else:
                self.consumer.seek_to_beginning(tp)
        self.pending: dict[int, _Pending] = {}  # by previous position

    def step(self, timeout_ms: int = 100) -> int:
        """Read what the broker has, apply the events that continue the log; return how many."""
        for tp, records in self.consumer.poll(timeout_ms=timeout_ms, max_records=self.batch_size).items():
            for record in records:
                if self.verifier is not None:
                    refused = self.verifier.problem(self.topic, record.key, record.value, record.headers)
                    if refused is not None:  # before it can stand in for the genuine event at its place
                        log.warning("lane %s: refused the message at partition %d offset %d: %s", self.lane,
                                    tp.partition, record.offset, refused)
                        continue
                headers = dict(record.headers)
                position = int(headers[POSITION])
                if position > self.position:  # a re-delivery of what is applied already is dropped here
                    # Of two copies of one event the first read stays: the offsets recorded never jump
                    # past a message that is not applied yet.
                    self.pending.setdefault(int(headers[PREVIOUS]),
                                            _Pending(position, tp.partition, record.offset, record, headers["ce_type"]))
        chain = self._next_chain()
        if chain:
            self._apply(chain)
        return len(chain)

    def _next_chain(self) -> list[_Pending]:
        """The events that continue the log, up to `batch_size`, but never a counted list (an
        import's, a recall's) without every key it counts: the chain runs on until they are in, or
        stops before the first such list until they are."""
        chain: list[_Pending] = []
        awaiting: list[list[Any]] = []  # [members' type, how many still to come] per open list
        reached, opened = self.position, 0  # opened: where the first still-open list is
        while reached in self.pending and (len(chain) < self.batch_size or awaiting):
            item = self.pending[reached]
            counted = item.counted()
            for entry in awaiting:
                if entry[0] == item.ce_type:
                    entry[1] -= 1
            awaiting = [entry for entry in awaiting if entry[1]]
            if counted and counted[1]:
                opened = opened if awaiting else len(chain)
                awaiting.append(list(counted))
            chain.append(item)
            reached = item.position
        return chain[:opened] if awaiting else chain

    @staticmethod
    def _fill_lists(chain: Sequence[_Pending]) -> dict[int, list[str]]:
        """Each counted list of the chain, by position: the keys of the next `count` messages of
        its members' type (the chain holds them all, see `_next_chain`)."""
        lists: dict[int, list[str]] = {}
        open_lists: list[tuple[_Pending, bytes, list[str], int]] = []
        for item in chain:
            for counted, member, keys, count in open_lists:
                if item.ce_type == member and len(keys) < count:
                    if _correlation(item) != _correlation(counted):
                        raise ValueError(f"position {item.position}: a {member.decode()} of another command "
                                         f"where position {counted.position} expects one of its keys")
                    keys.append(item.record.key.decode())
            shape = item.counted()
            if shape:
                lists[item.position] = []
                open_lists.append((item, shape[0], lists[item.position], shape[1]))
        return lists

    def _apply(self, chain: Sequence[_Pending]) -> None:
        began = time.perf_counter()
        offsets = dict(self.offsets)
        lists = self._fill_lists(chain) if any(item.ce_type in _COUNTED for item in chain) else {}
        for item in chain:
            record = item.record
            headers = dict(record.headers)
            cls, topic = _TYPES[item.ce_type.decode()]
            event = None
            for projection in self.projections:
                handler = projection.handlers.get(topic)
                if handler is None:
                    continue
                if event is None:
                    data = dict(item.value)  # the item keeps its message as it came
                    if item.position in lists:  # the log's event: with its list
                        listed, count, _ = _COUNTED[item.ce_type]
                        data[listed] = lists[item.position]
                        if len(data[listed]) != data.pop(count):
                            raise ValueError(f"position {item.position}: not all its keys in the chain")
                    event = decode_event(cls, data, UUID(record.key.decode()),
                                         int(headers[VERSION]), datetime.fromisoformat(headers["ce_time"].decode()))
                handler(event, item.position)
            offsets[item.partition] = max(offsets.get(item.partition, 0), item.offset + 1)
        last = chain[-1].position
        rate = len(chain) / max(time.perf_counter() - began, 1e-9)
        with self.store.transaction() as cursor:
            moved = self.store.execute(
                cursor, "UPDATE kafka_lanes SET position = ?, offsets = ? WHERE lane = ? AND position = ? "
                        "RETURNING lane", (last, json.dumps(offsets), self.lane, self.position),
            ).fetchall()
            if len(moved) != 1:
                raise LaneLost(f"lane {self.lane} moved past {self.position} elsewhere")
            for projection in self.projections:
                projection.flush(cursor)
                self.store.record_position(cursor, projection.tracking_name, last)
                self.store.record_status(cursor, projection.tracking_name, last, rate)
        self.position, self.offsets = last, offsets
        self.pending = {prev: p for prev, p in self.pending.items() if p.position > last}

    def close(self) -> None:
        self.consumer.close()


class KafkaViews:
    """One member of the read-model group: owns the lanes Kafka assigns it and builds them."""

    def __init__(
        self, settings: Settings, store: ViewStore, *, batch_size: int = 5000,
        on_assignment: Callable[[list[str]], None] | None = None,
    ) -> None:
        """`on_assignment` hears the lanes this member owns each time they change."""
        from kafka import KafkaConsumer

        self.settings = settings
        self.on_assignment = on_assignment
        self._owned: set[str] = set()
        self.store = store
        self.batch_size = batch_size
        topic = lanes_topic(settings)
        ensure_topic(settings, topic, len(LANES), settings.kafka_replication)
        session = settings.kafka_session_timeout_ms
        self.group = KafkaConsumer(
            topic, **connection(settings), group_id=settings.kafka_group, enable_auto_commit=False,
            session_timeout_ms=session, heartbeat_interval_ms=max(100, session // 6), client_id="ledger-views",
        )
        self.workers: dict[str, LaneWorker] = {}
        # Membership has a thread of its own (the only one touching `group`): a rebalance completes
        # while lanes are busy, instead of only in the gaps between their batches.
        self._assigned: frozenset[str] = frozenset()
        self._closing = threading.Event()
        self._membership = threading.Thread(target=self._keep_membership, name="ledger-views-group", daemon=True)
        self._membership.start()

    def _keep_membership(self) -> None:
        from kafka.errors import KafkaError

        while not self._closing.is_set():
            try:
                self.group.poll(timeout_ms=200)
                self._assigned = frozenset(
                    LANES[tp.partition] for tp in self.group.assignment() if tp.partition < len(LANES))
            except KafkaError as error:
                log.warning("read-model group: %s; retrying", error)
                self._closing.wait(1.0)

    def owned(self) -> list[str]:
        """The lanes this member owns now."""
        return sorted(self._assigned)

    def step(self) -> int:
        """Follow the assignment, then give every owned lane one step; return events applied."""
        owned = set(self.owned())
        if owned != self._owned:
            self._owned = owned
            if self.on_assignment is not None:
                self.on_assignment(sorted(owned))
        for lane in [lane for lane in self.workers if lane not in owned]:
            log.info("lane %s moved to another member", lane)
            self.workers.pop(lane).close()
        applied = 0
        for lane in sorted(owned):
            worker = self.workers.get(lane)
            try:
                if worker is None:
                    worker = self.workers[lane] = LaneWorker(self.settings, self.store, lane,
                                                             batch_size=self.batch_size)
                applied += worker.step(timeout_ms=max(10, 100 // len(owned)))
            except (LaneLost, LookupError, *TRANSIENT_DATABASE_ERRORS) as error:
                log.warning("lane %s: %s; reloading", lane, error)
                dropped = self.workers.pop(lane, None)
                if dropped is not None:
                    dropped.close()
        return applied

    def positions(self) -> dict[str, int]:
        return {lane: worker.position for lane, worker in self.workers.items()}

    def run_forever(self, stop: threading.Event, idle_wait: float = 0.05) -> None:
        while not stop.is_set():
            try:
                if self.step() == 0 and not self.workers:
                    stop.wait(idle_wait)
            except Exception as error:  # the broker went away mid-call, ...: keep the member alive
                from kafka.errors import KafkaError

                if not isinstance(error, KafkaError):
                    raise
                log.warning("read-model group: %s; retrying", error)
                stop.wait(1.0)

    def close(self) -> None:
        self._closing.set()
        self._membership.join(timeout=10)
        for worker in self.workers.values():
            worker.close()
        self.workers.clear()
        self.group.close()
