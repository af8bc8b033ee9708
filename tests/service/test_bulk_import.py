"""Supplier-scale imports: any number of codes in one transaction, all or nothing, on both stores."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError
from typer.testing import CliRunner

from ledger.domain.catalog import Product
from ledger.domain.errors import ImportRejected, LineError
from ledger.domain.ids import key_id, product_id
from ledger.domain.supply import Batch, Key
from ledger.results import Imported
from ledger.service.ledger import Ledger
from ledger.supplier_import.bulk import append_new_events, stored_ids
from ledger.supplier_import.importer import key_registrations, stored_registrations
from shell.cli import app
from tests.conftest import TEST_CIPHER_KEY, LedgerFactory
from tests.helpers import buy, delivered_codes, fresh_codes, head, stocked_product


def _import(ledger: Ledger, numbered: list[tuple[int, str]]) -> Imported:
    return ledger.import_keys(ledger.context("admin"), sku="GAME-1", supplier="acme", unit_cost="0.50",
                              codes=numbered)


def _all_or_nothing(ledger: Ledger, n: int, bad_line: int) -> None:
    """One bad line: it alone is reported and nothing is written; then the good file goes in whole."""
    stocked = stocked_product(ledger, keys=1)
    before, stock_before = head(ledger), ledger.reads.stock("GAME-1").available
    codes = fresh_codes(n, "BULK")
    numbered = list(enumerate(codes, start=1))

    numbered[bad_line - 1] = (bad_line, "not a code")
    with pytest.raises(ImportRejected) as caught:
        _import(ledger, numbered)
    assert caught.value.errors == [LineError(bad_line, "code must be printable ASCII without spaces")]
    assert head(ledger) == before  # not one event

    numbered[bad_line - 1] = (bad_line, codes[bad_line - 1])
    imported = _import(ledger, numbered)
    assert imported.position == head(ledger) == before + n + 2  # the stock, the batch and n keys
    assert len(set(imported.key_ids)) == n
    assert imported.key_ids[bad_line - 1] == key_id(ledger.vault.fingerprint(codes[bad_line - 1]))  # file order
    assert ledger.reads.stock("GAME-1").available == [*stock_before, *imported.key_ids]
    # The stock serves orders (FIFO: the older key, then the file's first), codes decrypted.
    placed, _ = buy(ledger, "alice", quantity=2)
    assert delivered_codes(ledger, placed.order_id) == [stocked[0], codes[0]]


def test_100k_codes_import_on_postgres_all_or_nothing(pg_ledger: Ledger) -> None:
    _all_or_nothing(pg_ledger, 100_000, bad_line=73_421)


def test_codes_import_on_sqlite_all_or_nothing(ledger: Ledger) -> None:
    _all_or_nothing(ledger, 5_000, bad_line=4_999)


@pytest.fixture(params=["sqlite", "postgres"])
def either_ledger(make_ledger: LedgerFactory, request: pytest.FixtureRequest) -> Ledger:
    return make_ledger(request.getfixturevalue("pg_url") if request.param == "postgres" else None)


def test_duplicates_in_the_file_and_in_the_store_are_reported_by_line(either_ledger: Ledger) -> None:
    ledger = either_ledger
    stored = stocked_product(ledger, keys=2)
    before = head(ledger)
    new = fresh_codes(3, "DUP")
    numbered = [(1, new[0]), (2, stored[1]), (3, new[1]), (4, new[0]), (5, new[2]), (6, stored[0]), (7, new[1])]
    with pytest.raises(ImportRejected) as caught:
        _import(ledger, numbered)
    assert caught.value.errors == [
        LineError(2, "code already imported"),
        LineError(4, "duplicate of line 1"),
        LineError(6, "code already imported"),
        LineError(7, "duplicate of line 3"),
    ]
    assert head(ledger) == before


def test_the_cli_reports_file_and_line_and_writes_nothing(tmp_path: Path, make_ledger: LedgerFactory) -> None:
    ledger = make_ledger()
    stored = stocked_product(ledger, keys=1)
    before = head(ledger)
    codes = fresh_codes(3, "CLI")
    keyfile = tmp_path / "supplier.txt"
    keyfile.write_bytes(
        f"{codes[0]}\n{stored[0]}\n{codes[1]}\n{codes[0]}\nbad\xffbyte\n{codes[2]}\n".encode("latin-1")
    )
    env = {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}", "LEDGER_DATA_DIR": str(tmp_path),
           "LEDGER_CIPHER_KEY": TEST_CIPHER_KEY}
    args = ["import-keys", "--sku", "GAME-1", "--supplier", "acme", "--unit-cost", "0.50", str(keyfile)]

    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-4:] == [
        f"{keyfile}:2: code already imported",
        f"{keyfile}:4: duplicate of line 1",
        f"{keyfile}:5: code must be printable ASCII without spaces",
        f"error: nothing imported: 3 bad line(s) in {keyfile}",
    ]
    assert not any(code in result.output for code in [*codes, *stored])
    assert head(ledger) == before

    keyfile.write_text("".join(f"{c}\n" for c in codes))
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "imported 3 keys into batch" in result.stdout
    assert "writing keys" in result.stderr  # the progress bars
    assert head(ledger) == before + 5


# ---- the bulk appender itself ----


def _key_events(ledger: Ledger, codes: list[str]) -> Iterator[Key.Registered]:
    product: Product = ledger.app.repository.get(product_id("GAME-1"))
    ids = [key_id(ledger.vault.fingerprint(c)) for c in codes]
    return key_registrations(ledger.context("admin"), ledger.vault, enumerate(codes), ids, batch_id=uuid4(),
                             product=product, supplier="acme", cost=Decimal("0.50"))


def _product(ledger: Ledger) -> None:
    ledger.define_product(ledger.context("admin"), sku="GAME-1", name="Game", face_value="10.00", currency="USD",
                          price="10.00")


def test_an_import_event_is_what_key_register_would_have_written(ledger: Ledger) -> None:
    _product(ledger)
    ctx = ledger.context("admin")
    [code] = fresh_codes(1)
    product: Product = ledger.app.repository.get(product_id("GAME-1"))
    batch_id, fingerprint = uuid4(), ledger.vault.fingerprint(code)
    [built] = key_registrations(ctx, ledger.vault, [(1, code)], [key_id(fingerprint)], batch_id=batch_id,
                                product=product, supplier="acme", cost=Decimal("0.50"))
    [registered] = Key.register(ctx, key_id(fingerprint), batch_id, "GAME-1", "acme", Decimal("0.50"), None,
                                fingerprint, "sealed").collect_events()
    assert built.__dict__ | {"sealed_code": "sealed"} == registered.__dict__
    assert ledger.vault.unseal(built.sealed_code) == code


@pytest.mark.parametrize("platform", [None, "steam"])
def test_stored_registrations_are_the_mappers_bytes(ledger: Ledger, platform: str | None) -> None:
    """An import encodes what its registrations share once: each stored event decrypts to exactly
    the bytes the mapper's transcoder writes for it, and reads back as the same event."""
    ledger.define_product(ledger.context("admin"), sku="GAME-1", name="Game", face_value="10.00", currency="USD",
                          price="10.00", platform=platform)
    codes = fresh_codes(50, "SAME")
    events = list(_key_events(ledger, codes))
    stored = list(stored_registrations(ledger.app, iter(events)))
    mapper = ledger.app.mapper
    assert mapper.cipher is not None
    for event, row in zip(events, stored, strict=True):
        state = dict(vars(event))
        state.pop("originator_id"), state.pop("originator_version")
        assert mapper.cipher.decrypt(row.state) == mapper.transcoder.encode(state)
        assert (row.originator_id, row.originator_version, row.topic) == (
            event.originator_id, 1, "ledger.domain.supply:Key.Registered")
        assert vars(mapper.to_domain_event(row)) == vars(event)
    assert len({row.state for row in stored}) == 50  # each its own nonce
    assert list(stored_registrations(ledger.app, iter([]))) == []


def test_a_failure_mid_stream_or_a_taken_id_at_the_end_writes_nothing(either_ledger: Ledger) -> None:
    ledger = either_ledger
    stored = stocked_product(ledger, keys=1)
    before = head(ledger)
    codes = fresh_codes(2_000, "MID")

    def failing() -> Iterator[DomainEventProtocol[UUID]]:
        for n, event in enumerate(_key_events(ledger, codes)):
            if n == 1_500:
                raise RuntimeError("the supplier file went away")
            yield event

    with pytest.raises(RuntimeError, match="went away"):
        append_new_events(ledger.app, failing())
    # A key that exists already, last in the stream: the (id, version 1) collision rolls all back.
    with pytest.raises(IntegrityError):
        append_new_events(ledger.app, _key_events(ledger, [*codes, stored[0]]))
    assert head(ledger) == before
    assert stored_ids(ledger.app, [key_id(ledger.vault.fingerprint(c)) for c in codes]) == set()

    written: list[int] = []
    last = append_new_events(ledger.app, _key_events(ledger, codes), written.append)
    assert sum(written) == 2_000
    # PostgreSQL's sequence leaves a gap for what rolled back: the log has no holes for all that.
    assert [n.id for n in ledger.app.recorder.select_notifications(before + 1, 10_000)][-1] == last == head(ledger)
    assert len(ledger.app.recorder.select_notifications(before + 1, 10_000)) == 2_000
    assert len(stored_ids(ledger.app, [key_id(ledger.vault.fingerprint(c)) for c in [*codes, "NEVER-SEEN"]])) == 2_000


def test_a_bulk_append_holds_the_log_lock_so_a_concurrent_save_commits_after_it(pg_ledger: Ledger) -> None:
    """Notification order is commit order: a writer that starts during the append gets later ids."""
    _product(pg_ledger)
    codes = fresh_codes(2_000, "LOCK")
    started = threading.Event()
    other: list[int] = []

    def slow() -> Iterator[DomainEventProtocol[UUID]]:
        for n, event in enumerate(_key_events(pg_ledger, codes)):
            if n == 1_000:
                started.set()
                time.sleep(0.5)  # the concurrent save below runs now and must wait for the lock
            yield event

    def concurrent_save() -> None:
        started.wait(10)
        batch = Batch.receive(pg_ledger.context("admin"), uuid4(), "GAME-1", "acme", Decimal("1"), "USD", [])
        other.extend(r.notification.id for r in pg_ledger.app.save(batch))

    thread = threading.Thread(target=concurrent_save)
    thread.start()
    last = append_new_events(pg_ledger.app, slow())
    thread.join(10)
    assert other == [last + 1]


def test_bench_import_prints_both_rates_and_the_ratio(tmp_path: Path) -> None:
    env = {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite'}", "LEDGER_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["bench", "import", "--codes", "300"], env=env)
    assert result.exit_code == 0, result.output
    assert "300 codes, one file, one transaction" in result.stdout
    assert re.search(r"^ledger: [\d,]+ keys/s \(", result.stdout, re.M)
    assert re.search(r"^baseline: [\d,]+ rows/s \(", result.stdout, re.M)
    assert re.search(r"^ratio \d+\.\d+$", result.stdout, re.M)
