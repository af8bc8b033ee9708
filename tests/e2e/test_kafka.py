"""The Kafka relay and the read models built from Kafka, against a real broker (Tansu, started per
test on a free loopback port): every event once per position in log order per key, with the
CloudEvents headers and no code; a relay killed with SIGKILL resumes without a gap; a consumer
group of two processes, one killed mid-batch, builds what a rebuild from the log builds; a broker
outage is reported and survived."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.application import LedgerApp, build_app
from ledger.config import Settings
from ledger.encoding.event_catalogue import kafka_fields
from ledger.encoding.event_json import COUNTED_ON_KAFKA, scrub
from ledger.encoding.fields import event_data
from ledger.service.ledger import open_ledger
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from projections.kafka.relay import LEAF_INDEX, POSITION, VERSION, Relay, RelayPosition, events_topic, relay_status
from projections.kafka.source import LANES
from shell.demo import SimClock, run_demo
from tests.audit_helpers import audit_log
from tests.helpers import buy, fresh_codes, import_batch, place, stocked_product
from tests.kafka_broker import Broker, broker
from tests.kafka_helpers import kafka_settings

__all__ = ["broker"]  # the fixture
SECRET_PREFIX = "SECRETCODE"
CE_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo-sized history (the demo with 120 orders: ~2,100 events) plus keys whose clear codes we know."""
    path = tmp_path_factory.mktemp("kafka-demo")
    clock = SimClock()
    ledger = open_ledger(kafka_settings(path), clock=clock)
    try:
        run_demo(ledger, clock, 7, 120, lambda n: None)
        stocked_product(ledger, "KAFKA-1", 40, prefix=SECRET_PREFIX)
        for n in range(4):
            buy(ledger, f"kafka-{n}", "KAFKA-1")
    finally:
        ledger.close()
    return path


@pytest.fixture
def store_dir(demo_dir: Path, tmp_path: Path) -> Path:
    for file in demo_dir.glob("ledger.sqlite*"):
        shutil.copy(file, tmp_path / file.name)
    return tmp_path


@pytest.fixture
def app(store_dir: Path) -> Iterator[LedgerApp]:
    built, _ = build_app(kafka_settings(store_dir))
    yield built
    built.close()


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    for name, value in settings.model_dump().items():
        if value not in ("", None):
            env[f"LEDGER_{name.upper()}"] = str(value)
    return env


def _ledger_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from shell.cli import main; main()", *args]


def read_all(bootstrap: str, topic: str, seconds: float = 60) -> list[Any]:
    """Every record of the topic, partition by partition in offset order, read up to each partition's
    high watermark as its fetches report it. Not up to `end_offsets`: Tansu answers ListOffsets
    "latest" with the base offset of the partition's last batch + 1, so stopping there can leave
    the rest of that batch unread. Fails, rather than returning part of the topic, when the end is
    not reached in `seconds`."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert partitions, f"no partitions for {topic}"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: dict[int, list[Any]] = defaultdict(list)
        deadline = time.monotonic() + seconds

        def behind() -> dict[int, tuple[int, int | None]]:
            ends = {tp: consumer.highwater(tp) for tp in partitions}  # None before a partition's first fetch
            return {tp.partition: (consumer.position(tp), end) for tp, end in ends.items()
                    if end is None or consumer.position(tp) < end}

        while lagging := behind():
            assert time.monotonic() < deadline, f"{topic} not read to its end in {seconds} s: {lagging}"
            for tp, records in consumer.poll(timeout_ms=200).items():
                found[tp.partition].extend(records)
        return [r for p in sorted(found) for r in found[p]]
    finally:
        consumer.close()


def _position(record: Any) -> int:
    return int(dict(record.headers)[POSITION])


def _log_ids(app: LedgerApp) -> list[int]:
    return [n.id for n in app.recorder.select_notifications(1, 10**7)]


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _first_seen_in_order_per_key(records: list[Any]) -> None:
    """Per key, after dropping re-deliveries: one partition, positions and versions ascending."""
    seen: set[int] = set()
    by_key: dict[bytes, list[tuple[int, int, int]]] = defaultdict(list)
    for record in records:
        position = _position(record)
        if position in seen:
            continue
        seen.add(position)
        by_key[record.key].append((record.partition, position, int(dict(record.headers)[VERSION])))
    for key, items in by_key.items():
        assert len({p for p, _, _ in items}) == 1, key
        positions = [pos for _, pos, _ in items]
        versions = [v for _, _, v in items]
        assert positions == sorted(positions), key
        assert versions == list(range(versions[0], versions[0] + len(versions))), key


def _walk_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _walk_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_keys(v)


def _walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_strings(v)
    elif isinstance(value, str):
        yield value


def test_every_event_once_in_log_order_per_key_with_cloudevents_headers_and_no_code(
    broker: Broker, store_dir: Path, app: LedgerApp
) -> None:
    settings = kafka_settings(store_dir, broker.bootstrap)
    relay = Relay(app, settings, batch_size=500)
    relay.publish_available()
    relay.close()
    records = read_all(broker.bootstrap, events_topic(settings))

    notifications = app.recorder.select_notifications(1, 10**7)
    assert len(notifications) > 2000
    assert sorted(_position(r) for r in records) == [n.id for n in notifications]  # each exactly once
    _first_seen_in_order_per_key(records)

    events = {n.id: app.mapper.to_domain_event(n) for n in notifications}
    secrets: list[bytes] = []
    for event in events.values():
        for field in ("sealed_code", "code_hmac"):
            if getattr(event, field, None):
                secrets.append(str(getattr(event, field)).encode())
    assert len(secrets) > 40
    seen_strings: set[bytes] = set()
    for record in records:
        headers = dict(record.headers)
        event = events[_position(record)]
        assert all(name in headers for name in CE_HEADERS)
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_source"] == b"urn:ledger"
        assert headers["ce_type"].decode() == "ledger." + type(event).__qualname__
        assert headers["ce_id"] == f"{event.originator_id}/{event.originator_version}".encode()
        assert datetime.fromisoformat(headers["ce_time"].decode()) == event.timestamp
        assert record.key == str(event.originator_id).encode()
        value = json.loads(record.value)
        expected = scrub(event_data(event))  # the audit API's scrubbing, the reference
        if type(event) in COUNTED_ON_KAFKA:  # an import's or a recall's key ids: their count (docs/kafka.md)
            listed, count, _ = COUNTED_ON_KAFKA[type(event)]
            expected[count] = len(expected.pop(listed))
        assert value == expected
        assert set(value) == {name for name, _ in kafka_fields(type(event))} | {"meta"}  # as docs/events.md says
        assert not {"sealed_code", "code_hmac"} & set(_walk_keys(value))  # ("code" is a coupon's)
        assert SECRET_PREFIX.encode() not in record.value + b"".join(v for _, v in record.headers)
        seen_strings.update(v for _, v in record.headers)
        seen_strings.update(s.encode() for s in _walk_strings(value))
    assert not seen_strings & set(secrets)

    # Each message names its leaf in the audit log's Merkle tree, as the tree itself numbers it.
    with audit_log(settings) as tree:
        tree.catch_up()
        leaf_of = {position: tree.store.leaf_index(position) for position in (n.id for n in notifications)}
    assert {_position(r): int(dict(r.headers)[LEAF_INDEX]) for r in records} == leaf_of


def test_read_all_reads_to_the_end_when_the_last_batch_straddles_a_poll(broker: Broker) -> None:
    """The no-gap assertions compare what `read_all` read with the log, so it must read every record:
    here the partition's last batch starts at offset 499 and the first poll (500 records) stops one
    record into it, at the end Tansu's ListOffsets reports."""
    from kafka import KafkaProducer

    batches = [[f"a{n}".encode() for n in range(499)], [f"b{n}".encode() for n in range(3)]]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=1000, batch_size=1 << 20)
    try:
        for batch in batches:
            for value in batch:
                producer.send("straddle", value=value, partition=0)
            producer.flush()
    finally:
        producer.close()
    assert [r.value for r in read_all(broker.bootstrap, "straddle")] == batches[0] + batches[1]


def _children(pid: int) -> list[int]:
    """The processes `pid` started, from any of its threads."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def test_relay_killed_with_sigkill_resumes_without_a_gap(broker: Broker, store_dir: Path, app: LedgerApp) -> None:
    settings = kafka_settings(store_dir, broker.bootstrap)
    # The relay's --batch-size and its default batches in flight. Small batches: the relay
    # publishes the ~2,300 events in about a fifth of a second, and must still be mid-log when killed.
    batch, in_flight = 20, 4
    position = RelayPosition(app, events_topic(settings))
    head = _log_ids(app)[-1]
    env = _env(settings)
    rng = random.Random()
    kills: list[int] = []
    for fraction in (0.2, 0.6):
        started_at = position.position()
        process = subprocess.Popen(_ledger_command("relay", "--batch-size", str(batch), "--poll", "0.02"),
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait(lambda f=fraction, p=process: position.position() >= f * head or p.poll() is not None, 60, "the relay")
        time.sleep(rng.uniform(0, 0.05))
        helpers: list[int] = []
        if started_at < head:  # it sent a batch, so its encoder process reads ahead (with a resource tracker)
            try:
                _wait(lambda p=process: bool(_children(p.pid)) or p.poll() is not None, 10,
                      "the relay's encoder process")
            except AssertionError as error:  # say what the relay was doing
                raise AssertionError(f"{error}; relay status: {relay_status(app, settings)}") from None
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            helpers = _children(process.pid)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL, process.stderr.read() if process.stderr else ""
        kills.append(position.position())
        _wait(lambda h=helpers: not any(Path(f"/proc/{pid}").exists() for pid in h), 10,
              "the killed relay's encoder process to end")
    assert kills[0] < head  # at least the first kill landed mid-log
    process = subprocess.Popen(_ledger_command("relay", "--batch-size", str(batch), "--poll", "0.02"),
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(lambda: position.position() == head, 60, "the relay to reach the head")
    finally:
        process.terminate()
        process.wait(timeout=20)

    records = read_all(broker.bootstrap, events_topic(settings))
    counts = Counter(_position(r) for r in records)
    assert sorted(counts) == _log_ids(app)  # no position missing
    # A relay that resumed from its recorded position still numbers the leaves as the tree does.
    leaf_of = {position: index for index, position in enumerate(_log_ids(app))}
    assert all(int(dict(r.headers)[LEAF_INDEX]) == leaf_of[_position(r)] for r in records)
    duplicated = [p for p, n in counts.items() if n > 1]
    window = batch * (in_flight + 1)
    assert all(any(k < p <= k + window for k in kills) for p in duplicated), (kills, duplicated[:20])
    _first_seen_in_order_per_key(records)


def _views(settings: Settings, path: Path) -> ViewStore:
    return ViewStore(settings.model_copy(update={"views_database_url": f"sqlite:///{path}"}))


def _lanes_equal_a_rebuild(app: LedgerApp, settings: Settings, views: ViewStore, head: int,
                           tmp_path: Path) -> dict[str, Any]:
    """One member builds every lane into `views` up to `head`; each read model must equal a
    rebuild from the database log. Returns the Kafka-built dumps by read model."""
    from projections.kafka.source import KafkaViews

    member = KafkaViews(settings, views, batch_size=50)
    try:
        _wait(lambda: member.step() >= 0 and len(member.workers) == 6
              and set(member.positions().values()) == {head}, 60, "every lane")
    finally:
        member.close()
    reference = _views(settings, tmp_path / "views-log.sqlite")
    try:
        Runner(app, reference, build_projections(reference)).catch_up()
        dumps = {}
        for built, expected in zip(build_projections(views), build_projections(reference), strict=True):
            dumps[built.name] = built.dump()
            assert dumps[built.name] == expected.dump(), built.name
        return dumps
    finally:
        reference.close()


def _lane_positions(views: ViewStore) -> dict[str, int]:
    try:
        return {str(lane): int(pos) for lane, pos in views.query("SELECT lane, position FROM kafka_lanes")}
    except Exception:  # the table does not exist before the first member starts
        return {}


def test_two_group_members_one_killed_mid_batch_build_what_a_rebuild_builds(
    broker: Broker, store_dir: Path, app: LedgerApp
) -> None:
    settings = kafka_settings(store_dir, broker.bootstrap)
    head = _log_ids(app)[-1]
    kafka_views = store_dir / "views-kafka.sqlite"
    views = _views(settings, kafka_views)
    env = _env(settings) | {"LEDGER_VIEWS_DATABASE_URL": f"sqlite:///{kafka_views}"}
    command = _ledger_command("project", "run", "--from-kafka", "--batch-size", "150")
    logs = [store_dir / f"member-{n}.log" for n in range(3)]

    def start(n: int) -> subprocess.Popen[bytes]:
        with logs[n].open("wb") as log:
            return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def owned(n: int) -> list[set[str]]:
        """The lanes member `n` owned, at each change of the group's assignment."""
        return [set(line.split(":", 1)[1].split()) for line in logs[n].read_text().splitlines()
                if line.startswith("owns lanes:")]

    members = [start(0), start(1)]
    try:
        _wait(lambda: bool(owned(0) and owned(0)[-1] and owned(1) and owned(1)[-1]), 60, "the group to split")
        assert not owned(0)[-1] & owned(1)[-1]  # split, not shared
        relay = Relay(app, settings)  # events arrive while the members work
        relay.publish_available()
        relay.close()
        _wait(lambda: any(0 < p < head for p in _lane_positions(views).values()), 60, "lanes to start")
        members[0].send_signal(signal.SIGKILL)
        members[0].wait()
        members[0] = start(2)
        _wait(lambda: len(_lane_positions(views)) == 6 and set(_lane_positions(views).values()) == {head}, 80,
              "every lane to reach the head")
        _wait(lambda: bool(owned(1) and owned(2)) and not owned(1)[-1] & owned(2)[-1]
              and owned(1)[-1] | owned(2)[-1] == set(LANES), 30, "the survivor and the restarted member to split")
    finally:
        for member in members:
            member.terminate()
        for member in members:
            member.wait(timeout=20)

    reference = _views(settings, store_dir / "views-log.sqlite")
    Runner(app, reference, build_projections(reference)).catch_up()
    for built, expected in zip(build_projections(views), build_projections(reference), strict=True):
        assert built.dump() == expected.dump(), built.name


def test_broker_outage_is_reported_and_the_relay_resumes(broker: Broker, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.background import Background
    from api.metrics import Metrics
    from api.services import Services
    from shell.composition import compose

    settings = kafka_settings(tmp_path, broker.bootstrap)
    relay_settings = settings.model_copy(update={"serve_relay": True, "serve_projections": False})  # --relay
    services = Services.open(compose(relay_settings))
    ledger = services.ledger
    app = ledger.app
    stocked_product(ledger, "KAFKA-1", 10)
    buy(ledger, "before-outage", "KAFKA-1")
    background = Background(services)
    background.start()
    try:
        _wait(lambda: relay_status(app, settings).position == _log_ids(app)[-1], 60, "the relay")  # type: ignore[union-attr]
        before_outage = _log_ids(app)[-1]
        broker.stop()
        for n in range(3):
            buy(ledger, f"outage-{n}", "KAFKA-1")
        _wait(lambda: relay_status(app, settings).error is not None, 30, "the outage to be reported")  # type: ignore[union-attr]
        down = relay_status(app, settings)
        assert down is not None and down.lag_events > 0 and down.error_since
        assert "ledger_relay_up 0.0" in Metrics().render(services).body.decode()
        with TestClient(create_app(services)) as client:
            relay_ready = client.get("/readyz").json()["relay"]
        assert relay_ready["error"] and relay_ready["lag_events"] == down.lag_events

        broker.start()  # memory storage: the broker comes back empty
        _wait(lambda: relay_status(app, settings).position == _log_ids(app)[-1], 60, "the relay to resume")  # type: ignore[union-attr]
        up = relay_status(app, settings)
        assert up is not None and up.error is None and up.lag_events == 0
        metrics = Metrics().render(services).body.decode()
        assert "ledger_relay_up 1.0" in metrics and "ledger_relay_lag_events 0.0" in metrics
        since_outage = {p for p in _log_ids(app) if p > before_outage}
    finally:
        background.close()
        services.close()
    # What the broker held before it restarted died with its memory; from the outage on, nothing is missing.
    received = {_position(r) for r in read_all(broker.bootstrap, events_topic(settings))}
    assert since_outage and since_outage <= received


def test_a_supplier_file_of_30000_codes_goes_out_in_messages_a_default_cluster_accepts(
    broker: Broker, tmp_path: Path
) -> None:
    """30,000 key ids as JSON are 1.17 MB (100,000: 3.9 MB), over kafka-python's `max_request_size`
    and a real broker's `message.max.bytes` (both ~1 MB by default): the relay used to stop there for
    good. `Batch.Received` and `Stock.Replenished` carry `key_count` instead; the ids are each in
    their key's `Key.Registered` message (with `batch_id`), in import order by position. So does the
    recall of those keys: `Batch.Recalled` and `Stock.Voided` count them, each has its `Key.Voided`."""
    settings = kafka_settings(tmp_path, broker.bootstrap)
    ledger = open_ledger(settings)
    try:
        ledger.define_product(ledger.context("admin"), sku="BIG-1", name="big", face_value="10.00",
                              currency="USD", price="10.00")
        stocked_product(ledger, "SMALL-1", 1)
        batch = import_batch(ledger, "BIG-1", fresh_codes(30_000, "BIG"))
        assert len(json.dumps([str(k) for k in batch.key_ids])) > 1_048_576  # the list alone: over 1 MiB
        _, paid = buy(ledger, "after-the-import", "BIG-1")
        assert ledger.recall_batch(ledger.context("admin"), batch.batch_id, "supplier recall").voided == 29_999
        buy(ledger, "after-the-recall", "SMALL-1")
        relay = Relay(ledger.app, settings)
        relay.publish_available()
        relay.close()
        log_ids = _log_ids(ledger.app)
        status = relay_status(ledger.app, settings)
        assert status is not None and (status.position, status.error) == (log_ids[-1], None)
    finally:
        ledger.close()
    records = read_all(broker.bootstrap, events_topic(settings))
    assert sorted(_position(r) for r in records) == log_ids  # the events after the import too
    assert max(len(r.value) for r in records) < 10_000
    by_type: dict[str, list[Any]] = defaultdict(list)
    for record in sorted(records, key=_position):
        by_type[dict(record.headers)["ce_type"].decode()].append(record)
    for ce_type, count, expected in (("ledger.Batch.Received", "key_count", 30_000),
                                     ("ledger.Stock.Replenished", "key_count", 30_000),
                                     ("ledger.Batch.Recalled", "voided_key_count", 29_999),
                                     ("ledger.Stock.Voided", "key_count", 29_999)):
        [announced] = [r for r in by_type[ce_type]
                       if str(batch.batch_id) in (r.key.decode(), json.loads(r.value).get("batch_id"))]
        value = json.loads(announced.value)
        assert value[count] == expected and set(value).isdisjoint({"key_ids", "voided_key_ids"}), ce_type
    registered = [r for r in by_type["ledger.Key.Registered"] if json.loads(r.value)["batch_id"] == str(batch.batch_id)]
    assert [UUID(r.key.decode()) for r in registered] == list(batch.key_ids)  # by position: import order
    sold = set(paid.key_ids)
    voided = [UUID(r.key.decode()) for r in by_type["ledger.Key.Voided"]]
    assert voided == [k for k in batch.key_ids if k not in sold]  # by position: the recall's order


def test_read_models_from_kafka_take_an_import_s_and_a_recall_s_key_ids_from_their_keys_messages(
    broker: Broker, tmp_path: Path
) -> None:
    """The read models take a batch's keys from `Batch.Received` and a recall's from `Stock.Voided`
    (never from `Key.Registered` / `Key.Voided`); on Kafka those only count them. A lane fills the
    lists in from the keys' own messages, even when they (600 keys) are far more than the lane's
    batches (50 events), and for a recall that also cancels an unpaid order holding two keys."""

    settings = kafka_settings(tmp_path, broker.bootstrap)
    ledger = open_ledger(settings)
    try:
        ledger.define_product(ledger.context("admin"), sku="LANE-1", name="lane", face_value="10.00",
                              currency="USD", price="10.00", low_stock_threshold=599)
        imported = import_batch(ledger, "LANE-1", fresh_codes(600, "LANE"))
        buy(ledger, "first", "LANE-1")  # crosses the low-stock threshold: an alert
        buy(ledger, "second", "LANE-1", quantity=2)
        place(ledger, "unpaid", "LANE-1", quantity=2)  # holds two keys: the recall cancels it
        recalled = ledger.recall_batch(ledger.context("admin"), imported.batch_id, "supplier recall")
        assert (recalled.voided, len(recalled.cancelled_orders)) == (597, 1)
        import_batch(ledger, "LANE-1", fresh_codes(5, "LANE"))
        buy(ledger, "third", "LANE-1")
        relay = Relay(ledger.app, settings, batch_size=100)
        relay.publish_available()
        relay.close()
        head = _log_ids(ledger.app)[-1]
        views = _views(settings, tmp_path / "views-kafka.sqlite")
        dumps = _lanes_equal_a_rebuild(ledger.app, settings, views, head, tmp_path)
        states = Counter(row["state"] for row in dumps["facts"]["keys"])
        assert len(dumps["facts"]["keys"]) == 605 and states["voided"] == 597, states
        views.close()
    finally:
        ledger.close()


def test_a_message_over_the_size_limit_holds_the_relay_just_before_it_and_says_which(
    broker: Broker, tmp_path: Path
) -> None:
    """An order of 100 keys lists them (~3.9 KB in `Stock.Reserved`, `Stock.Delivered`, ...); with
    LEDGER_KAFKA_MAX_MESSAGE_BYTES at 2 KiB the relay publishes everything before it, holds there and
    names the position; given room it goes on."""
    settings = kafka_settings(tmp_path, broker.bootstrap, kafka_max_message_bytes=2048)
    ledger = open_ledger(settings)
    try:
        stocked_product(ledger, "BULK-1", 103)
        bought, _ = buy(ledger, "bulk-buyer", "BULK-1", quantity=100)
        buy(ledger, "after-the-bulk-order", "BULK-1")
        app = ledger.app
        events = {n.id: app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 10**7)}
        too_big, kind = next((position, type(e).__qualname__) for position, e in events.items()
                             if len(getattr(e, "key_ids", ())) == 100)
        assert len(json.dumps([str(k) for k in bought.key_ids])) > 2048
        relay = Relay(app, settings)
        stop = threading.Event()
        thread = threading.Thread(target=relay.run_forever, args=(stop,))
        thread.start()
        try:
            _wait(lambda: (relay_status(app, settings).error or "").find(f"position {too_big} ") >= 0,  # type: ignore[union-attr]
                  30, "the relay to name the position it cannot publish")
        finally:
            stop.set()
            thread.join(30)
        held = relay_status(app, settings)
        assert held is not None and held.position == too_big - 1 and held.lag_events > 0
        assert held.error and f"ledger.{kind}," in held.error and "LEDGER_KAFKA_MAX_MESSAGE_BYTES" in held.error
        published = sorted({_position(r) for r in read_all(broker.bootstrap, events_topic(settings))})
        assert published == [p for p in _log_ids(app) if p < too_big]  # everything before it, nothing after

        roomy = settings.model_copy(update={"kafka_max_message_bytes": 64 * 1024})
        relay = Relay(app, roomy)
        relay.publish_available()
        relay.close()
        done = relay_status(app, roomy)
        assert done is not None and (done.position, done.error) == (_log_ids(app)[-1], None)
        log_ids = _log_ids(app)
    finally:
        ledger.close()
    assert sorted({_position(r) for r in read_all(broker.bootstrap, events_topic(settings))}) == log_ids


@pytest.mark.postgres
def test_on_postgresql_relay_position_and_read_models_from_kafka_equal_a_rebuild(
    broker: Broker, pg_url: str, tmp_path: Path
) -> None:
    from tests.conftest import FakeClock
    from tests.e2e.test_runner_crash import make_history

    settings = kafka_settings(tmp_path, broker.bootstrap).model_copy(update={"database_url": pg_url})
    clock = FakeClock()
    ledger = open_ledger(settings, clock=clock)
    try:
        assert relay_status(ledger.app, settings).position == 0  # type: ignore[union-attr]  # no relay ran yet
        make_history(ledger, clock, purchases=20)
        relay = Relay(ledger.app, settings)
        relay.publish_available()
        relay.close()
        head = _log_ids(ledger.app)[-1]
        status = relay_status(ledger.app, settings)
        assert status is not None and (status.position, status.lag_events, status.error) == (head, 0, None)

        views = ViewStore(settings)  # the read models beside the events, on PostgreSQL
        _lanes_equal_a_rebuild(ledger.app, settings, views, head, tmp_path)
        views.close()
    finally:
        ledger.close()
