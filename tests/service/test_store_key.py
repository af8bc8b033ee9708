"""The store's key and the cipher key that opens it (`ledger.storage.store_key`): a store from
before key checks is adopted by the key its events were sealed with and no other; `ledger keys
rotate` seals the store under a new key, and the data reads back under it (PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from ledger import commands as c
from ledger.application import build_app
from ledger.config import Settings
from ledger.domain.answers import Answer
from ledger.domain.errors import ImportRejected
from ledger.service.ledger import Ledger, open_ledger
from ledger.storage.store_key import StoreKeyError, new_key, unlock_store
from ledger.vault import CodeVault
from ledger.writer.outcomes import Idempotency, IdempotencyKeyReused
from shell.cli import app as cli
from tests.conftest import TEST_CIPHER_KEY
from tests.store_urls import store_url

__all__ = ["store_url"]  # the fixture


def _settings(url: str, folder: Path, key: str) -> Settings:
    return Settings(database_url=url, data_dir=folder, cipher_key=key)


def _tables(url: str) -> set[str]:
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables "
                                               "WHERE table_schema = 'public'")}
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _define(ledger: Ledger) -> None:
    ledger.define_product(ledger.context(), sku="VID-1M", name="Video", face_value="10.00", currency="USD",
                          price="9.00")


def test_a_store_from_before_key_checks_opens_with_its_own_key_only(store_url: str, tmp_path: Path) -> None:
    old_key = new_key()
    settings = _settings(store_url, tmp_path, old_key)
    app, _ = build_app(settings, old_key)  # as every process opened a store before: the cipher key itself
    older = Ledger(app, settings, CodeVault(old_key))
    _define(older)
    older.import_keys(older.context(), sku="VID-1M", supplier="Keystone", unit_cost="6.50",
                      codes=[(1, "VIDX-AAAA-1111")], line_errors=[])
    older.close()
    assert "ledger_store_key" not in _tables(store_url)

    with pytest.raises(StoreKeyError, match="LEDGER_CIPHER_KEY does not open this store: its events were sealed"):
        open_ledger(_settings(store_url, tmp_path, new_key()))
    assert "ledger_store_key" not in _tables(store_url)  # a refused key writes nothing

    for _ in range(2):  # adopted on first open, then opened by its record
        ledger = open_ledger(settings)
        try:
            assert len(ledger.reads.stock("VID-1M").available) == 1
            with pytest.raises(ImportRejected):  # the code's keyed id is the one stored before
                ledger.import_keys(ledger.context(), sku="VID-1M", supplier="Keystone", unit_cost="6.50",
                                   codes=[(1, "VIDX-AAAA-1111")], line_errors=[])
        finally:
            ledger.close()
    with pytest.raises(StoreKeyError, match="does not open this store: the store is sealed under key id"):
        open_ledger(_settings(store_url, tmp_path, new_key()))


def test_keys_rotate_reseals_the_store_and_the_data_reads_back(pg_url: str, tmp_path: Path) -> None:
    ledger = open_ledger(_settings(pg_url, tmp_path, TEST_CIPHER_KEY))
    _define(ledger)
    ledger.import_keys(ledger.context(), sku="VID-1M", supplier="Keystone", unit_cost="6.50",
                       codes=[(1, "VIDX-AAAA-1111"), (2, "VIDX-BBBB-2222")], line_errors=[])
    ledger.close()
    env = {"LEDGER_DATABASE_URL": pg_url, "LEDGER_DATA_DIR": str(tmp_path), "LEDGER_CIPHER_KEY": TEST_CIPHER_KEY}
    new_file = tmp_path / "rotated.key"

    wrong = CliRunner().invoke(cli, ["keys", "rotate", "--new-key-file", str(new_file)],
                               env={**env, "LEDGER_CIPHER_KEY": new_key()})
    assert wrong.exit_code == 1 and "does not open this store" in wrong.output
    assert not new_file.exists()

    rotated = CliRunner().invoke(cli, ["keys", "rotate", "--new-key-file", str(new_file)], env=env)
    assert rotated.exit_code == 0, rotated.output
    assert "the old key no longer opens it" in rotated.output
    assert new_file.stat().st_mode & 0o077 == 0
    new = new_file.read_text().strip()

    with pytest.raises(StoreKeyError, match="LEDGER_CIPHER_KEY does not open this store"):
        open_ledger(_settings(pg_url, tmp_path, TEST_CIPHER_KEY))
    checked = CliRunner().invoke(cli, ["keys", "check"], env={**env, "LEDGER_CIPHER_KEY": new})
    assert checked.exit_code == 0 and "LEDGER_CIPHER_KEY opens the store" in checked.output
    ledger = open_ledger(_settings(pg_url, tmp_path, new))
    try:
        assert ledger.reads.product("VID-1M").name == "Video"
        assert len(ledger.reads.stock("VID-1M").available) == 2
        with pytest.raises(ImportRejected):  # the codes' keyed ids are unchanged: nothing imported twice
            ledger.import_keys(ledger.context(), sku="VID-1M", supplier="Keystone", unit_cost="6.50",
                               codes=[(1, "VIDX-BBBB-2222")], line_errors=[])
        ledger.define_product(ledger.context(), sku="VID-3M", name="Video 3", face_value="25.00", currency="USD",
                              price="22.00")  # new events are written under it, and read back
        assert ledger.reads.product("VID-3M").name == "Video 3"
    finally:
        ledger.close()


def test_an_answer_stored_before_fingerprints_were_keyed_is_still_replayed(ledger: Ledger) -> None:
    plain = "0" * 64  # a plain sha256 of a route and body, as answers kept it before
    ledger.app.save(Answer.give(ledger.context(), "storefront:t", "k-1", plain, {"result": None}))
    redeem = c.Redeem(ctx=ledger.context(), code="NOPE-1", account_id="a")
    assert ledger.execute(redeem, Idempotency("storefront:t", "k-1", plain)).replayed
    other = ledger.execute(redeem, Idempotency("storefront:t", "k-1", "1" * 64))
    assert isinstance(other.error, IdempotencyKeyReused)


def test_processes_opening_a_new_store_at_once_share_one_store_key(pg_url: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings = _settings(pg_url, tmp_path, TEST_CIPHER_KEY)
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: unlock_store(settings).store_key, range(8)))
    assert len(keys) == 1 and keys != {TEST_CIPHER_KEY}


def test_a_malformed_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "cipher.key").write_text("not a key\n")
    with pytest.raises(StoreKeyError, match=r"cipher\.key is not a key: base64 of 16, 24 or 32 bytes"):
        unlock_store(Settings(data_dir=tmp_path))
