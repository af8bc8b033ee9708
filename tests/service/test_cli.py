"""The `ledger` command line: import-keys, history, expire, --help and bench."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.config import Settings
from ledger.service.ledger import open_ledger
from shell.cli import app

CODES = ["VIDX-AAAA-1111", "VIDX-BBBB-2222", "VIDX-CCCC-3333"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in [n for n in __import__("os").environ if n.startswith("LEDGER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return {"LEDGER_DATA_DIR": str(tmp_path / "data")}


def _ledger(data_dir: str):  # type: ignore[no-untyped-def]
    return open_ledger(Settings(data_dir=Path(data_dir)))


def _seed(env: dict[str, str]) -> None:
    ledger = _ledger(env["LEDGER_DATA_DIR"])
    try:
        ledger.define_product(ledger.context(), sku="VID-1M", name="Video", face_value="10.00", currency="USD",
                              price="9.00", per_customer_limit=5)
    finally:
        ledger.close()


def test_help_for_every_command() -> None:
    runner = CliRunner()
    for args in ([], ["demo"], ["import-keys"], ["history"], ["expire"], ["bench"], ["bench", "write"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


def test_import_keys_success(tmp_path: Path, env: dict[str, str]) -> None:
    _seed(env)
    keyfile = tmp_path / "keys.csv"
    keyfile.write_text("code,serial\n" + "".join(f"{c},{i}\n" for i, c in enumerate(CODES)))
    result = CliRunner().invoke(
        app, ["import-keys", "--sku", "VID-1M", "--supplier", "Keystone", "--unit-cost", "6.50", str(keyfile)], env=env
    )
    assert result.exit_code == 0, result.output
    match = re.search(r"imported 3 keys into batch ([0-9a-f-]{36})", result.output)
    assert match, result.output
    assert not any(c in result.output for c in CODES)
    ledger = _ledger(env["LEDGER_DATA_DIR"])
    try:
        assert len(ledger.reads.stock("VID-1M").available) == 3
    finally:
        ledger.close()
    history = CliRunner().invoke(app, ["history", match.group(1)], env=env)
    assert history.exit_code == 0, history.output
    assert "Received" in history.output


def test_import_keys_failure_reports_every_bad_line(tmp_path: Path, env: dict[str, str]) -> None:
    _seed(env)
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
    ledger = _ledger(env["LEDGER_DATA_DIR"])
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
    _seed(env)
    ledger = _ledger(env["LEDGER_DATA_DIR"])
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


def test_project_status_before_any_runner_ran(env: dict[str, str]) -> None:
    """A new deployment asks where its read models stand before it ever ran one: all at 0."""
    _seed(env)
    result = CliRunner().invoke(app, ["project", "status"], env=env)
    assert result.exit_code == 0, result.output
    for name in ("facts", "inventory", "fraud", "journal", "sales", "profit"):
        assert re.search(rf"{name}\s*│\s*1\s*│\s*0\s*│", result.output), result.output  # version 1, position 0


def test_bench_write_tiny(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["bench", "write", "--workers", "2", "--purchases", "10", "--skus", "2"], env=env)
    assert result.exit_code == 0, result.output
    assert re.search(r"^ledger: \d+ purchases/s$", result.output, re.M)
    assert re.search(r"^baseline: \d+ purchases/s$", result.output, re.M)
    assert re.search(r"^ratio \d+\.\d+$", result.output, re.M)
    assert "writer alone" not in result.output


def test_bench_api_tiny_sells_exactly_the_stock(env: dict[str, str]) -> None:
    """Both servers really served: the sale sold the 3 keys and refused the rest, and every
    phase printed its rate and percentiles."""
    result = CliRunner().invoke(
        app, ["bench", "api", "--clients", "3", "--keys", "3", "--attempts", "12", "--reads", "9"], env=env)
    assert result.exit_code == 0, result.output
    assert "outcomes: order 409 out-of-stock: 9, paid delivered: 3" in result.output
    assert len(re.findall(r": (?:12|9) attempts in [\d.]+ s, [\d,]+ attempts/s, p50 [\d.]+ ms, p99 [\d.]+ ms$",
                          result.output, re.M)) == 4, result.output
    assert len(re.findall(r"^  ratio \d+\.\d+ ", result.output, re.M)) == 2
    assert "want 3 sold, 0 available): OK" in result.output


def test_bench_write_alone_reports_the_writers_own_capacity(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        app, ["bench", "write", "--workers", "2", "--purchases", "10", "--skus", "2", "--alone"], env=env)
    assert result.exit_code == 0, result.output
    assert re.search(r"^ledger: \d+ purchases/s$", result.output, re.M)
    assert re.search(r"^writer alone: \d+ purchases/s, [\d,]+ us of this process's CPU per purchase$",
                     result.output, re.M)


def test_serve_demo_names_the_web_ui(capsys: pytest.CaptureFixture[str]) -> None:
    from shell.cli.api import _print_demo_tokens

    _print_demo_tokens({"storefront": "t0ken"}, "0.0.0.0", 8123)
    assert "web UI: http://127.0.0.1:8123/ui/" in capsys.readouterr().out


_STOP_WHILE_WAITING = """
import os, signal, sys
from shell.cli.common import stop_on_signals

stop = stop_on_signals()
# The moment a long-running command is in stop.wait() holding the event's lock: the signal's
# handler runs right here, in this thread, while the lock is held.
with stop._cond:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):  # bytecodes, for the handler to run before the lock is let go
        pass
sys.exit(0 if stop.wait(5) else 3)
"""


def test_sigterm_while_the_command_waits_on_its_stop_event_stops_it() -> None:
    """SIGTERM arriving while the main thread holds the stop event's lock (inside `stop.wait`,
    which a polling command calls 50 times a second) stops the command; setting the event from
    the handler itself waited for that lock forever, and the process never exited."""
    done = subprocess.run([sys.executable, "-c", _STOP_WHILE_WAITING], timeout=30, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_bench_replay_tiny_prints_every_rate_and_names_what_it_rebuilt(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["bench", "replay", "--events", "400", "--lag-seconds", "0"], env=env)
    assert result.exit_code == 0, result.output
    for line in (r"read models: \d+ events/s", r"raw read: \d+ events/s",
                 r"read and decode, no read model: \d+ events/s \(\d+\.\d+ of the raw read\)", r"ratio \d+\.\d+"):
        assert re.search(f"^{line}$", result.output, re.M), (line, result.output)
    some = CliRunner().invoke(app, ["bench", "replay", "--events", "400", "--read-models", "journal,facts"], env=env)
    assert some.exit_code == 0, some.output
    assert re.search(r"^read models \(journal, facts\): \d+ events/s$", some.output, re.M), some.output
    assert "lag under" not in some.output


def test_bench_replay_refuses_an_unknown_read_model_before_seeding(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["bench", "replay", "--read-models", "facts,ledgers"], env=env)
    assert result.exit_code == 1
    assert "--read-models: unknown ledgers; known: facts, inventory, fraud, journal, sales, profit" in result.output
    assert "store:" not in result.output
