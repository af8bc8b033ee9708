"""Key imports are all or nothing, codes are stored encrypted, and batch recalls void what is unsold."""

from __future__ import annotations

import hashlib
from pathlib import Path
from uuid import uuid4

import pytest

from ledger.domain.errors import (
    BatchAlreadyRecalled,
    ImportRejected,
    LineError,
    ProductRetired,
    UnknownBatch,
    UnknownProduct,
)
from ledger.domain.supply import Key
from ledger.service.ledger import Ledger
from ledger.supplier_import.files import parse_codes
from tests.helpers import (
    all_events,
    buy,
    delivered_codes,
    fresh_codes,
    head,
    import_batch,
    pay,
    place,
    stocked_product,
)


def _import(ledger: Ledger, codes: list[tuple[int, str]], **kwargs: object) -> object:
    return ledger.import_keys(ledger.context("admin"), sku="GAME-1", supplier="acme", unit_cost="5.00", codes=codes,
                              **kwargs)  # type: ignore[arg-type]


# ---- all-or-nothing import ----


def test_import_reports_every_bad_line_and_imports_nothing(ledger: Ledger) -> None:
    [stored] = stocked_product(ledger, keys=1)
    before = head(ledger)
    codes = [
        (1, "GOOD-AAAA-0001"),
        (2, "GOOD-AAAA-0002"),
        (3, "GOOD-AAAA-0001"),  # duplicate of line 1
        (4, ""),  # empty
        (5, "has a space"),  # malformed
        (6, stored),  # already in the store
        (7, "X" * 257),  # too long
        (8, "GOOD-AAAA-0003"),
    ]
    with pytest.raises(ImportRejected) as caught:
        _import(ledger, codes)
    errors = caught.value.errors
    assert [e.line for e in errors] == [3, 4, 5, 6, 7]
    assert all(isinstance(e, LineError) for e in errors)
    assert errors[0].reason == "duplicate of line 1"
    assert errors[1].reason == "empty line"
    assert "printable ASCII" in errors[2].reason
    assert errors[3].reason == "code already imported"
    assert "longer than 256" in errors[4].reason
    assert caught.value.code == "import-rejected"
    assert "nothing imported, 5 bad line(s)" in caught.value.message
    assert head(ledger) == before
    assert len(ledger.reads.stock("GAME-1").available) == 1
    # The good lines really were not stored: importing them alone now works.
    imported = _import(ledger, [(1, "GOOD-AAAA-0001"), (2, "GOOD-AAAA-0002"), (3, "GOOD-AAAA-0003")])
    assert len(imported.key_ids) == 3  # type: ignore[attr-defined]
    assert len(ledger.reads.stock("GAME-1").available) == 4


def test_parser_line_errors_reject_the_whole_import(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    codes, line_errors = parse_codes("code,serial\nAAAA-1111,1\nBBBB-2222\nCCCC-3333,3\n")
    assert line_errors == [LineError(3, "expected 2 columns, found 1")]
    with pytest.raises(ImportRejected) as caught:
        _import(ledger, codes, line_errors=line_errors)
    assert caught.value.errors == [LineError(3, "expected 2 columns, found 1")]
    assert head(ledger) == before


def test_an_empty_import_is_rejected(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    with pytest.raises(ImportRejected) as caught:
        _import(ledger, [])
    assert caught.value.errors == [LineError(1, "no codes given")]
    assert head(ledger) == before


def test_import_into_unknown_or_retired_product_is_refused(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    with pytest.raises(UnknownProduct):
        ledger.import_keys(ledger.context("admin"), sku="NOPE", supplier="acme", unit_cost="1.00",
                           codes=[(1, "NEW-CODE-0001")])
    ledger.retire_product(ledger.context("admin"), "GAME-1")
    before = head(ledger)
    with pytest.raises(ProductRetired):
        _import(ledger, [(1, "NEW-CODE-0001")])
    assert head(ledger) == before


def test_a_code_is_unique_across_products(ledger: Ledger) -> None:
    [code] = stocked_product(ledger, sku="GAME-1", keys=1)
    stocked_product(ledger, sku="GAME-2", keys=1)
    before = head(ledger)
    with pytest.raises(ImportRejected) as caught:
        ledger.import_keys(ledger.context("admin"), sku="GAME-2", supplier="acme", unit_cost="1.00",
                           codes=[(1, code)])
    assert caught.value.errors == [LineError(1, "code already imported")]
    assert head(ledger) == before


# ---- key files ----


def test_parse_plain_file_one_code_per_line() -> None:
    codes, errors = parse_codes("AAAA-1111\n  BBBB-2222  \n\nbad code\nCCCC-3333\n")
    assert codes == [(1, "AAAA-1111"), (2, "BBBB-2222"), (5, "CCCC-3333")]
    assert errors == [LineError(3, "empty line"), LineError(4, "code must be printable ASCII without spaces")]


def test_parse_plain_file_with_crlf_line_ends() -> None:
    codes, errors = parse_codes("AAAA-1111\r\nBBBB-2222\r\n")
    assert codes == [(1, "AAAA-1111"), (2, "BBBB-2222")]
    assert errors == []


def test_parse_csv_with_a_code_column() -> None:
    text = "serial,Code,pin\n1,AAAA-1111,0000\n2,BBBB-2222,1111\n3,,2222\n4,CCCC-3333\n"
    codes, errors = parse_codes(text)
    assert codes == [(2, "AAAA-1111"), (3, "BBBB-2222")]
    assert errors == [LineError(4, "empty line"), LineError(5, "expected 3 columns, found 2")]


def test_parse_csv_with_only_a_code_header() -> None:
    codes, errors = parse_codes("code\nAAAA-1111\nBBBB-2222\n")
    assert codes == [(2, "AAAA-1111"), (3, "BBBB-2222")]
    assert errors == []


def test_parse_csv_without_a_code_column() -> None:
    codes, errors = parse_codes("serial,pin\n1,2\n")
    assert codes == []
    assert errors == [LineError(1, "a CSV file needs a 'code' column in its header")]


@pytest.mark.parametrize("text", ["", "code\n", "code,serial\n"])
def test_parse_empty_file(text: str) -> None:
    codes, errors = parse_codes(text)
    assert codes == []
    assert errors == [LineError(1, "the file holds no codes")]


# ---- codes at rest ----


def test_codes_are_not_stored_in_plain_text(ledger: Ledger, tmp_path: Path) -> None:
    codes = stocked_product(ledger, keys=3)
    placed, _ = buy(ledger)
    [sold] = delivered_codes(ledger, placed.order_id)
    ledger.redeem(ledger.context("alice"), code=sold, account_id="acct-1")
    assert sold in codes

    files = sorted(tmp_path.glob("ledger.sqlite*"))
    assert files, "the SQLite store was not found"
    raw = b"".join(f.read_bytes() for f in files)
    assert b"Key.Registered" in raw  # the key events are really in these bytes (topics are plain text)
    for code in codes:
        assert code.encode() not in raw
        assert code.encode("utf-16-le") not in raw
        assert hashlib.sha256(code.encode()).hexdigest().encode() not in raw


def test_codes_appear_in_events_only_as_ciphertext(ledger: Ledger) -> None:
    codes = stocked_product(ledger, keys=2)
    placed, _ = buy(ledger)
    [sold] = delivered_codes(ledger, placed.order_id)
    ledger.redeem(ledger.context("alice"), code=sold, account_id="acct-1")

    sealed_seen = set()
    for event in all_events(ledger):
        for name, value in event.__dict__.items():
            text = repr(value)
            for code in codes:
                assert code not in text, f"{type(event).__qualname__}.{name} holds a code in the clear"
                assert hashlib.sha256(code.encode()).hexdigest() not in text
        if isinstance(event, Key.Registered):
            assert event.sealed_code not in codes
            assert ledger.vault.unseal(event.sealed_code) in codes
            assert event.code_hmac == ledger.vault.fingerprint(ledger.vault.unseal(event.sealed_code))
            sealed_seen.add(ledger.vault.unseal(event.sealed_code))
    assert sealed_seen == set(codes)
    # Sealing is randomised: the same code never produces the same ciphertext twice.
    assert ledger.vault.seal(codes[0]) != ledger.vault.seal(codes[0])


def test_history_never_shows_sealed_codes(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    placed, paid = buy(ledger)
    for entry in ledger.reads.history(str(paid.key_ids[0])) + ledger.reads.history(str(placed.order_id)):
        assert "sealed_code" not in entry.data and "code_hmac" not in entry.data


# ---- recalls ----


def test_recall_voids_available_keys_cancels_holders_and_leaves_delivered_keys(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1, prefix="OTHER")  # one key from an earlier batch, sold first
    recalled_codes = fresh_codes(3, "RECALL")
    recalled = import_batch(ledger, "GAME-1", recalled_codes, unit_cost="5.00")
    kept = import_batch(ledger, "GAME-1", fresh_codes(2, "KEEP"), unit_cost="5.00")

    sold, sold_paid = buy(ledger, customer="dora", quantity=2)  # the earlier key and one recalled key
    assert recalled.key_ids[0] in sold_paid.key_ids
    mixed = place(ledger, customer="alice", quantity=3)  # two recalled keys and one kept key
    assert mixed.key_ids == [*recalled.key_ids[1:], kept.key_ids[0]]
    untouched = place(ledger, customer="bob", quantity=1)  # a kept key only
    assert untouched.key_ids == [kept.key_ids[1]]
    assert ledger.reads.stock("GAME-1").available == []

    result = ledger.recall_batch(ledger.context("admin"), recalled.batch_id, reason="supplier leak")
    assert result.cancelled_orders == [mixed.order_id]
    assert result.voided == 2

    stock = ledger.reads.stock("GAME-1")
    assert stock.available == [kept.key_ids[0]]  # the other key of the cancelled order is back
    assert stock.voided == 2
    assert ledger.reads.order(mixed.order_id).status == "cancelled"
    assert ledger.reads.order(untouched.order_id).status == "reserved"
    assert ledger.reads.order(sold.order_id).status == "delivered"
    for key_id in recalled.key_ids[1:]:
        assert ledger.app.repository.get(key_id).status == "voided"
    assert ledger.app.repository.get(recalled.key_ids[0]).status == "delivered"
    assert ledger.reads.customer("alice").unpaid == 0  # type: ignore[union-attr]

    # The delivered recalled key still works; the voided ones never sell again.
    delivered = delivered_codes(ledger, sold.order_id)
    assert recalled_codes[0] in delivered
    ledger.redeem(ledger.context("dora"), code=recalled_codes[0], account_id="acct-d")
    again = place(ledger, customer="carol")
    assert again.key_ids == [kept.key_ids[0]]
    # A late payment on the cancelled order goes straight back.
    assert pay(ledger, mixed, "late").outcome == "refunded"


def test_a_batch_is_recalled_once(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    batch = import_batch(ledger, "GAME-1", fresh_codes(2, "TWICE"))
    ledger.recall_batch(ledger.context("admin"), batch.batch_id, reason="leak")
    before = head(ledger)
    with pytest.raises(BatchAlreadyRecalled) as caught:
        ledger.recall_batch(ledger.context("admin"), batch.batch_id, reason="leak")
    assert caught.value.code == "batch-already-recalled"
    assert head(ledger) == before


def test_recall_of_an_unknown_batch(ledger: Ledger) -> None:
    stocked_product(ledger, keys=1)
    before = head(ledger)
    with pytest.raises(UnknownBatch):
        ledger.recall_batch(ledger.context("admin"), uuid4(), reason="leak")
    assert head(ledger) == before
