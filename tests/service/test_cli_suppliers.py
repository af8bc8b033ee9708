"""`ledger suppliers ...` and `ledger offers ...`: set up direct recharge from the shell, with the
secret never on the command line, and refusals that exit 1 naming the field and write nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ledger.config import Settings
from ledger.domain.ids import settlement_id
from ledger.domain.suppliers import Settlement
from ledger.service.ledger import Ledger, open_ledger
from ledger.storage import event_log
from shell.cli import app

SECRET = "cli-secret-0123456789abcdef"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith("LEDGER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return {"LEDGER_DATA_DIR": str(tmp_path / "data"), "SUP_A_SECRET": SECRET}


def _ledger(env: dict[str, str]) -> Ledger:
    return open_ledger(Settings(data_dir=Path(env["LEDGER_DATA_DIR"])))


def ledger_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, input=stdin)


def _head(env: dict[str, str]) -> int:
    ledger = _ledger(env)
    try:
        return event_log.head(ledger.app)
    finally:
        ledger.close()


def _recharge_product(env: dict[str, str]) -> None:
    ledger = _ledger(env)
    try:
        ledger.define_product(ledger.context(), sku="TOPUP-10", name="Top-up 10", kind="direct_recharge",
                              face_value="10.00", currency="USD", price="10.50")
        ledger.define_product(ledger.context(), sku="GAME-1", name="Game", face_value="10.00", currency="USD",
                              price="9.00")
    finally:
        ledger.close()


SET_A = ["suppliers", "set", "sup-a", "--base-url", "http://127.0.0.1:8701", "--currency", "USD",
         "--secret-env", "SUP_A_SECRET", "--timeout-ms", "2000", "--concurrency", "4"]


def test_a_supplier_is_set_funded_offered_listed_and_settled(env: dict[str, str]) -> None:
    _recharge_product(env)
    done = ledger_cli(env, *SET_A)
    assert done.exit_code == 0, done.output
    assert "supplier sup-a set" in done.output and SECRET not in done.output
    # Without --secret-env a hidden prompt asks for it.
    prompted = ledger_cli(env, "suppliers", "set", "sup-b", "--base-url", "https://b.example/api",
                          "--currency", "USD", stdin=SECRET + "-b\n")
    assert prompted.exit_code == 0, prompted.output
    assert SECRET not in prompted.output
    assert ledger_cli(env, "suppliers", "fund", "sup-a", "500.00", "--reference", "wire-1").exit_code == 0
    offered = ledger_cli(env, "offers", "set", "TOPUP-10", "sup-a", "--product", "a-10", "--cost", "9.60",
                         "--priority", "1")
    assert offered.exit_code == 0, offered.output
    assert ledger_cli(env, "offers", "set", "TOPUP-10", "sup-b", "--product", "b-10", "--cost", "9.80").exit_code == 0
    listed = ledger_cli(env, "suppliers", "list")
    assert listed.exit_code == 0, listed.output
    lines = {line.split("│")[1].strip(): line for line in listed.output.splitlines() if line.count("│") > 5}
    assert "500.00" in lines["sup-a"] and "TOPUP-10 as a-10 at 9.60" in lines["sup-a"]
    assert "http://127.0.0.1:8701" in lines["sup-a"] and "https://b.example/api" in lines["sup-b"]
    assert SECRET not in listed.output
    assert ledger_cli(env, "offers", "remove", "TOPUP-10", "sup-b").exit_code == 0
    assert "b-10" not in ledger_cli(env, "suppliers", "list").output
    settled = ledger_cli(env, "suppliers", "settle", "Keystone Wholesale", "1200.00", "--currency", "USD",
                         "--reference", "bank-77", "--period", "2026-11")
    assert settled.exit_code == 0, settled.output
    ledger = _ledger(env)
    try:
        settlement = ledger.reads.find(Settlement, settlement_id("bank-77"))
        assert settlement is not None and (settlement.supplier, str(settlement.amount)) == ("Keystone Wholesale",
                                                                                            "1200.00")
        stored = " ".join(repr(vars(e)) for e in event_log.events(ledger.app, size=1000))
        assert SECRET not in stored  # sealed before it is recorded
    finally:
        ledger.close()


@pytest.mark.parametrize(("args", "field"), [
    (["suppliers", "set", "sup-x", "--base-url", "ftp://x", "--currency", "USD", "--secret-env", "SUP_A_SECRET"],
     "base_url"),
    (["suppliers", "set", "sup x", "--base-url", "http://x", "--currency", "USD", "--secret-env", "SUP_A_SECRET"],
     "name"),
    (["suppliers", "set", "sup-x", "--base-url", "http://x", "--currency", "usd", "--secret-env", "SUP_A_SECRET"],
     "currency"),
    (["suppliers", "set", "sup-x", "--base-url", "http://x", "--currency", "USD", "--secret-env", "SUP_A_SECRET",
      "--timeout-ms", "5"], "timeout_ms"),
    (["suppliers", "set", "sup-x", "--base-url", "http://x", "--currency", "USD", "--secret-env", "NO_SUCH_VAR"],
     "secret"),
    (["suppliers", "set", "sup-x", "--base-url", "http://x", "--currency", "USD", "--secret-env", "SHORT"],
     "secret"),
    (["suppliers", "set", "sup-a", "--base-url", "http://x", "--currency", "EUR", "--secret-env", "SUP_A_SECRET"],
     "currency"),
    (["suppliers", "fund", "sup-a", "0", "--reference", "r"], "amount"),
    (["suppliers", "fund", "sup-a", "--reference", "r", "--", "-5"], "amount"),
    (["suppliers", "fund", "sup-a", "1.001", "--reference", "r"], "amount"),
    (["suppliers", "fund", "sup-a", "5.00", "--reference", " padded "], "reference"),
    (["suppliers", "fund", "nobody", "5.00", "--reference", "r"], "nobody"),
    (["suppliers", "settle", "sup-a", "5.00", "--currency", "USD", "--reference", ""], "reference"),
    (["offers", "set", "TOPUP-10", "sup-a", "--product", "a-10", "--cost", "9.601"], "cost"),
    (["offers", "set", "TOPUP-10", "sup-a", "--product", "a-10", "--cost", "1", "--priority", "-1"], "priority"),
    (["offers", "set", "NOPE", "sup-a", "--product", "a-10", "--cost", "1"], "NOPE"),
    (["offers", "set", "GAME-1", "sup-a", "--product", "a-10", "--cost", "1"], "card_key products are not fulfilled"),
    (["offers", "remove", "TOPUP-10", "sup-b"], "supplier"),
])
def test_a_refusal_exits_1_naming_the_field_and_writes_nothing(env: dict[str, str], args: list[str],
                                                               field: str) -> None:
    _recharge_product(env)
    assert ledger_cli(env, *SET_A).exit_code == 0
    before = _head(env)
    result = CliRunner().invoke(app, args, env={**env, "SHORT": "too-short"})
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and field in result.output, result.output
    assert "Traceback" not in result.output and SECRET not in result.output and "too-short" not in result.output
    assert _head(env) == before


def test_help_for_every_new_command() -> None:
    for args in (["suppliers"], ["suppliers", "set"], ["suppliers", "fund"], ["suppliers", "list"],
                 ["suppliers", "settle"], ["offers"], ["offers", "set"], ["offers", "remove"]):
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, args
    # No option takes the secret itself.
    assert "--secret " not in CliRunner().invoke(app, ["suppliers", "set", "--help"]).output
