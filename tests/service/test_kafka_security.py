"""Kafka over TLS and SASL: the settings reach every client as kafka-python's own options, the
password never shows, and settings that cannot work stop each Kafka command at start, naming the
variable, before the store is opened."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.config import Settings
from projections.kafka.connection import connection
from projections.kafka.relay import producer_config
from tests.conftest import TEST_CIPHER_KEY

PASSWORD = "kafka-pw-9Xq2-never-shown"


def test_sasl_over_tls_reaches_the_clients(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = Settings(kafka_bootstrap="kafka-1:9093", kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=ca,
                        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="ledger-relay",
                        kafka_sasl_password=PASSWORD)  # type: ignore[arg-type]
    assert connection(settings) == {
        "bootstrap_servers": "kafka-1:9093", "security_protocol": "SASL_SSL", "ssl_check_hostname": True,
        "ssl_cafile": str(ca), "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "ledger-relay",
        "sasl_plain_password": PASSWORD,
    }
    assert producer_config(settings).items() >= connection(settings).items()
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())


def test_plaintext_stays_the_default() -> None:
    assert connection(Settings(kafka_bootstrap="k:9092")) == {"bootstrap_servers": "k:9092",
                                                             "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(("settings", "named"), [
    ({"LEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "LEDGER_KAFKA_SASL_MECHANISM"),
    ({"LEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LEDGER_KAFKA_SASL_MECHANISM": "PLAIN",
      "LEDGER_KAFKA_SASL_USERNAME": "u"}, "LEDGER_KAFKA_SASL_PASSWORD"),
    ({"LEDGER_KAFKA_SASL_MECHANISM": "PLAIN", "LEDGER_KAFKA_SASL_USERNAME": "u",
      "LEDGER_KAFKA_SASL_PASSWORD": PASSWORD}, "LEDGER_KAFKA_SECURITY_PROTOCOL"),
    ({"LEDGER_KAFKA_SECURITY_PROTOCOL": "SSL", "LEDGER_KAFKA_SSL_CAFILE": "/no/such/ca.pem"},
     "LEDGER_KAFKA_SSL_CAFILE"),
    ({"LEDGER_KAFKA_SSL_CAFILE": "/etc/hostname"}, "LEDGER_KAFKA_SSL_CAFILE"),
    ({"LEDGER_KAFKA_SECURITY_PROTOCOL": "SSL", "LEDGER_KAFKA_SSL_CERTFILE": "/etc/hostname"},
     "LEDGER_KAFKA_SSL_KEYFILE"),
    ({"LEDGER_KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
])
def test_settings_that_cannot_work_stop_every_kafka_command_first(tmp_path: Path, settings: dict[str, str],
                                                                   named: str) -> None:
    from shell.cli import app as cli

    env = {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}", "LEDGER_DATA_DIR": str(tmp_path),
           "LEDGER_CIPHER_KEY": TEST_CIPHER_KEY, "LEDGER_KAFKA_BOOTSTRAP": "127.0.0.1:1", **settings}
    for args in (["relay"], ["project", "run", "--from-kafka"], ["serve", "--relay"]):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 1, (args, result.output)
        assert named in result.output, (args, result.output)
        assert PASSWORD not in result.output
    assert not (tmp_path / "ledger.sqlite").exists()
