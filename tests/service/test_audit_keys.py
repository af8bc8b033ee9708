"""The checkpoint signing key is refused at start where a database writer or another user
could reach it: inside the data directory, or readable by group or others."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from shell.cli import app
from tests.conftest import TEST_CIPHER_KEY


def _serve(tmp_path: Path, key: Path) -> tuple[int, str]:
    env = {"LEDGER_DATA_DIR": str(tmp_path / "data"), "LEDGER_CIPHER_KEY": TEST_CIPHER_KEY,
           "LEDGER_AUDIT_SIGNING_KEY_FILE": str(key)}
    done = CliRunner().invoke(app, ["serve", "--port", "0"], env=env)
    return done.exit_code, done.output


def test_a_signing_key_inside_the_data_directory_is_refused(tmp_path: Path) -> None:
    code, output = _serve(tmp_path, tmp_path / "data" / "audit-signing.key")
    assert code == 1
    assert "LEDGER_AUDIT_SIGNING_KEY_FILE" in output and "is inside LEDGER_DATA_DIR" in output
    assert not (tmp_path / "data" / "ledger.sqlite").exists()  # refused before anything was opened


def test_a_signing_key_others_may_read_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "audit-signing.key"
    made = CliRunner().invoke(app, ["audit", "public-key"], env={"LEDGER_AUDIT_SIGNING_KEY_FILE": str(key),
                                                                 "LEDGER_DATA_DIR": str(tmp_path / "data")})
    assert made.exit_code == 0 and "generated a new audit signing key" in made.output
    assert key.stat().st_mode & 0o777 == 0o600  # generated for its owner only
    key.chmod(0o644)
    code, output = _serve(tmp_path, key)
    assert code == 1 and "has mode 0644" in output and f"chmod 600 {key}" in output
