"""`ledger payments set-provider`: a payment provider's signing secret goes in from the environment
(never the command line), is checked against its scheme, sealed, and never printed or stored in clear."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ledger.config import Settings
from ledger.domain.ids import payment_provider_id
from ledger.domain.payment_providers import PaymentProvider
from ledger.service.ledger import open_ledger
from ledger.storage import event_log
from shell.cli import app

SECRET = "whsec_" + base64.b64encode(b"provider-secret-of-32-bytes-long").decode()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith("LEDGER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return {"LEDGER_DATA_DIR": str(tmp_path / "data"), "CARDPAY_SECRET": SECRET, "WEAK_SECRET": "whsec_c2hvcnQ="}


def ledger_cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def test_a_provider_is_set_with_its_secret_sealed_and_never_shown(env: dict[str, str]) -> None:
    done = ledger_cli(env, "payments", "set-provider", "cardpay", "--secret-env", "CARDPAY_SECRET")
    assert done.exit_code == 0, done.output
    assert "cardpay" in done.output and SECRET not in done.output
    database = Path(env["LEDGER_DATA_DIR"]) / "ledger.sqlite"
    stored = database.read_bytes()
    assert SECRET.encode() not in stored and SECRET.removeprefix("whsec_").encode() not in stored
    ledger = open_ledger(Settings(data_dir=Path(env["LEDGER_DATA_DIR"])))
    try:
        provider = ledger.reads.find(PaymentProvider, payment_provider_id("cardpay"))
        assert provider is not None and provider.scheme == "standard-webhooks"
        assert SECRET not in provider.secret_sealed
        assert ledger.vault.provider_secrets.unseal(provider.secret_sealed) == SECRET
    finally:
        ledger.close()


@pytest.mark.parametrize(("args", "message"), [
    (("--secret-env", "WEAK_SECRET"), "24 to 64 bytes"),
    (("--secret-env", "NOT_SET"), "NOT_SET is not set"),
    (("--secret-env", "CARDPAY_SECRET", "--scheme", "carrier-pigeon"), "scheme: one of standard-webhooks"),
])
def test_a_bad_secret_or_scheme_is_refused_and_writes_nothing(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    done = ledger_cli(env, "payments", "set-provider", "cardpay", *args)
    assert done.exit_code == 1 and message in done.output, done.output
    assert "c2hvcnQ" not in done.output
    ledger = open_ledger(Settings(data_dir=Path(env["LEDGER_DATA_DIR"])))
    try:
        assert event_log.head(ledger.app) == 0
    finally:
        ledger.close()
