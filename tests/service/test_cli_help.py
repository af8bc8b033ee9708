"""Every `ledger` command answers --help."""

from __future__ import annotations

from typer.testing import CliRunner

from shell.cli import app


def test_help_for_every_command() -> None:
    runner = CliRunner()
    for args in ([], ["demo"], ["import-keys"], ["history"], ["expire"], ["bench"], ["bench", "write"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output
