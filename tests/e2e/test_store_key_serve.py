"""A `ledger serve` pointed at a populated store with a key that does not open it, or with none,
exits at once naming LEDGER_CIPHER_KEY or the key file, and writes nothing: not a row in the
store, not a new key in its folder (issue 21: a wrong key used to split the store silently)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.config import Settings
from ledger.service.ledger import open_ledger
from ledger.storage.store_key import new_key
from tests.conftest import TEST_CIPHER_KEY
from tests.store_urls import store_url

__all__ = ["store_url"]  # the fixture


def _seed(url: str, folder: Path) -> None:
    ledger = open_ledger(Settings(database_url=url, data_dir=folder, cipher_key=TEST_CIPHER_KEY))
    try:
        ledger.define_product(ledger.context(), sku="VID-1M", name="Video", face_value="10.00", currency="USD",
                              price="9.00")
    finally:
        ledger.close()


def _contents(url: str) -> dict[str, Any]:
    """Every table of the store and its rows, as an attacker with SQL would compare them."""
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            names = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables "
                                                "WHERE table_schema = 'public' ORDER BY table_name")]
            return {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall() for n in names}
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall() for n in names}


def _serve(url: str, folder: Path, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=url, LEDGER_DATA_DIR=str(folder), LEDGER_API_TOKENS=f"admin={new_key()}")
    if key is not None:
        env["LEDGER_CIPHER_KEY"] = key
    return subprocess.run([sys.executable, "-c", "from shell.cli import main; main()", "serve", "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("key", ["another", "none"])
def test_serve_refuses_a_key_that_does_not_open_the_store(store_url: str, tmp_path: Path, key: str) -> None:
    _seed(store_url, tmp_path / "seeded-from")
    before = _contents(store_url)
    elsewhere = tmp_path / "served-from"  # a folder without the store's cipher.key
    served = _serve(store_url, elsewhere, new_key() if key == "another" else None)
    assert served.returncode == 1, served.stdout + served.stderr
    if key == "another":
        assert "LEDGER_CIPHER_KEY does not open this store" in served.stderr
    else:
        assert "no cipher key was given: set LEDGER_CIPHER_KEY" in served.stderr
        assert str((elsewhere / "cipher.key").resolve()) in served.stderr
    assert _contents(store_url) == before
    assert not (elsewhere / "cipher.key").exists()


def test_serve_names_the_key_file_that_does_not_open_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store' / 'ledger.sqlite'}"
    _seed(url, tmp_path / "seeded-from")
    wrong = tmp_path / "served-from" / "cipher.key"
    wrong.parent.mkdir()
    wrong.write_text(new_key() + "\n")
    before = _contents(url)
    served = _serve(url, wrong.parent, None)
    assert served.returncode == 1, served.stdout + served.stderr
    assert f"{wrong.resolve()} does not open this store" in served.stderr
    assert _contents(url) == before
