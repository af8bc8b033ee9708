"""The `ledger` commands that work on the store: import-keys, history and expire."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from shell.cli import app
from tests.cli_helpers import env, open_store, seed

__all__ = ["env"]  # the fixture

CODES = ["VIDX-AAAA-1111", "VIDX-BBBB-2222", "VIDX-CCCC-3333"]



def test_import_keys_success(tmp_path: Path, env: dict[str, str]) -> None:
    seed(env)
    keyfile = tmp_path / "keys.csv"
    keyfile.write_text("code,serial\n" + "".join(f"{c},{i}\n" for i, c in enumerate(CODES)))
    result = CliRunner().invoke(
        app, ["import-keys", "--sku", "VID-1M", "--supplier", "Keystone", "--unit-cost", "6.50", str(keyfile)], env=env
    )
    assert result.exit_code == 0, result.output
    match = re.search(r"imported 3 keys into batch ([0-9a-f-]{36})", result.output)
    assert match, result.output
    assert not any(c in result.output for c in CODES)
    ledger = open_store(env["LEDGER_DATA_DIR"])
    try:
        assert len(ledger.reads.stock("VID-1M").available) == 3
    finally:
        ledger.close()
    history = CliRunner().invoke(app, ["history", match.group(1)], env=env)
    assert history.exit_code == 0, history.output
    assert "Received" in history.output


def test_import_keys_failure_reports_every_bad_line(tmp_path: Path, env: dict[str, str]) -> None:
    seed(env)
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text(f"{CODES[0]}\nnot a code\n{CODES[1]}\n{CODES[0]}\n{'x' * 300}\n")
    result = CliRunner().invoke(
        app, ["import-keys", "--sku", "VID-1M", "--supplier", "Keystone", "--unit-cost", "6.50", str(keyfile)], env=env
    )
    assert result.exit_code == 1
    assert f"{keyfile}:2: code must be printable ASCII" in result.stderr
    assert f"{keyfile}:4: duplicate of line 1" in result.stderr
    assert f"{keyfile}:5: code longer than" in result.stderr
    assert "error: nothing imported" in result.stderr
    assert "Traceback" not in result.output
    assert not any(c in result.output for c in CODES)
    ledger = open_store(env["LEDGER_DATA_DIR"])
    try:
        assert ledger.reads.stock("VID-1M").available == []
    finally:
        ledger.close()


def test_domain_error_prints_error_and_exits_1(tmp_path: Path, env: dict[str, str]) -> None:
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text(CODES[0] + "\n")
    result = CliRunner().invoke(
        app, ["import-keys", "--sku", "NOPE", "--supplier", "S", "--unit-cost", "1", str(keyfile)], env=env
    )
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("error: no product NOPE")
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_history_of_order_and_customer_never_shows_codes(tmp_path: Path, env: dict[str, str]) -> None:
    seed(env)
    ledger = open_store(env["LEDGER_DATA_DIR"])
    try:
        ctx = ledger.context()
        ledger.import_keys(ctx, sku="VID-1M", supplier="Keystone", unit_cost="6.50",
                           codes=list(enumerate(CODES, start=1)))
        placed = ledger.place_order(ctx, customer_id="alice", sku="VID-1M", quantity=2)
        ledger.capture_payment(ctx, placed.order_id, payment_reference="p-1", amount="18.00", provider="card")
        delivered = [k.code for k in ledger.reads.order_keys(placed.order_id)]
        ledger.redeem(ctx, code=delivered[0], account_id="alice")
    finally:
        ledger.close()
    assert len(delivered) == 2
    for ident in (str(placed.order_id), "alice"):
        result = CliRunner().invoke(app, ["history", ident], env=env)
        assert result.exit_code == 0, result.output
        for event in ("Placed", "KeysReserved", "PaymentCaptured", "KeysDelivered"):
            assert event in result.output
        assert not any(c in result.output for c in CODES)
    assert "ReservationHeld" in CliRunner().invoke(app, ["history", "alice"], env=env).output


def test_history_of_unknown_id(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["history", "nobody"], env=env)
    assert result.exit_code == 1
    assert "error: nothing recorded for nobody" in result.stderr


def test_expire(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["expire"], env=env)
    assert result.exit_code == 0, result.output
    assert "expired 0 order(s)" in result.output
