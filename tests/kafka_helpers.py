"""Settings for the tests of the Kafka relay and of the read models built from Kafka, with or
without a broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger.config import Settings
from tests.conftest import TEST_CIPHER_KEY
from tests.kafka_broker import new_group


def kafka_settings(path: Path, bootstrap: str = "", **overrides: Any) -> Settings:
    """A SQLite store in `path`, three partitions, a consumer group of its own and short timeouts."""
    return Settings(database_url=f"sqlite:///{path / 'ledger.sqlite'}", data_dir=path, cipher_key=TEST_CIPHER_KEY,
                    kafka_bootstrap=bootstrap, kafka_partitions=3, kafka_group=new_group(),
                    kafka_session_timeout_ms=6000, kafka_delivery_timeout_ms=3000, **overrides)
