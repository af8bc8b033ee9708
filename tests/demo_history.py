"""A small, real history made by the demo's own simulation, shared by the point-in-time and
reconciliation tests (session-scoped: read only; a test that writes opens its own store)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.config import Settings
from ledger.service.ledger import Ledger, open_ledger
from shell.demo import SimClock, run_demo
from tests.conftest import TEST_CIPHER_KEY

DEMO_SEED, DEMO_ORDERS = 5, 120  # about 2,100 events, ~2 s to make


@dataclass
class DemoStore:
    url: str
    data_dir: Path
    ledger: Ledger

    @property
    def settings(self) -> Settings:
        return self.ledger.settings


def seeded(url: str, data_dir: Path, orders: int = DEMO_ORDERS, seed: int = DEMO_SEED) -> Ledger:
    """A ledger on `url` holding the demo's history for `seed` and `orders`."""
    clock = SimClock()
    ledger = open_ledger(Settings(database_url=url, data_dir=data_dir, cipher_key=TEST_CIPHER_KEY), clock=clock)
    run_demo(ledger, clock, seed, orders, lambda _: None)
    return ledger


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStore]:
    data_dir = tmp_path_factory.mktemp("demo-history")
    url = f"sqlite:///{data_dir / 'ledger.sqlite'}"
    ledger = seeded(url, data_dir)
    yield DemoStore(url, data_dir, ledger)
    ledger.close()
