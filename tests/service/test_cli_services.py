"""The `ledger` commands that run the ledger's services (serve, project, relay): where the read
models stand before any runner ran, the web UI serve --demo names, SIGTERM stopping a command
that waits, and the Kafka commands refusing to start without a cluster."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shell.cli import app
from tests.cli_helpers import env, seed
from tests.conftest import TEST_CIPHER_KEY

__all__ = ["env"]  # the fixture


def test_project_status_before_any_runner_ran(env: dict[str, str]) -> None:
    """A new deployment asks where its read models stand before it ever ran one: all at 0."""
    seed(env)
    result = CliRunner().invoke(app, ["project", "status"], env=env)
    assert result.exit_code == 0, result.output
    for name in ("facts", "inventory", "fraud", "journal", "sales", "profit"):
        assert re.search(rf"{name}\s*│\s*1\s*│\s*0\s*│", result.output), result.output  # version 1, position 0


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


def test_kafka_commands_without_a_cluster_say_what_is_missing_and_change_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from shell.cli import app as cli

    env = {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}", "LEDGER_DATA_DIR": str(tmp_path),
           "LEDGER_CIPHER_KEY": TEST_CIPHER_KEY, "LEDGER_KAFKA_BOOTSTRAP": ""}
    for args in (["relay"], ["project", "run", "--from-kafka"], ["serve", "--relay"]):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 1, (args, result.output)
        assert "LEDGER_KAFKA_BOOTSTRAP" in result.output, (args, result.output)
    assert not (tmp_path / "ledger.sqlite").exists()
    bad = CliRunner().invoke(cli, ["relay"], env=env | {"LEDGER_KAFKA_TOPIC_PREFIX": "no spaces"})
    assert bad.exit_code == 1 and "KAFKA_TOPIC_PREFIX" in bad.output, bad.output
