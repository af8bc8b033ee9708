"""The relay and a consumer over TLS, against a real broker (Tansu) that is reachable only through
a TLS endpoint whose certificate a CA of the test's own signed: with LEDGER_KAFKA_SECURITY_PROTOCOL=SSL
and LEDGER_KAFKA_SSL_CAFILE every event arrives; a client that does not trust that CA gets nothing."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ledger.application import build_app
from ledger.service.ledger import open_ledger
from projections.kafka.connection import connection
from projections.kafka.relay import Relay, events_topic
from tests.helpers import buy, stocked_product
from tests.kafka_broker import Broker, _free_port, running
from tests.kafka_helpers import kafka_settings


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
                 ca: bool) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 it signed: (ca.pem, server.pem, server.key)."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("ledger test CA", ca_key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ledger test CA")]),
                      ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, ca.subject, ca_key, ca=False)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


class TlsFront:
    """A TLS endpoint on `port` that forwards each connection to the broker's plaintext port."""

    def __init__(self, port: int, upstream: int, cert: Path, key: Path) -> None:
        self.port, self.upstream = port, upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None

    def start(self) -> None:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self.context), self.loop).result(10)

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError, ssl.SSLError):
            writer.close()


class TlsBroker(Broker):
    """Tansu listening in plaintext on a port of its own, advertising the TLS front's port."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.plain_port, self.port = self.port, _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.ca, cert, key = make_pki(folder)
        self.front = TlsFront(self.port, self.plain_port, cert, key)

    def start(self) -> None:
        import os
        import subprocess

        env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "broker", "--listener-url", f"tcp://127.0.0.1:{self.plain_port}",
                 "--advertised-listener-url", f"tcp://{self.bootstrap}"], stdout=log, stderr=subprocess.STDOUT, env=env)
        self.front.start()

    def stop(self) -> None:
        self.front.stop()
        super().stop()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    with running(TlsBroker(tmp_path)) as broker:
        yield broker


def test_the_relay_and_a_consumer_speak_tls_to_a_broker_that_only_speaks_tls(tls_broker: TlsBroker,
                                                                              tmp_path: Path) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    settings = kafka_settings(tmp_path, tls_broker.bootstrap, kafka_security_protocol="SSL",
                              kafka_ssl_cafile=tls_broker.ca)
    ledger = open_ledger(settings)
    try:
        stocked_product(ledger, "TLS-1", 3)
        buy(ledger, "tls-customer", "TLS-1")
        head = ledger.app.recorder.max_notification_id() or 0
    finally:
        ledger.close()
    app, _ = build_app(settings)
    relay = Relay(app, settings, batch_size=100)
    try:
        relay.connect()
        relay.publish_available()
        assert relay.position == head
    finally:
        relay.close()
        app.close()

    consumer = KafkaConsumer(**connection(settings), enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    try:
        partitions = [TopicPartition(events_topic(settings), p) for p in consumer.partitions_for_topic(
            events_topic(settings)) or ()]
        consumer.assign(partitions)
        assert len(list(consumer)) == head
    finally:
        consumer.close()

    untrusting = settings.model_copy(update={"kafka_ssl_cafile": None})  # the system's CAs only
    with pytest.raises(KafkaError):
        KafkaConsumer(**connection(untrusting), request_timeout_ms=3000, api_version_auto_timeout_ms=3000)
