"""The `ledger` command line run in process (typer's `CliRunner`): an environment of its own for
each test, and the store that environment points at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledger.config import Settings
from ledger.service.ledger import Ledger, open_ledger


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No LEDGER_ variable from outside; the store in `tmp_path/data`, SQLite by default."""
    for name in [n for n in os.environ if n.startswith("LEDGER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return {"LEDGER_DATA_DIR": str(tmp_path / "data")}


def open_store(data_dir: str) -> Ledger:
    """The ledger the CLI opens with that data directory and no other setting."""
    return open_ledger(Settings(data_dir=Path(data_dir)))


def seed(env: dict[str, str]) -> None:
    """One product, VID-1M (USD, 9.00, at most 5 per customer), in the store `env` points at."""
    ledger = open_store(env["LEDGER_DATA_DIR"])
    try:
        ledger.define_product(ledger.context(), sku="VID-1M", name="Video", face_value="10.00", currency="USD",
                              price="9.00", per_customer_limit=5)
    finally:
        ledger.close()
